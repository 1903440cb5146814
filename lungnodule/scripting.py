"""Command-line flags for the stage scripts: every UPPERCASE constant at a script's top becomes a flag.

A script declares its defaults (the paper preset) as module constants, e.g. ``EPOCHS = 40``; this module
turns each into ``--epochs``, adds ``--preset NAME`` (values from the stage's library presets replace the
defaults, explicit flags still win) and returns the resolved values with lowercase names.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, Mapping


def _flag(name: str) -> str:
    return "--" + name.lower().replace("_", "-")


def _add(parser: argparse.ArgumentParser, name: str, default: Any) -> None:
    dest = name.lower()
    if isinstance(default, bool):
        parser.add_argument(_flag(name), dest=dest, action=argparse.BooleanOptionalAction, default=None)
    elif isinstance(default, (list, tuple)):
        kind = type(default[0]) if default else str
        parser.add_argument(_flag(name), dest=dest, nargs="+", type=kind, default=None, metavar=name)
    else:
        kind = str if default is None else type(default)
        parser.add_argument(_flag(name), dest=dest, type=kind, default=None, metavar=name)


def script_args(
    doc: str | None,
    constants: Mapping[str, Any],
    presets: Mapping[str, Any] | None = None,
    argv: list[str] | None = None,
) -> argparse.Namespace:
    """Parse a stage script's command line.

    `constants` maps UPPERCASE names to default values (the script's top-of-file constants);
    `presets` maps a preset name to its values (a dict or dataclass with lowercase field names), of
    which only the names present in `constants` are used. Precedence: explicit flag > preset > constant.
    The namespace has one lowercase attribute per constant plus `preset`.
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Imported tables (a stage's PRESETS dict) are not settings.
    names = [k for k in constants if k.isupper() and not k.startswith("_") and not isinstance(constants[k], Mapping)]
    for name in names:
        _add(parser, name, constants[name])
    if presets:
        parser.add_argument("--preset", choices=sorted(presets), default=None,
                            help="take the defaults from this preset (explicit flags still win)")
    args = parser.parse_args(argv)
    chosen = getattr(args, "preset", None)
    values = presets[chosen] if chosen else {}
    if is_dataclass(values):
        values = asdict(values)
    for name in names:
        dest = name.lower()
        if getattr(args, dest) is None:
            setattr(args, dest, values.get(dest, constants[name]))
        default = constants[name]
        if isinstance(default, tuple):
            setattr(args, dest, tuple(getattr(args, dest)))
    args.preset = chosen
    return args


def run(main: Callable, argv: list[str] | None = None) -> None:
    """Run a stage script's `main`: bad input (:class:`~lungnodule.errors.DataError`) and missing models end
    with one line on stderr naming the file and the problem, and exit status 2, never a traceback."""
    from .errors import DataError, ModelMissingError

    try:
        main(argv)
    except (DataError, ModelMissingError) as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
