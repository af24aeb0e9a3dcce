"""An opt-in pytest plugin: where each psycopg connection left open was opened.

The suite turns every warning into an error (pyproject), so a connection some test leaves
open fails whichever later test the garbage collector happens to collect it in, with
nothing in the message about where it came from (``PYTHONTRACEMALLOC`` would say, but
slowed the suite over tenfold). With this plugin each connection remembers the stack that
opened it, and the warning of one collected open carries that stack::

    ./scripts/test.sh -p tests.support.connection_origins -n 2 tests/integration

Only for hunting a leak: it changes psycopg's connection class for the run.
"""

from __future__ import annotations

import traceback
import warnings
from typing import Any

from psycopg import _connection_base

_Connection = _connection_base.BaseConnection
_opened = _Connection.__init__


def _remembering_its_origin(self: Any, *args: Any, **kwargs: Any) -> None:
    _opened(self, *args, **kwargs)
    self._opened_at = "".join(traceback.format_stack(limit=25)[:-1])


def _warning_with_its_origin(self: Any) -> None:
    # As psycopg's own finalizer: nothing for a connection closed, half-built or pooled.
    if not hasattr(self, "pgconn") or self.closed or hasattr(self, "_pool"):
        return
    warnings.warn(
        f"{object.__repr__(self)} was deleted while still open; it was opened at:\n"
        + getattr(self, "_opened_at", "(before the plugin was loaded)"),
        ResourceWarning,
        stacklevel=1,
    )


_Connection.__init__ = _remembering_its_origin  # type: ignore[method-assign]
_Connection.__del__ = _warning_with_its_origin  # type: ignore[method-assign]
