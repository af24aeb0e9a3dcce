"""The native call fields read from an EIDO snapshot's elements.

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

"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from callerconnect.adapters.cad.eido.reader import (
    EidoError,
    _components,
    _get,
    _join,
    _json_type,
    _ref,
    _text,
    _texts,
)
from callerconnect.adapters.cad.event_fields import bound
from callerconnect.adapters.cad.native import (
    ID_RULE,
    clean_id,
    storable,
)
from callerconnect.texts import accepted_case_number

# The native events made from a snapshot keep the bounds cad-event.schema.json declares.
_MAX_ID = bound("incident_id", "maxLength")
_MAX_CODE = bound("call_type.code", "maxLength")
_MAX_CASE_NUMBER = bound("case_number", "maxLength")
_MAX_DESCRIPTION = bound("call_type.description", "maxLength")
_MAX_DISTRICT = bound("district", "maxLength")
_MAX_DISPOSITION_CODE = bound("disposition.code", "maxLength")
_MAX_DISPOSITION_DESCRIPTION = bound("disposition.description", "maxLength")
_MAX_UNIT_ID = bound("unit.id", "maxLength")
_MAX_ETA_MINUTES = bound("unit.eta_minutes", "maximum")
_MIN_PRIORITY, _MAX_PRIORITY = bound("priority", "minimum"), bound("priority", "maximum")
_PRIORITY = re.compile(r"^\d{1,2}$")
_VISUAL_SEPARATORS = re.compile(r"[\s\-.()\[\]/]")
_PHONE = re.compile(r"^\+?\d{7,15}$")

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
            _text(chosen, key, chosen_path),
            _join(chosen_path, key),
            _MAX_DISPOSITION_CODE,
            "disposition code",
        )
    )
    if code:
        disposition["code"] = code
    description = _storable(
        _text(chosen, "dispositionDescriptionText", chosen_path)
        or _text(chosen, "dispositionCategoryText", chosen_path)
    )
    if description:
        disposition["description"] = description[:_MAX_DISPOSITION_DESCRIPTION]
    return disposition
