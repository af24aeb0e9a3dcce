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

Reading the document
--------------------

* Keys are matched case-insensitively everywhere (published samples differ:
  ``lastUpdateTimeStamp`` / ``LastUpdateTimeStamp``); an exact match wins over a
  case-variant one.
* A component may be one object or a list of objects (``incidentComponent`` is one
  object in the OpenAPI but a list in some samples). Where one is needed and a list is
  given, the first element is used.
* A text field that is empty or only spaces counts as absent.
* Time stamps must be RFC 3339 with an offset (``Z`` or ``±HH:MM``), read by the native
  adapter's strict parser (:func:`callerconnect.adapters.cad.native.parse_rfc3339`:
  no ``+05``/``+0500`` offsets, week dates, basic format, missing seconds or space for
  ``T``; years 1900–9998 as written and in UTC); surrounding white space is ignored.
  Every time stamp that is used is validated; unused parts of the document are not
  looked at.
* Errors: a document this adapter cannot turn into facts raises :class:`EidoError`,
  whose ``field`` names the offending element, e.g.
  ``incidentComponent.incidentPriorityInternalText`` or
  ``callComponent[0].callStartTimestamp`` (``$`` is the document itself). That is the
  case for: a document that is not an object; no incident id; a missing or invalid
  ``lastUpdateTimeStamp``; a priority that is not an integer 1..9; a used element of
  the wrong JSON type; an incident id longer than the native schema allows or holding
  a control or invisible formatting character (NUL included); a case number that a
  text longer than 32 characters; and, as a last check, any event that the native
  intake would refuse. A document is thus refused whole (``422``) or mapped whole,
  never answered ``202`` with some of its events rejected. Unusable but well-formed
  values are not errors: a ``sip:`` callback, an unknown status, a language other
  than English or French, a case number that a text may not quote
  (:func:`callerconnect.texts.quotable_case_number`), a district, description or unit
  name holding NUL or half a surrogate pair are simply not mapped.

Field mapping (native field ← EIDO element)
-------------------------------------------

``incident_id``
    ``incidentComponent.incidentTrackingIdentifier``, else a top-level
    ``incidentTrackingIdentifier``, else the document's top-level ``$id`` (in NENA's
    sample that is the ``urn:emergency:uid:incidentid:…`` incident tracking id). Not
    ``internalIncidentId`` (the contract names the globally unique tracking id; the
    internal id is used only to recognise units active on this incident). Trimmed;
    longer than 128 characters, or holding a control or invisible formatting
    character, is an error.
``case_number``
    ``incidentComponent.documentIdentification[0]`` (a bare string is accepted too),
    trimmed and with Unicode dashes made ``-``. Longer than 32 characters is an error;
    one a text may not quote (a link, a line break, a character outside the GSM-7
    basic set...) is not mapped: the snapshot's other facts still apply, and a call
    without a case number gets no confirmation.
``priority``
    ``incidentComponent.incidentPriorityInternalText``: the agency's own number, text
    or JSON integer, 1..9, else an error. ``incidentCommonPriorityNumber`` is ignored on
    purpose: it runs 0–10 with 10 the most urgent, the opposite of the agency's scale.
    ``callComponent.priorityIdentifier`` (the SIP call priority) is ignored too.
``call_type``
    ``{"code": incidentTypeInternalCode, "description": incidentTypeInternalText}``
    (the description falls back to ``incidentTypeCommonRegistryText``, a text or the
    first of a list, and is cut to 200 characters). Fail closed: every snapshot's type
    replaces the previous one, so a type the code cannot express must still become a
    type the policy does not text. Without an internal code, the internal text (else
    the common-registry text) *is* the code: the policy looks it up like any code
    (trimmed, case-folded), so ``"Sexual assault"`` is an unknown call type, never
    texted, and a text that is a code of the table (``"Theft"``) is that code. A code
    the native schema cannot carry (longer than 32 characters, or holding NUL or half
    a surrogate pair) becomes an opaque ``?`` and 24 hex digits of its SHA-256, which
    no call-type table holds (never a truncation: a cut code could match another
    entry). A snapshot without any type restates none.
