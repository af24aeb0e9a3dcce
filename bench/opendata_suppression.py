"""How many published figures the small-cell suppression hides on a simulated year of
Ottawa-sized data (274,075 priority-3 and -4 calls, DESIGN.md), and how that compares
with primary suppression alone.

The year is drawn directly as per-cell tallies (month × district × priority: six
districts of uneven size, priority 3 about 23 % of the calls), at several survey
response rates, since the response rate decides how many cells are small. Each question
is answered by about 90 % of respondents ("officer" by 60 %: often no officer attended);
answers lean positive, as satisfaction surveys do.

    .venv/bin/python bench/opendata_suppression.py
    .venv/bin/python bench/opendata_suppression.py --calls 274075 --seed 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callerconnect.opendata.suppression import Tally
from callerconnect.opendata.tables import CellFigures, build_tables

DISTRICTS = {
    "Central": 0.30,
    "East": 0.22,
    "West": 0.22,
    "South": 0.16,
    "Rural East": 0.06,
    "Rural West": 0.04,
}
PRIORITIES = {3: 0.23, 4: 0.77}
QUESTIONS = {
    "call_taker": 0.9,
    "officer": 0.6,
    "kept_informed": 0.9,
    "respect": 0.9,
    "overall": 0.9,
}
ANSWER_WEIGHTS = np.array([0.07, 0.08, 0.15, 0.30, 0.40])
TEXTED = 0.72
SURVEYED = 0.62
DELAYED = 0.18


def simulated_year(calls: int, response_rate: float, rng: np.random.Generator) -> list[CellFigures]:
    months = [f"2025-{m:02d}" for m in range(1, 13)]
    cells = []
    for month in months:
        for district, district_share in DISTRICTS.items():
            for priority, priority_share in PRIORITIES.items():
                expected = calls / 12 * district_share * priority_share
                texted = int(rng.binomial(int(expected), TEXTED))
                surveys = int(rng.binomial(texted, SURVEYED))
                responses = int(rng.binomial(surveys, response_rate))
                tallies = {}
                for question, answered in QUESTIONS.items():
                    n = int(rng.binomial(responses, answered))
                    counts = rng.multinomial(n, ANSWER_WEIGHTS)
                    tallies[question] = Tally(
                        n,
                        int(sum((i + 1) * c for i, c in enumerate(counts))),
                        int(counts[3:].sum()),
                    )
                cells.append(
                    CellFigures(
                        month,
                        district,
                        priority,
                        calls_texted=texted,
                        delay_notices=int(rng.binomial(texted, DELAYED)),
                        surveys_sent=surveys,
                        responses=responses,
                        tallies=tallies,
                    )
                )
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=274_075)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--min-responses", type=int, default=11)
    args = parser.parse_args()
    print(
        f"{args.calls:,} calls over 12 months, {len(DISTRICTS)} districts x 2 priorities, "
        f"{len(QUESTIONS)} questions (mean + share each), min_responses={args.min_responses}"
    )
    header = (
        f"{'response rate':>13} {'responses':>9} {'figures':>8} {'primary':>8} "
        f"{'+complementary':>14} {'total hidden':>12} {'month figs':>10} {'seconds':>8}"
    )
    print(header)
    for rate in (0.15, 0.08, 0.04, 0.02, 0.01):
        rng = np.random.default_rng(args.seed)
        cells = simulated_year(args.calls, rate, rng)
        started = time.perf_counter()
        tables = build_tables(
            sorted({c.month for c in cells}), cells, list(QUESTIONS), args.min_responses
        )
        elapsed = time.perf_counter() - started
        count = tables.count
        hidden = count.primary + count.complementary
        print(
            f"{rate:>13.0%} {sum(c.responses for c in cells):>9,} {count.figures:>8,} "
            f"{count.primary:>8,} {count.complementary:>14,} "
            f"{hidden:>7,} ({hidden / max(count.figures, 1):>4.1%}) {count.months:>10,} "
            f"{elapsed:>8.2f}"
        )


if __name__ == "__main__":
    main()
