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
  unit), by linear programming (SciPy's HiGHS), as τ-ARGUS's audit does; a hidden cell is
  protected when that interval is at least its required width.
* ``protect`` chooses the hidden cells: the cheapest set, primary cells included, under which
  every hidden cell is protected against an attacker who knows the published values exactly
  (stricter than τ-ARGUS, which protects only the primary cells: a figure the report marks as
  hidden is never one that subtraction gives back). It is Fischetti & Salazar's model (2001;
  what τ-ARGUS's "optimal" method and R ``sdcTable`` solve): a 0/1 choice per cell solved as a
  MILP (``scipy.optimize.milp``), with a constraint added for each hidden cell the current
  choice leaves exposed, taken from the dual of that cell's attacker problem (a Benders cut:
  it holds for every choice, so the loop ends with the cheapest protecting pattern).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

import numpy as np

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
        """The width a hidden cell needs, no more than its bounds allow."""
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
    indices = np.flatnonzero(mask)
    # every cell's maximum and minimum in one linear program: the copies do not interact, so
    # the optimum of their sum is each one's optimum (one solver call, not two per cell)
    senses = [(index, sense) for index in indices for sense in (1.0, -1.0)]
    solution = _blocks(
        problem.matrix(),
        [-sense * _unit(len(problem.cells), index) for index, sense in senses],
        np.zeros(problem.matrix().shape[0]),
        list(zip(low, high, strict=True)),
        "audit",
    )
    out = []
    for j, index in enumerate(indices):
        cell = problem.cells[index]
        out.append(
            Exposure(
                cell.key,
                cell.value,
                float(solution[2 * j + 1][index]),
                float(solution[2 * j][index]),
                problem.required(cell),
            )
        )
    return out


def _unit(size: int, index: int) -> np.ndarray:
    vector = np.zeros(size)
    vector[index] = 1.0
    return vector


def _blocks(
    matrix: np.ndarray,
    objectives: list[np.ndarray],
    right: np.ndarray | list[np.ndarray],
    bounds: list[tuple],
    what: str,
) -> list[np.ndarray]:
    """Minimise each objective over {z : matrix z = right, bounds} (``right`` one for all or
    one per objective), as one linear program of independent copies; the solution of each."""
    from scipy import sparse  # imported when solving: definitions load without SciPy
    from scipy.optimize import linprog

    copies = len(objectives)
    if not copies:
        return []
    rows, size = matrix.shape
    rights = right if isinstance(right, list) else [right] * copies
    result = linprog(
        np.concatenate(objectives),
        A_eq=sparse.block_diag([sparse.csr_matrix(matrix)] * copies) if rows else None,
        b_eq=np.concatenate(rights) if rows else None,
        bounds=bounds * copies,
        method="highs",
    )
    if result.status != 0:
        raise SuppressionError(f"{what}: {result.message}")
    return list(result.x.reshape(copies, size))


def _cuts(problem: Problem, a: np.ndarray, indices: list[int], hidden: np.ndarray):
    """For cells left exposed by ``hidden``: the coefficients c of a constraint every
    protecting choice satisfies, Σ_i c_i y_i ≥ required · y_s, one per cell. The width of a
    cell's interval, in deviations d from the true values, is max d_s + max (−d_s) over A d = 0 and
    −L·y ≤ d ≤ U·y (y = 1 for a hidden cell). Each max equals its dual, min Σ (U α + L β)·y
    over A'λ + α − β = ±e_s, α, β ≥ 0, which does not depend on y: the dual solution found for
    this choice bounds the width under any other, so Σ_i (U_i α_i + L_i β_i) y_i ≥ required
    wherever s is hidden (and c ≥ 0, so the constraint asks nothing where it is not)."""
    values = np.array([c.value for c in problem.cells])
    up = np.array([c.upper for c in problem.cells]) - values
    down = values - np.array([c.lower for c in problem.cells])
    n, m = len(problem.cells), len(a)
    # variables of each dual: λ (m, free), α (n, ≥ 0), β (n, ≥ 0)
    equality = np.hstack([a.T, np.eye(n), -np.eye(n)])
    cost = np.concatenate([np.zeros(m), up * hidden, down * hidden])
    bounds = [(None, None)] * m + [(0, None)] * (2 * n)
    targets = [sign * _unit(n, index) for index in indices for sign in (1.0, -1.0)]
    duals = _blocks(equality, [cost] * len(targets), targets, bounds, "dual of an attacker")
    coefficients = []
    for j in range(len(indices)):
        total = np.zeros(n)
        for z in duals[2 * j : 2 * j + 2]:
            total += up * z[m : m + n] + down * z[m + n :]
        coefficients.append(total)
    return coefficients


def protect(problem: Problem) -> set[Hashable]:
    """The cheapest set of cells to hide, the primary ones included, under which every hidden
    cell's interval (against an attacker who knows every published value exactly) is at least
    its required width."""
    from scipy.optimize import Bounds, LinearConstraint, milp  # as in ``_blocks``

    cells = problem.cells
    primary = np.array([c.primary for c in cells])
    if not primary.any():
        return set()
    a = problem.matrix()
    cost = np.array([c.cost for c in cells], dtype=float)
    cuts: list[np.ndarray] = []
    hidden = primary.copy()
    for _ in range(MAX_ROUNDS):
        keys = [c.key for c, h in zip(cells, hidden, strict=True) if h]
        exposed = [e for e in audit(problem, keys) if not e.protected]
        if not exposed:
            return set(keys)
        indices = [problem.index(e.key) for e in exposed]
        for index, exposure, coefficients in zip(
            indices, exposed, _cuts(problem, a, indices, hidden.astype(float)), strict=True
        ):
            coefficients[index] -= exposure.required
            cuts.append(coefficients)
        result = milp(
            cost,
            integrality=np.ones(len(cells)),
            bounds=Bounds(primary.astype(float), np.ones(len(cells))),
            constraints=LinearConstraint(np.array(cuts), 0.0, np.inf),
        )
        if result.status != 0:
            raise SuppressionError(f"no pattern protects every hidden cell: {result.message}")
        hidden = result.x > 0.5
    raise SuppressionError(f"no protecting pattern after {MAX_ROUNDS} rounds")
