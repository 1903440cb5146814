"""LUNA16 evaluation: FROC, CPM and scan-level bootstrap, with the semantics of ``noduleCADEvaluationLUNA16.py``.

The challenge's script is reproduced rule for rule (world coordinates (x, y, z) in mm throughout):

- a CAD mark hits an annotation when its squared distance to the centre is strictly less than R^2, R = diameter/2,
  and a negative diameter means 10 mm (R = 5 mm);
- at most `max_marks` (100) marks per scan: when a scan has more, the threshold is its (max_marks+1)-th highest
  probability and only marks strictly above it are kept (ties can leave fewer);
- included nodules are matched first, in file order: a nodule scores the highest probability of its hits, its
  other hits are "double detections" (neither TP nor FP), and a mark inside two nodules counts for both;
  excluded findings then drop the still-unmatched marks that hit them ("ignored on excluded");
- every other mark is a false positive; a missed nodule stays in the sensitivity denominator (it is a positive
  with probability -1e9 flagged "exclude", so the curve tops out at detected/total);
- the FROC is ``sklearn.metrics.roc_curve`` over the non-excluded samples, FPs divided by the number of UIDs in
  the scan list (result rows for other UIDs are ignored, scans without results only add FNs), starting at (0, 0);
  a system without any FP gets fps = 0 everywhere;
- the bootstrap resamples scans with replacement, recomputes the FROC with the same number of scans, and reads
  each curve by linear interpolation on 10,000 FP rates from 0.125 to 8; mean and the sorted-index
  floor(0.025 n) / floor(0.975 n) values give the band.

Choices where the script leaves room, or where it fails:

- ``roc_curve`` is called with ``drop_intermediate=True``, its default since scikit-learn 0.17 (2015) and what
  the script and the organisers' 2025 leaderboard CPM calculator get by calling it without the argument. It
  removes collinear points, e.g. all inner points of a run of FPs between two TPs, so such a run keeps only its
  ends. Linear interpolation is unchanged, but the nearest-point (leaderboard) reading can change: a rate inside
  a run may now be nearest to the run's start, where the point just below it (same fps, lower sensitivity)
  comes first. On dense curves (888 scans x 100 marks) the leaderboard CPM moves by about 1e-3; on sparse
  hand-made curves it can move a lot. It stays a parameter (``drop_intermediate=False`` keeps every threshold).
- ``cpm`` is the leaderboard reading (the organisers' calculator): for each of 1/8, 1/4, 1/2, 1, 2, 4, 8 FPs per
  scan, the first curve point with the smallest |fps - rate|, taken only when that distance is strictly below the
  curve's largest fps (else 0; a system with no FP therefore scores 0). ``cpm_interpolated`` interpolates the
  curve linearly at the seven rates (flat beyond its end), as DeepLung-style scripts do.
- ``cpm_stable`` reads the seven rates on the *full* curve (every threshold kept, ties grouped): the sensitivity
  reached with at most that many FPs per scan (:func:`~lungnodule.evaluation.froc.sensitivities_stable`). On
  888 scans it agrees with the leaderboard reading; on the 8-16 scans of a held-out subset, where one FP moves the
  curve by 1/8 FP per scan, the leaderboard reading jumps and can score a perfect ranking 0. Every report gives
  both, and every choice made on validation uses the stable one.
- the bootstrap uses ``numpy.random.default_rng(seed)`` (the script used the unseeded global generator), and
  ``cpm_ci95`` / ``cpm_stable_ci95`` take the same sorted-index percentiles of the per-resample CPMs.
- where the script produces NaN (no detected nodule, or no nodules at all) the sensitivities are 0, as in the
  leaderboard calculator's guard; an empty sample set gives the single point (0, 0).
- the scan list must not repeat a UID (the script would count such a scan's nodules twice).

Vectorised: matching is one distance matrix per scan; each bootstrap resample is a vector of scan counts used as
sample weights on one global sort by probability (cumulative sums), so 888 scans x 100 marks x 1000 resamples
takes seconds.

Modules: :mod:`.matching` (marks to nodules), :mod:`.froc` (the curve and its CPM readings), :mod:`.bootstrap`
(scan-level and paired bootstrap), :mod:`.result` (:class:`FrocResult`, :func:`evaluate_cad`), :mod:`.coverage`
(candidate sensitivity, operating thresholds), :mod:`.report` (the official output files and command line),
:mod:`.roc` (candidate-level ROC). Matching is kept apart from the metrics, as MONAI does.
"""


from .bootstrap import Bootstrap, WeightedFroc, bootstrap_counts, bootstrap_froc, paired_cpm_bootstrap
from .coverage import label_candidates, nodule_hits, split_metrics, threshold_at_fps
from .froc import (CPM_AGREEMENT, FP_RATE_KEYS, FP_RATES, Curve, compute_froc, cpm_interpolated, cpm_leaderboard,
                   cpm_stable, curve_warnings, sensitivities_interpolated, sensitivities_leaderboard,
                   sensitivities_stable)
from .matching import MISSED_PROBABILITY, UNKNOWN_DIAMETER_MM, Matching, cap_marks, hit_pairs, match_candidates
from .report import evaluate_files, write_evaluation
from .result import CPM_READINGS, FrocResult, evaluate_cad
from .roc import candidate_auc, roc_auc

__all__ = [
    "Bootstrap", "CPM_AGREEMENT", "CPM_READINGS", "Curve", "FP_RATES", "FP_RATE_KEYS", "FrocResult", "Matching",
    "MISSED_PROBABILITY", "UNKNOWN_DIAMETER_MM", "WeightedFroc", "bootstrap_counts", "bootstrap_froc",
    "candidate_auc", "cap_marks", "compute_froc", "cpm_interpolated", "cpm_leaderboard", "cpm_stable",
    "curve_warnings", "evaluate_cad", "evaluate_files", "hit_pairs", "label_candidates", "match_candidates",
    "nodule_hits",
    "paired_cpm_bootstrap", "roc_auc", "sensitivities_interpolated", "sensitivities_leaderboard",
    "sensitivities_stable", "split_metrics", "threshold_at_fps", "write_evaluation",
]
