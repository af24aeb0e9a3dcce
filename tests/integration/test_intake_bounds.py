"""One request cannot store an unbounded amount (security.md, second probe, item 9).

An event is at most ``intake.max_event_bytes`` (64 KiB as compact JSON), each event of a
batch on its own; a dead letter of any kind — malformed JSON, a schema violation, an
EIDO document refused, an oversized event or body — keeps at most the first 64 KiB of
what was sent, with its length and SHA-256, and ``deadletters show`` prints them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from callerconnect.adapters.db.tables import CadEventRow, DeadLetterRow
from callerconnect.bootstrap import Application
from callerconnect.entrypoints import cli
from callerconnect.service import deadletters
from callerconnect.service.kept_payload import MAX_KEPT_BYTES
from callerconnect.web.app import create_app
from tests.conftest import TEST_SECRET
from tests.support.live_server import LiveServer

EVENTS = "/api/v1/cad/events"
EIDO = "/api/v1/cad/eido"
MEGABYTE = 1024 * 1024


def event(n: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"e-{n}",
        "incident_id": f"I-{n}",
        "occurred_at": "2026-01-16T09:00:00-05:00",
        "type": "call.received",
        "priority": 4,
        "case_number": f"26-{n:05d}",
        "call_type": {"code": "THEFT"},
        "caller": {"phone": "613-555-0142", "language": "en"},
        **fields,
    }


def padded(size: int, **fields: Any) -> dict[str, Any]:
    """An event that passes the schema, carrying ``size`` bytes of an extra property."""
    return event(**fields, notes={"extra": "x" * size})


def letters(app: Application) -> list[DeadLetterRow]:
    with app.db.transaction() as session:
        return list(session.scalars(select(DeadLetterRow).order_by(DeadLetterRow.id)))


def stored_events(app: Application) -> int:
    with app.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(CadEventRow)) or 0)


def kept(app: Application, letter: DeadLetterRow) -> str:
    return app.vault.decrypt(letter.payload_encrypted)


def post(server: LiveServer, path: str, body: bytes, auth: dict[str, str]) -> httpx.Response:
    headers = {**auth, "Content-Type": "application/json"}
    return httpx.post(server.url + path, content=body, headers=headers, timeout=60)


def test_an_event_with_3_mb_of_extra_properties_is_refused_naming_it_and_kept_in_part(
    app: Application, live_server: LiveServer, auth: dict[str, str]
) -> None:
    big = padded(3 * MEGABYTE, event_id="e-big")

    response = post(live_server, EVENTS, json.dumps(big).encode(), auth)

    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["field"], error["rule"]) == ("(event)", "maxBytes")
    assert "65536" in error["message"]
    assert response.json()["results"][0]["event_id"] == "e-big"
    assert stored_events(app) == 0
    [letter] = letters(app)
    serialized = json.dumps(big).encode()
    assert (letter.payload_bytes, letter.payload_sha256) == (
        len(serialized),
        hashlib.sha256(serialized).hexdigest(),
    )
    assert letter.payload_truncated
    assert len(kept(app, letter).encode()) <= MAX_KEPT_BYTES
    assert kept(app, letter) == serialized[:MAX_KEPT_BYTES].decode()


def test_events_of_a_batch_are_bounded_one_by_one(
    app: Application, live_server: LiveServer, auth: dict[str, str]
) -> None:
    # Each 60 KB event is within the bound; together (180 KB) they are not, and need not be.
    near = [padded(60_000, event_id=f"e-near-{n}", incident_id=f"I-{n}") for n in range(3)]
    over = padded(70_000, event_id="e-over", incident_id="I-9")
    body = json.dumps({"events": [*near, over]}).encode()

    response = post(live_server, EVENTS, body, auth)

    assert response.status_code == 202
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted"] * 3 + ["rejected"]
    assert (results[3]["event_id"], results[3]["rule"]) == ("e-over", "maxBytes")
    [letter] = letters(app)
    assert letter.payload_bytes == len(json.dumps(over).encode())


# The bound is checked before the database is involved: these two run on SQLite only.


def test_a_batch_of_1000_normal_events_is_still_accepted(
    app_factory: Any, sqlite_url: str, auth: dict[str, str]
) -> None:
    app = app_factory(sqlite_url)
    batch = [event(n) for n in range(1, 1001)]
    body = json.dumps({"events": batch}).encode()
    assert len(body) > 64 * 1024  # the batch as a whole is over the bound of one event
    with LiveServer(create_app(app)) as server:
        response = post(server, EVENTS, body, auth)
    assert response.status_code == 202
    assert {r["status"] for r in response.json()["results"]} == {"accepted"}
    assert letters(app) == []


def test_the_bound_is_a_setting(app_factory: Any, sqlite_url: str, auth: dict[str, str]) -> None:
    small = app_factory(sqlite_url, CALLERCONNECT_INTAKE__MAX_EVENT_BYTES="2000")
    with LiveServer(create_app(small)) as server:
        fits = post(server, EVENTS, json.dumps(padded(1000)).encode(), auth)
        too_big = post(server, EVENTS, json.dumps(padded(2000, event_id="e-2")).encode(), auth)
    assert (fits.status_code, too_big.status_code) == (202, 422)
    assert "at most 2000" in too_big.json()["error"]["message"]


REFUSED_WHOLE = {
    # what was sent, where, the answer
    "malformed_json": (EVENTS, b'{"events": [' + b'"x", ' * 400_000, 400),
    "not_utf8": (EVENTS, b'{"x": "' + b"\xff" * 300_000 + b'"}', 400),
    "events_not_a_list": (EVENTS, json.dumps({"events": {"x": "y" * MEGABYTE}}).encode(), 422),
    "eido_refused": (EIDO, json.dumps({"notEido": "z" * MEGABYTE}).encode(), 422),
}


@pytest.mark.parametrize("kind", list(REFUSED_WHOLE))
def test_a_body_refused_whole_is_kept_in_part_with_its_length_and_hash(
    app: Application, live_server: LiveServer, auth: dict[str, str], kind: str
) -> None:
    path, body, status = REFUSED_WHOLE[kind]

    response = post(live_server, path, body, auth)

    assert response.status_code == status, response.text
    [letter] = letters(app)
    assert letter.payload_bytes == len(body)
    assert letter.payload_sha256 == hashlib.sha256(body).hexdigest()  # of the bytes sent
    assert letter.payload_truncated
    text = kept(app, letter)
    assert len(text.encode()) <= MAX_KEPT_BYTES
    assert text.startswith(body[:100].decode("utf-8", errors="replace"))


def test_a_small_refused_body_is_kept_whole_and_can_be_replayed(
    app: Application, live_server: LiveServer, auth: dict[str, str]
) -> None:
    body = json.dumps({"events": {"not": "a list"}}).encode()
    assert post(live_server, EVENTS, body, auth).status_code == 422
    [letter] = letters(app)
    assert (kept(app, letter), letter.payload_bytes, letter.payload_truncated) == (
        body.decode(),
        len(body),
        False,
    )


def test_a_letter_kept_in_part_says_so_in_show_and_is_not_replayed(
    app: Application,
    live_server: LiveServer,
    auth: dict[str, str],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    big = padded(200_000, event_id="e-big")
    post(live_server, EVENTS, json.dumps(big).encode(), auth)
    [letter] = letters(app)
    serialized = json.dumps(big).encode()

    monkeypatch.setenv("CALLERCONNECT_DATABASE_URL", database_url)
    monkeypatch.setenv("CALLERCONNECT_SECRET_KEY", TEST_SECRET)
    capsys.readouterr()
    logger_state = _logging_state()
    try:
        assert cli.main(["deadletters", "show", str(letter.id)]) == 0
    finally:
        _restore_logging(logger_state)
    shown = capsys.readouterr().out
    assert f"received: {len(serialized)} bytes" in shown
    assert hashlib.sha256(serialized).hexdigest() in shown
    assert f"only the first {MAX_KEPT_BYTES} bytes kept" in shown
    assert "5550142" not in shown

    outcome = deadletters.replay(app.db, app.vault, app.intake, [letter.id])
    assert outcome[letter.id].startswith("failed: only the first 65536 bytes were kept")
    assert stored_events(app) == 0


def _logging_state() -> Any:
    ours, root = logging.getLogger("callerconnect"), logging.getLogger()
    return (list(ours.handlers), ours.propagate, ours.level, list(root.handlers))


def _restore_logging(state: Any) -> None:
    ours, root = logging.getLogger("callerconnect"), logging.getLogger()
    for handler in ours.handlers:
        if handler not in state[0]:
            handler.close()
    ours.handlers[:], ours.propagate, ours.level, root.handlers[:] = state
