"""Secondary cell suppression, and the audit of a suppression pattern by linear programming.

Primary suppression hides a cell that is sensitive by itself (too few respondents, a dominant
contributor). Where margins are published, that is not enough: the national figure, the other
regions' figures and the public bases (how many services or adults a region has) give back a
hidden region by subtraction. This module is the plain, table-agnostic engine; which cells and
relations a table has is said by its caller (``disclosure``).

A problem is a set of cells, each with its exact value, the bounds anyone knows beforehand
(0–100 for a percentage), whether it is primary, the protection it needs and what hiding it
costs, and the linear relations an attacker knows to hold exactly between the cells' values
(Σ coefficient × value = 0; e.g. W·national − Σ W_r·region_r = 0 with the weighted bases W).

* ``audit`` gives, for every hidden cell, the smallest and largest value consistent with
  everything published (each published figure read as an interval of ± half its rounding
  unit), by two linear programs per cell (SciPy's HiGHS), as τ-ARGUS's audit does; a primary
  cell is protected when that interval is at least its required width.
* ``protect`` chooses the hidden cells: the cheapest set, primary cells included, under which
  every primary cell is protected against an attacker who knows the published values exactly.
  It is Fischetti & Salazar's model (2001; what τ-ARGUS's "optimal" method and R ``sdcTable``'s
  solve): a 0/1 choice per cell solved as a MILP (``scipy.optimize.milp``), with a constraint
  added for each primary cell the current choice leaves exposed, taken from the dual of that
  cell's attacker problem (a Benders cut: it holds for every choice, so the loop ends with the
  cheapest protecting pattern).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

# Attacker problems are solved to this tolerance; a width within it of the requirement passes.
SLACK = 1e-7
MAX_ROUNDS = 200


class SuppressionError(RuntimeError):
    """No pattern protects every primary cell (or the solver failed)."""


@dataclass(frozen=True)
class Cell:
    key: Hashable
    value: float
    lower: float
    upper: float
    primary: bool = False
    protection: float = 0.0
    cost: float = 1.0


@dataclass(frozen=True)
class Relation:
    """Σ coefficient × value = 0 over the named cells, exactly, in the true values."""

    terms: tuple[tuple[Hashable, float], ...]


@dataclass(frozen=True)
class Problem:
    cells: tuple[Cell, ...]
    relations: tuple[Relation, ...] = ()
    _index: dict[Hashable, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update({cell.key: i for i, cell in enumerate(self.cells)})
        if len(self._index) != len(self.cells):
            raise ValueError("cell keys repeat")
        for cell in self.cells:
            if not (np.isfinite(cell.lower) and np.isfinite(cell.upper)):
                raise ValueError(f"{cell.key!r}: an attacker's bounds must be finite")
            if not cell.lower - 1e-9 <= cell.value <= cell.upper + 1e-9:
                raise ValueError(f"{cell.key!r}: value {cell.value} outside its bounds")

    def index(self, key: Hashable) -> int:
        return self._index[key]

    def matrix(self) -> np.ndarray:
        a = np.zeros((len(self.relations), len(self.cells)))
        for row, relation in enumerate(self.relations):
            for key, coefficient in relation.terms:
                a[row, self._index[key]] += coefficient
        return a

    def required(self, cell: Cell) -> float:
        """The width a primary cell needs, no more than its bounds allow."""
        return min(cell.protection, (cell.upper - cell.lower) * (1 - 1e-9))


@dataclass(frozen=True)
class Exposure:
    """What an attacker can tell of one hidden cell."""

    key: Hashable
    value: float
    low: float
    high: float
    required: float

    @property
    def width(self) -> float:
        return self.high - self.low

    @property
    def protected(self) -> bool:
        return self.width >= self.required - SLACK * max(1.0, abs(self.required))


def _box(problem: Problem, hidden: np.ndarray, published: np.ndarray | None, rounding: float):
    """Each cell's range for the attacker: a hidden cell's known bounds, a published one's
    printed figure ± half the rounding unit (or its exact value)."""
    values = np.array([c.value for c in problem.cells])
    shown = values if published is None else published
    low = np.where(hidden, [c.lower for c in problem.cells], shown - rounding / 2)
    high = np.where(hidden, [c.upper for c in problem.cells], shown + rounding / 2)
    return low, high


def audit(
    problem: Problem,
    hidden: Iterable[Hashable],
    rounding: float = 0.0,
    published: dict[Hashable, float] | None = None,
) -> list[Exposure]:
    """For every hidden cell, the interval of values consistent with the published cells
    (``published``: the figures as printed, default the exact values; each read as ± half of
    ``rounding``), the known bounds of the hidden ones and the relations."""
    hidden = set(hidden)
    mask = np.array([c.key in hidden for c in problem.cells])
    printed = None
    if published is not None:
        printed = np.array([published.get(c.key, c.value) for c in problem.cells], dtype=float)
    low, high = _box(problem, mask, printed, rounding)
    a = problem.matrix()
    out = []
    for index in np.flatnonzero(mask):
        cell = problem.cells[index]
        ends = []
        for sense in (1.0, -1.0):
            objective = np.zeros(len(problem.cells))
            objective[index] = sense
            result = linprog(
                objective,
                A_eq=a if len(a) else None,
                b_eq=np.zeros(len(a)) if len(a) else None,
                bounds=list(zip(low, high, strict=True)),
                method="highs",
            )
            if result.status != 0:
                raise SuppressionError(f"audit of {cell.key!r}: {result.message}")
            ends.append(sense * result.fun)
        out.append(
            Exposure(
                cell.key,
                cell.value,
                ends[0],
                ends[1],
                problem.required(cell) if cell.primary else 0.0,
            )
        )
    return out


def _cut(problem: Problem, a: np.ndarray, index: int, hidden: np.ndarray):
    """For a primary cell left exposed by ``hidden``: (coefficients, right-hand side) of a
    constraint every protecting choice satisfies. The width of the cell's interval, written in
    deviations d from the true values, is max d_s + max (−d_s) over A d = 0 and
    −L·y ≤ d ≤ U·y (y = 1 for a hidden cell). Each max equals its dual, min Σ (U α + L β)·y
    over A'λ + α − β = ±e_s, α, β ≥ 0, which does not depend on y: the dual solution found for
    this choice bounds the width under any other, so Σ_i (U_i α_i + L_i β_i) y_i ≥ required."""
    values = np.array([c.value for c in problem.cells])
    up = np.array([c.upper for c in problem.cells]) - values
    down = values - np.array([c.lower for c in problem.cells])
    n, m = len(problem.cells), len(a)
    coefficients = np.zeros(n)
    width = 0.0
    # variables: λ (m, free), α (n, ≥ 0), β (n, ≥ 0)
    equality = np.hstack([a.T, np.eye(n), -np.eye(n)])
    cost = np.concatenate([np.zeros(m), up * hidden, down * hidden])
    bounds = [(None, None)] * m + [(0, None)] * (2 * n)
    for sign in (1.0, -1.0):
        target = np.zeros(n)
        target[index] = sign
        result = linprog(cost, A_eq=equality, b_eq=target, bounds=bounds, method="highs")
        if result.status != 0:
            raise SuppressionError(f"dual of {problem.cells[index].key!r}: {result.message}")
        alpha, beta = result.x[m : m + n], result.x[m + n :]
        coefficients += up * alpha + down * beta
        width += result.fun
    return coefficients, width


def protect(problem: Problem) -> set[Hashable]:
    """The cheapest set of cells to hide, the primary ones included, under which every primary
    cell's interval (against an attacker who knows every published value exactly) is at least
    its required width."""
    cells = problem.cells
    primary = np.array([c.primary for c in cells])
    if not primary.any():
        return set()
    a = problem.matrix()
    cost = np.array([c.cost for c in cells], dtype=float)
    cuts: list[np.ndarray] = []
    needs: list[float] = []
    hidden = primary.copy()
    for _ in range(MAX_ROUNDS):
        exposed = [
            e
            for e in audit(problem, [c.key for c, h in zip(cells, hidden, strict=True) if h])
            if not e.protected
        ]
        if not exposed:
            return {c.key for c, h in zip(cells, hidden, strict=True) if h}
        for exposure in exposed:
            index = problem.index(exposure.key)
            coefficients, _ = _cut(problem, a, index, hidden.astype(float))
            cuts.append(coefficients)
            needs.append(exposure.required)
        result = milp(
            cost,
            integrality=np.ones(len(cells)),
            bounds=Bounds(primary.astype(float), np.ones(len(cells))),
            constraints=LinearConstraint(np.array(cuts), np.array(needs), np.inf),
        )
        if result.status != 0:
            raise SuppressionError(f"no pattern protects every primary cell: {result.message}")
        hidden = result.x > 0.5
    raise SuppressionError(f"no protecting pattern after {MAX_ROUNDS} rounds")
