"""Configuration: contract defaults, file and environment layering, and errors that name
the key, its environment variable and a good value (contracts section 3)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from callerconnect.config import (
    ConfigError,
    QuietHours,
    Settings,
    format_duration,
    load_settings,
    parse_duration,
)

KEY_A = "cad-key-aaaaaaaaaaaaaaaa"
KEY_B = "cad-key-bbbbbbbbbbbbbbbb"
SECRET = "s3cret-value-that-must-never-leak"
TWILIO_OK = {
    "CALLERCONNECT_SMS__PROVIDER": "twilio",
    "CALLERCONNECT_SMS__TWILIO__ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef",
    "CALLERCONNECT_SMS__TWILIO__AUTH_TOKEN": SECRET,
}

WriteConfig = Callable[[str], Path]


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_settings() reads ./callerconnect.toml when present: never the developer's."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    def write(text: str) -> Path:
        path = tmp_path / "config" / "callerconnect.toml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


def config_error(
    environ: dict[str, str] | None = None, config_path: Path | None = None
) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path, environ=environ or {})
    return caught.value


# --- defaults ---------------------------------------------------------------------------

CONTRACT_DEFAULTS: list[tuple[str, Any]] = [
    ("database_url", "sqlite:///callerconnect.db"),
    ("secret_key", None),
    ("old_secret_keys", []),
    ("public_base_url", "http://127.0.0.1:8000"),
    ("timezone", "America/Toronto"),
    ("agency_id", "default"),
    ("agency_name.en", "Ottawa Police"),
    ("agency_name.fr", "Police d'Ottawa"),
    ("non_emergency_number", "613-236-1222"),
    ("log_level", "INFO"),
    ("intake.api_keys", []),
    ("intake.max_batch", 1000),
    ("intake.max_body_bytes", 5_000_000),
    ("sms.provider", "console"),
    ("sms.sender", "+13438036032"),
    ("sms.max_per_second", 1),
    ("sms.twilio.account_sid", None),
    ("sms.twilio.auth_token", None),
    ("sms.twilio.api_base", "https://api.twilio.com"),
    ("sms.twilio.timeout", timedelta(seconds=10)),
    ("sms.smpp.host", None),
    ("sms.smpp.port", 2775),
    ("sms.smpp.system_id", None),
    ("sms.smpp.password", None),
    ("sms.smpp.system_type", ""),
    ("sms.smpp.enquire_link_interval", timedelta(seconds=30)),
    ("policy.priorities", [3, 4]),
    ("policy.delay_notice_after", {3: timedelta(minutes=30), 4: timedelta(minutes=60)}),
    ("policy.survey_after_clear", timedelta(minutes=15)),
    ("policy.quiet_hours", QuietHours(time(21, 0), time(8, 0))),
    ("policy.survey_expires", timedelta(days=7)),
    ("policy.max_texts_per_phone_per_day", 8),
    ("policy.call_types_file", None),
    ("policy.confirmation_expires", timedelta(hours=12)),
    ("policy.delay_notice_expires", timedelta(hours=4)),
    ("policy.survey_invitation_expires", timedelta(days=2)),
    ("privacy.phone_retention", timedelta(days=2)),
    ("worker.lease", timedelta(seconds=60)),
    ("worker.poll_interval", timedelta(seconds=1)),
    ("worker.batch_size", 20),
    ("worker.max_attempts", 8),
    ("worker.retry_base", timedelta(seconds=2)),
    ("worker.retry_max", timedelta(minutes=30)),
]


@pytest.mark.parametrize(("key", "expected"), CONTRACT_DEFAULTS)
def test_defaults_match_the_contract(key: str, expected: Any) -> None:
    assert operator.attrgetter(key)(load_settings(environ={})) == expected


def test_direct_construction_gives_the_same_defaults_as_loading_nothing() -> None:
    assert Settings() == load_settings(environ={})


def test_bundled_call_types_file_is_used_by_default() -> None:
    path = load_settings(environ={}).policy.call_types_path
    assert path.name == "call-types.csv"
    assert path.read_text(encoding="utf-8").startswith("code,")


def test_settings_constructor_never_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALLERCONNECT_SMS__PROVIDER", "smpp")
    assert Settings().sms.provider == "console"
    assert load_settings(environ={}).sms.provider == "console"


def test_load_settings_reads_os_environ_when_no_mapping_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALLERCONNECT_LOG_LEVEL", "warning")
    assert load_settings().log_level == "WARNING"


# --- sources and precedence -------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "key", "expected"),
    [
        (TWILIO_OK, "sms.provider", "twilio"),
        (
            {"CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__3": "45m"},
            "policy.delay_notice_after",
            {3: timedelta(minutes=45), 4: timedelta(minutes=60)},
        ),
        (
            {"CALLERCONNECT_DATABASE_URL": "postgresql+psycopg://cc@db.internal/callerconnect"},
            "database_url",
            "postgresql+psycopg://cc@db.internal/callerconnect",
        ),
        (
            {"CALLERCONNECT_AGENCY_NAME__FR": "Service de police"},
            "agency_name.fr",
            "Service de police",
        ),
        ({"CALLERCONNECT_AGENCY_NAME__FR": "Service de police"}, "agency_name.en", "Ottawa Police"),
        ({"CALLERCONNECT_POLICY__PRIORITIES": "[3]"}, "policy.priorities", [3]),
        ({"CALLERCONNECT_POLICY__PRIORITIES": "[]"}, "policy.priorities", []),
        ({"CALLERCONNECT_SMS__MAX_PER_SECOND": "2.5"}, "sms.max_per_second", 2.5),
        (
            {"CALLERCONNECT_SMS__TWILIO__TIMEOUT": "1m30s"},
            "sms.twilio.timeout",
            timedelta(seconds=90),
        ),
        (
            {"CALLERCONNECT_POLICY__SURVEY_AFTER_CLEAR": "0s"},
            "policy.survey_after_clear",
            timedelta(0),
        ),
        ({"CALLERCONNECT_POLICY__QUIET_HOURS": "off"}, "policy.quiet_hours", None),
        ({"CALLERCONNECT_LOG_LEVEL": "debug"}, "log_level", "DEBUG"),
        (
            {"CALLERCONNECT_PUBLIC_BASE_URL": "https://cc.example.org/"},
            "public_base_url",
            "https://cc.example.org",
        ),
        (
            {"CALLERCONNECT_POLICY": '{"survey_expires": "3d"}'},
            "policy.survey_expires",
            timedelta(days=3),
        ),
        ({"CALLERCONNECT_POLICY": '{"survey_expires": "3d"}'}, "policy.priorities", [3, 4]),
        # An empty variable is "not configured", as deployment templates often write it.
        (
            {"CALLERCONNECT_POLICY__QUIET_HOURS": ""},
            "policy.quiet_hours",
            QuietHours(time(21), time(8)),
        ),
        # Names are matched case-insensitively, as pydantic-settings does.
        ({"callerconnect_sms__sender": "123456"}, "sms.sender", "123456"),
        # Other tools share the prefix: unknown top-level variables are not ours to reject.
        (
            {"CALLERCONNECT_TEST_PG_URL": "postgresql://x"},
            "database_url",
            "sqlite:///callerconnect.db",
        ),
    ],
)
def test_environment_variables_set_keys(environ: dict[str, str], key: str, expected: Any) -> None:
    assert operator.attrgetter(key)(load_settings(environ=environ)) == expected


def test_json_list_in_environment_sets_intake_keys() -> None:
    settings = load_settings(environ={"CALLERCONNECT_INTAKE__API_KEYS": f'["{KEY_A}", "{KEY_B}"]'})
    assert [key.get_secret_value() for key in settings.require_intake_keys()] == [KEY_A, KEY_B]


def test_environment_wins_over_file_which_wins_over_defaults(write_config: WriteConfig) -> None:
    path = write_config(
        """
        log_level = "WARNING"
        timezone = "America/Vancouver"

        [sms]
        sender = "+16135550100"
        """
    )
    settings = load_settings(path, environ={"CALLERCONNECT_SMS__SENDER": "+16135550199"})
    assert settings.sms.sender == "+16135550199"  # environment over file
    assert settings.log_level == "WARNING"  # file over default
    assert settings.timezone == "America/Vancouver"
    assert settings.sms.provider == "console"  # default kept beside a file value


@pytest.mark.parametrize(
    ("file_text", "environ", "expected"),
    [
        ("", {"CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__3": "30m"}, {3: 30, 4: 60}),
        ("", {"CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__3": "10m"}, {3: 10, 4: 60}),
        ('[policy.delay_notice_after]\n3 = "10m"', {}, {3: 10, 4: 60}),
        ('[policy.delay_notice_after]\n5 = "2h"', {}, {3: 30, 4: 60, 5: 120}),
        (
            '[policy.delay_notice_after]\n3 = "10m"',
            {"CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__4": "20m"},
            {3: 10, 4: 20},
        ),
        ("", {"CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER": '{"3": "5m"}'}, {3: 5, 4: 60}),
        ("", {"CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__4": "off"}, {3: 30}),
        ('[policy.delay_notice_after]\n3 = "OFF"', {}, {4: 60}),
    ],
)
def test_delay_thresholds_merge_entry_by_entry_and_off_removes_one(
    write_config: WriteConfig, file_text: str, environ: dict[str, str], expected: dict[int, int]
) -> None:
    settings = load_settings(write_config(file_text), environ=environ)
    assert settings.policy.delay_notice_after == {
        priority: timedelta(minutes=minutes) for priority, minutes in expected.items()
    }


def test_default_config_file_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "callerconnect.toml").write_text('log_level = "ERROR"\n', encoding="utf-8")
    assert load_settings(environ={}).log_level == "ERROR"


def test_toml_strings_are_durations(write_config: WriteConfig) -> None:
    path = write_config(
        """
        [worker]
        lease = "90s"
        retry_base = "1m"
        retry_max = "1h30m"
        """
    )
    worker = load_settings(path, environ={}).worker
    assert (worker.lease, worker.retry_base, worker.retry_max) == (
        timedelta(seconds=90),
        timedelta(minutes=1),
        timedelta(minutes=90),
    )


def test_file_accepts_the_contracts_flat_key_spelling(write_config: WriteConfig) -> None:
    path = write_config(
        """
        agency_name__fr = "Service de police"
        policy__delay_notice_after__3 = "20m"

        [policy]
        quiet_hours = "22:00-07:00"
        """
    )
    settings = load_settings(path, environ={})
    assert settings.agency_name.fr == "Service de police"
    assert settings.policy.delay_notice_after[3] == timedelta(minutes=20)
    assert settings.policy.quiet_hours == QuietHours(time(22), time(7))


def test_key_set_both_flat_and_in_a_table_is_an_error(write_config: WriteConfig) -> None:
    path = write_config('sms__provider = "console"\n\n[sms]\nprovider = "twilio"\n')
    error = config_error(config_path=path)
    assert error.key == "sms.provider"
    assert "set twice" in str(error)
    assert str(path) in str(error)


def test_call_types_file_must_exist_and_is_resolved(tmp_path: Path) -> None:
    (tmp_path / "types.csv").write_text("code\n", encoding="utf-8")
    policy = load_settings(environ={"CALLERCONNECT_POLICY__CALL_TYPES_FILE": "types.csv"}).policy
    assert policy.call_types_path == tmp_path / "types.csv"
    assert policy.call_types_path.is_absolute()


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "key", "hint"),
    [
        (
            {"CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__3": "5x"},
            "policy.delay_notice_after.3",
            "1h30m",
        ),
        (
            {"CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__3": "10"},
            "policy.delay_notice_after.3",
            "10m",
        ),
        (
            {"CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__3": "0s"},
            "policy.delay_notice_after.3",
            "longer than 0s",
        ),
        (
            {"CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__12": "5m"},
            "policy.delay_notice_after.12",
            "1 (most urgent) to 9",
        ),
        (
            {"CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__X": "5m"},
            "policy.delay_notice_after.x",
            "1 (most urgent) to 9",
        ),
        (
            {"CALLERCONNECT_POLICY__PRIORITIES": "[3, 0]"},
            "policy.priorities",
            "1 (most urgent) to 9",
        ),
        ({"CALLERCONNECT_POLICY__PRIORITIES": "3"}, "policy.priorities", "[3, 4]"),
        ({"CALLERCONNECT_POLICY__PRIORITIES": "[3,"}, "policy.priorities", "JSON"),
        ({"CALLERCONNECT_INTAKE__API_KEYS": KEY_A}, "intake.api_keys", '["k1", "k2"]'),
        ({"CALLERCONNECT_SMS__PROVIDER": "nexmo"}, "sms.provider", "'console', 'twilio' or 'smpp'"),
        ({"CALLERCONNECT_SMS__MAX_PER_SECOND": "0"}, "sms.max_per_second", "greater than 0"),
        ({"CALLERCONNECT_SMS__MAX_PER_SECOND": "-1"}, "sms.max_per_second", "for example 1"),
        ({"CALLERCONNECT_SMS__MAX_PER_SECOND": "inf"}, "sms.max_per_second", "for example 1"),
        ({"CALLERCONNECT_SMS__SENDER": "CallerConn"}, "sms.sender", "+13438036032"),
        ({"CALLERCONNECT_SMS__SMPP__PORT": "70000"}, "sms.smpp.port", "2775"),
        (
            {"CALLERCONNECT_SMS__TWILIO__API_BASE": "api.twilio.com"},
            "sms.twilio.api_base",
            "https://",
        ),
        ({"CALLERCONNECT_DATABASE_URL": "not a url"}, "database_url", "postgresql+psycopg://"),
        (
            {"CALLERCONNECT_DATABASE_URL": "postgres://cc@db/cc"},
            "database_url",
            "unknown database driver",
        ),
        ({"CALLERCONNECT_PUBLIC_BASE_URL": "ftp://cc.example.org"}, "public_base_url", "https://"),
        (
            {"CALLERCONNECT_PUBLIC_BASE_URL": "https://cc.example.org/?a=1"},
            "public_base_url",
            "https://",
        ),
        (
            {"CALLERCONNECT_PUBLIC_BASE_URL": "https://cc.example.org:99999"},
            "public_base_url",
            "https://",
        ),
        ({"CALLERCONNECT_TIMEZONE": "Mars/Olympus_Mons"}, "timezone", "America/Toronto"),
        ({"CALLERCONNECT_TIMEZONE": "../../etc/passwd"}, "timezone", "America/Toronto"),
        ({"CALLERCONNECT_POLICY__QUIET_HOURS": "21-08"}, "policy.quiet_hours", "21:00-08:00"),
        ({"CALLERCONNECT_POLICY__QUIET_HOURS": "21:00-21:00"}, "policy.quiet_hours", "off"),
        (
            {"CALLERCONNECT_POLICY__MAX_TEXTS_PER_PHONE_PER_DAY": "0"},
            "policy.max_texts_per_phone_per_day",
            "for example 8",
        ),
        (
            {"CALLERCONNECT_POLICY__CALL_TYPES_FILE": "missing.csv"},
            "policy.call_types_file",
            "bundled",
        ),
        ({"CALLERCONNECT_PRIVACY__PHONE_RETENTION": "-1d"}, "privacy.phone_retention", "negative"),
        ({"CALLERCONNECT_WORKER__RETRY_MAX": "1s"}, "worker.retry_max", "worker.retry_base (2s)"),
        ({"CALLERCONNECT_LOG_LEVEL": "loud"}, "log_level", "WARNING"),
        ({"CALLERCONNECT_AGENCY_ID": "Ottawa Police"}, "agency_id", "ottawa-police"),
        ({"CALLERCONNECT_AGENCY_NAME": "Ottawa"}, "agency_name", "JSON"),
        (
            {"CALLERCONNECT_SMS__PROVDER": "twilio"},
            "sms.provder",
            "did you mean CALLERCONNECT_SMS__PROVIDER?",
        ),
    ],
)
def test_bad_value_names_key_env_var_and_a_good_value(
    environ: dict[str, str], key: str, hint: str
) -> None:
    error = config_error(environ)
    env_var = "CALLERCONNECT_" + key.upper().replace(".", "__")
    assert (error.key, error.env_var) == (key, env_var)
    assert key in str(error)
    assert env_var in str(error)
    assert hint in str(error)


@pytest.mark.parametrize(
    ("file_text", "key", "hint"),
    [
        ('[policy]\nsurvey_expires = "a week"', "policy.survey_expires", "7d"),
        ("[policy]\nsurvey_expires = true", "policy.survey_expires", "7d"),
        ("[policy]\nquiet_hours = 2100", "policy.quiet_hours", "21:00-08:00"),
        ("[policy]\npriorities = 3", "policy.priorities", "[3, 4]"),
        ('databse_url = "sqlite://"', "databse_url", "did you mean database_url?"),
        ('[policy]\nquiet_hour = "off"', "policy.quiet_hour", "did you mean policy.quiet_hours?"),
        ('[sms]\ntwilio = "yes"', "sms.twilio", "valid dictionary"),
        ("[intake]\nmax_batch = 0", "intake.max_batch", "for example 1000"),
        ('[agency_name]\nen = " "', "agency_name.en", "at least 1 character"),
    ],
)
def test_bad_value_in_file_names_key_env_var_and_file(
    write_config: WriteConfig, file_text: str, key: str, hint: str
) -> None:
    path = write_config(file_text)
    error = config_error(config_path=path)
    assert error.key == key
    message = str(error)
    assert key in message
    assert "CALLERCONNECT_" + key.upper().replace(".", "__") in message
    assert str(path) in message
    assert hint in message


@pytest.mark.parametrize(
    ("variable", "key", "default"),
    [
        ("CALLERCONNECT_WORKER__LEASE", "worker.lease", timedelta(seconds=60)),
        ("CALLERCONNECT_AGENCY_NAME__EN", "agency_name.en", "Ottawa Police"),
        ("CALLERCONNECT_SECRET_KEY", "secret_key", None),
    ],
)
def test_empty_environment_variable_counts_as_unset(variable: str, key: str, default: Any) -> None:
    assert operator.attrgetter(key)(load_settings(environ={variable: ""})) == default


def test_every_problem_is_listed_not_only_the_first() -> None:
    error = config_error(
        {"CALLERCONNECT_SMS__SMPP__PORT": "0", "CALLERCONNECT_WORKER__LEASE": "soon"}
    )
    assert error.keys == ("sms.smpp.port", "worker.lease")
    assert "2 settings are invalid" in str(error)
    assert "CALLERCONNECT_WORKER__LEASE" in str(error)


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        (
            {"CALLERCONNECT_SMS__PROVIDER": "twilio"},
            ("sms.twilio.account_sid", "sms.twilio.auth_token"),
        ),
        (
            {**TWILIO_OK, "CALLERCONNECT_SMS__TWILIO__ACCOUNT_SID": "   "},
            ("sms.twilio.account_sid",),
        ),
        (
            {"CALLERCONNECT_SMS__PROVIDER": "smpp", "CALLERCONNECT_SMS__SMPP__HOST": "smsc.local"},
            ("sms.smpp.system_id", "sms.smpp.password"),
        ),
        (
            {"CALLERCONNECT_SMS__PROVIDER": "smpp"},
            ("sms.smpp.host", "sms.smpp.system_id", "sms.smpp.password"),
        ),
    ],
)
def test_provider_credentials_are_required(
    environ: dict[str, str], missing: tuple[str, ...]
) -> None:
    error = config_error(environ)
    assert error.key == missing[0]
    assert error.keys == missing
    for key in missing:
        assert "CALLERCONNECT_" + key.upper().replace(".", "__") in str(error)
    assert "required when sms.provider is" in str(error)


def test_provider_with_its_credentials_loads() -> None:
    smpp = {
        "CALLERCONNECT_SMS__PROVIDER": "smpp",
        "CALLERCONNECT_SMS__SMPP__HOST": "smsc.local",
        "CALLERCONNECT_SMS__SMPP__SYSTEM_ID": "callerconnect",
        "CALLERCONNECT_SMS__SMPP__PASSWORD": "pw123456",
    }
    assert load_settings(environ=smpp).sms.smpp.password is not None
    assert load_settings(environ=TWILIO_OK).sms.twilio.auth_token is not None


def test_missing_explicit_config_file_is_an_error_naming_it(tmp_path: Path) -> None:
    error = config_error(config_path=tmp_path / "nope.toml")
    assert error.key is None
    assert "nope.toml" in str(error)


def test_directory_as_config_file_is_an_error(tmp_path: Path) -> None:
    assert str(tmp_path) in str(config_error(config_path=tmp_path))


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[sms\nprovider = 'x'", "line 1"),
        ('log_level = "INFO"\nlog_level = "DEBUG"\n', "line 2"),
        ("log_level = ", "end of document"),
    ],
)
def test_malformed_toml_is_an_error_naming_file_and_place(
    write_config: WriteConfig, text: str, where: str
) -> None:
    path = write_config(text)
    error = config_error(config_path=path)
    assert error.key is None
    assert str(path) in str(error)
    assert "not valid TOML" in str(error)
    assert where in str(error)


def test_config_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('agency_name__fr = "Sûreté"\n'.encode("latin-1"))
    assert "not valid TOML" in str(config_error(config_path=path))


# --- secrets ----------------------------------------------------------------------------


def test_secrets_never_appear_in_repr_or_str() -> None:
    settings = load_settings(
        environ={
            **TWILIO_OK,
            "CALLERCONNECT_SECRET_KEY": SECRET + "-1",
            "CALLERCONNECT_OLD_SECRET_KEYS": f'["{SECRET}-0"]',
            "CALLERCONNECT_INTAKE__API_KEYS": f'["{SECRET}-2"]',
            "CALLERCONNECT_DATABASE_URL": f"postgresql+psycopg://cc:{SECRET}@db/cc",
        }
    )
    for text in (repr(settings), str(settings), repr(settings.sms)):
        assert SECRET not in text
    assert "postgresql+psycopg://cc:***@db/cc" in repr(settings)
    assert settings.require_secret_key().get_secret_value() == SECRET + "-1"
    assert settings.database_url == f"postgresql+psycopg://cc:{SECRET}@db/cc"


@pytest.mark.parametrize(
    "environ",
    [
        {"CALLERCONNECT_INTAKE__API_KEYS": f'["{SECRET}", " "]'},
        {"CALLERCONNECT_INTAKE__API_KEYS": f'["{SECRET}",'},
        {"CALLERCONNECT_SMS__TWILIO__AUTH_TOKN": SECRET},
        {"CALLERCONNECT_SMS__TWILIO": f'{{"auth_token": "{SECRET}", "x": 1}}'},
        {"CALLERCONNECT_DATABASE_URL": f"postgres://cc:{SECRET}@db/cc"},
        {"CALLERCONNECT_DATABASE_URL": f"{SECRET}"},
    ],
)
def test_errors_never_echo_secret_values(environ: dict[str, str]) -> None:
    message = str(config_error(environ))
    assert SECRET not in message
    assert SECRET[:5] not in message


def test_secret_of_wrong_type_in_file_is_not_echoed(write_config: WriteConfig) -> None:
    path = write_config("secret_key = 123456789012345678901234567890\n")
    error = config_error(config_path=path)
    assert error.key == "secret_key"
    assert "123456789" not in str(error)


SECRET_SETTINGS = {
    "secret_key": ("CALLERCONNECT_SECRET_KEY", lambda value: value),
    "old_secret_keys": ("CALLERCONNECT_OLD_SECRET_KEYS", lambda value: f'["{SECRET}", "{value}"]'),
    "intake.api_keys": ("CALLERCONNECT_INTAKE__API_KEYS", lambda value: f'["{value}"]'),
}


@pytest.mark.parametrize("key", list(SECRET_SETTINGS))
@given(
    value=st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"\\'),
        min_size=1,
        max_size=15,
    )
)
def test_a_secret_shorter_than_16_characters_is_refused_by_name_never_by_value(
    key: str, value: str
) -> None:
    variable, written = SECRET_SETTINGS[key]
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={variable: written(value)})
    message = str(caught.value)
    assert (caught.value.key, caught.value.env_var) == (key, variable)
    assert variable in message and "shorter than 16 characters" in message
    assert "secrets.token_urlsafe(32)" in message
    assert f"'{value}'" not in message and f'"{value}"' not in message


@pytest.mark.parametrize("key", list(SECRET_SETTINGS))
def test_a_secret_of_16_characters_is_accepted(key: str) -> None:
    variable, written = SECRET_SETTINGS[key]
    load_settings(environ={variable: written("x" * 16)})


def test_require_secret_key_explains_how_to_make_one() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}).require_secret_key()
    message = str(caught.value)
    assert caught.value.key == "secret_key"
    assert "CALLERCONNECT_SECRET_KEY" in message
    assert "serve/worker refuse to start" in message
    assert "python -c 'import secrets; print(secrets.token_urlsafe(32))'" in message


def test_require_intake_keys_refuses_an_empty_list() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}).require_intake_keys()
    assert caught.value.key == "intake.api_keys"
    assert "CALLERCONNECT_INTAKE__API_KEYS" in str(caught.value)


# --- the settings object ----------------------------------------------------------------


def test_settings_are_frozen() -> None:
    settings = load_settings(environ={})
    with pytest.raises(ValidationError):
        settings.log_level = "DEBUG"
    with pytest.raises(ValidationError):
        settings.policy.priorities = [1]


def test_tz_is_the_configured_zone() -> None:
    settings = load_settings(environ={"CALLERCONNECT_TIMEZONE": "America/Halifax"})
    assert settings.tz.key == "America/Halifax"


def test_json_dump_reads_back_to_equal_settings() -> None:
    settings = load_settings(
        environ={
            "CALLERCONNECT_POLICY__QUIET_HOURS": "off",
            "CALLERCONNECT_WORKER__RETRY_MAX": "1h30m",
        }
    )
    dumped = settings.model_dump(mode="json")
    assert dumped["worker"]["retry_max"] == "1h30m"
    assert dumped["policy"]["delay_notice_after"] == {"3": "30m", "4": "1h"}
    assert dumped["policy"]["quiet_hours"] == "off"
    assert Settings.model_validate(dumped) == settings


# --- quiet hours ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("21:00-08:00", time(21), time(8)),
        ("9:30-17:45", time(9, 30), time(17, 45)),
        (" 23:59-00:00 ", time(23, 59), time(0)),
    ],
)
def test_quiet_hours_parse(text: str, start: time, end: time) -> None:
    assert QuietHours.parse(text) == QuietHours(start, end)


@pytest.mark.parametrize(
    "text", ["", "21:00", "21:00-", "24:00-08:00", "21:60-08:00", "9pm-8am", "21:00-08:00-09:00"]
)
def test_quiet_hours_reject_malformed_windows(text: str) -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        QuietHours.parse(text)


@pytest.mark.parametrize("text", ["off", "OFF", " Off "])
def test_quiet_hours_off_disables_them(text: str) -> None:
    assert (
        load_settings(environ={"CALLERCONNECT_POLICY__QUIET_HOURS": text}).policy.quiet_hours
        is None
    )


def test_quiet_hours_given_as_an_object_are_checked_like_written_ones() -> None:
    with pytest.raises(ValidationError, match="start and end at the same time"):
        Settings(policy={"quiet_hours": QuietHours(time(9), time(9))})
    window = QuietHours(time(22), time(6))
    assert Settings(policy={"quiet_hours": window}).policy.quiet_hours == window


def test_quiet_hours_str_is_the_written_form() -> None:
    assert str(QuietHours(time(21), time(8, 5))) == "21:00-08:05"


# --- durations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1h30m", timedelta(minutes=90)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("0s", timedelta(0)),
        (" 45m ", timedelta(minutes=45)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a duration"),
        ("10", "has no unit; write 10s, 10m, 10h or 10d"),
        ("5x", "not a duration"),
        ("-5m", "cannot be negative"),
        ("1.5h", "not a duration"),
        ("30m1h", "in that order"),
        ("1h 30m", "not a duration"),
        ("15M", "not a duration"),
        ("1m1m", "not a duration"),
        ("9" * 20 + "d", "too long"),
    ],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(minutes=60), "1h"),
        (timedelta(days=2, seconds=1), "2d1s"),
        (timedelta(seconds=1, microseconds=999_999), "1s"),
    ],
)
def test_format_duration(duration: timedelta, text: str) -> None:
    assert format_duration(duration) == text


def test_format_duration_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@given(st.timedeltas(min_value=timedelta(0)).map(lambda d: timedelta(d.days, d.seconds)))
def test_format_then_parse_round_trips(duration: timedelta) -> None:
    assert parse_duration(format_duration(duration)) == duration


@pytest.mark.parametrize(("lease", "timeout"), [("10s", "10s"), ("5s", "10s"), ("30s", "1m")])
def test_a_lease_that_ends_before_a_twilio_request_can_is_refused(lease: str, timeout: str) -> None:
    error = config_error(
        {
            "CALLERCONNECT_SMS__PROVIDER": "twilio",
            "CALLERCONNECT_SMS__TWILIO__ACCOUNT_SID": "AC0123",
            "CALLERCONNECT_SMS__TWILIO__AUTH_TOKEN": "token",
            "CALLERCONNECT_SMS__TWILIO__TIMEOUT": timeout,
            "CALLERCONNECT_WORKER__LEASE": lease,
        }
    )
    assert error.key == "worker.lease"
    assert "CALLERCONNECT_WORKER__LEASE" in str(error)
    assert "sms.twilio.timeout" in str(error)


def test_a_lease_longer_than_the_twilio_timeout_is_accepted() -> None:
    settings = load_settings(
        environ={
            "CALLERCONNECT_SMS__PROVIDER": "twilio",
            "CALLERCONNECT_SMS__TWILIO__ACCOUNT_SID": "AC0123",
            "CALLERCONNECT_SMS__TWILIO__AUTH_TOKEN": "token",
            "CALLERCONNECT_SMS__TWILIO__TIMEOUT": "10s",
            "CALLERCONNECT_WORKER__LEASE": "11s",
        }
    )
    assert settings.worker.lease == timedelta(seconds=11)


@pytest.mark.parametrize(("written", "status"), [("0x08", 8), ("88", 88), ("0X58", 0x58)])
def test_smpp_retry_status_is_read_in_hex_or_decimal(written: str, status: int) -> None:
    settings = load_settings(environ={"CALLERCONNECT_SMS__SMPP__RETRY_STATUS": written})
    assert settings.sms.smpp.retry_status == status


@pytest.mark.parametrize("written", ["0", "0x0", "ok", "-1", "0x100000000"])
def test_smpp_retry_status_that_would_acknowledge_or_is_not_a_status_is_refused(
    written: str,
) -> None:
    error = config_error({"CALLERCONNECT_SMS__SMPP__RETRY_STATUS": written})
    assert error.key == "sms.smpp.retry_status"
    assert "CALLERCONNECT_SMS__SMPP__RETRY_STATUS" in str(error)


def test_smpp_retry_status_in_toml_as_a_hex_integer(tmp_path: Path) -> None:
    path = tmp_path / "callerconnect.toml"
    path.write_text("[sms.smpp]\nretry_status = 0x08\n")
    assert load_settings(path, environ={}).sms.smpp.retry_status == 8


def test_a_case_number_pattern_that_does_not_compile_stops_start_up_naming_the_key() -> None:
    error = config_error({"CALLERCONNECT_INTAKE__CASE_NUMBER_PATTERN": "OPS([0-9]+"})

    assert error.key == "intake.case_number_pattern"
    assert "not a regular expression" in str(error)


def test_serve_connection_limits_are_settings() -> None:
    settings = load_settings(
        None,
        environ={
            "CALLERCONNECT_SERVE__HEADER_TIMEOUT": "3s",
            "CALLERCONNECT_SERVE__MAX_CONNECTIONS": "200",
        },
    )

    assert settings.serve.header_timeout.total_seconds() == 3
    assert settings.serve.keep_alive_timeout.total_seconds() == 5
    assert settings.serve.max_connections == 200
    assert config_error({"CALLERCONNECT_SERVE__MAX_CONNECTIONS": "0"}).key == (
        "serve.max_connections"
    )
