"""A seeded generator of complete survey deliveries with known true values.

It draws every instrument and wave from the true model in ``data/generator/model.yaml``, writes
each file in the format, encoding and codes the codebook declares for it, and records the true
population values in ``ground_truth.json`` beside the wave folders.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from sdpipeline import __version__, reference
from sdpipeline.codebook import Codebook, default_codebook
from sdpipeline.generator.answers import Simulated, simulate_variable
from sdpipeline.generator.frames import build_frame, municipality_attributes
from sdpipeline.generator.model import TruthModel, check_model, load_model
from sdpipeline.generator.sampling import draw_sample
from sdpipeline.generator.writers import write_delivery_file

GROUND_TRUTH_FILE = "ground_truth.json"


def generate_delivery(
    out_dir: Path,
    scale: int = 1,
    seed: int | None = None,
    codebook: Codebook | None = None,
    model: TruthModel | None = None,
) -> dict:
    """Write a full delivery (every instrument × wave) under ``out_dir/<wave id>/``.

    ``scale`` multiplies every sample size (for benchmarks); the same seed and scale always
    give byte-identical files. Existing wave folders are replaced, nothing else is touched.
    """
    if scale < 1:
        raise ValueError("scale must be a whole number of at least 1")
    codebook = codebook or default_codebook()
    model = model or load_model()
    check_model(model, codebook)
    reference.check_waves(codebook)
    seed = model.seed if seed is None else seed
    truth: dict = {
        "generator": f"sdpipeline {__version__}",
        "seed": seed,
        "scale": scale,
        "model_sha256": model.digest,
        "codebook_version": codebook.version,
        "codes": "harmonised codes; missing kinds as their harmonised codes "
        + ", ".join(f"{m.code} = {m.kind}" for m in codebook.missing_categories.values()),
        "waves": {},
    }
    for wave_index, wave in enumerate(codebook.waves.values()):
        wave_dir = out_dir / wave.id
        if wave_dir.exists():
            shutil.rmtree(wave_dir)
        units = municipality_attributes(codebook, model, wave, seed)
        truth["waves"][wave.id] = {}
        for instrument_index, instrument in enumerate(codebook.instruments.values()):
            if wave.id not in instrument.files:
                continue
            rng = np.random.default_rng([seed, wave_index, instrument_index, scale])
            frame = build_frame(instrument.name, codebook, model, wave, units)
            sample = draw_sample(
                frame, model.instrument(instrument.name)["sample"], wave, scale, rng
            )
            done: dict[str, Simulated] = {}
            for variable in instrument.variables_in(wave.id):
                done[variable.name] = simulate_variable(
                    variable, wave, sample, frame, model, codebook, rng, done
                )
            variables = list(instrument.variables_in(wave.id))
            columns = {v.sources[wave.id].variable: done[v.name].values for v in variables}
            spec = instrument.files[wave.id]
            write_delivery_file(pd.DataFrame(columns), wave_dir / spec.name, spec, variables, wave)
            truth["waves"][wave.id][instrument.name] = {
                "file": spec.name,
                "respondents": len(sample),
                "population": "adults 18+"
                if instrument.name == "residents"
                else instrument.respondents.en,
                "variables": {name: s.truth for name, s in done.items() if s.truth is not None},
            }
    path = out_dir / GROUND_TRUTH_FILE
    path.write_text(
        json.dumps(truth, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    return truth
