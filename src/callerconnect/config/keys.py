"""Which names are settings, so that a misspelt one stops start-up instead of being ignored.

``CALLERCONNECT_SMS_PROVIDER=twilio`` (one underscore) names no setting: left alone, the
service would start on the console provider and text nobody. Every name in the file and
every ``CALLERCONNECT_*`` variable is checked against the settings model itself (walked
here, never listed by hand, so a setting added later is covered without an edit), and an
unknown one is reported with the closest real name (difflib).

Open tables are known as a whole: a mapping setting (``policy.delay_notice_after.<n>``)
takes any entry. A mapping of tables (``agencies.<id>``, contract section 11) takes any
entry name, and inside it exactly the keys of its model (the agency-level ones).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from pydantic import BaseModel

ENV_PREFIX = "CALLERCONNECT_"
ENV_NESTED_DELIMITER = "__"

RESERVED_ENV_PREFIXES = ("CALLERCONNECT_TEST_", "CALLERCONNECT_REQUIRE_", "CALLERCONNECT_SAFETY_")
"""Variables of the test suite and the benchmarks, which share the prefix but are not
settings (no setting's name starts with ``test_``, ``require_`` or ``safety_``; a unit
test keeps it so)."""

ANY_ENTRY = "*"
"""In a key path: any one name (a mapping's entry, an agency's id)."""
ANY_REST = "**"
"""In a key path: anything below (the keys inside an agency's table)."""


@dataclass(frozen=True, slots=True)
class UnknownKey:
    """A name that matches no setting, and where it was written."""

    key: str
    """Dotted, as written (``sms_provider`` or ``sms.provdier``)."""
    written: str
    """The file key or the environment variable as the operator wrote it."""
    origin: str
    suggestion: str | None

    def message(self) -> str:
        if self.written == self.key:  # from the file: its variable is just as unknown
            variable = env_name(tuple(self.key.split(".")))
            where = f"{self.origin}; as a variable {variable}"
        else:
            where = f"{self.key}, {self.origin}"
        text = f"{self.written} ({where}) matches no setting"
        if self.suggestion:
            text += f"; did you mean {self.suggestion}?"
        written_rest = self.written[len(ENV_PREFIX) :]
        if (
            self.suggestion
            and self.suggestion.startswith(ENV_PREFIX)
            and ENV_NESTED_DELIMITER in self.suggestion[len(ENV_PREFIX) :]
            and ENV_NESTED_DELIMITER not in written_rest
        ):
            text += " (a key inside a table is joined to it by a double underscore)"
        return text


def submodel(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds, directly, as ``Model | None`` or as the values
    of a mapping (``dict[str, Model]``)."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def is_mapping(annotation: Any) -> bool:
    return any(get_origin(candidate) is dict for candidate in (annotation, *get_args(annotation)))


def setting_paths(model: type[BaseModel]) -> list[tuple[str, ...]]:
    """Every leaf key of ``model`` as a path; open parts are ``ANY_ENTRY`` / ``ANY_REST``."""
    paths: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        table = submodel(field.annotation)
        if table is not None and is_mapping(field.annotation):
            # A table of tables: any entry name, then that model's keys.
            paths.extend((name, ANY_ENTRY, *sub) for sub in setting_paths(table))
        elif table is not None:
            paths.extend((name, *sub) for sub in setting_paths(table))
        elif is_mapping(field.annotation):
            paths.append((name, ANY_ENTRY))
        else:
            paths.append((name,))
    return paths


def _matches(path: tuple[str, ...], known: tuple[str, ...]) -> bool:
    """Whether ``path`` is ``known``, a table above it (a whole table set as JSON), or
    inside an open part of it."""
    for index, part in enumerate(path):
        if index >= len(known):
            return False
        if known[index] == ANY_REST:
            return True
        if known[index] not in (part, ANY_ENTRY):
            return False
    return True


def is_known(path: tuple[str, ...], paths: list[tuple[str, ...]]) -> bool:
    return any(_matches(path, known) for known in paths)


def _example_part(part: str) -> str:
    return {ANY_ENTRY: "3", ANY_REST: "sms__sender"}.get(part, part)


def env_var(key: str) -> str:
    """The environment variable of a dotted key: ``policy.delay_notice_after.3`` is
    ``CALLERCONNECT_POLICY__DELAY_NOTICE_AFTER__3``."""
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(part.upper() for part in key.split("."))


def env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(_example_part(p).upper() for p in path)


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(_example_part(p) for p in path)


def _leaves(table: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in table.items():
        path = (*prefix, key)
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, path)
        else:
            yield path


def _closest(word: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_keys(
    model: type[BaseModel],
    file_data: Mapping[str, Any],
    file_label: str,
    environ: Mapping[str, str],
) -> list[UnknownKey]:
    """The file keys (already nested) and ``CALLERCONNECT_*`` variables naming no setting."""
    paths = setting_paths(model)
    problems: list[UnknownKey] = []
    for path in _leaves(file_data):
        if not is_known(path, paths):
            key = ".".join(path)
            names = [_dotted(_filled(known, path)) for known in paths]
            problems.append(UnknownKey(key, key, file_label, _closest(key, names)))
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper.startswith(RESERVED_ENV_PREFIXES):
            continue
        path = tuple(upper[len(ENV_PREFIX) :].lower().split(ENV_NESTED_DELIMITER))
        if not is_known(path, paths):
            names = [env_name(_filled(known, path)) for known in paths]
            problems.append(
                UnknownKey(".".join(path), name, "the environment", _closest(upper, names))
            )
    return problems


def _filled(known: tuple[str, ...], path: tuple[str, ...]) -> tuple[str, ...]:
    """``known`` with its open entries named as in ``path``, so that a suggestion for
    ``agencies.north.sms.sendr`` reads ``agencies.north.sms.sender``."""
    return tuple(
        path[index] if part == ANY_ENTRY and index < len(path) else part
        for index, part in enumerate(known)
    )
