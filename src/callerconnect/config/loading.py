"""Reading the configuration: the TOML file and ``CALLERCONNECT_*`` variables over the
defaults, every unknown name refused, and every problem turned into one ConfigError.

:func:`load_settings` layers three sources, each overriding the one before (the
defaults, the file, the environment), merged key by key, tables and mappings alike.
A pydantic error is translated here (:func:`_translate`) into lines that name the dotted
key, its variable, where the bad value came from and what a good one looks like; secret
values and the database URL are never quoted.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import EnvSettingsSource, SettingsError, TomlConfigSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from callerconnect.config.errors import ConfigError, describe
from callerconnect.config.keys import ENV_NESTED_DELIMITER, ENV_PREFIX, submodel, unknown_keys
from callerconnect.config.settings import Settings, merge_tables
from callerconnect.config.values import SENSITIVE

DEFAULT_CONFIG_FILE = Path("callerconnect.toml")
"""Read when no path is given, relative to the working directory, only if it exists."""


def load_settings(
    config_path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the TOML file and the environment over the defaults, validate, and return.

    ``config_path`` must exist when given; without it ``./callerconnect.toml`` is read if
    present. ``environ`` defaults to ``os.environ`` (tests pass their own mapping).
    Raises :class:`ConfigError` for any problem, never a pydantic error.
    """
    return load_settings_with_sources(config_path, environ)[0]


@dataclass(frozen=True, slots=True)
class SettingsSources:
    """What each source said, so ``config check`` can tell where a value came from."""

    file: Path | None
    file_data: Mapping[str, Any]
    env_data: Mapping[str, Any]


def load_settings_with_sources(
    config_path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Settings, SettingsSources]:
    """:func:`load_settings`, with the values each source gave."""
    path = _config_file(config_path)
    file_data = _read_toml(path) if path is not None else {}
    environ = os.environ if environ is None else environ
    _refuse_unknown_keys(file_data, path, environ)
    env_data = _read_environment(environ)
    data = merge_tables(merge_tables(_mapping_defaults(Settings), file_data), env_data)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        # ``from None``: the operator needs the translated message, not pydantic's internals.
        raise _translate(error, path, file_data, env_data) from None
    return settings, SettingsSources(path, file_data, env_data)


def _refuse_unknown_keys(
    file_data: Mapping[str, Any], path: Path | None, environ: Mapping[str, str]
) -> None:
    unknown = unknown_keys(Settings, file_data, str(path), environ)
    if not unknown:
        return
    lines = [problem.message() for problem in unknown]
    message = lines[0] if len(lines) == 1 else "\n".join(["unknown settings:", *lines])
    raise ConfigError(unknown[0].key, message, keys=tuple(p.key for p in unknown))


def _config_file(config_path: str | Path | None) -> Path | None:
    if config_path is None:
        return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None
    path = Path(config_path)
    if not path.is_file():
        raise ConfigError(None, f"config file {str(path)!r} does not exist or is not a file")
    return path


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = TomlConfigSettingsSource(Settings, toml_file=path)()
    except OSError as error:
        raise ConfigError(
            None, f"cannot read config file {str(path)!r}: {error.strerror}"
        ) from None
    except ValueError as error:  # tomllib.TOMLDecodeError, or bytes that are not UTF-8
        raise ConfigError(None, f"config file {str(path)!r} is not valid TOML: {error}") from None
    return _nest_flat_keys(data, path)


def _nest_flat_keys(table: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Accept the contract's flat spelling in the file too (``sms__provider = "twilio"``),
    beside ordinary tables (``[sms]`` ``provider = "twilio"``). A key set both ways is an
    error rather than a silent winner."""
    nested: dict[str, Any] = {}
    for parts, value in _leaves(table):
        target = nested
        for depth, part in enumerate(parts[:-1], start=1):
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                _set_twice(parts[:depth], path)
        leaf = parts[-1]
        if isinstance(value, Mapping) and isinstance(target.get(leaf), dict):
            continue  # an empty table where the other spelling already put keys
        if leaf in target:
            _set_twice(parts, path)
        target[leaf] = value
    return nested


def _leaves(
    table: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every non-table value (and every empty table) with its key path, ``__`` split."""
    for key, value in table.items():
        parts = (*prefix, *key.split(ENV_NESTED_DELIMITER))
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, parts)
        else:
            yield parts, value


def _set_twice(parts: tuple[str, ...], path: Path) -> None:
    key = ".".join(parts)
    raise ConfigError(key, describe(key, "set twice in the file", str(path)))


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping, not ``os.environ``."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ  # read by _load_env_vars during the base constructor
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        return _MappingEnvSource(environ)()
    except SettingsError as error:
        # pydantic-settings names only the top-level field; find the variable at fault.
        for name, value in environ.items():
            if not name.upper().startswith(ENV_PREFIX):
                continue
            try:
                _MappingEnvSource({name: value})()
            except SettingsError as single:
                key = name[len(ENV_PREFIX) :].lower().replace(ENV_NESTED_DELIMITER, ".")
                raise ConfigError(
                    key,
                    describe(
                        key,
                        f"not valid JSON ({single.__cause__}); lists and tables in environment "
                        'variables are JSON, such as ["k1", "k2"] or {"3": "30m"}',
                        "the environment",
                    ),
                ) from None
        # Only variables together fail (not expected): still a ConfigError, not a traceback.
        raise ConfigError(
            None, f"the CALLERCONNECT_* environment variables are unusable: {error}"
        ) from None