``district``
    ``incidentComponent.beatOrDispatchGroupText`` ("a beat or dispatch group that
    contains an incident"). Agencies (``agencyComponent``) are not districts and are
    not mapped.
``caller.phone``
    The first usable ``tel:`` URI in ``callbackComponent[].callBackInformationUri``,
    looking first at the callback component of a person whose
    ``personIncidentRoleRegistryText`` includes ``Caller`` (via ``callBackReference``),
    then at those referenced by ``callComponent[].callBackReference``, then at the
    other callback components, except those that belong only to a person in another
    role (a victim's or a witness's number is not the caller's). ``tel:`` and visual
    separators (``-``, ``.``, spaces, brackets) are removed and RFC 3966 parameters
    dropped; a URI with an extension (``;ext=``/``;isub=``) or that does not leave 7 to
    15 digits is skipped, as are ``sip:`` URIs and ``updatedCbn`` (a spoken, unverified
    number; the contract names ``callBackInformationUri``). The intake normalises the
    number to E.164.
``caller.language``
    Best effort: the caller person's NIEM ``ncPersonComponent.personPrimaryLanguage``
    (a string, or an object with ``languageCode``/``languageName``; an ``nc:`` key
    prefix is tolerated). Only English and French (``en``, ``eng``, ``English``,
    ``en-CA``, ``fr``, ``fra``, ``fre``, ``French``, ``français``, ``fr-CA`` …) are
    mapped; anything else leaves the language absent (the caller gets the bilingual
    text). The ``<Language>`` inside RFC 7852 additional data is *not* used: it is the
    language of the data provider's contact (NENA's sample shows exactly that).
``risk_flag``
    ``true`` when a ``cautionComponent`` has ``cautionSeverity`` ``high`` or ``highest``.
    A caution "raises special attention to circumstances … that might threaten the
    safety of people"; that is not the same judgment as "a text could put someone at
    risk", but mapping it fails closed (a courtesy text is lost, nobody is endangered).
    Lower severities (a dog on the premises) are not mapped.
``in_progress``
    Never set. The EIDO has no element that says "crime or threat in progress"; guessing
    one from an incident type or status would be a guess about an active threat, so
    nothing is mapped. Likewise a Unit Emergency State (a responder's emergency button)
    concerns responders, not callers.
    Neither safety flag is ever emitted as ``false``: a snapshot without a caution must
    not clear a flag that another source set. Agencies that need these flags send them
    as native events.
``unit``
    ``{"id", "eta_minutes"}`` on ``unit.dispatched``: the id is the unit's
    ``emergencyResourceName``, else its ``$id`` (omitted if longer than 32 characters);
    ``eta_minutes`` is the unit's ``eta`` minus the dispatch time, rounded up, if that
    lies between 0 and 1440.
``disposition``
    On ``call.cleared`` only: from ``incidentComponent.dispositionComponent`` (or a
    top-level ``dispositionComponent``; object or list), the one with
    ``dispositionPrimaryIndicator`` true, else the first: ``{"code":
    dispositionCommonRegistryCode, "description": dispositionDescriptionText, else
    dispositionCategoryText}``.
``sms_opt_out``
    Never set: an EIDO does not carry it.

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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

from callerconnect.adapters.cad.native import (
    ID_RULE,
    EventRejected,
    TimeFormatError,
    clean_id,
    parse_event,
    parse_rfc3339,
    storable,
)
from callerconnect.domain.case_numbers import DEFAULT_CASE_NUMBER_PATTERN
from callerconnect.logs import mask_phone_patterns
from callerconnect.texts import accepted_case_number

__all__ = ["EidoError", "events_from_eido", "incident_ids"]

# Limits from cad-event.schema.json.
_MAX_ID = 128
_MAX_CODE = 32
_MAX_CASE_NUMBER = 32
_MAX_DESCRIPTION = 200
_MAX_DISTRICT = 64
_MAX_UNIT_ID = 32
_MAX_ETA_MINUTES = 1440
_MIN_PRIORITY, _MAX_PRIORITY = 1, 9
_PRIORITY = re.compile(r"^\d{1,2}$")
_VISUAL_SEPARATORS = re.compile(r"[\s\-.()\[\]/]")
_PHONE = re.compile(r"^\+?\d{7,15}$")


class EidoError(ValueError):
    """The EIDO document cannot be turned into facts.

    ``field`` names the offending element as a dotted path with list indices
    (``incidentComponent.incidentPriorityInternalText``, ``callComponent[0].callStartTimestamp``,
    ``$`` for the document itself); ``message`` says what is wrong and what was expected.
    """

    def __init__(self, field: str, message: str) -> None:
        message = mask_phone_patterns(message)  # a second line of defence, as for events
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


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

_LANGUAGES: dict[str, str] = {
    "en": "en",
    "eng": "en",
    "english": "en",
    "anglais": "en",
    "fr": "fr",
    "fra": "fr",
    "fre": "fr",
    "french": "fr",
    "francais": "fr",
    "français": "fr",
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


# --------------------------------------------------------------------------- reading


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _get(obj: Mapping[str, Any], key: str) -> Any:
    """``obj[key]`` with the key matched case-insensitively (an exact match wins)."""
    if key in obj:
        return obj[key]
    wanted = key.casefold()
    for name, value in obj.items():
        if isinstance(name, str) and name.casefold() == wanted:
            return value
    return None


def _objects(value: Any, path: str) -> list[tuple[Mapping[str, Any], str]]:
    """A component given as one object or as a list of objects, with each one's path."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(value, path)]
    if isinstance(value, list):
        found = []
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if not isinstance(item, Mapping):
                raise EidoError(item_path, f"expected an object, got {_json_type(item)}")
            found.append((item, item_path))
        return found
    raise EidoError(path, f"expected an object or a list of objects, got {_json_type(value)}")


def _components(obj: Mapping[str, Any], key: str, path: str) -> list[tuple[Mapping[str, Any], str]]:
    return _objects(_get(obj, key), _join(path, key))


def _text(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = _get(obj, key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EidoError(_join(path, key), f"expected text, got {_json_type(value)}")
    return value.strip() or None


def _texts(obj: Mapping[str, Any], key: str, path: str) -> list[tuple[str, str]]:
    """A list of texts (a bare text is accepted as a list of one), with each one's path."""
    value = _get(obj, key)
    here = _join(path, key)
    if value is None:
        return []
    if isinstance(value, str):
        return [(value.strip(), here)] if value.strip() else []
    if not isinstance(value, list):
        raise EidoError(here, f"expected a list of texts, got {_json_type(value)}")
    found = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise EidoError(f"{here}[{index}]", f"expected text, got {_json_type(item)}")
        if item.strip():
            found.append((item.strip(), f"{here}[{index}]"))
    return found


def _parse_time(value: Any, path: str) -> datetime:
    """The native adapter's strict RFC 3339 parser (years 1900–9998, in UTC too), after
    trimming surrounding white space."""
    if not isinstance(value, str):
        raise EidoError(path, f"expected an RFC 3339 date-time as text, got {_json_type(value)}")
    try:
        return parse_rfc3339(value.strip())
    except TimeFormatError as error:
        raise EidoError(path, str(error)) from None


def _time(obj: Mapping[str, Any], key: str, path: str) -> datetime | None:
    value = _get(obj, key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _parse_time(value, _join(path, key))


def _format_time(moment: datetime) -> str:
    """RFC 3339 in the document's own offset, without trailing zeros in the fraction."""
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def _utc_stamp(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y%m%dT%H%M%S")
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _status_key(text: str) -> str:
    return re.sub(r"[\s_\-]", "", text.casefold())


def _ref(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    """The ``$ref`` of a ReferenceType element."""
    value = _get(obj, key)
    if value is None:
        return None
    here = _join(path, key)
    if not isinstance(value, Mapping):
        raise EidoError(
            here, f"expected a reference object {{'$ref': ...}}, got {_json_type(value)}"
        )
    return _text(value, "$ref", here)


def _refs(obj: Mapping[str, Any], key: str, path: str) -> list[str]:
    """The ``$ref`` values of a list of ReferenceType elements (one object is accepted)."""
    found = []
    for item, item_path in _components(obj, key, path):
        ref = _text(item, "$ref", item_path)
        if ref:
            found.append(ref)
    return found


# --------------------------------------------------------------------------- fields


def _incident_component(doc: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    found = _components(doc, "incidentComponent", "")
    if not found:
        return {}, "incidentComponent"
    return found[0]


def incident_ids(document: Any) -> list[str]:
    """Every incident id a document may be about, by the rules of :func:`_incident_id`
    (the incident component's tracking identifier, a top-level one, the top-level
    ``$id``), trimmed, leaving out what could not be an id. Never raises: it is for a
    document :func:`events_from_eido` refused (service/holds.py holds them all)."""
    if not isinstance(document, Mapping):
        return []
    candidates = [_get(document, "incidentTrackingIdentifier"), _get(document, "$id")]
    components = _get(document, "incidentComponent")
    for component in components if isinstance(components, list) else [components]:
        if isinstance(component, Mapping):
            candidates.append(_get(component, "incidentTrackingIdentifier"))
    found: list[str] = []
    for value in candidates:
        cleaned = clean_id(value) if isinstance(value, str) else None
        if cleaned is None or len(cleaned) > _MAX_ID or not storable(cleaned):
            continue
        if cleaned not in found:
            found.append(cleaned)
    return found


def _incident_id(doc: Mapping[str, Any], incident: Mapping[str, Any], path: str) -> str:
    for obj, obj_path, key in (
        (incident, path, "incidentTrackingIdentifier"),
        (doc, "", "incidentTrackingIdentifier"),
        (doc, "", "$id"),
    ):
        value = _text(obj, key, obj_path)  # trimmed; empty or only spaces counts as absent
        if value is None:
            continue
        return _usable_id(value, _join(obj_path, key), "incident id")
    raise EidoError(
        "incidentComponent.incidentTrackingIdentifier",
        "the document has no incident id; expected incidentComponent.incidentTrackingIdentifier "
        "or a top-level $id (non-empty text)",
    )


def _usable_id(value: str, path: str, what: str) -> str:
    """An incident id as the native intake takes it (trimmed, at most 128 characters, no
    control or invisible characters), else the document is unusable: an error naming
    the element, so the whole document is refused with 422 (not some of its events)."""
    if len(value) > _MAX_ID:
        raise EidoError(path, f"the {what} is {len(value)} characters; at most {_MAX_ID}")
    cleaned = clean_id(value)
    if cleaned is None:
        raise EidoError(path, f"the {what} {ID_RULE}")
    return cleaned


def _limited(value: str | None, path: str, limit: int, what: str) -> str | None:
    if value is not None and len(value) > limit:
        raise EidoError(path, f"the {what} is {len(value)} characters; at most {limit}")
    return value


def _priority(incident: Mapping[str, Any], path: str) -> int | None:
    key = "incidentPriorityInternalText"
    here = _join(path, key)
    value = _get(incident, key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    expected = f"expected the agency's priority as an integer {_MIN_PRIORITY}..{_MAX_PRIORITY}"
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 4.0 is the integer 4 in JSON (and in the native schema)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise EidoError(here, f"{expected}, got {_json_type(value)}")
    if isinstance(value, str):
        if not _PRIORITY.match(value.strip()):
            raise EidoError(here, f'is not a number; {expected} (e.g. "3")')
        value = int(value.strip())
    if not _MIN_PRIORITY <= value <= _MAX_PRIORITY:
        raise EidoError(here, f"is out of range; {expected}")
    return value


def _case_number(incident: Mapping[str, Any], path: str, pattern: str) -> str | None:
    key = "documentIdentification"
    value = _get(incident, key)
    if isinstance(value, list):
        if not value:
            return None
        key, value = f"{key}[0]", value[0]  # the contract's choice: the first document id
    if value is None:
        return None
    here = _join(path, key)
    if not isinstance(value, str):
        raise EidoError(here, f"expected the case number as text, got {_json_type(value)}")
    value = value.strip()
    if not value:
        return None
    _limited(value, here, _MAX_CASE_NUMBER, "case number")
    # One that a text may not quote (a link, a line break, an emoji, one that does not
    # match the agency's pattern) is not mapped, like an unusable callback: the
    # snapshot's other facts (a caution, a new type) still apply, and a call without a
    # case number gets no confirmation (docs/intake.md).
    return accepted_case_number(value, pattern)


def _call_type(incident: Mapping[str, Any], path: str) -> dict[str, str] | None:
    code_key, text_key = "incidentTypeInternalCode", "incidentTypeInternalText"
    registry_key = "incidentTypeCommonRegistryText"
    code = _text(incident, code_key, path)
    description = _text(incident, text_key, path) or _first_text(incident, registry_key, path)
    # Fail closed. The adapter is stateless, so it cannot see that a snapshot changes
    # the type; every snapshot's type must therefore replace the previous one, or a
    # reclassification to "Sexual assault" sent without an internal code would leave
    # the call a textable THEFT. So a type given only as text (internal, else common
    # registry) becomes the code itself: the policy looks it up like any code (trimmed,
    # case-folded), so a text that happens to be a code of the table ("Theft") counts as
    # that code and anything else is an unknown call type, which is never texted.
    if code is None:
        code = description
    if code is None:
        return None  # no type at all in this snapshot: nothing to restate
    # A code the native schema cannot carry (too long, or characters no database
    # stores) must still replace the previous type: an opaque code that no call-type
    # table holds stands for it (never truncated: a cut code could match another entry).
    if len(code) > _MAX_CODE or not storable(code):
        code = _opaque_code(code)
    call_type = {"code": code}
    description = _storable(description)
    if description:
        call_type["description"] = description[:_MAX_DESCRIPTION]
    return call_type


def _storable(value: str | None) -> str | None:
    """A descriptive text (a district, a description, a unit name), or None when it
    holds what no database stores (NUL, half a surrogate pair): such a text is not
    mapped, like any other unusable value, rather than refusing the whole snapshot."""
    return None if value is None or not storable(value) else value


def _opaque_code(text: str) -> str:
    """A code for a type the native schema cannot express; '?' starts no real code."""
    digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()
    return f"?{digest[:24]}"


def _first_text(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    """A text, or the first of a list of texts (published samples use both)."""
    found = _texts(obj, key, path)
    return found[0][0] if found else None


def _is_caller(person: Mapping[str, Any], path: str) -> bool:
    roles = _texts(person, "personIncidentRoleRegistryText", path)
    return any(role.casefold() == "caller" for role, _ in roles)


def _phone_from_uri(uri: str) -> str | None:
    """The number in a ``tel:`` URI without separators, or ``None`` if unusable."""
    if not uri.casefold().startswith("tel:"):
        return None
    number, *parameters = uri[4:].split(";")
    for parameter in parameters:
        name = parameter.split("=", 1)[0].strip().casefold()
        if name in ("ext", "isub"):
            return None  # reaches a switchboard, not the caller's own phone
    number = _VISUAL_SEPARATORS.sub("", number)
    return number if _PHONE.match(number) else None


def _caller(doc: Mapping[str, Any]) -> dict[str, str]:
    persons = _components(doc, "personComponent", "")
    callbacks = _components(doc, "callbackComponent", "")
    by_id: dict[str, tuple[Mapping[str, Any], str]] = {}
    for callback, callback_path in callbacks:
        callback_id = _text(callback, "$id", callback_path)
        if callback_id and callback_id not in by_id:
            by_id[callback_id] = (callback, callback_path)

    caller_persons = [(p, p_path) for p, p_path in persons if _is_caller(p, p_path)]
    preferred: list[str] = []
    for person, person_path in caller_persons:
        ref = _ref(person, "callBackReference", person_path)
        if ref:
            preferred.append(ref)
    for call, call_path in _components(doc, "callComponent", ""):
        ref = _ref(call, "callBackReference", call_path)
        if ref:
            preferred.append(ref)
    others_only: set[str] = set()
    for person, person_path in persons:
        if not _is_caller(person, person_path):
            ref = _ref(person, "callBackReference", person_path)
            if ref:
                others_only.add(ref)
    others_only -= set(preferred)

    ordered = [by_id[ref] for ref in preferred if ref in by_id]
    for callback, callback_path in callbacks:
        callback_id = _text(callback, "$id", callback_path)
        if callback_id not in others_only:
            ordered.append((callback, callback_path))

    caller: dict[str, str] = {}
    for callback, callback_path in ordered:
        for uri, _ in _texts(callback, "callBackInformationUri", callback_path):
            phone = _phone_from_uri(uri)
            if phone:
                caller["phone"] = phone
                break
        if caller:
            break

    for person, person_path in caller_persons:
        language = _language(person, person_path)
        if language:
            caller["language"] = language
            break
    return caller


def _get_niem(obj: Mapping[str, Any], key: str) -> Any:
    value = _get(obj, key)
    return value if value is not None else _get(obj, f"nc:{key}")


def _language(person: Mapping[str, Any], path: str) -> str | None:
    niem = _get_niem(person, "ncPersonComponent")
    if not isinstance(niem, Mapping):
        return None
    value = _get_niem(niem, "personPrimaryLanguage")
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, Mapping):
        for key in ("languageCode", "languageName", "language"):
            candidate = _get_niem(value, key)
            if isinstance(candidate, list):
                candidate = candidate[0] if candidate else None
            if isinstance(candidate, str) and candidate.strip():
                value = candidate
                break
        else:
            return None
    if not isinstance(value, str):
        return None
    tag = value.strip().casefold().replace("_", "-").split("-", 1)[0]
    return _LANGUAGES.get(tag)


def _risk_flag(doc: Mapping[str, Any]) -> bool:
    for caution, caution_path in _components(doc, "cautionComponent", ""):
        severity = _text(caution, "cautionSeverity", caution_path)
        if severity and severity.casefold() in ("high", "highest"):
            return True
    return False


def _call_fields(
    doc: Mapping[str, Any], incident: Mapping[str, Any], path: str, case_number_pattern: str
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    case_number = _case_number(incident, path, case_number_pattern)
    if case_number:
        fields["case_number"] = case_number
    priority = _priority(incident, path)
    if priority is not None:
        fields["priority"] = priority
    call_type = _call_type(incident, path)
    if call_type:
        fields["call_type"] = call_type
    key = "beatOrDispatchGroupText"
    district = _storable(
        _limited(_text(incident, key, path), _join(path, key), _MAX_DISTRICT, "district")
    )
    if district:
        fields["district"] = district
    caller = _caller(doc)
    if caller:
        fields["caller"] = caller
    if _risk_flag(doc):
        fields["risk_flag"] = True
    return fields


def _disposition(doc: Mapping[str, Any], incident: Mapping[str, Any], path: str) -> dict[str, str]:
    candidates = _components(incident, "dispositionComponent", path)
    candidates += _components(doc, "dispositionComponent", "")
    if not candidates:
        return {}
    chosen, chosen_path = candidates[0]
    for candidate, candidate_path in candidates:
        if _get(candidate, "dispositionPrimaryIndicator") is True:
            chosen, chosen_path = candidate, candidate_path
            break
    disposition: dict[str, str] = {}
    key = "dispositionCommonRegistryCode"
    code = _storable(
        _limited(
            _text(chosen, key, chosen_path), _join(chosen_path, key), _MAX_CODE, "disposition code"
        )
    )
    if code:
        disposition["code"] = code
    description = _storable(
        _text(chosen, "dispositionDescriptionText", chosen_path)
        or _text(chosen, "dispositionCategoryText", chosen_path)
    )
    if description:
        disposition["description"] = description[:_MAX_DESCRIPTION]
    return disposition


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
