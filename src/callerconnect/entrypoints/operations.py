"""The operator's checks: ``config check``, ``config example`` and ``sms check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from callerconnect.config import ConfigError, load_settings, load_settings_with_sources
from callerconnect.entrypoints.support import CommandError, add_yes_option, confirm


def cmd_config_check(args: argparse.Namespace) -> int:
    from callerconnect.entrypoints.config_check import effective_values, findings

    try:
        settings, sources = load_settings_with_sources(args.config)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 1
    args.loaded_settings = settings
    values = effective_values(settings, sources)
    width = max(len(v.key) for v in values)
    for value in values:
        print(f"{value.key:<{width}}  {value.shown}  ({value.origin})")
    problems = findings(settings, workers=args.workers)
    for finding in problems:
        print(f"{finding.level}: {finding.key}: {finding.message}", file=sys.stderr)
    errors = sum(f.level == "error" for f in problems)
    warnings = len(problems) - errors
    print(f"{errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 1 if errors else 0


def cmd_config_example(args: argparse.Namespace) -> int:
    from callerconnect.entrypoints.config_example import example_toml

    text = example_toml()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    path = Path(args.out)
    if path.exists():
        confirm(f"This replaces {path}.", yes=args.yes)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot write {path} (--out): {error.strerror}", 2) from None
    print(f"wrote {path}")
    return 0


def cmd_sms_check(args: argparse.Namespace) -> int:
    from callerconnect.entrypoints.sms_check import check_provider

    settings = load_settings(args.config)
    args.loaded_settings = settings
    results = check_provider(settings)
    for result in results:
        mark = "ok" if result.ok else "FAILED"
        print(f"{mark:<6} {result.what}: {result.detail}")
    return 0 if all(result.ok for result in results) else 1


def add_operations_commands(commands: Any) -> None:
    config = commands.add_parser("config", help="check the settings, or write an example file")
    config_commands = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = config_commands.add_parser(
        "check",
        help="print the effective settings and where each came from; warn about likely "
        "mistakes (exit 1 on an error)",
    )
    check.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="how many worker processes you plan to run (for the SQLite warning)",
    )
    check.set_defaults(handler=cmd_config_check)
    example = config_commands.add_parser(
        "example", help="write a commented callerconnect.toml with every setting"
    )
    example.add_argument("--out", metavar="PATH", help="write here instead of to the terminal")
    add_yes_option(example)
    example.set_defaults(handler=cmd_config_example)

    sms = commands.add_parser("sms", help="the SMS provider")
    sms_commands = sms.add_subparsers(dest="action", required=True, metavar="ACTION")
    sms_check = sms_commands.add_parser(
        "check",
        help="ask the provider whether the credentials and the sender work, texting nobody",
    )
    sms_check.set_defaults(handler=cmd_sms_check)
