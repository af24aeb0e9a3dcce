"""The labelled comments (``tests/fixtures/redaction/comments.jsonl``) and how redaction
is scored on them; used by ``tests/unit/test_redaction.py`` and ``bench/redaction_eval.py``.

Each line: ``{"id", "lang", "split": "tune" | "holdout", "text", "items": [{"kind",
"text"}]}``. An item's ``text`` is an exact substring; every occurrence of it in the
comment that stands as whole words is one labelled item.

Scoring is span-level:

- **recall** of a kind: the share of its labelled items whose every letter and digit lies
  inside some redacted span (of any kind: what matters is that it cannot be read);
- **precision** of a kind: the share of the spans redacted as that kind that overlap some
  labelled item (of any kind: a span over personal data is not over-redaction).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from callerconnect.domain.redaction import Kind, Span

COMMENTS = Path(__file__).resolve().parents[1] / "fixtures" / "redaction" / "comments.jsonl"


@dataclass(frozen=True)
class Item:
    kind: Kind
    start: int
    end: int


@dataclass(frozen=True)
class Comment:
    id: str
    lang: str
    split: str
    text: str
    items: tuple[Item, ...]


def load(path: Path = COMMENTS) -> list[Comment]:
    comments = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        items: list[Item] = []
        for labelled in row["items"]:
            pattern = r"(?<!\w)" + re.escape(labelled["text"]) + r"(?!\w)"
            matches = list(re.finditer(pattern, row["text"]))
            if not matches:
                raise ValueError(f"line {number}: {labelled['text']!r} not in the comment")
            items.extend(Item(Kind(labelled["kind"]), m.start(), m.end()) for m in matches)
        comments.append(Comment(row["id"], row["lang"], row["split"], row["text"], tuple(items)))
    return comments


@dataclass
class Tally:
    labelled: int = 0
    recalled: int = 0
    found: int = 0
    correct: int = 0
    missed: list[str] = field(default_factory=list)
    spurious: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.recalled / self.labelled if self.labelled else None

    @property
    def precision(self) -> float | None:
        return self.correct / self.found if self.found else None


def covered(item: Item, text: str, spans: Sequence[Span]) -> bool:
    return all(
        any(s.start <= i < s.end for s in spans)
        for i in range(item.start, item.end)
        if text[i].isalnum()
    )


def score(comments: Iterable[Comment], finder: Callable[[str], list[Span]]) -> dict[Kind, Tally]:
    tallies = {kind: Tally() for kind in Kind}
    for comment in comments:
        spans = finder(comment.text)
        for item in comment.items:
            tally = tallies[item.kind]
            tally.labelled += 1
            if covered(item, comment.text, spans):
                tally.recalled += 1
            else:
                tally.missed.append(f"{comment.id}: {comment.text[item.start : item.end]!r}")
        for span in spans:
            tally = tallies[span.kind]
            tally.found += 1
            if any(i.start < span.end and span.start < i.end for i in comment.items):
                tally.correct += 1
            else:
                tally.spurious.append(f"{comment.id}: {comment.text[span.start : span.end]!r}")
    return tallies
