"""The shape of each codebook file: which keys an entry may have, which it must have, and of
what type, as JSON Schemas in ``codebook_schemas/`` (one per kind of file, ``common.yaml`` for
what they share). Fills the gap between YAML and the loaders: a loader reads the keys it
expects, so a misspelt optional key (``mising:``) was ignored without a word and a missing one
failed as a bare ``KeyError``. The schemas double as the format's reference (their
descriptions), and an editor that speaks JSON Schema can check a file as it is typed."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections import deque
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMAS = Path(__file__).parent / "codebook_schemas"


@cache
def _validators() -> dict[str, Draft202012Validator]:
    documents = _documents()
    registry = Registry().with_resources(
        (name, Resource.from_contents(document, default_specification=DRAFT202012))
        for name, document in documents.items()
    )
    return {
        name: Draft202012Validator(document, registry=registry)
        for name, document in documents.items()
    }


def enum(schema: str, pointer: str) -> tuple[str, ...]:
    """The values a schema allows at ``pointer`` (a JSON pointer into ``codebook_schemas/
    <schema>`` naming a node with an ``enum``): the one list of them, which the loaders and
    the report read from here."""
    node: Any = _documents()[schema]
    for step in pointer.strip("/").split("/"):
        node = node[int(step)] if isinstance(node, list) else node[step]
    return tuple(node["enum"])


@cache
def _documents() -> dict[str, Any]:
    return {
        path.name: yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in sorted(SCHEMAS.glob("*.yaml"))
    }


def problem(document: Any, schema: str) -> str | None:
    """The first thing wrong with the shape of ``document`` (a file as YAML gives it) against
    ``codebook_schemas/<schema>``, named by its place in the file; None if nothing is. A key
    not allowed is named before a key missing: ``rnage`` is the misspelt ``range``."""
    errors = list(_validators()[schema].iter_errors(document))
    if not errors:
        return None
    unexpected = [e for e in errors if e.validator == "additionalProperties"]
    error = best_match(unexpected or errors)
    return f"{_place(document, error.absolute_path)}: {_message(error)}"


def _place(document: Any, path: deque) -> str:
    """``variables[wait_days].waves.ex_ante_2017``: a list item by its name or id where it has
    one, as a person finds it in the file."""
    place, node = "", document
    for step in path:
        if isinstance(step, int):
            item = node[step]
            names = [item.get(k) for k in ("id", "name", "block")] if isinstance(item, dict) else []
            name = next((n for n in names if isinstance(n, str)), None)
            place += f"[{name if name is not None else step}]"
        else:
            place += f".{step}" if place else str(step)
        node = node[step]
    return place or "the top level"


def _list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _message(error: ValidationError) -> str:
    read_as_other = error.instance is None or isinstance(
        error.instance, bool | int | float | dt.date
    )
    if error.validator == "type" and "string" in _list(error.validator_value) and read_as_other:
        return f"{error.message}: YAML reads it so; put it in quotes to make it text"
    if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
        return error.message
    allowed = list(error.schema.get("properties", {}))
    patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
    unknown = [
        key
        for key in error.instance
        if key not in allowed and not any(p.search(str(key)) for p in patterns)
    ]
    if not unknown:
        return error.message
    said = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), allowed, n=1)
        said.append(f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return "; ".join(said) + (f"; the keys allowed here: {', '.join(allowed)}" if allowed else "")
