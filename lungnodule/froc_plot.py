"""FROC and ROC figures: several systems on one axis, with their bootstrap 95% bands.

The FROC axis is the LUNA16 one: false positives per scan on a log2 scale from 1/8 to 8, sensitivity 0 to 1,
each curve read by linear interpolation on the official 10,001-point grid.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping

import numpy as np
from matplotlib.figure import Figure

from .atomic import save_figure

if TYPE_CHECKING:  # only for the annotations; evaluation imports this module
    from .evaluation import FrocResult

_RATES = [0.125, 0.25, 0.5, 1, 2, 4, 8]
_LABELS = ["0.125", "0.25", "0.5", "1", "2", "4", "8"]


def plot_froc(curves: Mapping[str, "FrocResult"], path: str | os.PathLike, title: str = "FROC") -> None:
    """Draw the FROC curves of `curves` (label -> FrocResult) on one log2 axis and save to `path` atomically.

    Each curve is drawn solid with its CPM (and 95% CI when bootstrapped) in the legend; a bootstrapped result
    also gets its bootstrap mean (dashed) and its 95% band (shaded).
    """
    fig = Figure(figsize=(7, 5))
    ax = fig.add_subplot()
    grid = np.linspace(_RATES[0], _RATES[-1], num=10001)
    colours = [f"C{i}" for i in range(10)]
    for i, (label, r) in enumerate(curves.items()):
        colour = colours[i % len(colours)]
        text = f"{label}: CPM {r.cpm:.3f}"
        if r.cpm_ci95 is not None:
            text += f" (95% CI {r.cpm_ci95[0]:.3f}-{r.cpm_ci95[1]:.3f})"
        ax.plot(grid, np.interp(grid, r.fps, r.sens), color=colour, lw=2, label=text)
        if r.bootstrap_fps is not None:
            ax.plot(r.bootstrap_fps, r.bootstrap_mean, color=colour, ls="--", lw=1)
            ax.fill_between(r.bootstrap_fps, r.bootstrap_lo, r.bootstrap_hi, color=colour, alpha=0.15, lw=0)
    ax.set_xscale("log", base=2)
    ax.set_xlim(_RATES[0], _RATES[-1])
    ax.set_xticks(_RATES, _LABELS)
    ax.minorticks_off()
    ax.set_ylim(0, 1)
    ax.set_yticks(np.arange(0, 1.01, 0.1))
    ax.grid(True, which="both", alpha=0.4)
    ax.set_xlabel("Average number of false positives per scan")
    ax.set_ylabel("Sensitivity")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    save_figure(path, fig, dpi=150)


def plot_roc(rocs: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, title: str = "ROC") -> None:
    """Draw candidate-level ROC curves (label -> (labels 0/1, scores)) with their AUCs and save to `path`."""
    from .evaluation import roc_auc

    fig = Figure(figsize=(5.5, 5))
    ax = fig.add_subplot()
    for label, (labels, scores) in rocs.items():
        fpr, tpr, _, area = roc_auc(labels, scores)
        ax.plot(fpr, tpr, lw=2, label=f"{label}: AUC {area:.3f}")
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(title)
    ax.grid(True, alpha=0.4)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    save_figure(path, fig, dpi=150)
