"""``domain.calls.replaced``: what ``dataclasses.replace`` gives, for any changes, and the
original left as it was."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callerconnect.domain.calls import Call, replaced

CALL = Call(
    agency_id="default",
    incident_id="I-1",
    case_number="26-000001",
    priority=4,
    field_times=MappingProxyType({"priority": datetime(2026, 1, 1, tzinfo=UTC)}),
    field_events=MappingProxyType({"priority": "E-1"}),
    first_seen=MappingProxyType({"priority": datetime(2026, 1, 1, tzinfo=UTC)}),
)
NAMES = [f.name for f in fields(Call)]
values = st.one_of(st.none(), st.integers(), st.text(max_size=8), st.booleans())


@given(st.dictionaries(st.sampled_from(NAMES), values, max_size=6))
def test_replaced_is_dataclasses_replace(changes: dict[str, Any]) -> None:
    before = {name: getattr(CALL, name) for name in NAMES}
    after = replaced(CALL, **changes)
    assert after == replace(CALL, **changes)
    assert type(after) is Call
    assert {name: getattr(CALL, name) for name in NAMES} == before  # the original kept
    with pytest.raises(AttributeError):
        after.priority = 3  # type: ignore[misc]  # still frozen


def test_an_unknown_field_is_refused_as_replace_refuses_it() -> None:
    with pytest.raises(TypeError, match="prioriti"):
        replaced(CALL, prioriti=3)
