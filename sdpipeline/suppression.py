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
* A cell of equally weighted answers on a grid (a share of n respondents is 100·k/n, k whole)
  says so by its ``step``; where a hidden cell does, ``audit`` narrows the intervals to what
  whole numbers allow: each relation on its own by trying them (meet in the middle), relations
  that share a hidden cell by mixed-integer programming. Linear programming alone misses this: a
  heads-of-service region weighs W_r/n_r, so where that is not whole the national figure fixes
  k modulo n_r, an exact answer from a "protected" interval.
* ``protect`` chooses the hidden cells: the cheapest set, primary cells included, under which
  every hidden cell is protected against an attacker who knows the published values exactly
  (stricter than τ-ARGUS, which protects only the primary cells: a figure the report marks as
  hidden is never one that subtraction gives back). It is Fischetti & Salazar's model (2001;
  what τ-ARGUS's "optimal" method and R ``sdcTable`` solve): a 0/1 choice per cell solved as a
  MILP (``scipy.optimize.milp``), with a constraint added for each hidden cell the current
  choice leaves exposed, taken from the dual of that cell's attacker problem (a Benders cut:
  it holds for every choice, so the loop ends with the cheapest protecting pattern). A cell
  that only whole numbers expose gets a combinatorial cut instead: the hidden set is first
  grown, cheapest cells first, as far as it stays exposing; hiding more cells only widens an
  intruder's range, so some cell of the same relations outside that grown set must be hidden.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

import numpy as np

# Attacker problems are solved to this tolerance; a width within it of the requirement passes.
SLACK = 1e-7
MAX_ROUNDS = 200
# sums the whole-number audit may hold in each half of a relation's enumeration; past it,
# mixed-integer programming
ENUMERATED = 1e7
# terms of a relation whose every split into halves is tried (2^(n-1) splits)
SPLIT_TRIED = 14
# sums matched at once in the whole-number audit
CHUNK = 1_000_000
# seconds one mixed-integer program of the whole-number audit may take
MILP_SECONDS = 10.0


class SuppressionError(RuntimeError):
    """No pattern protects every primary cell (or the solver failed)."""


class TooLarge(SuppressionError):
    """The whole-number audit of a pattern is past what it may enumerate (``ENUMERATED``) and
    solve (``MILP_SECONDS``): the pattern cannot be shown to protect its cells."""


@dataclass(frozen=True)
class Cell:
    key: Hashable
    value: float
    lower: float
    upper: float
    primary: bool = False
    protection: float = 0.0
    cost: float = 1.0
    # > 0: the value is a whole multiple of ``step`` (a share of n equally weighted respondents:
    # 100/n), as an intruder who knows n and the weights can tell
    step: float = 0.0


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
            if cell.step < 0 or (
                cell.step > 0 and abs(cell.value / cell.step - round(cell.value / cell.step)) > 1e-6
            ):
                raise ValueError(f"{cell.key!r}: value {cell.value} not a multiple of {cell.step}")

    def index(self, key: Hashable) -> int:
        return self._index[key]

    def matrix(self) -> np.ndarray:
        a = np.zeros((len(self.relations), len(self.cells)))
        for row, relation in enumerate(self.relations):
            for key, coefficient in relation.terms:
                a[row, self._index[key]] += coefficient
        return a

    def component(self, key: Hashable) -> set[int]:
        """The cells tied to ``key``'s by a chain of relations (itself included): no other cell,
        hidden or shown, changes what an intruder can tell of it."""
        a = self.matrix() != 0
        found, frontier = {self._index[key]}, [self._index[key]]
        while frontier:
            rows = a[:, frontier].any(axis=1)
            new = set(np.flatnonzero(a[rows].any(axis=0))) - found
            found |= new
            frontier = list(new)
        return found

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
    whole_numbers: bool = True,
) -> list[Exposure]:
    """For every hidden cell, the interval of values consistent with the published cells
    (``published``: the figures as printed, default the exact values; each read as ± half of
    ``rounding``), the known bounds of the hidden ones and the relations; and, unless
    ``whole_numbers`` is off, that a hidden cell with a ``step`` is a whole multiple of it."""
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
    ends = {
        index: (float(solution[2 * j + 1][index]), float(solution[2 * j][index]))
        for j, index in enumerate(indices)
    }
    if whole_numbers and any(problem.cells[i].step > 0 for i in indices):
        ends = _whole_numbers(problem, mask, low, high)
    return [
        Exposure(
            problem.cells[i].key,
            problem.cells[i].value,
            *ends[i],
            problem.required(problem.cells[i]),
        )
        for i in indices
    ]


