"""The development SMS provider: prints each text instead of sending it.

Used by ``callerconnect demo`` and local runs. It behaves like a real provider towards
the dispatcher (returns an id, is safe to call from several threads) and, like every
log line in callerconnect, shows the phone number only masked.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections import deque
from typing import TextIO

from callerconnect.adapters.sms.base import OutgoingSms, SendError, SendResult
from callerconnect.adapters.sms.phone import mask_phone
from callerconnect.domain.sms_encoding import encoding_of, segment_count

__all__ = ["ConsoleProvider"]


class ConsoleProvider:
    """Print texts to ``out`` (standard output by default) and remember the latest.

    ``sent`` lets the demo and end-to-end tests see what would have gone out. It keeps
    only the last ``keep`` texts: console is the default provider, and a long-running
    process must not pile up phone numbers in memory.
    """

    name = "console"

    def __init__(self, out: TextIO | None = None, *, keep: int = 10_000) -> None:
        # Resolved at call time, not as a default argument, so pytest's capture (which
        # swaps sys.stdout) and a demo that redirects output both see the texts.
        self._out = out
        self._lock = threading.Lock()
        self._sent: deque[tuple[str, OutgoingSms]] = deque(maxlen=keep)

    @property
    def sent(self) -> list[tuple[str, OutgoingSms]]:
        """The latest texts printed, as ``(provider_message_id, message)``, oldest first."""
        with self._lock:
            return list(self._sent)

    def send(self, message: OutgoingSms) -> SendResult:
        message_id = f"console-{uuid.uuid4().hex}"
        segments = segment_count(message.body)
        plural = "" if segments == 1 else "s"
        header = (
            f"[sms] {message_id} to={mask_phone(message.to)} ref={message.reference} "
            f"{encoding_of(message.body)}, {len(message.body)} chars, {segments} segment{plural}"
        )
        if message.validity_seconds is not None:
            header += f", valid {message.validity_seconds}s"
        lines = [header, *(f"  | {line}" for line in message.body.splitlines() or [""])]
        text = "\n".join(lines) + "\n"
        # One lock around the whole block so texts from several worker threads never
        # interleave line by line.
        with self._lock:
            out = self._out if self._out is not None else sys.stdout
            try:
                out.write(text)
                out.flush()
            except (OSError, ValueError) as exc:  # closed or broken stream
                detail = f"console output failed: {type(exc).__name__}"
                raise SendError("unavailable", retryable=True, detail=detail) from None
            self._sent.append((message_id, message))
        return SendResult(provider_message_id=message_id, status="sent")
