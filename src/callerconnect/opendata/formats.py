"""The published tables as bytes: CSV (UTF-8, RFC 4180) and JSON, both written the same way
on every run (fixed decimals, fixed key order, no timestamps)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from callerconnect.opendata.fields import Field
from callerconnect.opendata.tables import SUPPRESSED, Row, Value

#: A cell starting with one of these is run as a formula by spreadsheet programs; district
#: names come from the CAD, so one could (OWASP's "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: Value, described: Field) -> str:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    if value is None:
        return ""
    if value == SUPPRESSED:
        return SUPPRESSED
    if isinstance(value, float):
        return f"{value:.{described.decimals if described.decimals is not None else 4}f}"
    return str(value)


def json_value(value: Value, described: Field) -> Any:
    if isinstance(value, float):
        return round(value, described.decimals if described.decimals is not None else 4)
    return value


def to_csv(fields: Sequence[Field], rows: Sequence[Row]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([f.name for f in fields])
    for row in rows:
        writer.writerow([csv_text(row.get(f.name), f) for f in fields])
    return buffer.getvalue().encode("utf-8")


def to_json(fields: Sequence[Field], rows: Sequence[Row]) -> bytes:
    """A JSON array of objects, one per row: numbers as numbers, ``"x"`` where
    suppressed, ``null`` where not applicable."""
    records = [{f.name: json_value(row.get(f.name), f) for f in fields} for row in rows]
    return (json.dumps(records, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def dump_json(document: Any) -> bytes:
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
