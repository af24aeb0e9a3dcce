"""A setting name that matches nothing, or a duration without its unit, stops start-up
with the real name and the way to write it; nothing falls back to a default silently."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callerconnect.config import ConfigError, Settings, load_settings
from callerconnect.config.keys import (
    ANY_ENTRY,
    ANY_REST,
    RESERVED_ENV_PREFIXES,
    env_name,
    is_known,
    setting_paths,
)

PATHS = setting_paths(Settings)


def refused(environ: dict[str, str], config: Path | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ=environ)
    return caught.value


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("CALLERCONNECT_SMS_PROVIDER", "CALLERCONNECT_SMS__PROVIDER"),
        ("CALLERCONNECT_SMS__PROVDER", "CALLERCONNECT_SMS__PROVIDER"),
        ("CALLERCONNECT_PUBLIC_BASEURL", "CALLERCONNECT_PUBLIC_BASE_URL"),
        ("CALLERCONNECT_SECRETKEY", "CALLERCONNECT_SECRET_KEY"),
        ("CALLERCONNECT_POLICY_SURVEY_AFTER_CLEAR", "CALLERCONNECT_POLICY__SURVEY_AFTER_CLEAR"),
        ("CALLERCONNECT_SMS__TWILIO_AUTH_TOKEN", "CALLERCONNECT_SMS__TWILIO__AUTH_TOKEN"),
    ],
)
def test_a_misspelt_variable_stops_start_up_with_the_closest_real_name(
    variable: str, suggestion: str
) -> None:
    error = refused({variable: "twilio"})
    assert f"did you mean {suggestion}?" in str(error)
    assert variable in str(error)


def test_a_single_underscore_is_explained() -> None:
    error = refused({"CALLERCONNECT_SMS_PROVIDER": "twilio"})
    assert "double underscore" in str(error)


def test_the_value_of_a_misspelt_secret_is_not_echoed() -> None:
    error = refused({"CALLERCONNECT_SMS__TWILIO__AUTH_TOKN": "s3cr3t-value-0123"})
    assert "s3cr3t" not in str(error)


def test_every_misspelt_variable_is_listed_at_once() -> None:
    error = refused({"CALLERCONNECT_SMS_PROVIDER": "twilio", "CALLERCONNECT_LOGLEVEL": "DEBUG"})
    assert "CALLERCONNECT_SMS_PROVIDER" in str(error) and "CALLERCONNECT_LOGLEVEL" in str(error)
    assert len(error.keys) == 2


def test_a_misspelt_file_key_names_the_real_one(tmp_path: Path) -> None:
    path = tmp_path / "callerconnect.toml"
    path.write_text('[polcy]\nsurvey_after_clear = "15m"\n', encoding="utf-8")
    error = refused({}, path)
    assert "did you mean policy.survey_after_clear?" in str(error)
    assert str(path) in str(error)


def test_every_setting_is_known_by_its_variable_name() -> None:
    # Driven by the model: a setting added later is covered without an edit here.
    for path in PATHS:
        variable = env_name(path)
        concrete = tuple(variable[len("CALLERCONNECT_") :].lower().split("__"))
        assert is_known(concrete, PATHS), variable


def test_agencies_tables_and_agency_id_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "callerconnect.toml"
    path.write_text(
        'agency_id = "ottawa"\n[agencies.east]\nagency_name__en = "East"\n'
        'sms__sender = "+16135550111"\n',
        encoding="utf-8",
    )
    settings = load_settings(path, environ={"CALLERCONNECT_AGENCIES__WEST__SMS__SENDER": "12345"})
    assert settings.agency_id == "ottawa"
    assert set(settings.agencies) == {"east", "west"}


def test_no_setting_hides_behind_a_reserved_prefix() -> None:
    for path in PATHS:
        assert not env_name(path).startswith(RESERVED_ENV_PREFIXES), path


_NAME = st.text(alphabet="ABCDEGHIKLMNOPRSTUVWXY_", min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(_NAME)
def test_any_variable_under_the_prefix_is_either_a_setting_or_refused(suffix: str) -> None:
    variable = "CALLERCONNECT_" + suffix
    parts = tuple(suffix.lower().split("__"))
    known = is_known(parts, PATHS)
    try:
        load_settings(environ={variable: "x"})
    except ConfigError as error:
        # A known name can still carry a bad value; an unknown one is always named.
        if not known:
            assert "matches no setting" in str(error)
    else:
        assert known or variable.upper().startswith(RESERVED_ENV_PREFIXES)


def test_open_parts_only_where_the_model_has_mappings() -> None:
    open_paths = {p for p in PATHS if ANY_ENTRY in p or ANY_REST in p}
    assert ("policy", "delay_notice_after", ANY_ENTRY) in open_paths
    assert ("agencies", ANY_ENTRY, "policy", "delay_notice_after", ANY_ENTRY) in open_paths
    # Inside an agency's table only the agency-level keys: never the deployment's own.
    assert all(p[0] == "policy" or p[:2] == ("agencies", ANY_ENTRY) for p in open_paths)
    assert not any(ANY_REST in p for p in PATHS)
    assert ("agencies", ANY_ENTRY, "database_url") not in PATHS
    assert ("agencies", ANY_ENTRY, "sms", "sender") in PATHS


# --- durations need a unit --------------------------------------------------------------


def test_a_bare_toml_number_for_a_duration_is_refused_with_the_way_to_write_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "callerconnect.toml"
    path.write_text("[policy]\nsurvey_after_clear = 15\n", encoding="utf-8")
    error = refused({}, path)
    assert error.key == "policy.survey_after_clear"
    assert '"15m"' in str(error)


def test_a_bare_number_in_the_environment_is_refused_too() -> None:
    error = refused({"CALLERCONNECT_POLICY__SURVEY_AFTER_CLEAR": "15"})
    assert error.key == "policy.survey_after_clear"
    assert "15m" in str(error)


def test_durations_with_a_unit_still_read(tmp_path: Path) -> None:
    path = tmp_path / "callerconnect.toml"
    path.write_text('[policy]\nsurvey_after_clear = "15m"\n', encoding="utf-8")
    assert load_settings(path, environ={}).policy.survey_after_clear == timedelta(minutes=15)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=10**6))
def test_no_bare_number_is_ever_taken_for_a_duration(number: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "callerconnect.toml"
        path.write_text(f"[worker]\nlease = {number}\n", encoding="utf-8")
        error = refused({}, path)
    assert error.key == "worker.lease"
    assert f'"{number}m"' in str(error)
