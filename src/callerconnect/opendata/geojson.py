"""The latest month's figures on the district boundaries (GeoJSON, RFC 7946).

Each boundary feature gets the cells of ``monthly_by_district`` for its district, one set
of properties per priority (``p3_overall_mean``…), already suppressed. No district total
is computed: a new total would be a new relation from which a suppressed cell could be
worked out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from callerconnect.opendata.fields import Field
from callerconnect.opendata.formats import json_value
from callerconnect.opendata.tables import Row

_KEYS = ("month", "district", "priority")


def districts_geojson(
    boundaries: Mapping[str, Any], rows: Sequence[Row], fields: Sequence[Field], month: str
) -> dict[str, Any]:
    latest = [r for r in rows if r["month"] == month]
    features = []
    for feature in boundaries.get("features", []):
        properties = feature.get("properties") or {}
        district = str(properties.get("district", ""))
        described: dict[str, Any] = {"district": district, "month": month}
        for row in sorted((r for r in latest if r["district"] == district), key=_priority):
            for field in fields:
                if field.name not in _KEYS:
                    described[f"p{row['priority']}_{field.name}"] = json_value(
                        row.get(field.name), field
                    )
        features.append(
            {"type": "Feature", "geometry": feature.get("geometry"), "properties": described}
        )
    return {"type": "FeatureCollection", "features": features}


def _priority(row: Row) -> int:
    return int(row["priority"])  # type: ignore[arg-type]
