"""FROC and ROC figures: several systems on one axis, with their bootstrap 95% bands.

The FROC axis is the LUNA16 one: false positives per scan on a log2 scale from 1/8 to 8, sensitivity 0 to 1,
each curve read by linear interpolation on the official 10,001-point grid. Every system keeps one colour in
every figure (:func:`system_colour`); a curve that coincides with one drawn before it is drawn dotted on top
and says so in the legend, and the line styles and bands have legend entries of their own.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .atomic import save_figure

if TYPE_CHECKING:  # only for the annotations
    from .evaluation import FrocResult

_RATES = [0.125, 0.25, 0.5, 1, 2, 4, 8]
_LABELS = ["0.125", "0.25", "0.5", "1", "2", "4", "8"]
# One colour per system, whatever the figure: matched on the label, first match wins.
SYSTEM_COLOURS = (("fused", "C2"), ("+ GAN", "C4"), ("U-Net +", "C2"), ("MGI-CNN", "C1"), ("U-Net", "C0"),
                  ("random", "C7"), ("baseline", "C1"))


def system_colour(label: str, index: int = 0) -> str:
    """The colour of the system named in `label` (U-Net blue, MGI-CNN orange, fused green, ...); else a cycle."""
    for key, colour in SYSTEM_COLOURS:
        if key.lower() in label.lower():
            return colour
    return f"C{(index + 5) % 10}"


def _ci(bounds) -> str:
    return "" if bounds is None else f" [{bounds[0]:.3f}, {bounds[1]:.3f}]"


def plot_froc(curves: Mapping[str, "FrocResult"], path: str | os.PathLike, title: str = "FROC") -> None:
    """Draw the FROC curves of `curves` (label -> FrocResult) on one log2 axis and save to `path` atomically.

    Each curve is drawn solid with both CPMs (leaderboard and stable, with 95% CIs when bootstrapped) in the
    legend; a bootstrapped result also gets its bootstrap mean (dashed) and its 95% band (shaded).
    """
    fig = Figure(figsize=(7.5, 5.5))
    ax = fig.add_subplot()
    grid = np.linspace(_RATES[0], _RATES[-1], num=10001)
    drawn: dict[str, np.ndarray] = {}
    any_boot = False
    for i, (label, r) in enumerate(curves.items()):
        colour = system_colour(label, i)
        y = np.interp(grid, r.fps, r.sens)
        same = next((other for other, oy in drawn.items() if np.allclose(oy, y, atol=1e-9)), None)
        text = f"{label}: CPM {r.cpm:.3f}{_ci(r.cpm_ci95)}, stable {r.cpm_stable:.3f}{_ci(r.cpm_stable_ci95)}"
        style = dict(color=colour, lw=2)
        if same is not None:  # drawn on top, dotted, so that both stay visible
            text += f" (coincides with {same})"
            style = dict(color=colour, lw=2.5, ls=(0, (1, 2)))
        ax.plot(grid, y, label=text, **style)
        drawn[label] = y
        if r.bootstrap is not None:
            any_boot = True
            ax.plot(r.bootstrap.fps, r.bootstrap.mean, color=colour, ls="--", lw=1)
            ax.fill_between(r.bootstrap.fps, r.bootstrap.lo, r.bootstrap.hi, color=colour, alpha=0.15, lw=0)
    ax.set_xscale("log", base=2)
    ax.set_xlim(_RATES[0], _RATES[-1])
    ax.set_xticks(_RATES, _LABELS)
    ax.minorticks_off()
    ax.set_ylim(0, 1)
    ax.set_yticks(np.arange(0, 1.01, 0.1))
    ax.grid(True, which="both", alpha=0.4)
    ax.set_xlabel("Average number of false positives per scan")
    ax.set_ylabel("Sensitivity")
    ax.set_title(title, fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    if any_boot:
        handles += [Line2D([], [], color="0.3", ls="--", lw=1), Patch(color="0.3", alpha=0.15)]
        labels += ["bootstrap mean (dashed)", "bootstrap 95% band (shaded)"]
    ax.legend(handles, labels, loc="lower right", fontsize="small",
              title="CPM: leaderboard reading; stable: full-curve reading", title_fontsize="small")
    fig.tight_layout()
    save_figure(path, fig, dpi=150)


def plot_roc(rocs: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, title: str = "ROC") -> None:
    """Draw candidate-level ROC curves (label -> (labels 0/1, scores)) with their AUCs and save to `path`."""
    from .evaluation.roc import roc_auc

    fig = Figure(figsize=(6, 5.5))
    ax = fig.add_subplot()
    drawn: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i, (label, (labels, scores)) in enumerate(rocs.items()):
        fpr, tpr, _, area = roc_auc(labels, scores)
        same = next((o for o, (f, t) in drawn.items() if len(f) == len(fpr) and np.allclose(f, fpr)
                     and np.allclose(t, tpr)), None)
        style = dict(lw=2) if same is None else dict(lw=2.5, ls=(0, (1, 2)))
        text = f"{label}: AUC {area:.3f}" + ("" if same is None else f" (coincides with {same})")
        ax.plot(fpr, tpr, color=system_colour(label, i), label=text, **style)
        drawn[label] = (fpr, tpr)
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1, label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.4)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    save_figure(path, fig, dpi=150)
