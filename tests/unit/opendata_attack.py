"""An attacker of published open-data tables, written apart from the suppression code.

It reads the published rows (``x`` for a suppressed figure) and, for every ``x``, solves
for the smallest and largest value that everything published allows: the other cells,
the month's agency-wide figure in ``monthly``, the bounds of a mean (1–5) and a share
(0–1), and the tie between a cell's mean and share. It is given each cell's number of
answers to each question — more than is published — so it is the stronger attacker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

# On a 1–5 mean or a 0–1 share, a range narrower than this is one value.
DETERMINED = 1e-7


@dataclass(frozen=True)
class Disclosure:
    month: str
    district: str
    priority: int
    column: str
    low: float
    high: float


def attack(
    by_district: Sequence[Mapping[str, object]],
    monthly: Sequence[Mapping[str, object]],
    answers: Mapping[tuple[str, str, int, str], int],
    questions: Sequence[str],
) -> list[Disclosure]:
    """Every suppressed figure that the published figures pin to a single value."""
    found: list[Disclosure] = []
    month_rows = {row["month"]: row for row in monthly}
    for month, month_row in month_rows.items():
        rows = [r for r in by_district if r["month"] == month]
        for question in questions:
            found += _attack_question(month, month_row, rows, answers, question)
    return found


def _attack_question(month, month_row, rows, answers, question) -> list[Disclosure]:  # type: ignore[no-untyped-def]
    mean_col, share_col = f"{question}_mean", f"{question}_share_positive"
    hidden = [r for r in rows if r[mean_col] == "x" or r[share_col] == "x"]
    if not hidden:
        return []
    weight = {
        id(r): answers.get((month, str(r["district"]), int(r["priority"]), question), 0)  # type: ignore[call-overload]
        for r in rows
    }
    size = len(hidden)
    # Unknowns: mean_i (i < size), share_i (size <= i < 2·size).
    equalities: list[np.ndarray] = []
    targets: list[float] = []
    if month_row[mean_col] not in ("x", None) and month_row[share_col] not in ("x", None):
        total = sum(weight[id(r)] for r in rows)
        for offset, column in ((0, mean_col), (size, share_col)):
            coefficients = np.zeros(2 * size)
            for i, row in enumerate(hidden):
                coefficients[offset + i] = weight[id(row)]
            known = sum(
                weight[id(r)] * float(r[column])  # type: ignore[arg-type]
                for r in rows
                if r[column] not in ("x", None)
            )
            equalities.append(coefficients)
            targets.append(total * float(month_row[column]) - known)  # type: ignore[arg-type]
    inequalities = []
    limits = []
    for i in range(size):
        # 1 + 3·share ≤ mean ≤ 3 + 2·share
        lower = np.zeros(2 * size)
        lower[i], lower[size + i] = -1, 3
        inequalities.append(lower)
        limits.append(-1.0)
        upper = np.zeros(2 * size)
        upper[i], upper[size + i] = 1, -2
        inequalities.append(upper)
        limits.append(3.0)
    bounds = [(1.0, 5.0)] * size + [(0.0, 1.0)] * size
    found = []
    for variable in range(2 * size):
        objective = np.zeros(2 * size)
        objective[variable] = 1
        extremes = []
        for sign in (1, -1):
            result = linprog(
                sign * objective,
                A_ub=np.array(inequalities),
                b_ub=np.array(limits),
                A_eq=np.array(equalities) if equalities else None,
                b_eq=np.array(targets) if targets else None,
                bounds=bounds,
                method="highs",
            )
            assert result.success, result.message
            extremes.append(sign * result.fun)
        low, high = extremes
        if high - low < DETERMINED:
            row = hidden[variable % size]
            column = mean_col if variable < size else share_col
            found.append(
                Disclosure(month, str(row["district"]), int(row["priority"]), column, low, high)  # type: ignore[call-overload]
            )
    return found


def attack_in_whole_numbers(
    by_district: Sequence[Mapping[str, object]],
    monthly: Sequence[Mapping[str, object]],
    answers: Mapping[tuple[str, str, int, str], int],
    questions: Sequence[str],
) -> list[Disclosure]:
    """The same attack, using that a cell's answer sum and its number of positive answers
    are whole numbers: an exact attack (every whole sum between a cell's bounds is a
    possible set of answers), by integer programming."""
    found: list[Disclosure] = []
    month_rows = {row["month"]: row for row in monthly}
    for month, month_row in month_rows.items():
        rows = [r for r in by_district if r["month"] == month]
        for question in questions:
            found += _attack_whole(month, month_row, rows, answers, question)
    return found


def _attack_whole(month, month_row, rows, answers, question) -> list[Disclosure]:  # type: ignore[no-untyped-def]
    from scipy.optimize import Bounds, LinearConstraint, milp

    mean_col, share_col = f"{question}_mean", f"{question}_share_positive"
    hidden = [r for r in rows if r[mean_col] == "x"]
    if not hidden or month_row[mean_col] in ("x", None):
        return []  # nothing hidden, or no total to work from
    n = {
        id(r): answers.get((month, str(r["district"]), int(r["priority"]), question), 0)
        for r in rows
    }  # type: ignore[call-overload]
    total = sum(n.values())
    size = len(hidden)
    # Unknowns: answer sums t_i, then positive counts p_i (whole numbers).
    targets = []
    for column in (mean_col, share_col):
        known = sum(n[id(r)] * float(r[column]) for r in rows if r[column] not in ("x", None))  # type: ignore[arg-type]
        targets.append(round(total * float(month_row[column]) - known))  # type: ignore[arg-type]
    equality = np.zeros((2, 2 * size))
    equality[0, :size] = 1
    equality[1, size:] = 1
    links = np.zeros((2 * size, 2 * size))
    upper = np.zeros(2 * size)
    for i, row in enumerate(hidden):
        count = n[id(row)]
        links[2 * i, i], links[2 * i, size + i], upper[2 * i] = -1, 3, -count  # t ≥ n + 3p
        links[2 * i + 1, i], links[2 * i + 1, size + i] = 1, -2  # t ≤ 3n + 2p
        upper[2 * i + 1] = 3 * count
    low_bounds = [n[id(r)] for r in hidden] + [0] * size
    high_bounds = [5 * n[id(r)] for r in hidden] + [n[id(r)] for r in hidden]
    constraints = [
        LinearConstraint(equality, targets, targets),
        LinearConstraint(links, -np.inf, upper),
    ]
    box = Bounds(low_bounds, high_bounds)
    found = []
    for variable in range(2 * size):
        objective = np.zeros(2 * size)
        objective[variable] = 1
        low = milp(objective, constraints=constraints, integrality=np.ones(2 * size), bounds=box)
        high = milp(-objective, constraints=constraints, integrality=np.ones(2 * size), bounds=box)
        assert low.success and high.success, (low.message, high.message)
        if round(-high.fun) == round(low.fun):
            row = hidden[variable % size]
            column = mean_col if variable < size else share_col
            value = round(low.fun) / n[id(row)]
            found.append(
                Disclosure(month, str(row["district"]), int(row["priority"]), column, value, value)  # type: ignore[call-overload]
            )
    return found
