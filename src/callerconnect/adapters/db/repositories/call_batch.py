"""The calls one intake transaction folds, with their texts and decisions: read (and
locked) together in one query, changed in memory event after event, written at the end
one statement per table and kind of change.

Core statements built once at import, not the ORM's unit of work: folding an event
changes a field or two of a call and adds a text or a decision, and the ORM's
bookkeeping (objects, attribute events, the flush's sorting) and a statement built anew
for each call cost several times the statements themselves. The rows are the same that
the worker, the dashboard and the queries read (adapters/db/tables.py); the worker's
side of the outbox is in outbox.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Table,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from callerconnect.adapters.crypto import Vault
from callerconnect.adapters.db.bulk_insert import BulkInsert
from callerconnect.adapters.db.driver_statement import DriverStatement
from callerconnect.adapters.db.repositories.calls import (
    CALL_STATE_COLUMNS,
    call_from_columns,
    call_state_columns,
)
from callerconnect.adapters.db.repositories.outbox import IllegalTransition, dedupe_key
from callerconnect.adapters.db.tables import Base
from callerconnect.domain.calls import Call
from callerconnect.domain.lifecycle import CancelPending, ScheduleText, new_call
from callerconnect.domain.messages import CALL_TEXT_KINDS, TextKind, TextStatus

_CALLS: Table = Base.metadata.tables["calls"]
_OUTBOX: Table = Base.metadata.tables["outbox"]
_HISTORY: Table = Base.metadata.tables["text_status_changes"]
_DECISIONS: Table = Base.metadata.tables["decisions"]

#: What :meth:`CallBatch.load` keeps of a call row: its state, and what it is compared
#: with when the call is written (only the changed columns are).
_STORED_COLUMNS = ("id", *CALL_STATE_COLUMNS, "phone_hash", "call_category")
#: What it keeps of each of the call's texts, after the call's columns.
_TEXT_COLUMNS = (
    _OUTBOX.c.id.label("text_id"),
    _OUTBOX.c.kind.label("text_kind"),
    _OUTBOX.c.sequence.label("text_sequence"),
    _OUTBOX.c.status.label("text_status"),
)


def _calls_with_texts(incidents: ColumnElement[bool]) -> Select[Any]:
    """The calls of some incidents, each with its texts (a row per text, the text's
    columns NULL for a call without any), in incident order, so that two transactions
    locking overlapping sets never wait on each other crosswise. PostgreSQL locks the
    calls (FOR UPDATE OF calls); SQLite, one writer at a time, ignores the clause."""
    return (
        select(*(_CALLS.c[name] for name in _STORED_COLUMNS), *_TEXT_COLUMNS)
        .select_from(_CALLS.outerjoin(_OUTBOX, _OUTBOX.c.call_id == _CALLS.c.id))
        .where(_CALLS.c.agency_id == bindparam("agency_id"), incidents)
        .order_by(_CALLS.c.incident_id)
        .with_for_update(of=_CALLS)
    )


def _listed_calls_with_texts() -> Select[Any]:
    """PostgreSQL: :func:`_calls_with_texts` for the incidents of one array parameter,
    each looked up (and locked) on its own in the (agency, incident) index, in the
    array's order (sorted, so two transactions lock overlapping sets in one order).

    A join the planner could reorder read, on a young table (never analysed: a new
    deployment, a history being loaded), every call of the agency and kept those asked
    for, the agency's equality taken for a few rows: 40-80 ms a batch of 500 events,
    growing with the table. The subquery with its ``LIMIT`` (at most one call an
    incident: the index is unique) is not merged into the join, so each incident is
    one index look-up whatever the statistics say."""
    wanted = (
        func.unnest(cast(bindparam("incident_ids"), ARRAY(String)))
        .table_valued("incident_id")
        .render_derived(name="wanted")
    )
    call = (
        select(*(_CALLS.c[name] for name in _STORED_COLUMNS))
        .where(
            _CALLS.c.agency_id == bindparam("agency_id"),
            _CALLS.c.incident_id == wanted.c.incident_id,
        )
        .limit(literal_column("1"))
        .with_for_update()
        .lateral("call")
    )
    return select(*(call.c[name] for name in _STORED_COLUMNS), *_TEXT_COLUMNS).select_from(
        wanted.join(call, true()).outerjoin(_OUTBOX, _OUTBOX.c.call_id == call.c.id)
    )


_READ_CALL = DriverStatement(_calls_with_texts(_CALLS.c.incident_id == bindparam("incident_id")))
# Several incidents. On SQLite, an IN list of a given length, one statement for each
# power of two (the list padded with its last incident): a few statements, each compiled
# once, whatever the number of incidents.
_READ_CALLS: dict[int, DriverStatement] = {}
# On PostgreSQL, :func:`_listed_calls_with_texts`: one statement, prepared by psycopg.
_READ_CALLS_LISTED = DriverStatement(_listed_calls_with_texts())
_INSERT_CALLS = BulkInsert(_CALLS, returning=[_CALLS.c.id, _CALLS.c.incident_id])
_INSERT_TEXTS = BulkInsert(_OUTBOX, returning=[_OUTBOX.c.id, _OUTBOX.c.dedupe_key])
# A text's history and a call's decisions, whose ids nobody reads back: on PostgreSQL one
# statement for the rows too: an executemany ran one statement a row on the server,
# hundreds in a batch of 500 events (batches from two clients over HTTP: a quarter more
# events a second, docs/scaling.md).
_INSERT_HISTORY = BulkInsert(_HISTORY)
_INSERT_DECISIONS = BulkInsert(_DECISIONS)
# Updates by id of the columns their parameters name (those that changed): one
# executemany for each set of changed columns.
_UPDATE_CALLS = DriverStatement(update(_CALLS).where(_CALLS.c.id == bindparam("row_id")))
_UPDATE_TEXTS = DriverStatement(update(_OUTBOX).where(_OUTBOX.c.id == bindparam("row_id")))
#: Where the incident and the text's columns are in a row of :func:`_calls_with_texts`.
_INCIDENT_AT = _STORED_COLUMNS.index("incident_id")
_TEXT_COLUMNS_AT = len(_STORED_COLUMNS)


def _read_calls(incident_ids: list[str]) -> tuple[DriverStatement, dict[str, Any]]:
    """The statement reading several incidents' calls on SQLite, and its parameters."""
    slots = 1 << (len(incident_ids) - 1).bit_length()
    if slots not in _READ_CALLS:
        names = [bindparam(f"incident_{n}", type_=String) for n in range(slots)]
        _READ_CALLS[slots] = DriverStatement(_calls_with_texts(_CALLS.c.incident_id.in_(names)))
    padded = incident_ids + incident_ids[-1:] * (slots - len(incident_ids))
    return _READ_CALLS[slots], {f"incident_{n}": incident for n, incident in enumerate(padded)}


