"""``callerconnect calls show`` and ``callerconnect report daily`` on the week of calls of
``tests/support/week_of_calls.py``, on SQLite and PostgreSQL: what they print, that no
phone shows in clear, the exit code for an unknown incident, and agency scoping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from callerconnect.adapters.sms.base import InboundSms
from callerconnect.entrypoints.cli import main
from tests.conftest import TEST_SECRET
from tests.support.week_of_calls import PHONES, Week, local, shared_week

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def week(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Week]:
    """The week, built once per database (the commands only read it), plus a payload the
    intake refuses (a dead letter) and a caller's text asking for help."""
    pg = request.getfixturevalue("pg_database_url") if request.param == "postgresql" else None
    with shared_week(request.param, tmp_path_factory.mktemp("week"), pg) as week:
        app = week.app
        week.clock.set(local(29, 9, 30))
        refused = {"event_id": "bad-1", "incident_id": "I-BAD", "type": "call.received"}
        assert app.intake.submit(refused, "test").status == "rejected"
        help_text = "please help, he has a gun"
        app.inbound.handle(
            InboundSms(PHONES["I-A"], app.settings.sms.sender, help_text, "in-x"), "console"
        )
        yield week


@pytest.fixture
def run(
    week: Week,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> Run:
    monkeypatch.setenv("CALLERCONNECT_DATABASE_URL", week.app.settings.database_url)
    monkeypatch.setenv("CALLERCONNECT_SECRET_KEY", TEST_SECRET)
    # The week's second agency, so that --agency other names a configured one.
    monkeypatch.setenv("CALLERCONNECT_AGENCIES__OTHER__SMS__SENDER", "+16135550999")
    monkeypatch.chdir(tmp_path)  # no ./callerconnect.toml from the repository

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        assert "555-01" not in out + err and "55501" not in out + err  # phones only masked
        return code, out, err

    return run


def test_calls_show_tells_the_whole_story_of_a_call(run: Run) -> None:
    code, out, _ = run("calls", "show", "I-A")

    assert code == 0
    assert out.startswith("Call I-A (agency default)")
    assert "phone +1613***0101, language en" in out
    assert "district Central" in out and "priority 4" in out
    received, cleared = out.index("call.received"), out.index("call.cleared")
    assert received < cleared  # events in the order received
    assert "occurred 2026-01-26 10:00:00 EST" in out
    assert (
        "case_number=26-06526 priority=4 call_type_code=THEFT district=Central phone=given" in out
    )
    assert "eligible — eligible for texts" in out
    confirmation = out[out.index("confirmation: delivered") :]
    for status in ("scheduled", "sending", "sent", "delivered"):
        assert f"  {status}" in confirmation
    assert "2026-01-26 10:00:20 EST  sent" in out
    assert "survey_invitation: sent" in out
    assert "Survey: completed (by link)" in out


def test_calls_show_gives_reasons_in_plain_words(run: Run) -> None:
    code, out, _ = run("calls", "show", "I-C")
    assert code == 0
    assert "now: ineligible:priority — priority not texted" in out
    assert "Texts\n  none" in out
    assert "Survey: none" in out

    _, withheld, _ = run("calls", "show", "I-E")
    assert "delay_notice: scheduled" in withheld or "delay_notice: suppressed" in withheld

    _, expired, _ = run("calls", "show", "I-G")  # the link lived seven days, long gone
    assert "Survey: expired" in expired


def test_calls_show_of_an_unknown_incident_says_so_and_fails(run: Run) -> None:
    code, out, err = run("calls", "show", "I-NOPE")
    assert code == 1
    assert out == ""
    assert "no call 'I-NOPE' in agency 'default'" in err


def test_calls_show_reads_only_the_agency_asked_for(run: Run) -> None:
    code, out, _ = run("calls", "show", "I-A", "--agency", "other")
    assert code == 0
    assert out.startswith("Call I-A (agency other)")
    assert "+1613***0201" in out and "+1613***0101" not in out
    assert "Survey: none" in out

    code, _, err = run("calls", "show", "I-B", "--agency", "other")
    assert code == 1
    assert "no call 'I-B' in agency 'other'" in err


def test_daily_report_counts_the_days_calls_and_their_texts(run: Run) -> None:
    code, out, _ = run("report", "daily", "--date", "2026-01-28")
    assert code == 0
    assert "Daily report for 2026-01-28 (agency default, America/Toronto)" in out
    assert "Calls: 1 received, 1 eligible, 1 texted" in out
    assert "Texts about them: 2 sent (1 confirmations, 0 delay notices, 1 surveys)" in out
    assert "0 delivered, 1 failed" in out
    assert "Time to confirmation: median 40 s, 90th percentile 40 s" in out
    assert "Surveys: 1 sent, 1 opened, 1 completed" in out
    assert "Failed texts about the day's calls: 1" in out
    assert "I-B confirmation undelivered" in out
    assert "Calls not texted, by reason\n  none" in out


def test_daily_report_lists_reasons_and_what_needs_a_person(run: Run) -> None:
    _, out, _ = run("report", "daily", "--date", "2026-01-29")
    assert "Calls: 2 received, 0 eligible, 0 texted" in out
    assert "1  ineligible:priority — priority not texted" in out
    assert "1  ineligible:unknown_call_type — call type unknown" in out
    assert "Replies flagged for a person, not reviewed: 1" in out
    assert "+1613***0101 [" in out and "gun" in out  # the terms, not the text
    assert "he has a gun" not in out
    assert "Unknown call types to map: 1\n    ZZTOP (1 calls" in out
    assert "Dead letters waiting: 1" in out

    _, saturday, _ = run("report", "daily", "--date", "2026-01-31")
    assert "Calls: 1 received" in saturday  # 23:30 local, already Sunday in UTC
    assert "Opt-outs (STOP replies to these calls' texts): 1" in saturday


def test_daily_report_reads_only_the_agency_asked_for(run: Run) -> None:
    _, out, _ = run("report", "daily", "--date", "2026-01-26", "--agency", "other")
    assert "Calls: 2 received, 2 eligible, 2 texted" in out
    assert "Opt-outs (STOP replies to these calls' texts): 1" in out
    assert "Replies flagged for a person, not reviewed: 0" in out
    assert "Dead letters waiting: 0" in out
    assert "Unknown call types to map: 0" in out


def test_daily_report_refuses_a_date_it_cannot_read(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", "daily", "--date", "28/01/2026"])
    assert exit_.value.code == 2
    assert "expected a date YYYY-MM-DD, got '28/01/2026'" in capsys.readouterr().err


def test_help_of_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["calls", "show", "--help"], ["report", "daily", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(command)
        assert exit_.value.code == 0
    helps = capsys.readouterr().out
    assert "INCIDENT" in helps and "--agency AGENCY" in helps
    assert "--date YYYY-MM-DD" in helps and "default: yesterday" in helps