def _whole_numbers(
    problem: Problem, hidden: np.ndarray, low: np.ndarray, high: np.ndarray
) -> dict[int, tuple[float, float]]:
    """Each hidden cell's smallest and largest value when the hidden cells with a ``step`` take
    only whole multiples of it. A cell whose range is a single point is a constant. Where every
    other cell is in one relation at most (a national figure published, or its only breakdown),
    each relation is solved on its own by enumeration (``_one_relation``); otherwise, or where
    that would enumerate too much, by mixed-integer programming (``_by_milp``; ``TooLarge`` if
    that runs out of time). Each relation holds to a band of 1e-9 of its terms' size, the
    rounding of the figures it is computed from."""
    a = problem.matrix()
    fixed = high - low <= 0
    active = (a != 0) & ~fixed
    rows = np.flatnonzero(active.any(axis=1))
    band = 1e-9 * (np.abs(a) @ np.maximum(np.abs(low), np.abs(high)) + 1.0)
    target = -(a[:, fixed] @ low[fixed])
    steps = np.array([c.step if h else 0.0 for c, h in zip(problem.cells, hidden, strict=True)])
    if (active[rows].sum(axis=0) > 1).any():
        return _by_milp(a, fixed, steps, low, high, target, band, hidden, problem)
    ends = {i: (float(low[i]), float(high[i])) for i in np.flatnonzero(hidden)}
    for row in rows:
        members = np.flatnonzero(active[row])
        try:
            found = _one_relation(
                a[row, members],
                steps[members],
                low[members],
                high[members],
                target[row] - band[row],
                target[row] + band[row],
            )
        except TooLarge:
            return _by_milp(a, fixed, steps, low, high, target, band, hidden, problem)
        if found is None:
            raise SuppressionError(f"whole-number audit: no values satisfy relation {row}")
        for i, (lo, hi) in zip(members, found, strict=True):
            if hidden[i]:
                ends[i] = (lo, hi)
    return ends


