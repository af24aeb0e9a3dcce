"""What outsiders send never reaches a log line raw: control characters (ESC, BEL, CR,
NEL), invisible format characters (right-to-left overrides, zero-width spaces) and line
or paragraph separators are written as escapes, through the real logging setup
(``configure_logging``) — structured events, exception logs and other libraries' records
(uvicorn's) alike."""

from __future__ import annotations

import io
import logging
import unicodedata
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callerconnect.entrypoints.support import terminal_safe
from callerconnect.logs import configure_logging, escape_controls, log_event

ESCAPED = ("Cc", "Cf", "Zl", "Zp")

#: Text as an outsider might send it: letters and the characters that must not pass.
hostile_text = st.text(
    st.one_of(
        st.characters(categories=ESCAPED),
        st.sampled_from("abc /-_:é"),
    ),
    min_size=1,
    max_size=40,
).filter(lambda text: any(unicodedata.category(c) in ESCAPED for c in text))


@pytest.fixture(scope="module")
def captured() -> Iterator[io.StringIO]:
    """Logging configured as ``serve`` and ``worker`` configure it, into a buffer."""
    ours = logging.getLogger("callerconnect")
    root = logging.getLogger()
    saved = (list(ours.handlers), ours.propagate, ours.level, list(root.handlers))
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    try:
        yield stream
    finally:
        for handler in ours.handlers:
            handler.close()
        ours.handlers[:], ours.propagate, ours.level, root.handlers[:] = saved


def raw_breaks_and_controls(output: str) -> list[str]:
    """Characters of the escaped categories in ``output``, except the line feeds that end
    each line."""
    return [c for c in output if c != "\n" and unicodedata.category(c) in ESCAPED]


def read(stream: io.StringIO) -> str:
    output = stream.getvalue()
    stream.seek(0)
    stream.truncate()
    return output


def fail_with(text: str) -> None:
    try:
        raise KeyError(text)
    except KeyError as error:
        raise ValueError(f"bad value {text}") from error


@settings(max_examples=300, deadline=None)
@given(text=hostile_text)
def test_no_control_format_or_separator_character_reaches_a_log_line(
    captured: io.StringIO, text: str
) -> None:
    read(captured)
    log_event(logging.getLogger("callerconnect.webhooks"), "webhook_rejected", path="/" + text)
    logging.getLogger("callerconnect.web").warning("action=request_failed path=%s", text)
    try:
        fail_with(text)
    except ValueError:
        logging.getLogger("callerconnect.web").exception("action=request_failed path=%s", text)
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request: %s", text)

    output = read(captured)

    assert raw_breaks_and_controls(output) == []
    # One event a line: whatever the text held, no line break was added to an event ...
    events = [line for line in output.splitlines() if line.startswith("ts=")]
    assert len(events) == 4
    assert output.splitlines() == output.split("\n")[:-1]  # no \r, \x85, \u2028 breaks
    # ... and the text is still there for the reader, escaped.
    escaped = escape_controls(text)
    assert sum(escaped in line for line in events) == 4
    traceback_lines = output.split("\n")
    assert f"ValueError: bad value {escaped}" in traceback_lines
    assert f"KeyError: {escape_controls(repr(text))}" in traceback_lines


def test_the_traceback_keeps_its_frames_and_chain(captured: io.StringIO) -> None:
    read(captured)
    try:
        fail_with("\x1b[2J\u2028ts=forged level=INFO")
    except ValueError:
        logging.getLogger("callerconnect.web").exception("action=request_failed")

    lines = read(captured).split("\n")

    assert lines[0].endswith("action=request_failed")
    assert lines[1] == "Traceback (most recent call last):"
    assert any(line.startswith('  File "') and "fail_with" in line for line in lines)
    assert "The above exception was the direct cause of the following exception:" in lines
    assert lines[-2] == "ValueError: bad value \\x1b[2J\\u2028ts=forged level=INFO"
    assert not any(line.startswith("ts=forged") for line in lines)


def test_phone_numbers_are_masked_before_escaping(captured: io.StringIO) -> None:
    read(captured)
    log_event(logging.getLogger("callerconnect.inbound"), "inbound", text="+16135550142\x07")
    output = read(captured)
    assert "5550142" not in output
    assert "\\x07" in output and "\x07" not in output


@given(text=hostile_text)
def test_the_command_line_escapes_the_same_characters_and_keeps_its_line_breaks(
    text: str,
) -> None:
    shown = terminal_safe(text)
    assert [c for c in shown if c not in "\n\t" and unicodedata.category(c) in ESCAPED] == []
    assert shown == escape_controls(text, keep="\n\t")
