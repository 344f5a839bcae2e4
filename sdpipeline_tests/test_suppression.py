"""The secondary-suppression engine: the audit finds what subtraction gives back, the pattern
it chooses protects every primary cell, and no cheaper pattern would."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdpipeline.suppression import Cell, Problem, Relation, SuppressionError, audit, protect


def _regions(values, bases, primary, protection=20.0, national_cost=1000.0) -> Problem:
    """A national figure and its regions: W·national − Σ W_r·region_r = 0."""
    total = float(np.dot(values, bases))
    national = total / sum(bases)
    cells = [Cell("LV", national, 0, 100, cost=national_cost)]
    cells += [
        Cell(f"r{i}", v, 0, 100, primary=p, protection=protection if p else 0.0, cost=w)
        for i, (v, w, p) in enumerate(zip(values, bases, primary, strict=True))
    ]
    relation = Relation(
        (("LV", float(sum(bases))), *((f"r{i}", -float(w)) for i, w in enumerate(bases)))
    )
    return Problem(tuple(cells), (relation,))


def test_a_lone_suppressed_region_comes_back_by_subtraction():
    problem = _regions([100.0, 50.0, 40.0], [1, 4, 5], [True, False, False])
    (exposure,) = audit(problem, ["r0"])
    assert exposure.low == pytest.approx(100) and exposure.high == pytest.approx(100)
    assert not exposure.protected
    # printed to one decimal, the others' rounding leaves the attacker a few points
    (rounded,) = audit(problem, ["r0"], rounding=0.1)
    assert 0 < rounded.width < 20 and not rounded.protected


def test_the_cheapest_complement_protects_the_primary_cell():
    problem = _regions([100.0, 50.0, 40.0], [1, 4, 5], [True, False, False])
    hidden = protect(problem)
    assert hidden == {"r0", "r1"}
    exposures = {e.key: e for e in audit(problem, hidden)}
    assert exposures["r0"].protected
    assert exposures["r0"].low == pytest.approx(0) and exposures["r0"].high == pytest.approx(100)


def test_two_primary_cells_can_protect_each_other():
    problem = _regions([10.0, 90.0, 40.0, 60.0], [5, 5, 20, 20], [True, True, False, False])
    assert protect(problem) == {"r0", "r1"}


def test_a_heavy_primary_cell_needs_more_than_a_light_complement():
    # hiding r1 and r2 (bases 1 and 2) beside r0 (base 20) moves r0 by at most 3/20 of their
    # range, 15 points: not the 20 it needs, so the complement is r3, dearer as it is
    problem = _regions([50.0, 50.0, 50.0, 50.0], [20, 1, 2, 30], [True, False, False, False])
    assert audit(problem, ["r0", "r1", "r2"])[0].width == pytest.approx(15)
    assert protect(problem) == {"r0", "r3"}


def test_a_primary_cell_that_cannot_be_protected_is_an_error():
    cells = (
        Cell("a", 5.0, 0, 100, primary=True, protection=20.0),
        Cell("b", 5.0, 0, 100, primary=True, protection=20.0),
    )
    # a = b is all anyone knows: hiding both still leaves each one's full range
    assert protect(Problem(cells, (Relation((("a", 1.0), ("b", -1.0))),))) == {"a", "b"}
    narrow = (Cell("c", 5.0, 4.0, 6.0, primary=True, protection=20.0),)
    assert protect(Problem(narrow)) == {"c"}  # the whole known range is all it can have
    with pytest.raises(ValueError, match="outside its bounds"):
        Problem((Cell("d", 120.0, 0, 100),))


def _brute_force(problem: Problem) -> float:
    """The cost of the cheapest protecting pattern, by trying every one."""
    free = [c for c in problem.cells if not c.primary]
    primary = [c.key for c in problem.cells if c.primary]
    best = np.inf
    for size in range(len(free) + 1):
        for extra in itertools.combinations(free, size):
            hidden = primary + [c.key for c in extra]
            if all(e.protected for e in audit(problem, hidden)):
                best = min(best, sum(problem.cells[problem.index(k)].cost for k in hidden))
    return best


tables = st.integers(2, 5).flatmap(
    lambda regions: st.tuples(
        st.lists(st.floats(0, 100), min_size=regions, max_size=regions),
        st.lists(st.integers(1, 40), min_size=regions, max_size=regions),
        st.lists(st.booleans(), min_size=regions, max_size=regions),
    )
)


@settings(deadline=None, max_examples=25)
@given(table=tables)
def test_the_pattern_protects_and_is_the_cheapest(table):
    values, bases, primary = table
    problem = _regions(values, bases, primary, national_cost=100.0)
    try:
        hidden = protect(problem)
    except SuppressionError:
        assert _brute_force(problem) == np.inf
        return
    assert all(e.protected for e in audit(problem, hidden))
    cost = sum(problem.cells[problem.index(k)].cost for k in hidden)
    assert cost == pytest.approx(_brute_force(problem))