def _one_relation(
    a: np.ndarray, steps: np.ndarray, low: np.ndarray, high: np.ndarray, lo: float, hi: float
) -> list[tuple[float, float]] | None:
    """For lo ≤ Σ a_i v_i ≤ hi with v_i in [low_i, high_i], and a whole multiple of step_i where
    that is > 0: each v_i's smallest and largest value (None if nothing satisfies it).

    The terms without a step add an interval. Where it is at least as wide as the largest step
    of the other whole-number terms, those terms' sums leave no gap it does not cover (raising
    one term by one step moves the sum by at most that much), so an interval is all the others
    give. Otherwise the whole-number terms are enumerated in two halves, and every combination
    of each half is matched against the sorted sums of the other (meet in the middle)."""
    grid = steps > 0
    scale = np.where(grid, steps, 1.0)
    values = [
        steps[i]
        * np.arange(np.ceil(low[i] / scale[i] - 1e-9), np.floor(high[i] / scale[i] + 1e-9) + 1)
        for i in range(len(a))
    ]
    span = np.array([sorted((a[i] * low[i], a[i] * high[i])) for i in range(len(a))])
    terms = {int(i): a[i] * values[i] for i in np.flatnonzero(grid)}
    out = []
    matched = None
    for i in range(len(a)):
        others = [j for j in terms if j != i]
        slack = [j for j in range(len(a)) if j != i and not grid[j]]
        c_low, c_high = float(span[slack, 0].sum()), float(span[slack, 1].sum())
        largest = max(
            (abs(terms[j][1] - terms[j][0]) for j in others if len(terms[j]) > 1), default=0.0
        )
        if c_high - c_low >= largest:
            # the others reach every value between their least and greatest sum
            least = lo - sum(float(terms[j].max()) for j in others) - c_high
            most = hi - sum(float(terms[j].min()) for j in others) - c_low
            if not grid[i]:
                least, most = max(least, span[i][0]), min(most, span[i][1])
                if least > most:
                    return None
                ends = sorted((least / a[i], most / a[i]))
                out.append((max(low[i], ends[0]), min(high[i], ends[1])))
                continue
            ok = (terms[i] >= least) & (terms[i] <= most)
        elif grid[i]:
            if matched is None:
                rest = span[~grid].sum(axis=0) if (~grid).any() else np.zeros(2)
                matched = _matched(terms, lo - float(rest[1]), hi - float(rest[0]))
            ok = matched[i]
        else:
            reach = (lo - c_high - span[i][1], hi - c_low - span[i][0])  # for the others' sum
            s_low = sum(float(terms[j].min()) for j in others)
            s_high = sum(float(terms[j].max()) for j in others)
            if reach[0] <= s_low and s_high <= reach[1]:  # every sum allowed
                least, most = s_low, s_high
            else:
                least, most = _extremes(*_halves([terms[j] for j in others]), *reach)
            if least is None:
                return None
            ends = sorted(((lo - most - c_high) / a[i], (hi - least - c_low) / a[i]))
            out.append((max(low[i], ends[0]), min(high[i], ends[1])))
            continue
        if not ok.any():
            return None
        out.append((float(values[i][ok].min()), float(values[i][ok].max())))
    return out


def _within_reach(sizes: list[int]) -> None:
    """Raise ``TooLarge`` where the larger half of an enumeration would hold more than
    ``ENUMERATED`` sums."""
    size = max(np.prod([sizes[p] for p in half], dtype=float) for half in _split(sizes))
    if size > ENUMERATED:
        raise TooLarge(f"whole-number audit: {size:.3g} sums in a half, past {ENUMERATED:.3g}")


