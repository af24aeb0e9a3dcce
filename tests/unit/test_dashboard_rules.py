"""The dashboard's pure rules: the rights table, the filters, the comment redaction
stand-in, CSV cells, and the French catalog covering every message the pages use."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_file
from hypothesis import given
from hypothesis import strategies as st
from jinja2.ext import babel_extract
from starlette.datastructures import QueryParams

from callerconnect.domain.access import LOWEST_ROLE, Right, Role, agencies_visible, allowed
from callerconnect.i18n.dashboard import load_dashboard_catalog
from callerconnect.web.dashboard.filters import FilterError, parse_filters
from callerconnect.web.dashboard.redact import redact_comment
from callerconnect.web.dashboard.tables import to_csv

WEB = Path(__file__).resolve().parents[2] / "src" / "callerconnect" / "web"


@given(st.sampled_from(list(Role)), st.sampled_from(list(Role)), st.sampled_from(list(Right)))
def test_a_higher_role_has_every_right_of_a_lower_one(a: Role, b: Role, right: Right) -> None:
    if a.at_least(b) and allowed(b, right):
        assert allowed(a, right)


def test_the_rights_table_is_the_contracts() -> None:
    def rights(role: Role) -> set[Right]:
        return {right for right in Right if allowed(role, right)}

    assert rights(Role.VIEWER) == {Right.OVERVIEW}
    assert rights(Role.ANALYST) == {Right.OVERVIEW, Right.COMMENTS, Right.EXPORT}
    assert rights(Role.SUPERVISOR) == rights(Role.ANALYST) | {Right.QUEUES}
    assert rights(Role.ADMIN) == set(Right)
    assert set(LOWEST_ROLE) == set(Right)
    assert agencies_visible("*") is None
    assert agencies_visible("ottawa") == frozenset({"ottawa"})


TODAY = date(2026, 2, 10)


def test_filters_default_to_the_last_28_days_and_keep_repeated_values() -> None:
    view = parse_filters(QueryParams(""), TODAY)
    assert (view.start, view.end) == (date(2026, 1, 14), TODAY)
    view = parse_filters(
        QueryParams("from=2026-01-01&to=2026-01-31&district=A&district=B&district=A&priority=3"),
        TODAY,
    )
    assert view.districts == ("A", "B") and view.priorities == (3,)
    assert ("district", "B") in view.query_items()


@pytest.mark.parametrize(
    "query",
    [
        "from=20260101",
        "from=2026-W01-1",
        "to=yesterday",
        "from=2026-02-01&to=2026-01-01",
        "priority=-1",
        "priority=10",
        "district=" + "x" * 65,
        "district=%01",
        "agency=Not+An+Id",
        "&".join([f"call_type=c{n}" for n in range(51)]),
    ],
)
def test_bad_filters_name_the_parameter(query: str) -> None:
    with pytest.raises(FilterError) as raised:
        parse_filters(QueryParams(query), TODAY)
    assert raised.value.field in query


def test_comments_reach_the_pages_through_the_redaction() -> None:
    shown = redact_comment("Constable Tremblay called me at 613-555-0199, write jane@x.ca")
    for secret in ("Tremblay", "613-555-0199", "jane@x.ca"):
        assert secret not in shown


def test_csv_cells_that_a_spreadsheet_would_run_are_defused() -> None:
    body = to_csv(["district"], [["=HYPERLINK(1)"], ["+1"], ["-3"], ["-x"], ["@a"], ["ok"]])
    assert body.startswith(b"\xef\xbb\xbf")
    lines = body.decode("utf-8-sig").split("\r\n")
    assert lines[1:7] == ["'=HYPERLINK(1)", "'+1", "-3", "'-x", "'@a", "ok"]


def used_messages() -> set[str]:
    found: set[str] = set()
    for path in sorted((WEB / "dashboard").glob("*.py")):
        for _line, message, _comments, _context in extract_from_file(
            "python", str(path), keywords={"_": None}
        ):
            found.add(message if isinstance(message, str) else message[0])
    for path in sorted((WEB / "templates" / "dashboard").glob("*.html")):
        with path.open("rb") as handle:
            for _line, _function, message, _comments in babel_extract(handle, ["_"], [], {}):
                if isinstance(message, tuple):
                    message = message[0]
                if message:
                    found.add(message)
    return found


@pytest.mark.parametrize("language", ["en", "fr"])
def test_every_message_of_the_pages_is_translated(language: str) -> None:
    catalog = load_dashboard_catalog(language)
    translated = {m.id: m.string for m in catalog if m.id}
    for message in used_messages():
        assert translated.get(message), f"{language}: no translation for {message!r}"
    for message in catalog:
        if not message.id:
            continue
        assert not message.fuzzy, message.id
        assert re.findall(r"%\(\w+\)s", str(message.id)) == re.findall(
            r"%\(\w+\)s", str(message.string)
        ) or sorted(re.findall(r"%\(\w+\)s", str(message.id))) == sorted(
            re.findall(r"%\(\w+\)s", str(message.string))
        ), message.id
    compiled = list(catalog.check())
    assert compiled == [], compiled
