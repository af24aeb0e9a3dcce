"""Every reason code the code base can record has plain words in English and French."""

from __future__ import annotations

import csv
import re
from importlib import resources
from pathlib import Path

import pytest

from callerconnect.i18n.reasons import reason_label

SOURCE = Path(__file__).resolve().parents[2] / "src" / "callerconnect"
CODE = re.compile(r'"((?:ineligible|suppressed|held):[a-z_]+)"')


def codes_in_source() -> set[str]:
    found = {"eligible"}
    for path in SOURCE.rglob("*.py"):
        if path.name != "reasons.py":
            found.update(CODE.findall(path.read_text(encoding="utf-8")))
    with (resources.files("callerconnect.data") / "call-types.csv").open(encoding="utf-8") as f:
        found.update(
            f"excluded:{row['category']}" for row in csv.DictReader(f) if row["textable"] == "no"
        )
    return found


ALL_CODES = sorted(codes_in_source())


def test_the_scan_finds_the_codes_of_the_policy() -> None:
    assert {"ineligible:priority", "suppressed:stale", "excluded:sexual_assault"} <= set(ALL_CODES)


@pytest.mark.parametrize("code", ALL_CODES)
def test_code_has_words_in_both_languages(code: str) -> None:
    english, french = reason_label(code, "en"), reason_label(code, "fr")
    assert english != code and french != code
    assert english != french


def test_the_examples_of_the_brief() -> None:
    assert reason_label("ineligible:priority") == "priority not texted"
    assert reason_label("ineligible:priority", "fr") == "priorité non visée"
    assert reason_label("excluded:alarm", "fr") == "type d'appel exclu : alarme"


def test_an_unknown_code_is_shown_as_it_is() -> None:
    assert reason_label("ineligible:something_new") == "ineligible:something_new"
