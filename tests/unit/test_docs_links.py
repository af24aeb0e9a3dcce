"""The docs point at things that exist: every relative link in README.md and docs/*.md
names a file or folder in the repository, and the example feeds the docs name are there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_CODE = re.compile(r"`[^`\n]*`")  # a code span is text, not a link


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    for target in _LINK.findall(_CODE.sub("", page.read_text(encoding="utf-8"))):
        if "://" in target or target.startswith(("#", "mailto:")):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{page.name} links to missing {target}"


def test_the_examples_the_docs_name_are_in_the_repository() -> None:
    named = set()
    for page in PAGES:
        named |= set(re.findall(r"examples/([\w.-]+\.jsonl)", page.read_text(encoding="utf-8")))
    assert "awaiting-unit-en.jsonl" in named
    for name in named:
        assert (ROOT / "examples" / name).is_file(), name
