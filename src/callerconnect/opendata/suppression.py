"""Small-cell suppression of the published survey figures (pure: no I/O, no clock).

What is protected is what respondents *said*: each scale question's mean and share of
positive answers (4 or 5) in a month × district × priority cell. The activity counts
(calls texted, delay notices, surveys sent, responses) are published as they are: they
say what the service did, not what anyone answered.

The unit of protection is one question in one month. Its relations are everything a
reader can combine:

- each cell's mean and share, published or ``x``;
- the cell's number of answers, which we treat as *known* to the reader (they are close
  to the published ``responses``; assuming them known is the worst case);
- the month's agency-wide mean and share in ``monthly.csv``, i.e. the weighted totals
  ``Σ answers·mean`` and ``Σ answers·share`` over the month's cells;
- the bounds of every figure (a mean from 1 to 5, a share from 0 to 1) and the tie
  between a cell's mean and its share (a share ``s`` of answers at 4 or 5 forces the
  mean into ``[1 + 3s, 3 + 2s]``).

No district or priority totals are published, so those are all the relations there are.

**Primary suppression**: a cell whose question has fewer than ``min_responses`` answers
(but at least one) is ``x``; so is the month's own figure in that case.

**Complementary suppression** (the documented rule): while some suppressed cell's
figures could still be worked out to a single value — checked exactly, by linear and
integer programming (scipy's HiGHS) over the relations above — also suppress the
published cell with the fewest answers (ties: the first in key order), so as to hide as
few answers as possible.
If every cell is suppressed and one is still determined (every answer of the month was
the same extreme, say all 5s), the month's own figure is suppressed as well, which
leaves no relation to work from.

A cell with no answers is not applicable (written empty): it adds nothing to any total
and is never used to hide another.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar


class _CellKey(Hashable, Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_CellKey)

#: A figure whose possible values span less than this many answer-points is determined.
_DETERMINED = 1e-6


@dataclass(frozen=True)
class Scale:
    """A survey scale: whole points from 1 to ``points``; ``positive_from`` and up count
    as a positive answer (4 and 5 on a five-point scale)."""

    points: int = 5
    positive_from: int = 4


@dataclass(frozen=True)
class Tally:
    """One question's scale answers in one cell: how many, their sum, how many positive."""

    answers: int
    total: int
    positive: int

    @property
    def mean(self) -> float | None:
        return self.total / self.answers if self.answers else None

    @property
    def share_positive(self) -> float | None:
        return self.positive / self.answers if self.answers else None

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.answers + other.answers, self.total + other.total, self.positive + other.positive
        )


EMPTY = Tally(0, 0, 0)
FIVE_POINTS = Scale()


@dataclass(frozen=True)
class Protection(Generic[K]):
    """Which figures of one question in one month are written ``x``."""

    primary: frozenset[K]
    complementary: frozenset[K]
    month_suppressed: bool

    @property
    def suppressed(self) -> frozenset[K]:
        return self.primary | self.complementary


def protect(
    cells: Mapping[K, Tally], min_responses: int, scale: Scale = FIVE_POINTS
) -> Protection[K]:
    """The suppression of one question's cells in one month (see the module docstring).

    ``cells`` must be every cell of the month (the month's figure is their sum); the
    keys must sort, so that ties are broken the same way on every run."""
    total = sum(cells.values(), EMPTY)
    order = sorted(cells)
    primary = frozenset(k for k in order if 0 < cells[k].answers < min_responses)
    if total.answers < min_responses:
        # The month's figure is itself x, so nothing ties the cells together.
        return Protection(primary, frozenset(), month_suppressed=total.answers > 0)
    suppressed = set(primary)
    candidates = sorted(
        (k for k in order if cells[k].answers > 0 and k not in primary),
        key=lambda k: cells[k].answers,
    )
    while suppressed and not _undetermined([cells[k] for k in order if k in suppressed], scale):
        if not candidates:
            return Protection(primary, frozenset(suppressed - primary), month_suppressed=True)
        suppressed.add(candidates.pop(0))
    return Protection(primary, frozenset(suppressed - primary), month_suppressed=False)


def _undetermined(hidden: list[Tally], scale: Scale) -> bool:
    """Whether no figure of the ``hidden`` cells can be worked out to one value from the
    month's weighted totals, the bounds and the tie between mean and share — neither as
    real numbers (linear programming) nor as whole numbers (integer programming, which is
    exact here: every whole sum between a cell's bounds is a possible set of answers).

    Unknowns, per hidden cell ``c`` with ``n`` answers: its answer sum ``t_c`` and its
    positive count ``p_c`` (mean = t/n, share = p/n). Known: ``Σ t_c`` and ``Σ p_c`` (the
    month's totals less the published cells), ``n ≤ t_c ≤ points·n``, ``0 ≤ p_c ≤ n``,
    and ``t_c ≥ n + (positive_from − 1)·p_c`` (positive answers are at least
    ``positive_from``, the others at least 1),
    ``t_c ≤ (positive_from − 1)·(n − p_c) + points·p_c``."""
    if len(hidden) < 2:
        return False
    # Imported here, not with the module: numpy and scipy take some 65 MB in every
    # process that loads this module (serve, worker and the demo do, through the
    # configuration), and only publishing open data solves anything.
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, linprog, milp

    size = len(hidden)
    below = scale.positive_from - 1
    # Variables: t_0..t_{k-1}, p_0..p_{k-1}.
    equality = np.zeros((2, 2 * size))
    equality[0, :size] = 1
    equality[1, size:] = 1
    sums = np.array([sum(c.total for c in hidden), sum(c.positive for c in hidden)], float)
    inequality = np.zeros((2 * size, 2 * size))
    limits = np.zeros(2 * size)
    bounds = []
    for i, cell in enumerate(hidden):
        n = cell.answers
        # n + below·p − t ≤ 0
        inequality[2 * i, i] = -1
        inequality[2 * i, size + i] = below
        limits[2 * i] = -n
        # t − (points − below)·p ≤ below·n
        inequality[2 * i + 1, i] = 1
        inequality[2 * i + 1, size + i] = -(scale.points - below)
        limits[2 * i + 1] = below * n
    bounds = [(c.answers, scale.points * c.answers) for c in hidden] + [
        (0, c.answers) for c in hidden
    ]
    constraints = [
        LinearConstraint(equality, sums, sums),
        LinearConstraint(inequality, -np.inf, limits),
    ]
    lower, upper = zip(*bounds, strict=True)
    box = Bounds(np.array(lower, float), np.array(upper, float))
    whole = np.ones(2 * size)
    for variable in range(2 * size):
        objective = np.zeros(2 * size)
        objective[variable] = 1
        low = linprog(objective, inequality, limits, equality, sums, bounds, method="highs")
        high = linprog(-objective, inequality, limits, equality, sums, bounds, method="highs")
        if not (low.success and high.success):
            # The true figures are a solution, so this means a numerical failure: refuse
            # to call it safe.
            return False
        if -high.fun - low.fun < _DETERMINED:
            return False
        # Sums and counts are whole numbers, and an attacker can use that too: the
        # continuous range (cheap, and a single value there ends the check) may still
        # hold a single whole value.
        low_whole = milp(objective, constraints=constraints, integrality=whole, bounds=box)
        high_whole = milp(-objective, constraints=constraints, integrality=whole, bounds=box)
        if not (low_whole.success and high_whole.success):
            return False
        if round(-high_whole.fun) - round(low_whole.fun) < 1:
            return False
    return True