_CALL_KINDS = {kind.value: kind for kind in CALL_TEXT_KINDS}


@dataclass(eq=False)
class HeldText:
    """A call text as this transaction holds it: read (its id and status), or new."""

    id: int | None
    status: TextStatus
    #: The columns to write: every column of a new text, those changed of one read.
    values: dict[str, Any]


@dataclass(eq=False)
class HeldCall:
    """A call as this transaction holds it: its state after the events folded so far,
    its columns as read (none for a call new in this transaction), its texts."""

    call: Call
    id: int | None = None
    stored: dict[str, Any] = field(default_factory=dict)
    category: str | None = None
    texts: dict[TextKind, HeldText] = field(default_factory=dict)
    #: (phone, its keyed hash): the last phone hashed, not hashed again per event.
    hashed: tuple[str, str] | None = None


@dataclass
class _Decision:
    call: HeldCall
    values: dict[str, Any]


class CallBatch:
    """The calls, texts and decisions of one transaction of the intake."""

    def __init__(self, connection: Connection, vault: Vault, agency_id: str) -> None:
        self.connection = connection
        self.vault = vault
        self.agency_id = agency_id
        # Each incident read: its call, or None when it had none (a call is then made).
        self._calls: dict[str, HeldCall | None] = {}
        self._touched: dict[str, HeldCall] = {}
        self._history: list[tuple[HeldText, dict[str, Any]]] = []
        self._decisions: list[_Decision] = []

    # --- reading -------------------------------------------------------------------

    def load(self, incident_ids: Iterable[str]) -> None:
        """Read (and lock) the calls of these incidents, with their texts, in one query;
        those already held are not read again."""
        wanted = sorted(set(incident_ids) - self._calls.keys())
        if not wanted:
            return
        self._calls.update(dict.fromkeys(wanted))
        incidents: dict[str, Any]
        if len(wanted) == 1:
            statement, incidents = _READ_CALL, {"incident_id": wanted[0]}
        elif self.connection.dialect.name == "postgresql":
            statement, incidents = _READ_CALLS_LISTED, {"incident_ids": wanted}
        else:
            statement, incidents = _read_calls(wanted)
        at = _TEXT_COLUMNS_AT
        for row in statement.fetch(self.connection, {"agency_id": self.agency_id, **incidents}):
            incident_id = row[_INCIDENT_AT]
            held = self._calls[incident_id]
            if held is None:
                stored = dict(zip(_STORED_COLUMNS, row[:at], strict=True))
                held = HeldCall(call_from_columns(stored, self.vault), stored["id"], stored)
                held.category = stored["call_category"]
                self._calls[incident_id] = held
            text_id, text_kind, text_sequence, text_status = row[at:]
            kind = _CALL_KINDS.get(text_kind)
            if kind is not None and text_sequence == 0:
                held.texts[kind] = HeldText(text_id, TextStatus(text_status), {})

    def held(self, incident_id: str) -> HeldCall:
        """The incident's call as folded so far in this transaction (read and locked
        now if it was not), or a new one."""
        if incident_id not in self._calls:
            self.load([incident_id])
        held = self._calls[incident_id]
        if held is None:
            held = HeldCall(new_call(self.agency_id, incident_id))
            self._calls[incident_id] = held
        return held

    # --- changing ------------------------------------------------------------------

    def save(self, held: HeldCall, call: Call, category: str | None) -> None:
        """The call's new state, written at :meth:`write`."""
        held.call = call
        held.category = category
        self._touched[call.incident_id] = held

    def phone_hash(self, held: HeldCall) -> str | None:
        """The keyed hash of the call's phone (the one stored if it has none now)."""
        phone = held.call.phone
        if phone is None:
            stored: str | None = held.stored.get("phone_hash")
            return stored
        if held.hashed is None or held.hashed[0] != phone:
            held.hashed = (phone, self.vault.phone_hash(phone))
        return held.hashed[1]

    def schedule(self, held: HeldCall, action: ScheduleText, now: datetime) -> bool:
        """Create the text once (True); a reschedule only moves a text still waiting."""
        existing = held.texts.get(action.kind)
        if existing is not None:
            if action.reschedule and existing.status is TextStatus.SCHEDULED:
                existing.values.update(
                    not_before=action.not_before, expires_at=action.expires_at, updated_at=now
                )
            return False
        call = held.call
        status = TextStatus.SUPPRESSED if action.suppressed_reason else TextStatus.SCHEDULED
        text = HeldText(
            None,
            status,
            {
                "agency_id": call.agency_id,
                "dedupe_key": dedupe_key(call.agency_id, call.incident_id, action.kind),
                "kind": action.kind.value,
                "sequence": 0,
                "status": status.value,
                "reason": action.suppressed_reason,
                "send_rank": action.kind.send_rank,
                "not_before": action.not_before,
                "expires_at": action.expires_at,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
                "finished_at": now if action.suppressed_reason else None,
            },
        )
        held.texts[action.kind] = text
        self._history.append(
            (text, {"status": status.value, "reason": action.suppressed_reason, "at": now})
        )
        return True

    def cancel_pending(self, held: HeldCall, action: CancelPending, now: datetime) -> int:
        """Cancel the call's texts of these kinds that still wait; how many there were."""
        waiting = [
            text
            for kind in sorted(action.kinds)
            if (text := held.texts.get(kind)) is not None and text.status is TextStatus.SCHEDULED
        ]
        for text in waiting:
            self._move(text, TextStatus.CANCELLED, now, action.reason)
        return len(waiting)

    def _move(self, text: HeldText, new: TextStatus, now: datetime, reason: str) -> None:
        if not text.status.can_become(new):
            raise IllegalTransition(text.status.value, new.value)
        text.status = new
        text.values.update(status=new.value, reason=reason, updated_at=now)
        if new.is_final:
            text.values["finished_at"] = now
        self._history.append((text, {"status": new.value, "reason": reason, "at": now}))

    def record_decision(
        self,
        held: HeldCall,
        code: str,
        *,
        decided_at: datetime,
        event_id: str | None,
        event_at: datetime | None,
        kind: str | None,
    ) -> None:
        values = {
            "code": code,
            "decided_at": decided_at,
            "event_id": event_id,
            "event_at": event_at,
            "kind": kind,
        }
        self._decisions.append(_Decision(held, values))

    # --- writing -------------------------------------------------------------------

    def write(self, now: datetime) -> None:
        """Everything changed, one statement per table and kind of change: the new calls
        (their ids back), the changed columns of the others, the new texts (ids back)
        and the changed ones, the texts' history, the decisions."""
        new_calls: list[HeldCall] = []
        changed_calls: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for held in self._touched.values():
            columns = self._columns(held, now)
            if held.id is None:
                columns.update(agency_id=held.call.agency_id, created_at=now)
                columns["incident_id"] = held.call.incident_id
                new_calls.append(held)
                held.stored = columns
            else:
                changed = {k: v for k, v in columns.items() if held.stored.get(k) != v}
                changed["row_id"] = held.id
                changed_calls.setdefault(tuple(sorted(changed)), []).append(changed)
        if new_calls:
            inserted = _INSERT_CALLS(self.connection, [h.stored for h in new_calls])
            ids = {incident: call_id for call_id, incident in inserted}
            for held in new_calls:
                held.id = ids[held.call.incident_id]
        for rows in changed_calls.values():
            _UPDATE_CALLS.run_many(self.connection, rows)
        self._write_texts()
        if self._decisions:
            _INSERT_DECISIONS(
                self.connection, [{"call_id": d.call.id, **d.values} for d in self._decisions]
            )
        self._touched.clear()
        self._history.clear()
        self._decisions.clear()

    def _columns(self, held: HeldCall, now: datetime) -> dict[str, Any]:
        columns = call_state_columns(held.call)
        columns["call_category"] = held.category
        columns["updated_at"] = now
        phone = held.call.phone
        phone_hash = self.phone_hash(held)
        if phone is not None and (
            held.stored.get("phone_hash") != phone_hash
            or held.stored.get("phone_encrypted") is None
        ):
            columns["phone_encrypted"] = self.vault.encrypt(phone)
            columns["phone_hash"] = phone_hash
        elif held.id is None:
            columns["phone_encrypted"] = columns["phone_hash"] = None
        return columns

    def _write_texts(self) -> None:
        new: dict[str, HeldText] = {}
        changed: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for held in self._touched.values():
            for text in held.texts.values():
                if text.id is None:
                    new[text.values["dedupe_key"]] = text
                    text.values["call_id"] = held.id
                elif text.values:
                    row = {**text.values, "row_id": text.id}
                    changed.setdefault(tuple(sorted(row)), []).append(row)
                    text.values = {}
        if new:
            inserted = _INSERT_TEXTS(self.connection, [t.values for t in new.values()])
            for text_id, key in inserted:
                new[key].id = text_id
                new[key].values = {}
        for rows in changed.values():
            _UPDATE_TEXTS.run_many(self.connection, rows)
        if self._history:
            _INSERT_HISTORY(
                self.connection,
                [{"outbox_id": text.id, **values} for text, values in self._history],
            )
