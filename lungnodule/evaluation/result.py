"""A LUNA16 evaluation of CAD marks: the matching, the curve, its CPMs and the bootstrap, in one result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .bootstrap import Bootstrap, bootstrap_froc
from .froc import (FP_RATE_KEYS, Curve, compute_froc, curve_warnings, sensitivities_interpolated,
                   sensitivities_leaderboard, sensitivities_stable)
from .matching import Matching, match_candidates

# What each CPM is, in the words the reports use.
CPM_READINGS = {
    "cpm": "leaderboard CPM: mean sensitivity at 1/8 ... 8 false positives per scan, each read as the LUNA16 "
           "site's calculator does (the nearest point of the official curve; 0 where none is nearer than its "
           "end); comparable with published numbers",
    "cpm_stable": "stable CPM: the same seven rates read on the full curve (every threshold kept, tied scores "
                  "grouped): the sensitivity reached with at most that many false positives per scan; used for "
                  "every choice made on validation",
}


@dataclass
class FrocResult:
    """A LUNA16 evaluation: `matching` (:class:`Matching`), the `curve` as the official script writes it (its
    `drop_intermediate`), the `full_curve` with every threshold kept, the three CPM readings with their
    sensitivities at the seven FP rates ("0.125" ... "8"), and the `bootstrap` (None when `n_bootstrap` is 0).

    `cpm` is the leaderboard reading (comparable with the LUNA16 site), `cpm_stable` the stable one (see
    :data:`CPM_READINGS`), `cpm_interpolated` linear interpolation (DeepLung's).
    """

    matching: Matching
    curve: Curve
    full_curve: Curve
    cpm: float
    cpm_interpolated: float
    cpm_stable: float
    sensitivities: dict[str, float]
    sensitivities_interpolated: dict[str, float]
    sensitivities_stable: dict[str, float]
    max_marks: int | None
    drop_intermediate: bool
    n_bootstrap: int
    seed: int
    bootstrap: Bootstrap | None = None

    @property
    def fps(self) -> np.ndarray:
        """False positives per scan of the official curve."""
        return self.curve.fps

    @property
    def sens(self) -> np.ndarray:
        """Sensitivity of the official curve."""
        return self.curve.sens

    @property
    def thresholds(self) -> np.ndarray:
        """Score thresholds of the official curve."""
        return self.curve.thresholds

    @property
    def nodules(self) -> int:
        return self.matching.nodules

    @property
    def detected(self) -> int:
        return self.matching.true_positives

    @property
    def scans(self) -> int:
        return self.matching.scans

    @property
    def cpm_ci95(self) -> tuple[float, float] | None:
        """Bootstrap 95% CI of the leaderboard CPM (None without bootstrap)."""
        return None if self.bootstrap is None else self.bootstrap.cpm_ci95

    @property
    def cpm_stable_ci95(self) -> tuple[float, float] | None:
        """Bootstrap 95% CI of the stable CPM (None without bootstrap)."""
        return None if self.bootstrap is None else self.bootstrap.cpm_stable_ci95

    def warnings(self) -> list[str]:
        """Why a CPM of this evaluation may mislead (see :func:`~lungnodule.evaluation.froc.curve_warnings`)."""
        return curve_warnings(self.full_curve, self.cpm, self.cpm_stable, self.scans,
                              self.matching.total_candidates, self.cpm_ci95, self.cpm_stable_ci95,
                              official=(self.curve.fps, self.curve.sens))

    def summary(self, name: str = "") -> str:
        """A few lines for the terminal: both CPMs with their CIs, the seven sensitivities and the counts."""
        m = self.matching
        head = f"LUNA16 evaluation{' of ' + name if name else ''}: {self.scans} scans, {self.nodules} nodules, "
        head += f"{self.detected} detected, {m.false_positives} false positives"

        def ci(bounds) -> str:
            return "" if bounds is None else f" [95% CI {bounds[0]:.4f}, {bounds[1]:.4f}]"

        boot = f" ({self.n_bootstrap} scan bootstraps, seed {self.seed})" if self.bootstrap is not None else ""
        rates = "  ".join(f"{k}: {v:.4f}" for k, v in self.sensitivities.items())
        return (f"{head}\nCPM (leaderboard reading) {self.cpm:.4f}{ci(self.cpm_ci95)}; stable CPM "
                f"{self.cpm_stable:.4f}{ci(self.cpm_stable_ci95)}{boot}; interpolated CPM {self.cpm_interpolated:.4f}"
                f"\nsensitivity at FPs/scan (leaderboard)  {rates}")

    def metrics(self) -> dict:
        """The JSON-friendly CPM fields every stage reports: both CPMs with their CIs, the interpolated CPM, the
        sensitivities, counts and the warnings."""
        def ci(bounds):
            return None if bounds is None else [float(bounds[0]), float(bounds[1])]

        return {"cpm": float(self.cpm), "cpm_ci95": ci(self.cpm_ci95), "cpm_stable": float(self.cpm_stable),
                "cpm_stable_ci95": ci(self.cpm_stable_ci95), "cpm_interpolated": float(self.cpm_interpolated),
                "sensitivities": {k: float(v) for k, v in self.sensitivities.items()},
                "sensitivities_stable": {k: float(v) for k, v in self.sensitivities_stable.items()},
                "nodules": int(self.nodules), "detected": int(self.detected), "scans": int(self.scans),
                "candidates": int(self.matching.total_candidates), "warnings": self.warnings()}

    def cpm_json(self) -> dict:
        """The content of ``cpm.json``: :meth:`metrics` plus the bootstrap settings and what each CPM is."""
        return {**self.metrics(), "seed": int(self.seed), "n_bootstrap": int(self.n_bootstrap),
                "readings": CPM_READINGS}


def evaluate_cad(
    annotations: pd.DataFrame,
    excluded: pd.DataFrame | None,
    seriesuids: Sequence[str],
    results: pd.DataFrame,
    *,
    max_marks: int | None = 100,
    n_bootstrap: int = 1000,
    seed: int = 0,
    drop_intermediate: bool = True,
    progress: bool = False,
) -> FrocResult:
    """Evaluate CAD marks against LUNA16 annotations: matching, FROC, the three CPMs and the bootstrap band.

    Frames hold world (x, y, z) mm coordinates (columns as in the LUNA16 CSVs); `seriesuids` is the scan set FPs
    per scan are divided by. `n_bootstrap` = 0 skips the bootstrap. See :mod:`lungnodule.evaluation` for the rules.
    """
    m = match_candidates(annotations, excluded, seriesuids, results, max_marks=max_marks)
    curve = Curve(*compute_froc(m.gt, m.prob, m.exclude, m.scans, drop_intermediate=drop_intermediate))
    full = curve if not drop_intermediate else Curve(*compute_froc(m.gt, m.prob, m.exclude, m.scans,
                                                                  drop_intermediate=False))
    lead = sensitivities_leaderboard(curve.fps, curve.sens)
    interp = sensitivities_interpolated(curve.fps, curve.sens)
    stable = sensitivities_stable(full.fps, full.sens)
    boot = None
    if n_bootstrap > 0 and m.scans > 0:
        boot = bootstrap_froc(m.gt, m.prob, m.exclude, m.sample_scan, m.scans, n_bootstrap=n_bootstrap, seed=seed,
                              drop_intermediate=drop_intermediate, progress=progress)
    return FrocResult(
        matching=m, curve=curve, full_curve=full, cpm=float(np.mean(lead)), cpm_interpolated=float(np.mean(interp)),
        cpm_stable=float(np.mean(stable)), sensitivities=dict(zip(FP_RATE_KEYS, map(float, lead))),
        sensitivities_interpolated=dict(zip(FP_RATE_KEYS, map(float, interp))),
        sensitivities_stable=dict(zip(FP_RATE_KEYS, map(float, stable))), max_marks=max_marks,
        drop_intermediate=drop_intermediate, n_bootstrap=n_bootstrap if boot is not None else 0, seed=seed,
        bootstrap=boot,
    )
