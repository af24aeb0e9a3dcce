"""Small-cell suppression: no suppressed figure can be worked out from what is published."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.opendata_attack import attack, attack_in_whole_numbers

from callerconnect.opendata.suppression import Tally, protect
from callerconnect.opendata.tables import SUPPRESSED, CellFigures, build_tables

QUESTIONS = ("call_taker", "officer")
MIN = 11


def tally(points: Sequence[int]) -> Tally:
    return Tally(len(points), sum(points), sum(1 for p in points if p >= 4))


def answer_counts(cells: Sequence[CellFigures]) -> dict[tuple[str, str, int, str], int]:
    return {
        (c.month, c.district, c.priority, q): t.answers for c in cells for q, t in c.tallies.items()
    }


@st.composite
def months_of_answers(draw: st.DrawFn) -> list[CellFigures]:
    cells = []
    for month in draw(st.sampled_from([["2026-01"], ["2026-01", "2026-02"]])):
        # A few answer values per month, so that months where every answer is the same
        # extreme (all 5s, all 1s) come up often.
        palette = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3, unique=True))
        districts = draw(st.lists(st.sampled_from("ABCD"), min_size=1, max_size=4, unique=True))
        for district in sorted(districts):
            for priority in (3, 4):
                tallies = {
                    q: tally(draw(st.lists(st.sampled_from(palette), max_size=16)))
                    for q in QUESTIONS
                }
                responses = max(t.answers for t in tallies.values())
                cells.append(
                    CellFigures(
                        month,
                        district,
                        priority,
                        responses + 3,
                        1,
                        responses + 2,
                        responses,
                        tallies,
                    )
                )
    return cells


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(months_of_answers())
def test_no_suppressed_figure_can_be_worked_out_from_the_published_tables(
    cells: list[CellFigures],
) -> None:
    months = sorted({c.month for c in cells})
    tables = build_tables(months, cells, QUESTIONS, MIN)
    disclosures = attack(tables.by_district, tables.monthly, answer_counts(cells), QUESTIONS)
    assert disclosures == []


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(months_of_answers())
def test_no_suppressed_figure_can_be_worked_out_in_whole_numbers_either(
    cells: list[CellFigures],
) -> None:
    months = sorted({c.month for c in cells})
    tables = build_tables(months, cells, QUESTIONS, MIN)
    counts = answer_counts(cells)
    assert attack_in_whole_numbers(tables.by_district, tables.monthly, counts, QUESTIONS) == []


@settings(max_examples=20, deadline=None)
@given(months_of_answers())
def test_every_figure_on_fewer_than_the_minimum_answers_is_suppressed(
    cells: list[CellFigures],
) -> None:
    tables = build_tables(sorted({c.month for c in cells}), cells, QUESTIONS, MIN)
    rows = {(r["month"], r["district"], r["priority"]): r for r in tables.by_district}
    for cell in cells:
        row = rows[(cell.month, cell.district, cell.priority)]
        for question, counted in cell.tallies.items():
            if 0 < counted.answers < MIN:
                assert row[f"{question}_mean"] == SUPPRESSED
                assert row[f"{question}_share_positive"] == SUPPRESSED
            elif counted.answers == 0:
                assert row[f"{question}_mean"] is None
    for month_row in tables.monthly:
        for question in QUESTIONS:
            answered = sum(
                c.tallies[question].answers for c in cells if c.month == month_row["month"]
            )
            if 0 < answered < MIN:
                assert month_row[f"{question}_mean"] == SUPPRESSED


def _two_cells_one_small() -> list[CellFigures]:
    big = tally([5, 4, 3, 5, 4, 2, 5, 5, 4, 3, 1, 4])
    small = tally([2, 5, 1])
    return [
        CellFigures("2026-03", "A", 3, 20, 2, 15, 12, {"overall": big}),
        CellFigures("2026-03", "B", 3, 5, 0, 4, 3, {"overall": small}),
    ]


def test_attack_recovers_a_lone_suppressed_cell_from_the_monthly_total() -> None:
    """The attacker is not toothless: with primary suppression alone, the month's figure
    minus the other cell gives the small cell's mean and share exactly."""
    cells = _two_cells_one_small()
    tables = build_tables(["2026-03"], cells, ["overall"], MIN)
    for row in tables.by_district:
        if row["district"] == "A":  # undo the complementary suppression
            row["overall_mean"] = cells[0].tallies["overall"].mean
            row["overall_share_positive"] = cells[0].tallies["overall"].share_positive
    found = attack(tables.by_district, tables.monthly, answer_counts(cells), ["overall"])
    recovered = {d.column: d.low for d in found if d.district == "B"}
    assert abs(recovered["overall_mean"] - 8 / 3) < 1e-6
    assert abs(recovered["overall_share_positive"] - 1 / 3) < 1e-6
    whole = attack_in_whole_numbers(
        tables.by_district, tables.monthly, answer_counts(cells), ["overall"]
    )
    assert {(d.district, d.column, round(d.low, 6)) for d in whole} >= {
        ("B", "overall_mean", round(8 / 3, 6)),
        ("B", "overall_share_positive", round(1 / 3, 6)),
    }


def test_a_lone_small_cell_takes_the_smallest_other_cell_with_it() -> None:
    cells = {
        "A": tally([4] * 30),
        "B": tally([2, 3, 5, 4] * 3 + [1]),
        "C": tally([3, 5] * 10),
        "D": tally([5, 1]),
    }
    protection = protect(cells, MIN)
    assert protection.primary == {"D"}
    assert protection.complementary == {"B"}
    assert not protection.month_suppressed


def test_small_cells_all_at_the_same_extreme_get_a_complement() -> None:
    """Two small cells whose answers are all 5 would be pinned by a month mean at the top
    of what the rest allows; a published cell must join them."""
    cells = {"A": tally([5] * 3), "B": tally([5] * 4), "C": tally([3] * 20), "D": tally([2] * 40)}
    protection = protect(cells, MIN)
    assert protection.primary == {"A", "B"}
    assert protection.complementary == {"C"}


def test_a_month_where_everyone_answered_5_hides_its_own_figure() -> None:
    cells = {"A": tally([5] * 3), "B": tally([5] * 30)}
    protection = protect(cells, MIN)
    assert protection.suppressed == {"A", "B"}
    assert protection.month_suppressed


def test_cells_without_answers_are_not_applicable_and_never_hide_anything() -> None:
    cells = {"A": tally([]), "B": tally([4, 2, 5]), "C": tally([1, 2, 3, 4, 5] * 4)}
    protection = protect(cells, MIN)
    assert "A" not in protection.suppressed
    assert protection.suppressed == {"B", "C"}


def test_a_month_below_the_minimum_hides_every_figure_and_its_own() -> None:
    cells = {"A": tally([4, 2]), "B": tally([5, 1, 3])}
    protection = protect(cells, MIN)
    assert protection.primary == {"A", "B"}
    assert protection.month_suppressed
