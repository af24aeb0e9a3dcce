"""Reading an EIDO document: lenient about its shape, strict about its values.

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

"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from callerconnect.adapters.cad.native import (
    TimeFormatError,
    parse_rfc3339,
)
from callerconnect.logs import mask_phone_patterns


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
