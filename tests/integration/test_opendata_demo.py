"""The demo publishes its simulated day's month as it stands and says where to look."""

from __future__ import annotations

import io
import socket

from callerconnect.entrypoints.demo import run_demo


def test_the_demo_publishes_open_data_and_prints_the_page() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = io.StringIO()
    assert run_demo(port=port, host="127.0.0.1", once=True, calls=12, seed=3, out=out) == 0
    text = out.getvalue()
    assert "published as it stands so far" in text
    # With --once the pages end with the demo: the running demo prints the link
    # (tests/e2e/test_demo_hints.py follows every link it prints).
    assert "/open-data" in text and "http://" not in text.split("=== Summary ===")[1]
