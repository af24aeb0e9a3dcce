"""Recall and precision of comment redaction, per kind, on the labelled comments.

    .venv/bin/python bench/redaction_eval.py            # tuned and held-out parts
    .venv/bin/python bench/redaction_eval.py --misses   # also list what was missed / over-redacted
    .venv/bin/python bench/redaction_eval.py --worst    # also time hostile 1,000-character input

Scoring (span-level) is described in tests/unit/redaction_scoring.py.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.redaction_scoring import load, score
from tests.unit.test_redaction import HOSTILE

from callerconnect.domain.redaction import Kind, find, redact


def _percent(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def main() -> None:
    show_misses = "--misses" in sys.argv
    comments = load()
    splits = list(dict.fromkeys(c.split for c in comments))
    for split in [*splits, None]:
        part = [c for c in comments if split is None or c.split == split]
        if not part:
            continue
        began = time.perf_counter()
        tallies = score(part, find)
        elapsed = time.perf_counter() - began
        langs = {lang: sum(c.lang == lang for c in part) for lang in ("en", "fr")}
        clean = sum(not c.items for c in part)
        print(
            f"\n== {split or 'all'}: {len(part)} comments (en {langs['en']}, fr {langs['fr']}; "
            f"{clean} without personal data), {1000 * elapsed / len(part):.2f} ms a comment"
        )
        print(f"{'kind':<12} {'labelled':>8} {'recall':>8} {'found':>6} {'precision':>9}")
        for kind in Kind:
            t = tallies[kind]
            print(
                f"{kind.value:<12} {t.labelled:>8} {_percent(t.recall):>8} {t.found:>6} "
                f"{_percent(t.precision):>9}"
            )
        if show_misses:
            for kind in Kind:
                for miss in tallies[kind].missed:
                    print(f"  missed {kind.value}: {miss}")
                for extra in tallies[kind].spurious:
                    print(f"  over-redacted as {kind.value}: {extra}")


def worst() -> None:
    print("\n== hostile input (the longest a comment may be)")
    for name, text in HOSTILE.items():
        began = time.perf_counter()
        redact(text)
        print(f"{name:<22} {len(text):>5} chars {1000 * (time.perf_counter() - began):7.1f} ms")


if __name__ == "__main__":
    main()
    if "--worst" in sys.argv:
        worst()
