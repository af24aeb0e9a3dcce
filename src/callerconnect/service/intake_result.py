"""The intake's answer for one event (contract section 1: accepted, duplicate or
rejected, with the field and the rule that refused it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["accepted", "duplicate", "rejected"]


@dataclass(frozen=True)
class IntakeResult:
    event_id: str | None
    status: Status
    error: str | None = None
    field: str | None = None
    rule: str | None = None
    dead_letter_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"event_id": self.event_id, "status": self.status}
        if self.error is not None:
            answer["error"] = self.error
            answer["field"] = self.field
            answer["rule"] = self.rule
        return answer
