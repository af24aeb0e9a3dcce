"""Structured logs: one event a line, ``action=sms_sent message_id=... to=+1613***0142``.

Phone numbers are masked where they are logged; as a second line of defence a filter
masks anything that still looks like a North American or E.164 number in a record.

Much of what is logged comes from outsiders (a request's path, a CAD's codes, a
caller's text in an exception's message). Every control character, invisible format
character and line or paragraph separator in a record is written as an escape
(:func:`escape_controls`): a raw ESC would drive the terminal of whoever runs ``tail``, a
``\r``, ``\x85`` or ``\u2028`` would start what looks like a new event for a reader that
splits on line breaks. An event is one line; a traceback keeps the line breaks that
separate its frames, and the exception's message in it is escaped like an event.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import traceback
import unicodedata
from types import TracebackType
from typing import Any

# Separators people and systems put between digit groups: spaces of every kind (\s is
# Unicode-aware), dots, slashes, underscores and every dash (hyphen, non-breaking hyphen,
# en and em dashes, minus sign). \d matches every script's digits (full-width too), as
# the phone parser that accepts them does.
_SEP = r"[\s./_\u2010-\u2015\u2212-]"
_PHONE = re.compile(
    rf"(?<![\w*])(\+?1?(?:{_SEP}|\()*)(\d{{3}})((?:{_SEP}|\))*)(\d{{3}})({_SEP}*)(\d{{4}})(?!\d)"
)
# Any other international number: "+", then 8 to 15 digits with separators allowed.
_INTERNATIONAL = re.compile(rf"(?<![\w*])\+\d(?:\d|{_SEP}|[()]){{6,22}}\d(?!\d)")


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


def mask_phones_in_payload(raw: str) -> str:
    """A stored payload with its phone numbers masked. JSON is written out without its
    ``\\uXXXX`` escapes first, so a number in full-width digits or with non-ASCII dashes
    (which the phone parser accepts) is found like any other; other text as it is."""
    with contextlib.suppress(ValueError):  # not JSON: mask it as it is
        raw = json.dumps(json.loads(raw), ensure_ascii=False)
    return mask_phone_patterns(raw)


def _format_value(value: Any) -> str:
    text = str(value)
    if not text or any(ch.isspace() for ch in text) or '"' in text or "=" in text:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def log_event(
    logger: logging.Logger, action: str, level: int = logging.INFO, **fields: Any
) -> None:
    if not logger.isEnabledFor(level):
        return  # a busy intake logs every event: not even formatted when not wanted
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


# A survey link's token opens one call's survey: it lives in the text message and, as a
# hash, in the database, never in a log (a failed request logs its path).
_SURVEY_TOKEN_IN_PATH = re.compile(r"(/s/)[A-Za-z0-9_-]{8,}")


def mask_secrets(text: str) -> str:
    """Phone numbers masked and survey tokens replaced, for anything written to a log."""
    return _SURVEY_TOKEN_IN_PATH.sub(r"\1<token>", mask_phone_patterns(text))


#: Control (Cc), format (Cf), line (Zl) and paragraph (Zp) separators, and lone
#: surrogates (Cs, which a stream cannot even encode): never written raw.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def escape_controls(text: str, keep: str = "") -> str:
    """``text`` with every control, format and separator character written as a Python
    escape (``\x1b``, ``\u2028``), except those in ``keep``."""
    if text.isprintable():  # the usual case: nothing to escape (spaces are printable)
        return text
    return "".join(
        char
        if char in keep or unicodedata.category(char) not in _ESCAPED_CATEGORIES
        else char.encode("unicode_escape", "backslashreplace").decode("ascii")
        for char in text
    )


def _safe(text: str) -> str:
    return escape_controls(mask_secrets(text))


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def _exception_chain(error: BaseException) -> list[tuple[BaseException, str]]:
    """The exceptions behind ``error``, oldest first, each with the sentence that links
    it to the one after (as Python's own tracebacks read)."""
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = error
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    return list(reversed(chain))


def _exception_line(error: BaseException) -> str:
    kind = type(error)
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    try:
        text = str(error)
    except Exception:
        text = "<exception str() failed>"  # a broken __str__ must not lose the line
    notes = getattr(error, "__notes__", None) or []
    lines = [f"{name}: {_safe(text)}" if text else name]
    lines.extend(_safe(str(note)) for note in notes)
    return "\n".join(lines) + "\n"


class _Formatter(logging.Formatter):
    """One escaped line an event; a traceback's frames on lines of their own, with the
    exception's message escaped. Phone numbers are masked before escaping: a number
    whose digit groups a control character separates (``\x0b``) is still found, which it
    would not be once the escape put letters and digits between them."""

    def format(self, record: logging.LogRecord) -> str:
        # Not Formatter.format: that caches the traceback text on the record, and another
        # handler (a test runner's) may already have cached it unescaped.
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = _safe(self.formatMessage(record))
        if record.exc_info and record.exc_info[1] is not None:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + escape_controls(mask_secrets(record.exc_text), keep="\n")
        if record.stack_info:
            stack = mask_secrets(self.formatStack(record.stack_info))
            line += "\n" + escape_controls(stack, keep="\n")
        return line

    def formatException(self, ei: ExcInfo) -> str:
        error = ei[1]
        if error is None:
            return ""
        parts: list[str] = []
        for current, link in _exception_chain(error):
            if current.__traceback__ is not None:
                parts.append("Traceback (most recent call last):\n")
                # Frames are file names and our source lines, never request data; still
                # escaped, keeping the line breaks between them.
                frames = "".join(traceback.format_tb(current.__traceback__))
                parts.append(escape_controls(mask_secrets(frames), keep="\n"))
            parts.append(_exception_line(current))
            if link:
                parts.append(link)
        return "".join(parts).rstrip("\n")


_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


class _JsonFormatter(logging.Formatter):
    """One JSON object a line for a log pipeline: ``ts``, ``level``, ``logger``, the
    ``key=value`` fields of the event as keys, and ``message`` for anything else.
    Masked like the text form (the masking runs on the finished line's parts)."""

    def format(self, record: logging.LogRecord) -> str:
        message = mask_secrets(record.getMessage())
        entry: dict[str, Any] = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = {
            key: json.loads(value) if value.startswith('"') else value
            for key, value in _FIELD.findall(message)
        }
        if fields and message.startswith("action="):
            entry.update(fields)
        else:
            entry["message"] = message
        if record.exc_info:
            entry["exception"] = mask_secrets(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: Any = None, log_format: str = "text") -> None:
    """Our loggers at ``level``; every other library's (uvicorn's tracebacks, SQLAlchemy)
    through the same masking formatter, so nothing reaches the terminal unmasked.
    ``log_format`` is ``text`` (``key=value`` lines) or ``json``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if log_format == "json"
        else _Formatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    )
    handler.addFilter(MaskPhones())
    handler._callerconnect = True  # type: ignore[attr-defined]  # ours, to replace later
    ours = logging.getLogger("callerconnect")
    ours.handlers[:] = [handler]
    ours.setLevel(level.upper())
    ours.propagate = False
    # Other libraries log through the root logger (at its level, WARNING by default):
    # replace only a handler of ours there, leaving any other (a test runner's) alone.
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_callerconnect", False)]
    root.addHandler(handler)
