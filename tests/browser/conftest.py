"""Browser tests: pytest-playwright driving Debian's Chromium (``/usr/bin/chromium``).

Playwright never downloads a browser here: ``executable_path`` points at the system one,
which ``.ci/install-browser`` installs. Without it these tests are skipped locally, with
the reason; when ``CALLERCONNECT_REQUIRE_BROWSER=1`` (CI) they fail instead.

The application runs on SQLite only here (the HTTP tests cover PostgreSQL), behind the
same real uvicorn server as the integration tests, with a 360-pixel-wide viewport.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callerconnect.bootstrap import Application
from tests.support.live_server import LiveServer

CHROMIUM = Path(os.environ.get("CALLERCONNECT_TEST_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_BROWSER = os.environ.get("CALLERCONNECT_REQUIRE_BROWSER") == "1"
VIEWPORT = {"width": 360, "height": 780}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _unavailable() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (install it with .ci/install-browser)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    """Overrides pytest-playwright's: Debian's Chromium, never a downloaded one."""
    missing = _unavailable()
    if missing is not None:
        if REQUIRE_BROWSER:
            pytest.fail(
                f"browser tests are required (CALLERCONNECT_REQUIRE_BROWSER=1) but {missing}"
            )
        pytest.skip(f"browser tests skipped: {missing}")
    return {"executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, Any]:
    """Overrides pytest-playwright's: a narrow phone screen, no stored state."""
    return {"viewport": VIEWPORT, "device_scale_factor": 1, "locale": "en-CA"}


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """Overrides the root conftest's two-database parametrisation: SQLite only."""
    return sqlite_url


@pytest.fixture
def live_server(app: Application) -> Iterator[LiveServer]:
    """Overrides the root conftest's in-process server: a browser needs a real socket."""
    from callerconnect.web.app import create_app

    with LiveServer(create_app(app)) as server:
        yield server
