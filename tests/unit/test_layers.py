"""The layers' arrows point one way (DESIGN.md, "Layout"; docs/architecture.md).

The import graph is drawn from the source with ``ast`` — every import, including those
inside functions and ``if TYPE_CHECKING:`` blocks — so a shortcut taken in a hurry
fails here rather than in a review: the domain stays pure, services never reach up to
the web or the command line, adapters are called and never call out, and nothing
imports the entrypoints.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "src" / "callerconnect"

#: Layer → the layers (first name under ``callerconnect``) it must never import.
FORBIDDEN: dict[str, frozenset[str]] = {
    "service": frozenset({"web", "entrypoints", "bootstrap"}),
    "adapters": frozenset({"service", "queries", "web", "entrypoints", "bootstrap"}),
    "queries": frozenset({"service", "web", "entrypoints", "bootstrap"}),
    "opendata": frozenset({"service", "queries", "adapters", "web", "entrypoints", "bootstrap"}),
    "web": frozenset({"entrypoints"}),
}


@dataclass(frozen=True)
class Arrow:
    """``importer`` (a file) imports module ``imported`` on ``line``."""

    importer: str
    imported: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.imported}"


def module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def arrows(root: Path) -> Iterator[Arrow]:
    """Every import in the package at ``root``, relative ones made absolute."""
    for path in sorted(root.rglob("*.py")):
        module = module_name(root, path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        where = str(path.relative_to(root.parent))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Arrow(where, alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                # One arrow per name: ``from callerconnect import web`` imports a layer.
                for alias in node.names:
                    yield Arrow(where, f"{target}.{alias.name}", node.lineno)


def layer(module: str, root_name: str) -> str | None:
    """The layer of a module of this package (its first name under the package), or
    None for a module outside it."""
    parts = module.split(".")
    if parts[0] != root_name:
        return None
    return parts[1] if len(parts) > 1 else ""


def breaks_layering(importer_layer: str | None, imported: str, package: str) -> bool:
    target_layer = layer(imported, package)
    if importer_layer == "domain":
        if target_layer is None:
            return imported.split(".")[0] not in sys.stdlib_module_names
        return target_layer != "domain"
    if target_layer is None:
        return False
    if target_layer == "entrypoints":
        return importer_layer != "entrypoints"
    return target_layer in FORBIDDEN.get(importer_layer or "", frozenset())


def outward_arrows(root: Path) -> list[Arrow]:
    """The imports that break the layering of the package at ``root``."""
    return [
        arrow
        for arrow in arrows(root)
        if breaks_layering(
            layer(arrow.importer.removesuffix(".py").replace("/", "."), root.name),
            arrow.imported,
            root.name,
        )
    ]


def test_every_import_in_the_package_points_inward() -> None:
    broken = outward_arrows(PACKAGE_ROOT)
    assert not broken, "imports against the layers:\n" + "\n".join(map(str, broken))


def test_the_graph_covers_every_layer() -> None:
    """A scan that found nothing would pass the test above for the wrong reason."""
    seen = {
        layer(arrow.importer.removesuffix(".py").replace("/", "."), "callerconnect")
        for arrow in arrows(PACKAGE_ROOT)
    }
    assert {"domain", "service", "queries", "adapters", "web", "entrypoints"} <= seen


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "callerconnect"
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return root


@pytest.mark.parametrize(
    ("relative", "source"),
    [
        ("domain/policy.py", "import sqlalchemy\n"),
        ("domain/policy.py", "from callerconnect.adapters.db import tables\n"),
        ("domain/policy.py", "from ..config import Settings\n"),
        ("service/demo.py", "def run():\n    from callerconnect.bootstrap import build\n"),
        ("service/demo.py", "from callerconnect import web\n"),
        (
            "service/demo.py",
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from callerconnect.web.app import create_app\n",
        ),
        ("adapters/db/repositories/outbox.py", "from ....service import intake\n"),
        ("adapters/sms/smpp.py", "import callerconnect.service.dispatcher\n"),
        ("queries/figures.py", "from callerconnect.service.survey import load_definition\n"),
        ("web/app.py", "from callerconnect.entrypoints.cli import main\n"),
        ("config/loading.py", "from callerconnect.entrypoints.support import CommandError\n"),
        ("opendata/tables.py", "from callerconnect.queries import figures\n"),
    ],
)
def test_an_outward_import_is_found(tmp_path: Path, relative: str, source: str) -> None:
    root = _package(tmp_path, {"entrypoints/cli.py": "", "web/app.py": "", relative: source})
    [arrow] = outward_arrows(root)
    assert arrow.importer == f"callerconnect/{relative}"


def test_inward_imports_pass(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "domain/policy.py": "import json\nfrom . import calls\nfrom .calls import Call\n",
            "domain/calls.py": "from __future__ import annotations\n",
            "service/intake.py": "from callerconnect.domain import policy\nimport sqlalchemy\n",
            "adapters/db/tables.py": "from ...domain.calls import Call\n",
            "web/app.py": "from callerconnect.bootstrap import Application\n",
            "entrypoints/cli.py": "from callerconnect.web.app import create_app\n",
            "entrypoints/serve.py": "from .cli import main\n",
        },
    )
    assert outward_arrows(root) == []