def _mapping_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The defaults of every mapping-valued field, in the form the sources use.

    Seeding the merge with them is what makes a source that sets one entry (priority 3's
    threshold) add to the defaults instead of replacing the whole mapping.
    """
    defaults: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        table = submodel(annotation)
        if table is not None and get_origin(annotation) is not dict:
            if nested := _mapping_defaults(table):
                defaults[name] = nested
        elif annotation is not None and get_origin(annotation) is dict:
            default = field.get_default(call_default_factory=True)
            defaults[name] = TypeAdapter(annotation).dump_python(default, mode="json")
    return defaults


def _has(data: Mapping[str, Any], names: list[str]) -> bool:
    for name in names:
        if not isinstance(data, Mapping) or name not in data:
            return False
        data = data[name]
    return True


def _locate(names: list[str]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """Walk ``names`` from :class:`Settings`: the model in which the last reachable name was
    looked up, and the deepest field on the path (the mapping field for a mapping entry)."""
    model: type[BaseModel] | None = Settings
    parent: type[BaseModel] | None = None
    field: FieldInfo | None = None
    entry = False  # the next name is a mapping's entry (an agency's id)
    for name in names:
        if entry:
            entry = False
            continue
        if model is None:
            break
        parent = model
        if name not in model.model_fields:
            break
        field = model.model_fields[name]
        model = submodel(field.annotation)
        entry = model is not None and get_origin(field.annotation) is dict
    return parent, field


def _may_echo(value: object, field: FieldInfo | None) -> bool:
    """Whether an invalid input can be quoted back: a scalar of a known, non-secret field.

    Whole tables are never quoted (they may hold a secret), nor values of unknown keys (a
    misspelt ``auth_tokn`` is still a token).
    """
    return (
        isinstance(value, str | int | float)
        and field is not None
        and SENSITIVE not in field.metadata
        and not _mentions_secret(field.annotation)
        and submodel(field.annotation) is None
    )


def _mentions_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_mentions_secret(arg) for arg in get_args(annotation))


def _problem_lines(
    error: ErrorDetails,
    file: Path | None,
    file_data: Mapping[str, Any],
    env_data: Mapping[str, Any],
) -> Iterator[tuple[str, str]]:
    """(key, message line) pairs for one pydantic error."""
    names: list[str] = []
    item: int | None = None
    for part in error["loc"]:
        if isinstance(part, int):  # a list index: report the list, say which item
            item = part
            break
        if part != "[key]":  # a bad mapping key is reported at its entry
            names.append(part)
    ctx = error.get("ctx", {})

    if error["type"] == "settings_combination":
        for subkey in ctx["subkeys"]:
            key = ".".join([*names, subkey])
            yield key, describe(key, error["msg"])
        return

    key = ".".join(names)
    if _has(env_data, names):
        origin: str | None = "the environment"
    elif _has(file_data, names):
        origin = str(file)
    else:
        origin = None
    model, field = _locate(names)

    if error["type"] == "extra_forbidden":
        known = sorted(model.model_fields) if model is not None else []
        text = "unknown setting"
        if close := difflib.get_close_matches(names[-1], known, n=1):
            text += f"; did you mean {'.'.join([*names[:-1], close[0]])}?"
        if known:
            text += f" (known here: {', '.join(known)})"
    elif error["type"] == "value_error":
        # Our own validators: their message already says what a good value looks like.
        text = str(ctx["error"])
    else:
        text = error["msg"]
        value = error["input"]
        if _may_echo(value, field):
            text += f" (got {value!r})"
        if field is not None and field.examples:
            example = field.examples[0]
            shown = example if isinstance(example, str) else json.dumps(example)
            text += f"; for example {shown}"
    if item is not None:
        text = f"list item {item + 1}: {text}"
    yield key, describe(key, text, origin)


def _translate(
    error: ValidationError,
    file: Path | None,
    file_data: Mapping[str, Any],
    env_data: Mapping[str, Any],
) -> ConfigError:
    problems = [
        problem
        for detail in error.errors(include_url=False)
        for problem in _problem_lines(detail, file, file_data, env_data)
    ]
    keys = tuple(key for key, _ in problems)
    if len(problems) == 1:
        message = problems[0][1]
    else:
        message = f"{len(problems)} settings are invalid:\n" + "\n".join(
            f"  {line}" for _, line in problems
        )
    return ConfigError(keys[0], message, keys=keys)
