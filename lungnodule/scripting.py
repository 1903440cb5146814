"""Command-line flags for the stage scripts: every UPPERCASE constant at a script's top becomes a flag.

A script declares its defaults (the paper preset) as module constants, e.g. ``EPOCHS = 80``; this module
turns each into ``--epochs`` (help, default and allowed values from the config field's metadata, see
:mod:`lungnodule.settings`), adds ``--preset NAME`` and ``--verbose``, and resolves every value with this
precedence: an explicit flag, then a constant edited at the top of the script (one that differs from the
paper preset), then the preset, then the paper preset. :func:`stage_main` prints what did not come from the
paper preset and where it came from, and writes the resolved configuration beside the script's outputs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

# Help of the constants that are not stage settings (paths and script switches).
SCRIPT_HELP = {
    "DATA_ROOT": "LUNA16-layout dataset: subset*/<uid>.mhd and the CSVs",
    "WORK_DIR": "the stage's work folder (intermediate files, models)",
    "RESULTS_DIR": "where the figures go",
    "RESUME": "resume from the last checkpoint",
    "INITIAL_WEIGHTS": "start from the weights of this .keras model",
    "MODEL": "the model to use (default: WORK_DIR/best.keras)",
    "N_BOOTSTRAP": "scan-level bootstrap resamples of the CPM's 95% CI",
    "CANDIDATES": "candidates CSV (default: the dataset's candidates_V2.csv)",
    "UNET_DIR": "stage 1's work folder (its candidates_unet_*.csv)",
    "CTGAN_DIR": "CT-GAN's work folder (the trained injector)",
    "SUBSETS": "subsets to preprocess (-1: every subset)",
    "COPIES_PER_SCAN": "tampered copies of each training scan",
    "MODE": "which GAN",
    "WORKERS": "worker processes for the per-scan work (the outputs are the same for any number)",
}


def _flag(name: str) -> str:
    return "--" + name.lower().replace("_", "-")


def _help(name: str, default: Any, reference: Any) -> tuple[str, tuple | None]:
    text, choices = SCRIPT_HELP.get(name, ""), None
    if reference is not None and hasattr(type(reference), "describe"):
        try:
            text, choices = type(reference).describe(name.lower())
        except KeyError:
            pass
    shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
    text = f"{text} (default: {shown!s})" if shown not in ("", None) else text
    return text.strip().replace("%", "%%"), choices  # argparse formats help with %


def _add(parser: argparse.ArgumentParser, name: str, default: Any, reference: Any) -> None:
    dest = name.lower()
    text, choices = _help(name, default, reference)
    if isinstance(default, bool):
        parser.add_argument(_flag(name), dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
    elif isinstance(default, (list, tuple)):
        kind = type(default[0]) if default else str
        parser.add_argument(_flag(name), dest=dest, nargs="*" if not default else "+", type=kind, default=None,
                            metavar=name, help=text + (f"; each one of {', '.join(map(str, choices))}"
                                                        if choices else ""))
    else:
        kind = str if default is None else type(default)
        parser.add_argument(_flag(name), dest=dest, type=kind, default=None, metavar=name if not choices else None,
                            choices=list(choices) if choices else None, help=text)


def _names(constants: Mapping[str, Any]) -> list[str]:
    # Imported tables (a stage's PRESETS dict) are not settings.
    return [k for k in constants if k.isupper() and not k.startswith("_") and not isinstance(constants[k], Mapping)]


def script_args(
    doc: str | None,
    constants: Mapping[str, Any],
    presets: Mapping[str, Any] | None = None,
    argv: list[str] | None = None,
    reference: Any = None,
) -> argparse.Namespace:
    """Parse a stage script's command line.

    `constants` maps UPPERCASE names to default values (the script's top-of-file constants); `presets` maps a
    preset name to its values (a dict or dataclass with lowercase field names), of which only the names present
    in `constants` are used; `reference` is the paper preset, against which an edited constant is recognised.
    Precedence: explicit flag > edited constant > preset > constant. The namespace has one lowercase attribute
    per constant plus `preset`, `verbose` and `sources` (name -> where its value came from).
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = _names(constants)
    for name in names:
        _add(parser, name, constants[name], reference)
    if presets:
        parser.add_argument("--preset", choices=sorted(presets), default=None,
                            help="take the defaults from this preset (flags and edited constants still win)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ log lines")
    args = parser.parse_args(argv)
    chosen = getattr(args, "preset", None)
    values = presets[chosen] if chosen else {}
    if is_dataclass(values):
        values = asdict(values)
    paper = asdict(reference) if is_dataclass(reference) else {}
    sources = {}
    for name in names:
        dest, default = name.lower(), constants[name]
        edited = dest in paper and _same(default, paper[dest]) is False
        if getattr(args, dest) is not None:
            sources[dest] = "flag " + _flag(name)
        elif edited:
            setattr(args, dest, default)
            sources[dest] = f"constant {name} edited in the script"
            if dest in values and not _same(values[dest], default):
                sources[dest] += f" (the {chosen} preset's {values[dest]!r} is not used)"
        elif dest in values:
            setattr(args, dest, values[dest])
            sources[dest] = f"preset {chosen}"
        else:
            setattr(args, dest, default)
            sources[dest] = "paper" if dest in paper else "script"
        if isinstance(default, tuple):
            setattr(args, dest, tuple(getattr(args, dest)))
    args.preset = chosen
    args.sources = sources
    return args


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def stage_main(namespace: Mapping[str, Any], presets: Mapping[str, Any], argv: list[str] | None = None):
    """Parse a stage script (its module `namespace`: docstring and UPPERCASE constants) and resolve its config.

    Returns (config, args): the stage config (the chosen preset, else the paper preset, with every constant's
    resolved value; see :func:`script_args` for the precedence) and the namespace of every constant. Prints the
    values that differ from the paper preset with where each came from, and writes the resolved configuration
    and those sources to `<work_dir>/<script name>.config.json` when the script has a WORK_DIR.
    """
    paper = presets["paper"]
    constants = {k: v for k, v in namespace.items() if k.isupper()}
    args = script_args(namespace.get("__doc__"), constants, presets, argv, reference=paper)
    fields = type(paper).__dataclass_fields__
    config = presets[args.preset or "paper"].replace(**{k: v for k, v in vars(args).items() if k in fields})
    script = Path(namespace.get("__file__", "script")).stem
    changed = {k: v for k, v in config.to_dict().items() if not _same(v, paper.to_dict()[k])}
    where = {k: args.sources.get(k, f"preset {args.preset}") for k in changed}
    print(f"{script}: configuration = the {args.preset or 'paper'} preset" +
          (f", with {len(changed)} setting(s) other than the paper preset's:" if changed else ""), flush=True)
    for k, v in changed.items():
        print(f"  {k} = {v!r}  ({where[k]})", flush=True)
    notes = [f"  {src}" for k, src in args.sources.items() if "is not used" in src]
    for line in notes:
        print(f"note:{line}", flush=True)
    work_dir = getattr(args, "work_dir", None)
    if work_dir:
        from .atomic import write_text

        write_text(Path(work_dir) / f"{script}.config.json", json.dumps(
            {"script": script, "preset": args.preset, "config": config.to_dict(), "sources": where,
             "precedence": "flag > constant edited in the script > preset > paper preset",
             "arguments": {k: v for k, v in vars(args).items() if k not in ("sources",)}}, indent=2, default=str))
    return config, args


_TRIPLE = re.compile(r"^-[\d.]+(?:[eE][-+]?\d+)?,\s*-?[\d.]+(?:[eE][-+]?\d+)?,\s*-?[\d.]+(?:[eE][-+]?\d+)?$")


def protect_negative_points(argv: Sequence[str]) -> list[str]:
    """`argv` with each "x,y,z" triple that starts with a minus sign prefixed by a space, so that argparse reads
    it as a value, not an option (LUNA16 world coordinates are often negative: -c -120.5,45.2,-300)."""
    return [" " + a if _TRIPLE.match(a) else a for a in argv]


def parse_points(text: Sequence[str] | str) -> np.ndarray:
    """Points from the CLI: "a,b,c" strings (one per point, or several separated by spaces) -> (N, 3)."""
    items = text.split() if isinstance(text, str) else [t for s in text for t in str(s).split()]
    try:
        pts = np.array([[float(v) for v in item.strip("()[] ").split(",")] for item in items], dtype=np.float64)
    except ValueError:
        raise ValueError(f"coordinates must be comma-separated numbers like 120,256,300; got {text!r}") from None
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"each coordinate needs 3 comma-separated numbers, got {text!r}")
    return pts


def run(main: Callable, argv: list[str] | None = None) -> None:
    """Run a stage script's `main`: bad input (:class:`~lungnodule.errors.DataError`) and missing models end
    with one line on stderr naming the file and the problem, and exit status 2, never a traceback."""
    from .errors import DataError, ModelMissingError
    from .quiet import silence_native_logs

    silence_native_logs("--verbose" in (sys.argv[1:] if argv is None else argv))
    try:
        main(argv)
    except (DataError, ModelMissingError) as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
