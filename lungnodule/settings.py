"""Stage settings: frozen dataclasses whose fields carry their own help, with the conversions they share.

Each stage's config (`UnetConfig`, `MgiConfig`, `CTGANConfig`) is a frozen dataclass deriving from
:class:`Settings`; its fields are declared with :func:`setting`, which keeps the one-line help and the allowed
values beside the default. The stage scripts' flags, their `--help` and the README's preset tables are made
from that metadata, so a setting is described in one place.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence


def setting(default: Any, help: str, choices: Sequence | None = None) -> Any:
    """A dataclass field with `default`, a one-line `help` and, optionally, the allowed `choices`."""
    return dataclasses.field(default=default, metadata={"help": help,
                                                        "choices": tuple(choices) if choices else None})


class Settings:
    """Shared behaviour of the stage configs (mixed into frozen dataclasses)."""

    def to_dict(self) -> dict:
        """The settings as a JSON-friendly dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict):
        """A config from a dict, ignoring unknown keys (e.g. a script namespace's `preset`, or a setting an
        older version wrote); lists become tuples where the field's default is a tuple."""
        kept = {}
        for f in dataclasses.fields(cls):
            if f.name in values:
                v = values[f.name]
                kept[f.name] = tuple(v) if isinstance(f.default, tuple) and isinstance(v, list) else v
        return cls(**kept)

    def replace(self, **changes):
        """A copy with some settings changed (validated as a new config)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def describe(cls, name: str) -> tuple[str, tuple | None]:
        """(help, choices) of the setting `name` ("" and None for a field declared without :func:`setting`)."""
        for f in dataclasses.fields(cls):
            if f.name == name:
                return f.metadata.get("help", ""), f.metadata.get("choices")
        raise KeyError(name)


def preset_table(presets: dict, order: Sequence[str] = ("paper", "demo", "bench", "tiny")) -> str:
    """A markdown table of `presets` (name -> config): one row per setting that any preset changes from the
    paper preset, with its help; the values of the presets in `order` (those present) as columns."""
    names = [n for n in order if n in presets] + [n for n in presets if n not in order]
    paper = presets["paper"]
    cls = type(paper)
    lines = ["| setting | " + " | ".join(f"`{n}`" for n in names) + " | what it is |",
             "|---|" + "---|" * len(names) + "---|"]

    def show(v) -> str:
        if isinstance(v, tuple):
            return "(" + ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) + ")" if v else "()"
        return f"{v:g}" if isinstance(v, float) else str(v)

    for f in dataclasses.fields(cls):
        values = [getattr(presets[n], f.name) for n in names]
        if all(v == values[0] for v in values):
            continue
        cells = [show(v) if i == 0 or v != values[0] else "=" for i, v in enumerate(values)]
        lines.append(f"| `{f.name}` | " + " | ".join(cells) + f" | {f.metadata.get('help', '')} |")
    return "\n".join(lines)


def stage_presets() -> dict[str, dict]:
    """Each stage's presets, by the name the docs use for the stage."""
    from .ctgan.config import PRESETS as CTGAN
    from .mgicnn.config import PRESETS as MGI
    from .unet.config import PRESETS as UNET

    return {"unet": UNET, "mgicnn": MGI, "ctgan": CTGAN}


def update_docs(folder: str | Path, check: bool = False) -> list[Path]:
    """Rewrite the preset tables between `<!-- presets:<stage> -->` and `<!-- /presets -->` in the markdown
    files of `folder`; with `check`, change nothing and return the files that are out of date."""
    import re

    stale = []
    for path in sorted(Path(folder).glob("*.md")):
        text = path.read_text()
        new = text
        for stage, presets in stage_presets().items():
            block = re.compile(rf"(<!-- presets:{stage} -->\n)(?:.*?\n)?(<!-- /presets -->)", re.S)
            new = block.sub(lambda m: m.group(1) + preset_table(presets) + "\n" + m.group(2), new)
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new)
    return stale


if __name__ == "__main__":  # python -m lungnodule.settings: refresh the preset tables in docs/
    import sys

    root = Path(__file__).resolve().parents[1] / "docs"
    changed = update_docs(root, check="--check" in sys.argv)
    print("\n".join(map(str, changed)) or "docs/ preset tables are up to date")
    raise SystemExit(1 if changed and "--check" in sys.argv else 0)
