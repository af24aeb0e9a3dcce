"""Agency-level settings (contract section 11): the flat keys are the default agency,
``[agencies.<id>]`` tables add more, and nothing an event or a text could be claimed by
is shared between two agencies."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callerconnect.config import ConfigError, load_settings

KEY_A = "a" * 24
KEY_B = "b" * 24

TWO_AGENCIES = f"""
agency_id = "ottawa"
timezone = "America/Toronto"
intake__api_keys = ["{KEY_A}"]
[agency_name]
en = "Ottawa Police"
fr = "Police d'Ottawa"
[policy]
delay_notice_after = {{ 3 = "30m", 4 = "1h" }}

[agencies.north]
agency_name__en = "North Police"
agency_name__fr = "Police du Nord"
timezone = "America/Winnipeg"
sms__sender = "+12045550100"
intake__api_keys = ["{KEY_B}"]
policy__delay_notice_after__3 = "45m"
policy__priorities = [3]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "callerconnect.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_agency_table_sets_its_own_keys_and_inherits_the_rest(tmp_path: Path) -> None:
    loaded = load_settings(_write(tmp_path, TWO_AGENCIES), environ={})
    north = loaded.agencies["north"]
    assert north.agency_name.en == "North Police"
    assert north.timezone == "America/Winnipeg"
    assert north.policy.priorities == [3]
    # One threshold set, the other the default agency's: tables merge entry by entry.
    assert north.policy.delay_notice_after == {3: timedelta(minutes=45), 4: timedelta(hours=1)}
    assert north.non_emergency_number == loaded.non_emergency_number
    assert [k.get_secret_value() for k in north.intake.api_keys] == [KEY_B]


def test_intake_keys_are_never_inherited(tmp_path: Path) -> None:
    text = TWO_AGENCIES.replace(f'intake__api_keys = ["{KEY_B}"]\n', "")
    north = load_settings(_write(tmp_path, text), environ={}).agencies["north"]
    assert north.intake.api_keys == []


def test_an_agency_is_set_from_the_environment(tmp_path: Path) -> None:
    loaded = load_settings(
        _write(tmp_path, TWO_AGENCIES),
        environ={
            "CALLERCONNECT_AGENCIES__SOUTH__SMS__SENDER": "+15195550100",
            "CALLERCONNECT_AGENCIES__SOUTH__AGENCY_NAME__EN": "South",
            "CALLERCONNECT_AGENCIES__NORTH__TIMEZONE": "America/Regina",
        },
    )
    assert set(loaded.agencies) == {"north", "south"}
    assert loaded.agencies["south"].agency_name.en == "South"
    assert loaded.agencies["north"].timezone == "America/Regina"


def test_a_bad_value_in_an_agency_names_its_key(tmp_path: Path) -> None:
    text = TWO_AGENCIES.replace('sms__sender = "+12045550100"', 'sms__sender = "north"')
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, text), environ={})
    assert caught.value.key == "agencies.north.sms.sender"
    assert caught.value.env_var == "CALLERCONNECT_AGENCIES__NORTH__SMS__SENDER"


def test_an_unknown_key_in_an_agency_is_refused_with_the_closest_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            _write(tmp_path, TWO_AGENCIES),
            environ={"CALLERCONNECT_AGENCIES__NORTH__SMS__SENDR": "+12045550100"},
        )
    assert caught.value.key == "agencies.north.sms.sendr"
    assert "CALLERCONNECT_AGENCIES__NORTH__SMS__SENDER" in str(caught.value)


def test_a_deployment_wide_key_cannot_be_set_per_agency(tmp_path: Path) -> None:
    text = TWO_AGENCIES + 'database_url = "sqlite:///other.db"\n'
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, text), environ={})
    assert caught.value.key == "agencies.north.database_url"


def test_the_same_intake_key_in_two_agencies_stops_start_up_naming_both(
    tmp_path: Path,
) -> None:
    text = TWO_AGENCIES.replace(
        f'intake__api_keys = ["{KEY_B}"]', f'intake__api_keys = ["{KEY_A}"]'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, text), environ={})
    assert set(caught.value.keys) == {"agencies.north.intake.api_keys", "intake.api_keys"}
    assert KEY_A not in str(caught.value)


def test_two_agencies_with_one_sender_stop_start_up(tmp_path: Path) -> None:
    text = TWO_AGENCIES.replace('sms__sender = "+12045550100"\n', "")
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, text), environ={})
    assert set(caught.value.keys) == {"agencies.north.sms.sender", "sms.sender"}


def test_an_agency_cannot_take_the_default_agency_s_id(tmp_path: Path) -> None:
    text = TWO_AGENCIES.replace("[agencies.north]", "[agencies.ottawa]")
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, text), environ={})
    assert caught.value.key == "agencies.ottawa"


def test_a_bad_agency_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"CALLERCONNECT_AGENCIES": '{"No Spaces": {}}'})
    assert "agency id" in str(caught.value)


_KEYS = st.lists(st.sampled_from([KEY_A, KEY_B, "c" * 20, "d" * 30]), min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(default=_KEYS, north=_KEYS, south=_KEYS)
def test_start_up_succeeds_exactly_when_no_intake_key_is_shared(
    default: list[str], north: list[str], south: list[str]
) -> None:
    environ = {
        "CALLERCONNECT_INTAKE__API_KEYS": json.dumps(default),
        "CALLERCONNECT_AGENCIES__NORTH__INTAKE__API_KEYS": json.dumps(north),
        "CALLERCONNECT_AGENCIES__NORTH__SMS__SENDER": "+12045550100",
        "CALLERCONNECT_AGENCIES__SOUTH__INTAKE__API_KEYS": json.dumps(south),
        "CALLERCONNECT_AGENCIES__SOUTH__SMS__SENDER": "+15195550100",
    }
    shared = bool(set(default) & set(north) or set(default) & set(south) or set(north) & set(south))
    try:
        load_settings(environ=environ)
    except ConfigError as error:
        assert shared, str(error)
        assert "belongs to exactly one agency" in str(error)
    else:
        assert not shared


def test_serve_accepts_a_deployment_whose_only_keys_are_another_agency_s() -> None:
    loaded = load_settings(
        environ={
            "CALLERCONNECT_AGENCIES__NORTH__SMS__SENDER": "+12045550100",
            "CALLERCONNECT_AGENCIES__NORTH__INTAKE__API_KEYS": f'["{KEY_B}"]',
        }
    )
    assert [k.get_secret_value() for k in loaded.require_intake_keys()] == [KEY_B]
    with pytest.raises(ConfigError):
        load_settings(environ={}).require_intake_keys()


def test_for_agency_puts_the_agency_s_keys_at_the_top(tmp_path: Path) -> None:
    loaded = load_settings(_write(tmp_path, TWO_AGENCIES), environ={})
    north = loaded.for_agency("north")
    assert (north.agency_id, north.timezone, north.sms.sender) == (
        "north",
        "America/Winnipeg",
        "+12045550100",
    )
    assert north.agency_name.en == "North Police" and north.policy.priorities == [3]
    assert north.database_url == loaded.database_url
    assert loaded.for_agency(None) is loaded
    with pytest.raises(ConfigError) as caught:
        loaded.for_agency("south")
    assert "ottawa, north" in str(caught.value)