def _split(sizes: list[float]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The two halves of the terms (by position) whose larger product of sizes is least:
    trying every split up to ``SPLIT_TRIED`` terms (a region breakdown has seven), past that
    each term, largest first, to the half with the smaller product."""
    if len(sizes) > SPLIT_TRIED:
        halves: tuple[list[int], list[int]] = ([], [])
        products = [1.0, 1.0]
        for p in sorted(range(len(sizes)), key=lambda p: -sizes[p]):
            side = int(products[1] < products[0])
            halves[side].append(p)
            products[side] *= sizes[p]
        return tuple(sorted(halves[0])), tuple(sorted(halves[1]))
    best: tuple[float, tuple[int, ...], tuple[int, ...]] = (np.inf, (), ())
    for mask in range(2 ** max(len(sizes) - 1, 0)):
        first = tuple(p for p in range(len(sizes)) if mask >> p & 1)
        second = tuple(p for p in range(len(sizes)) if not mask >> p & 1)
        size = max(np.prod([sizes[p] for p in first]), np.prod([sizes[p] for p in second]))
        if size < best[0]:
            best = (float(size), first, second)
    return best[1], best[2]


def _sums(terms: list[np.ndarray]) -> np.ndarray:
    """Every sum of one value per term, in the order of ``np.unravel_index`` over their sizes."""
    total = np.zeros(1)
    for values in terms:
        total = (total[:, None] + values[None, :]).ravel()
    return total


def _halves(terms: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every sum of one value per term, for each of the two halves ``_split`` makes, sorted."""
    _within_reach([len(t) for t in terms])
    first, second = _split([len(t) for t in terms])
    return np.sort(_sums([terms[p] for p in first])), np.sort(_sums([terms[p] for p in second]))


def _matched(terms: dict[int, np.ndarray], lo: float, hi: float) -> dict[int, np.ndarray]:
    """For lo ≤ Σ_j t_j ≤ hi with each t_j one of ``terms[j]``: for each j, which of its values
    some combination takes. Each half's combinations are matched against the other's sorted
    sums, once for each half."""
    keys = list(terms)
    _within_reach([len(terms[k]) for k in keys])
    halves = [[keys[p] for p in half] for half in _split([len(terms[k]) for k in keys])]
    sums = [_sums([terms[k] for k in half]) for half in halves]
    found = {}
    for mine, theirs in ((0, 1), (1, 0)):
        other = np.sort(sums[theirs])
        hit = np.zeros(len(sums[mine]), dtype=bool)
        for start in range(0, len(hit), CHUNK):  # a chunk at a time: memory, not speed
            part = sums[mine][start : start + CHUNK]
            count = np.searchsorted(other, hi - part, "right") - np.searchsorted(other, lo - part)
            hit[start : start + CHUNK] = count > 0
        shape = tuple(len(terms[k]) for k in halves[mine]) or (1,)
        where = np.unravel_index(np.flatnonzero(hit), shape)
        for position, key in enumerate(halves[mine]):
            found[key] = np.zeros(len(terms[key]), dtype=bool)
            found[key][where[position]] = True
    return found


def _extremes(
    x: np.ndarray, y: np.ndarray, lo: float, hi: float
) -> tuple[float | None, float | None]:
    """The smallest and largest x + y in [lo, hi] (None, None if there is none; y sorted)."""
    below = np.searchsorted(y, hi - x, "right") - 1
    tops = x[below >= 0] + y[below[below >= 0]]
    tops = tops[tops >= lo]
    above = np.searchsorted(y, lo - x, "left")
    bottoms = x[above < len(y)] + y[above[above < len(y)]]
    bottoms = bottoms[bottoms <= hi]
    if not tops.size:
        return None, None
    return float(bottoms.min()), float(tops.max())


def _by_milp(
    a: np.ndarray,
    fixed: np.ndarray,
    steps: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    target: np.ndarray,
    band: np.ndarray,
    hidden: np.ndarray,
    problem: Problem,
) -> dict[int, tuple[float, float]]:
    """``_whole_numbers`` where relations share a cell: two mixed-integer programs per hidden
    cell (SciPy's ``milp``, HiGHS), the constants on the right-hand side (a variable fixed by
    its bounds can make HiGHS's presolve call a true solution infeasible)."""
    from scipy.optimize import Bounds, LinearConstraint, milp  # as in ``_blocks``

    free = np.flatnonzero(~fixed)
    grid = steps[free] > 0
    scale = np.where(grid, steps[free], 1.0)  # a value is scale × variable
    lower = np.where(grid, np.ceil(low[free] / scale - 1e-9), low[free])
    upper = np.where(grid, np.floor(high[free] / scale + 1e-9), high[free])
    constraints = [LinearConstraint(a[:, free] * scale, target - band, target + band)]
    ends = {}
    for index in np.flatnonzero(hidden):
        if fixed[index]:
            ends[index] = (float(low[index]), float(high[index]))
            continue
        position = int(np.searchsorted(free, index))
        found = []
        for sense in (1.0, -1.0):
            objective = np.zeros(len(free))
            objective[position] = sense * scale[position]
            result = milp(
                objective,
                integrality=grid.astype(int),
                bounds=Bounds(lower, upper),
                constraints=constraints,
                options={"mip_rel_gap": 0.0, "time_limit": MILP_SECONDS},
            )
            if result.status == 1:  # HiGHS's time limit
                raise TooLarge(
                    f"whole-number audit of {problem.cells[index].key!r}: {result.message}"
                )
            if result.status != 0:
                raise SuppressionError(
                    f"whole-number audit of {problem.cells[index].key!r}: {result.message}"
                )
            found.append(float(result.x[position] * scale[position]))
        ends[index] = (found[0], found[1])
    return ends


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
    cell's interval (against an attacker who knows every published value exactly, and that a
    cell with a ``step`` is a whole multiple of it) is at least its required width."""
    from scipy.optimize import Bounds, LinearConstraint, milp  # as in ``_blocks``

    cells = problem.cells
    primary = np.array([c.primary for c in cells])
    if not primary.any():
        return set()
    a = problem.matrix()
    cost = np.array([c.cost for c in cells], dtype=float)
    cuts: list[np.ndarray] = []
    least: list[float] = []  # each cut's right-hand side
    hidden = primary.copy()
    whole_numbers = _Audits(problem)
    for _ in range(MAX_ROUNDS):
        keys = [c.key for c, h in zip(cells, hidden, strict=True) if h]
        exposed = [e for e in audit(problem, keys, whole_numbers=False) if not e.protected]
        if exposed:
            indices = [problem.index(e.key) for e in exposed]
            for index, exposure, coefficients in zip(
                indices, exposed, _cuts(problem, a, indices, hidden.astype(float)), strict=True
            ):
                coefficients[index] -= exposure.required
                cuts.append(coefficients)
                least.append(0.0)
        else:
            try:
                exposed = [e for e in whole_numbers(hidden) if not e.protected]
            except TooLarge:
                # not shown to protect: this very pattern is ruled out, Σ_{i∉H} y_i −
                # Σ_{i∈H} y_i ≥ 1 − |H| (hiding the national figure makes a relation an
                # interval, which is always shown)
                cuts.append(np.where(hidden, -1.0, 1.0))
                least.append(1.0 - hidden.sum())
            else:
                if not exposed:
                    return set(keys)
                cuts += [_combinatorial_cut(problem, hidden, e.key, whole_numbers) for e in exposed]
                least += [0.0] * len(exposed)
        result = milp(
            cost,
            integrality=np.ones(len(cells)),
            bounds=Bounds(primary.astype(float), np.ones(len(cells))),
            constraints=LinearConstraint(np.array(cuts), np.array(least), np.inf),
        )
        if result.status != 0:
            raise SuppressionError(f"no pattern protects every hidden cell: {result.message}")
        hidden = result.x > 0.5
    raise SuppressionError(f"no protecting pattern after {MAX_ROUNDS} rounds")


class _Audits:
    """The whole-number audit of each hidden set, worked out once per ``protect``: growing a
    combinatorial cut for each exposed cell of a relation tests mostly the same sets, a third
    of them new (the gap: ``audit`` is a plain function and keeps nothing)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.found: dict[bytes, list[Exposure] | str] = {}

    def __call__(self, hidden: np.ndarray) -> list[Exposure]:
        """``audit`` of ``hidden`` (a mask over the cells); raises ``TooLarge`` as it did."""
        mask = np.packbits(hidden).tobytes()
        if mask not in self.found:
            keys = [c.key for c, h in zip(self.problem.cells, hidden, strict=True) if h]
            try:
                self.found[mask] = audit(self.problem, keys)
            except TooLarge as error:
                self.found[mask] = str(error)
        found = self.found[mask]
        if isinstance(found, str):
            raise TooLarge(found)
        return found


def _combinatorial_cut(
    problem: Problem, hidden: np.ndarray, key: Hashable, whole_numbers: _Audits
) -> np.ndarray:
    """For a cell that only whole numbers expose under ``hidden``: Σ_{i ∈ C} y_i − y_s ≥ 0, C
    the cells of its relations left shown once the hidden set is grown, cheapest first, as far
    as it still exposes the cell. A pattern hiding no cell of C hides a subset of the grown set
    among the cells that matter, so it exposes the cell too."""
    s = problem.index(key)
    grown = hidden.copy()
    near = sorted(
        (i for i in problem.component(key) if not grown[i]),
        key=lambda i: (problem.cells[i].cost, i),
    )
    for i in near:
        grown[i] = True
        try:
            protected = next(e for e in whole_numbers(grown) if e.key == key).protected
        except TooLarge:
            protected = True  # not shown to expose: left out, the cut only weaker
        if protected:
            grown[i] = False
    cut = np.zeros(len(problem.cells))
    cut[[i for i in near if not grown[i]]] = 1.0
    cut[s] -= 1.0
    return cut
