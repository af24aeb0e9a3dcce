"""Every gettext catalogue compiles without a single warning: no entry with more plural
forms than its language has (French has two), nothing Babel would complain about."""

from __future__ import annotations

import io
import logging
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE = Path(__file__).resolve().parents[2] / "src" / "callerconnect" / "i18n" / "locale"
CATALOGUES = sorted(LOCALE.glob("*/LC_MESSAGES/*.po"))


def test_the_catalogues_are_found() -> None:
    assert {p.parent.parent.name for p in CATALOGUES} == {"en", "fr"}
    assert len(CATALOGUES) >= 4


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_catalogue_compiles_without_a_warning(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    printed = io.StringIO()
    language = path.parent.parent.name
    with caplog.at_level(logging.DEBUG), redirect_stdout(printed), redirect_stderr(printed):
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=language, abort_invalid=True)
        problems = [(message.id, errors) for message, errors in catalog.check() if errors]
        write_mo(io.BytesIO(), catalog, use_fuzzy=False)
    assert printed.getvalue() == ""  # Babel prints its "WARNING: Problem on line ..."
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert problems == []
    for message in catalog:
        if message.pluralizable and message.id:
            assert len(message.string) == catalog.num_plurals, message.id
