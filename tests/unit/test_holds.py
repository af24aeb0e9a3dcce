"""Which refused events hold their incident (service/holds.py): pure functions, with the
bundled call-type table and the default policy."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callerconnect.adapters.cad.eido.fields import incident_ids
from callerconnect.bootstrap import build_policy
from callerconnect.config import load_settings
from callerconnect.service.holds import incident_of, may_change_safety

POLICY = build_policy(load_settings(environ={}))
BASE = {"event_id": "e-1", "incident_id": "I-1", "type": "call.updated"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@pytest.mark.parametrize(
    ("fields", "holds"),
    [
        ({"district": "D" * 65}, False),
        ({"risk_flag": False, "in_progress": False}, False),
        ({"risk_flag": True}, True),
        ({"risk_flag": "yes"}, True),
        ({"in_progress": 1}, True),
        ({"caller": {"phone": "613-555-0142", "sms_opt_out": False}}, False),
        ({"caller": {"sms_opt_out": "true"}}, True),
        ({"caller": "613-555-0142"}, True),  # cannot tell what else it said
        ({"call_type": {"code": "THEFT"}}, False),
        ({"call_type": {"code": "sexasslt"}}, True),
        ({"call_type": {"code": "NEVER-SEEN"}}, True),
        ({"call_type": {"description": "no code"}}, True),
        ({"priority": 3}, False),
        ({"priority": 1}, True),
        ({"priority": "3"}, True),
        ({"type": "call.cancelled"}, True),
        ({"type": "call.exploded"}, True),
        ({"type": None}, True),
        ({"merged_into": "I-2"}, True),
    ],
)
def test_a_refused_event_holds_when_it_may_have_said_do_not_text(
    fields: dict[str, Any], holds: bool
) -> None:
    assert may_change_safety({**BASE, **fields}, POLICY) is holds


@given(flag=json_values.filter(lambda v: v is not None and v is not False), extra=json_values)
def test_any_risk_flag_that_is_not_plainly_false_holds(flag: Any, extra: Any) -> None:
    assert may_change_safety({**BASE, "risk_flag": flag, "district": extra}, POLICY)


@given(code=st.text(max_size=12))
def test_a_call_type_the_policy_would_not_text_holds(code: str) -> None:
    known = POLICY.call_type(code)
    holds = may_change_safety({**BASE, "call_type": {"code": code}}, POLICY)
    assert holds is (known is None or not known.textable)


@pytest.mark.parametrize(
    ("payload", "incident"),
    [
        ({"incident_id": " I-1 "}, "I-1"),
        ({"incident_id": "   "}, None),
        ({"incident_id": 7}, None),
        ({"incident_id": "x" * 129}, None),
        ("not an object", None),
    ],
)
def test_the_incident_a_refused_event_names(payload: Any, incident: str | None) -> None:
    assert incident_of(payload) == incident


def test_a_refused_eido_document_names_every_incident_id_it_carries() -> None:
    document = {
        "$id": "doc-1",
        "IncidentTrackingIdentifier": "urn:top",
        "incidentComponent": [{"incidentTrackingIdentifier": " urn:inc "}, "junk"],
    }
    assert sorted(incident_ids(document)) == ["doc-1", "urn:inc", "urn:top"]
    assert incident_ids(["not", "an", "object"]) == []
