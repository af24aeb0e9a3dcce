"""Structured logs: one event a line, ``action=sms_sent message_id=... to=+1613***0142``.

Phone numbers are masked where they are logged; as a second line of defence a filter
masks anything that still looks like a North American or E.164 number in a record.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

_PHONE = re.compile(r"(?<![\w*])(\+?1?[\s.(-]*)(\d{3})([\s.)-]*)(\d{3})([\s.-]*)(\d{4})(?!\d)")
# Any other international number: "+", then 8 to 15 digits with separators allowed.
_INTERNATIONAL = re.compile(r"(?<![\w*])\+\d[\d\s.()-]{6,22}\d(?!\d)")


def _mask_international(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if not 8 <= len(digits) <= 15:
        return match.group(0)
    return f"+***{digits[-4:]}"


def mask_phone_patterns(text: str) -> str:
    """Hide every phone-looking number in free text, keeping the area code (North
    American numbers) and the last four digits so an operator can still tell callers
    apart."""
    masked = _PHONE.sub(lambda m: f"{m.group(2)}***{m.group(6)}", text)
    return _INTERNATIONAL.sub(_mask_international, masked)


def _format_value(value: Any) -> str:
    text = str(value)
    if not text or any(ch.isspace() for ch in text) or '"' in text or "=" in text:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def log_event(
    logger: logging.Logger, action: str, level: int = logging.INFO, **fields: Any
) -> None:
    parts = [f"action={action}"]
    parts.extend(f"{key}={_format_value(value)}" for key, value in fields.items())
    logger.log(level, " ".join(parts))


class MaskPhones(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_phone_patterns(message)
        if masked != message:
            record.msg = masked
            record.args = None
        return True


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return mask_phone_patterns(line)  # also covers exception text


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        _Formatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    )
    handler.addFilter(MaskPhones())
    root = logging.getLogger("callerconnect")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
