"""NENA EIDO (NENA-STA-021, JSON) → native CAD events.

An EIDO is a snapshot of a whole incident. :func:`events_from_eido` turns one snapshot
into the list of native events (contract section 1, each valid against
``cad-event.schema.json``) that the snapshot implies, so that the rest of callerconnect
has a single intake path. The adapter is stateless: it does not compare the snapshot
with what is already known. That is safe because the core folds facts idempotently and
field by field (an older fact never overwrites a newer one; the earliest dispatch wins),
and because every event id is derived from the snapshot's content: re-posting a
snapshot, or a later snapshot restating an earlier fact, yields events whose ids were
already seen, which the intake answers ``duplicate``.


The document is read by :mod:`.reader` and its call fields by :mod:`.fields`; this
module puts the snapshot's events together.

Events and their times
----------------------

Times are kept in the offset the document used (fractions of a second without trailing
zeros). Let *T* be the document's ``lastUpdateTimeStamp`` and *Ti* the incident
component's own ``lastUpdateTimeStamp`` (else *T*).

``call.received``
    Always one, carrying every field above that the snapshot has. Its time is the
    earliest ``callComponent[].callStartTimestamp`` ("when the call was received"), else
    *T*; never later than any other event of the snapshot.
``call.updated``
    At *T*, carrying the same fields, unless the received time is *T* itself. Every
    snapshot thus restates its fields at its own time; a late, older snapshot cannot
    overwrite a newer one, and a field first reported in a later snapshot (a case
    number) arrives as a newer fact. (The fields on ``call.received`` are stamped with
    the call's start although observed at *T*; the ``call.updated`` at *T* restates
    them, so the folded state is the same.)
``unit.dispatched``
    Evidence, earliest first: a ``dispatchComponent`` that names at least one emergency
    resource (its ``lastUpdateTimeStamp``, the moment of the dispatch action) and a unit
    in ``emergencyResourceComponent`` whose status is dispatched/en route (its
    ``lastUpdateTimeStamp``). Without such evidence, an arrival implies a dispatch at the
    arrival time, and an incident status of dispatched/en route implies one at *Ti*.
    A cleared, cancelled or merged incident implies nothing: a call closed without
    visible dispatch evidence (a report taken by phone) gets no invented dispatch.
``unit.arrived``
    The earliest ``lastUpdateTimeStamp`` of a unit whose status is on scene, else *Ti*
    when the incident status is on scene/arrived.
``call.cleared`` / ``call.cancelled``
    At *Ti* when the incident status says so (*Ti* changes less often than *T* once an
    incident is closed, so repeated closed snapshots restate the same fact).
``call.merged``
    When a ``mergeComponent`` says this incident was ``REPLACED`` by another one:
    ``merged_into`` is that component's ``incidentTrackingIdentifier``, the time its
    ``lastUpdateTimeStamp`` (reading ``REPLACED`` as "this incident was replaced by the
    referenced one"). An incident merged away gets no ``call.cleared``/``call.cancelled``
    (the absorbing incident carries on). ``REPLACING`` (this incident absorbed another)
    and ``SPLIT`` are not facts about this incident. A "Merged" status without such a
    component cannot be a ``call.merged`` (``merged_into`` is required and unknown); it
    becomes ``call.cancelled`` at *Ti* instead, because leaving the absorbed incident
    open could send its caller a delay notice for a call that lives on elsewhere; like a
    merge, a cancellation stops pending texts and sends no survey.

Stage times are made monotonic (received ≤ dispatched ≤ arrived ≤ closed) by moving an
earlier stage back to a later stage's time where the document contradicts itself.

Statuses are read from ``incidentStatusInternalText`` (a list, or a string), falling back
to ``incidentStatusCommonRegistryText`` when no internal value is recognised; the most
advanced recognised value wins (merged, then cleared, then cancelled, then on scene, then
dispatched). They are compared case-insensitively, ignoring spaces, hyphens and
underscores:

* dispatched: ``Dispatched``, ``Assigned``, ``Enroute``/``En route``, ``Responding``
* on scene: ``OnScene``/``On scene``, ``Arrived``, ``AtScene``
* cleared: ``Cleared``, ``Clear``, ``Closed``, ``Completed``, ``Complete``
* cancelled: ``Cancelled``, ``Canceled``, ``Cancel``
* merged: ``Merged``

Any other status (``Pending``, ``Active`` …) yields only the received/updated events.
Unit statuses (``unitStatusInternal``, then ``primaryUnitStatusRegistryText``) use the
dispatched and on-scene lists; other unit statuses (available, transporting …) are not
evidence. A unit whose ``activeOnIncidentId`` names another incident is ignored (its
status is about that incident).

Event ids
---------

``eido:{incident_id}:{type}:{occurred_at in UTC, e.g. 20260210T140211Z}``; when that
would exceed 128 characters the incident id part becomes ``sha256-`` and the first 40
hex digits of its SHA-256. The same snapshot, whatever its key casing or time-zone
notation, always yields the same ids. A sender must therefore advance
``lastUpdateTimeStamp`` whenever the incident changes (the standard requires it):
two different snapshots with the same time stamp yield the same ``call.updated`` id and
the second one is taken for a duplicate.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

from callerconnect.adapters.cad.eido.fields import (
    _MAX_ETA_MINUTES,
    _MAX_ID,
    _MAX_UNIT_ID,
    _call_fields,
    _disposition,
    _incident_component,
    _incident_id,
    _storable,
    _usable_id,
)
from callerconnect.adapters.cad.eido.reader import (
    EidoError,
    _components,
    _format_time,
    _join,
    _json_type,
    _refs,
    _status_key,
    _text,
    _texts,
    _time,
    _utc_stamp,
)
from callerconnect.adapters.cad.native import (
    EventRejected,
    parse_event,
)
from callerconnect.domain.case_numbers import DEFAULT_CASE_NUMBER_PATTERN


class _Stage(IntEnum):
    """How far an incident or a unit has got; terminal stages rank above the rest."""

    NONE = 0
    DISPATCHED = 1
    ARRIVED = 2
    CANCELLED = 3
    CLEARED = 4
    MERGED = 5


_INCIDENT_STATUSES: dict[str, _Stage] = {
    "dispatched": _Stage.DISPATCHED,
    "assigned": _Stage.DISPATCHED,
    "enroute": _Stage.DISPATCHED,
    "responding": _Stage.DISPATCHED,
    "onscene": _Stage.ARRIVED,
    "arrived": _Stage.ARRIVED,
    "atscene": _Stage.ARRIVED,
    "cleared": _Stage.CLEARED,
    "clear": _Stage.CLEARED,
    "closed": _Stage.CLEARED,
    "completed": _Stage.CLEARED,
    "complete": _Stage.CLEARED,
    "cancelled": _Stage.CANCELLED,
    "canceled": _Stage.CANCELLED,
    "cancel": _Stage.CANCELLED,
    "merged": _Stage.MERGED,
}
_UNIT_STATUSES: dict[str, _Stage] = {
    name: stage
    for name, stage in _INCIDENT_STATUSES.items()
    if stage in (_Stage.DISPATCHED, _Stage.ARRIVED)
}

# Order of events that share a moment.
_TYPE_ORDER = {
    "call.received": 0,
    "call.updated": 1,
    "unit.dispatched": 2,
    "unit.arrived": 3,
    "call.cancelled": 4,
    "call.cleared": 4,
    "call.merged": 4,
}


# --------------------------------------------------------------------------- stages


def _stage_of(texts: list[tuple[str, str]], table: Mapping[str, _Stage]) -> _Stage:
    return max(
        (table.get(_status_key(text), _Stage.NONE) for text, _ in texts), default=_Stage.NONE
    )


def _incident_stage(incident: Mapping[str, Any], path: str) -> _Stage:
    stage = _stage_of(_texts(incident, "incidentStatusInternalText", path), _INCIDENT_STATUSES)
    if stage is _Stage.NONE:
        stage = _stage_of(
            _texts(incident, "incidentStatusCommonRegistryText", path), _INCIDENT_STATUSES
        )
    return stage


@dataclass(frozen=True)
class _Unit:
    path: str
    component_id: str | None
    unit_id: str | None
    stage: _Stage
    at: datetime
    eta: datetime | None


def _units(doc: Mapping[str, Any], incident_ids: set[str], default_at: datetime) -> list[_Unit]:
    units = []
    for unit, path in _components(doc, "emergencyResourceComponent", ""):
        active_on = _text(unit, "activeOnIncidentId", path)
        if active_on is not None and active_on not in incident_ids:
            stage = _Stage.NONE  # its status describes another incident
        else:
            stage = _stage_of(_texts(unit, "unitStatusInternal", path), _UNIT_STATUSES)
            if stage is _Stage.NONE:
                stage = _stage_of(
                    _texts(unit, "primaryUnitStatusRegistryText", path), _UNIT_STATUSES
                )
        component_id = _text(unit, "$id", path)
        name = _text(unit, "emergencyResourceName", path)
        unit_id = next(
            (
                c
                for c in (name, component_id)
                if c is not None and len(c) <= _MAX_UNIT_ID and _storable(c)
            ),
            None,
        )
        at = _time(unit, "lastUpdateTimeStamp", path) or default_at
        eta = _time(unit, "eta", path)
        units.append(_Unit(path, component_id, unit_id, stage, at, eta))
    return units


@dataclass(frozen=True)
class _Dispatch:
    at: datetime
    unit: _Unit | None
    unit_ref: str | None


def _dispatch_evidence(
    doc: Mapping[str, Any], units: list[_Unit], default_at: datetime
) -> list[_Dispatch]:
    by_id = {unit.component_id: unit for unit in units if unit.component_id}
    evidence = []
    for dispatch, path in _components(doc, "dispatchComponent", ""):
        refs = _refs(dispatch, "emergencyResourceReference", path)
        if not refs:
            continue  # an agency notified, not a unit sent
        at = _time(dispatch, "lastUpdateTimeStamp", path) or default_at
        evidence.append(_Dispatch(at, by_id.get(refs[0]), refs[0]))
    for unit in units:
        if unit.stage is _Stage.DISPATCHED:
            evidence.append(_Dispatch(unit.at, unit, None))
    return evidence


def _unit_payload(dispatch: _Dispatch, at: datetime) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    unit = dispatch.unit
    if unit is not None and unit.unit_id:
        payload["id"] = unit.unit_id
    elif (
        unit is None
        and dispatch.unit_ref
        and len(dispatch.unit_ref) <= _MAX_UNIT_ID
        and _storable(dispatch.unit_ref)
    ):
        payload["id"] = dispatch.unit_ref
    if unit is not None and unit.eta is not None:
        minutes = math.ceil((unit.eta - at).total_seconds() / 60)
        if 0 <= minutes <= _MAX_ETA_MINUTES:
            payload["eta_minutes"] = minutes
    return payload


def _merge(doc: Mapping[str, Any], default_at: datetime) -> tuple[datetime, str] | None:
    merges = []
    for merge, path in _components(doc, "mergeComponent", ""):
        direction = _text(merge, "incidentMergeDirectionCode", path)
        if direction is None or direction.upper() != "REPLACED":
            continue
        key = "incidentTrackingIdentifier"
        target = _text(merge, key, path)
        if target is None:
            continue
        target = _usable_id(target, _join(path, key), "incident id")
        merges.append((_time(merge, "lastUpdateTimeStamp", path) or default_at, target))
    return min(merges, default=None)


# --------------------------------------------------------------------------- events


def _event_id(incident_id: str, event_type: str, at: datetime) -> str:
    stamp = _utc_stamp(at)
    event_id = f"eido:{incident_id}:{event_type}:{stamp}"
    if len(event_id) > _MAX_ID:
        digest = hashlib.sha256(incident_id.encode("utf-8")).hexdigest()[:40]
        event_id = f"eido:sha256-{digest}:{event_type}:{stamp}"
    return event_id


def _earliest(*moments: datetime | None) -> datetime | None:
    present = [moment for moment in moments if moment is not None]
    return min(present) if present else None


def events_from_eido(
    doc: Mapping[str, Any], *, case_number_pattern: str = DEFAULT_CASE_NUMBER_PATTERN
) -> list[dict[str, Any]]:
    """The native CAD events implied by one EIDO snapshot, oldest first.

    ``documentIdentification`` is mapped to the case number only when it matches the
    agency's ``case_number_pattern`` (``intake.case_number_pattern``).

    Each event follows contract section 1 and is valid against ``cad-event.schema.json``.
    Raises :class:`EidoError` (naming the field) for a document that cannot be mapped.
    See the module documentation for the mapping.
    """
    if not isinstance(doc, Mapping):
        raise EidoError("$", f"expected one EIDO document as a JSON object, got {_json_type(doc)}")
    incident, incident_path = _incident_component(doc)
    incident_id = _incident_id(doc, incident, incident_path)
    updated_at = _time(doc, "lastUpdateTimeStamp", "")
    if updated_at is None:
        raise EidoError(
            "lastUpdateTimeStamp",
            "missing; expected the time of the snapshot as an RFC 3339 date-time with an offset",
        )
    incident_at = _time(incident, "lastUpdateTimeStamp", incident_path) or updated_at
    fields = _call_fields(doc, incident, incident_path, case_number_pattern)
    stage = _incident_stage(incident, incident_path)

    incident_ids = {incident_id}
    internal_id = _text(incident, "internalIncidentId", incident_path)
    if internal_id:
        incident_ids.add(internal_id)
    units = _units(doc, incident_ids, updated_at)
    dispatches = sorted(_dispatch_evidence(doc, units, updated_at), key=lambda d: d.at)

    # Closing stage.
    closed: tuple[str, datetime, Mapping[str, Any]] | None = None
    merge = _merge(doc, updated_at)
    if merge is not None:
        closed = ("call.merged", merge[0], {"merged_into": merge[1]})
    elif stage is _Stage.CLEARED:
        disposition = _disposition(doc, incident, incident_path)
        closed = ("call.cleared", incident_at, {"disposition": disposition} if disposition else {})
    elif stage in (_Stage.CANCELLED, _Stage.MERGED):
        # Merged away into an incident the snapshot does not name: close it all the same.
        closed = ("call.cancelled", incident_at, {})
    closed_at = closed[1] if closed else None

    # Arrival: a unit on scene, else the incident's own status.
    arrived_at = _earliest(*(unit.at for unit in units if unit.stage is _Stage.ARRIVED))
    if arrived_at is None and stage is _Stage.ARRIVED:
        arrived_at = incident_at
    if arrived_at is not None:
        arrived_at = _earliest(arrived_at, closed_at)

    # Dispatch: explicit evidence, else implied by an arrival or the incident's status.
    dispatch = dispatches[0] if dispatches else None
    dispatched_at = dispatch.at if dispatch else None
    if dispatched_at is None:
        if arrived_at is not None:
            dispatched_at = arrived_at
        elif stage is _Stage.DISPATCHED:
            dispatched_at = incident_at
    if dispatched_at is not None:
        dispatched_at = _earliest(dispatched_at, arrived_at, closed_at)

    call_start = _earliest(
        *(
            _time(call, "callStartTimestamp", call_path)
            for call, call_path in _components(doc, "callComponent", "")
        )
    )
    received_at = min(
        moment
        for moment in (call_start, updated_at, dispatched_at, arrived_at, closed_at)
        if moment is not None
    )

    planned: list[tuple[str, datetime, Mapping[str, Any]]] = [
        ("call.received", received_at, fields)
    ]
    if updated_at != received_at:
        planned.append(("call.updated", updated_at, fields))
    if dispatched_at is not None:
        unit = _unit_payload(dispatch, dispatched_at) if dispatch else {}
        planned.append(("unit.dispatched", dispatched_at, {"unit": unit} if unit else {}))
    if arrived_at is not None:
        planned.append(("unit.arrived", arrived_at, {}))
    if closed is not None:
        planned.append(closed)
    planned.sort(key=lambda item: (item[1], _TYPE_ORDER[item[0]]))
    events = [
        {
            "event_id": _event_id(incident_id, event_type, at),
            "incident_id": incident_id,
            "occurred_at": _format_time(at),
            "type": event_type,
            **copy.deepcopy(payload),  # events share no mutable parts
        }
        for event_type, at, payload in planned
    ]
    for event in events:
        _check_native(event, incident_path, case_number_pattern)
    return events


# Where each native field comes from, to name the element when an event would be refused.
_SOURCES = {
    "case_number": "documentIdentification",
    "priority": "incidentPriorityInternalText",
    "call_type.code": "incidentTypeInternalCode",
    "call_type.description": "incidentTypeInternalText",
    "district": "beatOrDispatchGroupText",
}
_TOP_SOURCES = {
    "caller": "callbackComponent",
    "unit": "emergencyResourceComponent",
    "disposition": "dispositionComponent",
    "merged_into": "mergeComponent",
}


def _check_native(event: dict[str, Any], incident_path: str, case_number_pattern: str) -> None:
    """Every event must pass the native intake as it is. One it would refuse means the
    document cannot be used: that is an :class:`EidoError` (the document is answered
    422 and kept as a dead letter), never a 202 with some of its events rejected and
    the others folded, which would apply half a snapshot."""
    try:
        parse_event(event, case_number_pattern=case_number_pattern)
    except EventRejected as rejected:
        field = rejected.field
        source = _SOURCES.get(field)
        if source is not None:
            path = _join(incident_path, source)
        else:
            path = _TOP_SOURCES.get(field.split(".", 1)[0], "$")
        raise EidoError(path, f"cannot be mapped: {rejected.message}") from None
