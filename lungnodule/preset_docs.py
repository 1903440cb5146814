"""The preset tables in docs/: one markdown table per stage, made from the settings' own metadata.

Kept apart from :mod:`lungnodule.settings` because it imports every stage's config, and the configs import
the settings. ``python -m lungnodule.preset_docs`` rewrites the tables; ``--check`` only reports stale ones.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Sequence

from .ctgan.config import PRESETS as CTGAN
from .mgicnn.config import PRESETS as MGI
from .unet.config import PRESETS as UNET


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
    return {"unet": UNET, "mgicnn": MGI, "ctgan": CTGAN}


def update_docs(folder: str | Path, check: bool = False) -> list[Path]:
    """Rewrite the preset tables between `<!-- presets:<stage> -->` and `<!-- /presets -->` in the markdown
    files of `folder`; with `check`, change nothing and return the files that are out of date."""
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


if __name__ == "__main__":  # python -m lungnodule.preset_docs: refresh the preset tables in docs/
    root = Path(__file__).resolve().parents[1] / "docs"
    changed = update_docs(root, check="--check" in sys.argv)
    print("\n".join(map(str, changed)) or "docs/ preset tables are up to date")
    raise SystemExit(1 if changed and "--check" in sys.argv else 0)
