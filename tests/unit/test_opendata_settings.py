"""The opendata settings: defaults, and bad values refused with the key named."""

from __future__ import annotations

import pytest

from callerconnect.config import ConfigError, load_settings


def test_defaults_are_eleven_responses_no_schedule_and_the_canadian_licence() -> None:
    opendata = load_settings(environ={}).opendata
    assert opendata.min_responses == 11
    assert opendata.schedule == "off"
    assert opendata.license_url == "https://open.canada.ca/en/open-government-licence-canada"
    assert opendata.districts_geojson is None


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("CALLERCONNECT_OPENDATA__MIN_RESPONSES", "1", "opendata.min_responses"),
        ("CALLERCONNECT_OPENDATA__SCHEDULE", "weekly", "opendata.schedule"),
        ("CALLERCONNECT_OPENDATA__LICENSE_URL", "not a url", "opendata.license_url"),
        ("CALLERCONNECT_OPENDATA__CONTACT_EMAIL", "nobody", "opendata.contact_email"),
        (
            "CALLERCONNECT_OPENDATA__DISTRICTS_GEOJSON",
            "/nowhere.geojson",
            "opendata.districts_geojson",
        ),
    ],
)
def test_bad_values_name_their_key(variable: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={variable: value})
    assert key in str(refused.value)
