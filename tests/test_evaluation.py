"""Tests of the LUNA16 evaluator: the official script's edge cases, a loop re-implementation cross-check, the
bootstrap, CPM readings, real annotation files and the file-level outputs."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skl_metrics

from lungnodule import luna
from lungnodule.evaluation import (FP_RATE_KEYS, bootstrap_froc, cap_marks, compute_froc, evaluate_cad,
                                   evaluate_files, match_candidates, roc_auc, candidate_auc, sensitivities_interpolated,
                                   sensitivities_leaderboard)
from lungnodule.froc_plot import plot_froc, plot_roc

A, B, C = "1.2.3.1", "1.2.3.2", "1.2.3.3"


def ann(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"])


def res(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["seriesuid", "coordX", "coordY", "coordZ", "probability"])


NO_EXCLUDED = ann([])


def run(annotations, excluded, uids, results, **kw):
    kw.setdefault("n_bootstrap", 0)
    return evaluate_cad(annotations, excluded, uids, results, **kw)


# --- matching edge cases ------------------------------------------------------------------------------


def test_hit_exactly_at_radius_is_a_miss():
    nodule = ann([[A, 0.0, 0.0, 0.0, 8.0]])  # R = 4, R^2 = 16 exactly
    at_radius = run(nodule, NO_EXCLUDED, [A], res([[A, 4.0, 0.0, 0.0, 0.9]]))
    assert (at_radius.matching.true_positives, at_radius.matching.false_negatives, at_radius.matching.false_positives) == (0, 1, 1)
    inside = run(nodule, NO_EXCLUDED, [A], res([[A, 3.99, 0.0, 0.0, 0.9]]))
    assert (inside.matching.true_positives, inside.matching.false_negatives, inside.matching.false_positives) == (1, 0, 0)


@pytest.mark.parametrize("distance, hit", [(4.9, True), (5.0, False)])
def test_negative_diameter_means_10_mm(distance, hit):
    marks = res([[A, 10.0, 20.0 + distance, 30.0, 0.5]])
    on_excluded = run(NO_EXCLUDED, ann([[A, 10.0, 20.0, 30.0, -1.0]]), [A], marks)
    assert on_excluded.matching.ignored_on_excluded == int(hit)
    assert on_excluded.matching.false_positives == int(not hit)
    included = run(ann([[A, 10.0, 20.0, 30.0, -1.0]]), NO_EXCLUDED, [A], marks)
    assert included.matching.true_positives == int(hit)


def test_two_marks_on_one_nodule_are_one_tp_no_fp():
    r = run(ann([[A, 0, 0, 0, 10]]), NO_EXCLUDED, [A], res([[A, 1, 0, 0, 0.3], [A, 0, 1, 0, 0.8]]))
    assert (r.matching.true_positives, r.matching.false_positives, r.matching.double_detections) == (1, 0, 1)
    assert r.matching.nodule_table["probability"].tolist() == [0.8]  # the nodule scores its best hit
    assert r.matching.total_candidates == 2
    assert list(r.matching.mark_table["status"]) == ["nodule", "nodule"]


def test_mark_on_excluded_finding_is_ignored():
    r = run(ann([[A, 50, 50, 50, 6]]), ann([[A, 0, 0, 0, 4]]), [A], res([[A, 1, 0, 0, 0.9]]))
    assert (r.matching.true_positives, r.matching.false_positives, r.matching.ignored_on_excluded) == (0, 0, 1)
    assert r.matching.total_candidates == 1
    assert list(r.matching.mark_table["status"]) == ["excluded"]
    assert np.all(r.fps == 0)


def test_mark_on_included_and_excluded_is_a_tp():
    r = run(ann([[A, 0, 0, 0, 6]]), ann([[A, 1, 0, 0, -1]]), [A], res([[A, 0.5, 0, 0, 0.9]]))
    assert (r.matching.true_positives, r.matching.false_positives, r.matching.ignored_on_excluded) == (1, 0, 0)


def test_one_mark_in_two_overlapping_nodules_hits_both():
    r = run(ann([[A, 0, 0, 0, 6], [A, 2, 0, 0, 6]]), NO_EXCLUDED, [A], res([[A, 1, 0, 0, 0.7]]))
    assert (r.matching.true_positives, r.matching.false_negatives, r.matching.false_positives) == (2, 0, 0)
    assert r.matching.marks_on_two_nodules == 1
    assert r.matching.mark_table["nodules_hit"].tolist() == [2]


def test_cap_101_tied_marks_leave_fewer_than_100():
    tied = np.full(101, 0.5)
    assert cap_marks(tied, 100).sum() == 0  # threshold = 0.5, kept only if strictly greater
    mixed = np.r_[np.full(50, 0.9), np.full(51, 0.5)]
    assert cap_marks(mixed, 100).sum() == 50
    distinct = np.linspace(0.01, 0.99, 101)
    kept = cap_marks(distinct, 100)
    assert kept.sum() == 100 and not kept[0]  # the lowest one goes
    assert cap_marks(distinct[:100], 100).sum() == 100  # exactly 100: no cap
    assert cap_marks(tied, -1).sum() == 101  # no cap, as maxNumberOfCADMarks = -1

    marks = res([[A, 100.0 + i, 0, 0, 0.5] for i in range(101)])
    r = run(NO_EXCLUDED, NO_EXCLUDED, [A], marks)
    assert r.matching.total_candidates == 0 and r.matching.false_positives == 0
    assert (r.matching.mark_table["status"] == "capped").sum() == 101


def test_scan_without_marks_contributes_fns_and_counts_as_scan():
    nodules = ann([[A, 0, 0, 0, 6], [B, 0, 0, 0, 6], [B, 30, 0, 0, 6]])
    marks = res([[A, 0, 0, 0, 0.9], [A, 50, 0, 0, 0.8], [A, 60, 0, 0, 0.7]])
    r = run(nodules, NO_EXCLUDED, [A, B], marks)
    assert (r.matching.true_positives, r.matching.false_negatives, r.matching.false_positives, r.scans) == (1, 2, 2, 2)
    assert r.fps.max() == pytest.approx(1.0)  # 2 FPs over 2 scans
    assert r.sens.max() == pytest.approx(1 / 3)  # missed nodules stay in the denominator
    assert r.matching.exclude.sum() == 2 and np.all(r.matching.prob[r.matching.exclude] == -1e9)


def test_no_tp_gives_cpm_zero():
    r = run(ann([[A, 0, 0, 0, 6]]), NO_EXCLUDED, [A, B], res([[A, 40, 0, 0, 0.9], [B, 0, 0, 0, 0.3]]),
            n_bootstrap=20)
    assert r.matching.true_positives == 0
    assert r.cpm == 0 and r.cpm_interpolated == 0
    assert r.cpm_ci95 == (0.0, 0.0)
    assert np.all(r.sens == 0) and np.all(np.isfinite(r.sens))


def test_results_for_unlisted_uids_are_ignored():
    nodules = ann([[A, 0, 0, 0, 6], [C, 0, 0, 0, 6]])
    marks = res([[A, 0, 0, 0, 0.9], [A, 40, 0, 0, 0.5]])
    stray = res([[C, 0, 0, 0, 0.95], [C, 40, 0, 0, 0.99], ["9.9.9", 1, 2, 3, 0.7]])
    base = run(nodules, NO_EXCLUDED, [A, B], marks)
    more = run(nodules, NO_EXCLUDED, [A, B], pd.concat([stray, marks], ignore_index=True))
    assert np.array_equal(base.fps, more.fps) and np.array_equal(base.sens, more.sens)
    assert (more.matching.true_positives, more.matching.false_positives, more.nodules) == (1, 1, 1)
    assert set(more.matching.mark_table["seriesuid"]) == {A}


def test_duplicate_uid_in_scan_list_rejected():
    with pytest.raises(ValueError, match="listed twice"):
        run(NO_EXCLUDED, NO_EXCLUDED, [A, A], res([]))


# --- CPM readings -------------------------------------------------------------------------------------


def test_leaderboard_and_interpolated_readings_on_hand_made_curve():
    fps = np.array([0.0, 0.5, 1.0, 3.0])
    sens = np.array([0.0, 0.5, 0.7, 0.9])
    lead = sensitivities_leaderboard(fps, sens)
    # 0.125 and 0.25 are nearest to (0, 0) (0.25 is a tie: the first point wins); 2 ties between 1 and 3 -> 1;
    # 8 is 5 away from the nearest point, not < max(fps) = 3 -> 0.
    assert lead.tolist() == [0.0, 0.0, 0.5, 0.7, 0.7, 0.9, 0.0]
    assert lead.mean() == pytest.approx(2.8 / 7)
    interp = sensitivities_interpolated(fps, sens)
    assert interp == pytest.approx([0.125, 0.25, 0.5, 0.7, 0.8, 0.9, 0.9])
    # A curve whose largest FP rate is 4 gives 0 at 8 (distance 4 is not < 4), interpolation gives its top.
    fps4, sens4 = np.array([0.0, 1.0, 4.0]), np.array([0.0, 0.6, 0.8])
    assert sensitivities_leaderboard(fps4, sens4)[-1] == 0.0
    assert sensitivities_interpolated(fps4, sens4)[-1] == pytest.approx(0.8)


def test_no_false_positives_gives_leaderboard_cpm_zero():
    r = run(ann([[A, 0, 0, 0, 6], [A, 30, 0, 0, 6]]), NO_EXCLUDED, [A], res([[A, 0, 0, 0, 0.9]]))
    assert r.matching.false_positives == 0 and np.all(r.fps == 0)
    assert r.cpm == 0.0
    assert r.cpm_interpolated == pytest.approx(0.5)


def _diagonal_case():
    """One scan, four nodules each hit by one mark, each mark tied with one FP: a diagonal FROC."""
    probs = [0.9, 0.8, 0.7, 0.6]
    nodules = ann([[A, 100.0 * i, 0, 0, 6] for i in range(4)])
    marks = res([[A, 100.0 * i, 0, 0, p] for i, p in enumerate(probs)]
                + [[A, 100.0 * i, 500, 0, p] for i, p in enumerate(probs)])
    return nodules, marks


def test_drop_intermediate_changes_leaderboard_not_interpolation():
    nodules, marks = _diagonal_case()
    dropped = run(nodules, NO_EXCLUDED, [A], marks)
    full = run(nodules, NO_EXCLUDED, [A], marks, drop_intermediate=False)
    assert full.fps.tolist() == [0, 1, 2, 3, 4] and len(dropped.fps) == 3
    assert full.sensitivities["2"] == pytest.approx(0.5)
    assert dropped.sensitivities["2"] == pytest.approx(0.25)
    assert dropped.cpm != full.cpm
    assert dropped.cpm_interpolated == pytest.approx(full.cpm_interpolated)


# --- cross-check against a loop implementation of the official script --------------------------------


def _reference(annotations, excluded, uids, results, max_marks):
    """Plain-loop port of noduleCADEvaluationLUNA16.evaluateCAD (matching part) on row tuples."""
    cands = {}
    for uid in uids:
        marks = [r for r in results.itertuples(index=False) if r.seriesuid == uid]
        if max_marks > 0 and len(marks) > max_marks:
            probs = sorted((m.probability for m in marks), reverse=True)
            threshold = probs[max_marks]
            kept = []
            for m in marks:
                if len(kept) >= max_marks:
                    break
                if m.probability > threshold:
                    kept.append(m)
            marks = kept
        cands[uid] = dict(enumerate(marks))
    out = dict(tp=0, fp=0, fn=0, double=0, ignored=0, total=0, nodules=0)
    gt, prob, excl, scan = [], [], [], []
    for s, uid in enumerate(uids):
        candidates = cands[uid]
        out["total"] += len(candidates)
        remaining = dict(candidates)
        annots = [("Included", a) for a in annotations.itertuples(index=False) if a.seriesuid == uid]
        annots += [("Excluded", a) for a in excluded.itertuples(index=False) if a.seriesuid == uid]
        for state, a in annots:
            if state == "Included":
                out["nodules"] += 1
            diameter = a.diameter_mm if a.diameter_mm >= 0 else 10.0
            r2 = math.pow(diameter / 2.0, 2.0)
            matches = []
            for key, c in candidates.items():
                d2 = (math.pow(a.coordX - c.coordX, 2.0) + math.pow(a.coordY - c.coordY, 2.0)
                      + math.pow(a.coordZ - c.coordZ, 2.0))
                if d2 < r2:
                    if state == "Included":
                        matches.append(c)
                        remaining.pop(key, None)
                    elif key in remaining:
                        out["ignored"] += 1
                        del remaining[key]
            if len(matches) > 1:
                out["double"] += len(matches) - 1
            if state == "Included":
                if matches:
                    gt.append(1.0), prob.append(max(m.probability for m in matches)), excl.append(False)
                    out["tp"] += 1
                else:
                    gt.append(1.0), prob.append(-1e9), excl.append(True)
                    out["fn"] += 1
                scan.append(s)
        for c in remaining.values():
            out["fp"] += 1
            gt.append(0.0), prob.append(c.probability), excl.append(False), scan.append(s)
    return out, np.array(gt), np.array(prob), np.array(excl, bool), np.array(scan)


def _reference_froc(gt, prob, n_scans, excl, drop_intermediate=True):
    """The official computeFROC, line for line (NaN where it gives NaN)."""
    gt_local = [g for g, e in zip(gt, excl) if not e]
    prob_local = [p for p, e in zip(prob, excl) if not e]
    detected = sum(gt_local)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fpr, tpr, thr = skl_metrics.roc_curve(gt_local, prob_local, drop_intermediate=drop_intermediate)
    if sum(gt) == len(gt):
        fps = np.zeros(len(fpr))
    else:
        fps = fpr * (len(prob_local) - detected) / n_scans
    sens = (tpr * detected) / sum(gt)
    return fps, sens, thr


def _random_case(seed):
    rng = np.random.default_rng(seed)
    uids = [f"1.2.840.{seed}.{i}" for i in range(6)]
    inc, exc, marks = [], [], []
    for uid in uids + ["1.2.999"]:  # the last UID is not in the list
        centres = rng.integers(-20, 21, (rng.integers(0, 5), 3)).astype(float)
        for c in centres:
            inc.append([uid, *c, float(rng.choice([-1.0, 4.0, 6.0, 10.0, 16.0]))])
        ecentres = rng.integers(-20, 21, (rng.integers(0, 6), 3)).astype(float)
        for c in ecentres:
            exc.append([uid, *c, float(rng.choice([-1.0, -1.0, 2.0, 6.0]))])
        if rng.random() < 0.15:
            continue  # a scan without marks
        for c in np.concatenate([centres, ecentres]):
            for _ in range(rng.integers(0, 3)):  # integer offsets: some exactly on the radius
                marks.append([uid, *(c + rng.integers(-5, 6, 3)), float(np.round(rng.random(), 1))])
        for _ in range(rng.integers(0, 12)):
            marks.append([uid, *rng.integers(-25, 26, 3).astype(float), float(np.round(rng.random(), 1))])
    order = rng.permutation(len(marks))
    return ann(inc), ann(exc), uids, res([marks[i] for i in order])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("drop", [True, False])
def test_matches_loop_implementation(seed, drop):
    annotations, excluded, uids, results = _random_case(seed)
    max_marks = 6
    r = run(annotations, excluded, uids, results, max_marks=max_marks, drop_intermediate=drop)
    ref, gt, prob, excl, scan = _reference(annotations, excluded, uids, results, max_marks)
    got = dict(tp=r.matching.true_positives, fp=r.matching.false_positives, fn=r.matching.false_negatives, double=r.matching.double_detections,
               ignored=r.matching.ignored_on_excluded, total=r.matching.total_candidates, nodules=r.nodules)
    assert got == ref
    assert np.array_equal(r.matching.gt, gt) and np.array_equal(r.matching.prob, prob) and np.array_equal(r.matching.exclude, excl)
    assert np.array_equal(r.matching.sample_scan, scan)
    fps, sens, thr = _reference_froc(gt, prob, len(uids), excl, drop)
    assert np.array_equal(r.fps, fps) and np.array_equal(r.thresholds, thr)
    assert np.array_equal(r.sens, np.nan_to_num(sens, nan=0.0))


def test_cross_check_exercises_the_rules():
    """The random cases above must actually contain the situations they are meant to check."""
    totals = dict(double=0, ignored=0, capped=0, fn=0, on_radius=0, no_marks=0)
    for seed in range(8):
        annotations, excluded, uids, results = _random_case(seed)
        r = run(annotations, excluded, uids, results, max_marks=6)
        totals["double"] += r.matching.double_detections
        totals["ignored"] += r.matching.ignored_on_excluded
        totals["capped"] += int((r.matching.mark_table["status"] == "capped").sum())
        totals["fn"] += r.matching.false_negatives
        totals["no_marks"] += len(set(uids) - set(results["seriesuid"]))
        pairs = pd.concat([annotations, excluded]).merge(results, on="seriesuid")
        d2 = ((pairs[["coordX_x", "coordY_x", "coordZ_x"]].to_numpy()
               - pairs[["coordX_y", "coordY_y", "coordZ_y"]].to_numpy()) ** 2).sum(axis=1)
        diameter = pairs["diameter_mm"].where(pairs["diameter_mm"] >= 0, 10.0).to_numpy()
        totals["on_radius"] += int((d2 == (diameter / 2) ** 2).sum())
    assert all(v > 0 for v in totals.values()), totals


# --- bootstrap ----------------------------------------------------------------------------------------


def _reference_bootstrap(r, n_bootstrap, seed):
    """Official computeFROC_bootstrap with the same resamples (default_rng(seed) instead of np.random)."""
    draws = np.random.default_rng(seed).integers(0, r.scans, size=(n_bootstrap, r.scans))
    grid = np.linspace(0.125, 8, num=10000)
    curves = np.zeros((n_bootstrap, len(grid)), dtype="float32")
    cpms = []
    per_scan = {s: np.flatnonzero(r.matching.sample_scan == s) for s in range(r.scans)}
    for b in range(n_bootstrap):
        idx = np.concatenate([per_scan[s] for s in draws[b]])
        fps, sens, _ = _reference_froc(r.matching.gt[idx], r.matching.prob[idx], r.scans, r.matching.exclude[idx], r.drop_intermediate)
        sens = np.nan_to_num(sens, nan=0.0)
        curves[b] = np.interp(grid, fps, sens)
        fixed = []
        for target in [0.125, 0.25, 0.5, 1, 2, 4, 8]:  # the leaderboard calculator's getCPM loop
            best, value = max(fps), 0.0
            for f, s in zip(fps, sens):
                if abs(f - target) < best:
                    value, best = s, abs(f - target)
            fixed.append(value)
        cpms.append(np.mean(fixed))
    pz = (1.0 - 0.95) / 2.0
    lo_i, hi_i = math.floor(pz * n_bootstrap), math.floor((1.0 - pz) * n_bootstrap)
    sorted_curves = np.sort(curves, axis=0)
    cpms = np.sort(cpms)
    return (grid, curves.mean(axis=0, dtype=np.float64), sorted_curves[lo_i], sorted_curves[hi_i],
            (cpms[lo_i], cpms[hi_i]))


@pytest.mark.parametrize("seed", [0, 3])
def test_bootstrap_matches_official_resampling(seed):
    annotations, excluded, uids, results = _random_case(seed + 100)
    r = run(annotations, excluded, uids, results, max_marks=6, n_bootstrap=40, seed=seed)
    grid, mean, lo, hi, ci = _reference_bootstrap(r, 40, seed)
    assert np.array_equal(r.bootstrap.fps, grid)
    np.testing.assert_allclose(r.bootstrap.mean, mean, rtol=0, atol=1e-12)
    assert np.array_equal(r.bootstrap.lo, lo) and np.array_equal(r.bootstrap.hi, hi)
    assert r.cpm_ci95 == pytest.approx(ci, abs=1e-15)


def test_bootstrap_reproducible_for_a_seed():
    annotations, excluded, uids, results = _random_case(7)
    one = run(annotations, excluded, uids, results, n_bootstrap=50, seed=11)
    two = run(annotations, excluded, uids, results, n_bootstrap=50, seed=11)
    other = run(annotations, excluded, uids, results, n_bootstrap=50, seed=12)
    assert np.array_equal(one.bootstrap.cpms, two.bootstrap.cpms) and one.cpm_ci95 == two.cpm_ci95
    assert np.array_equal(one.bootstrap.lo, two.bootstrap.lo)
    assert not np.array_equal(one.bootstrap.cpms, other.bootstrap.cpms)
    assert one.cpm_ci95[0] <= one.cpm_ci95[1]


# --- real LUNA16 annotation files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def luna_files():
    folder = luna.package_annotation_dir()
    return (luna.read_annotations(folder / "annotations.csv"),
            luna.read_annotations(folder / "annotations_excluded.csv"),
            luna.read_seriesuids(folder / "seriesuids.csv"))


def test_real_annotations_centres_plus_far_false_positives(luna_files):
    annotations, excluded, uids = luna_files
    rng = np.random.default_rng(0)
    centres = res(annotations[["seriesuid", "coordX", "coordY", "coordZ"]].assign(probability=1.0).to_numpy())
    far = pd.DataFrame({"seriesuid": np.repeat(uids, 2), "coordX": 1e5 + np.arange(2 * len(uids)),
                        "coordY": 1e5, "coordZ": 1e5, "probability": rng.uniform(0.01, 0.99, 2 * len(uids))})
    results = pd.concat([far, centres], ignore_index=True)
    r = run(annotations, excluded, uids, results)
    # By hand: every nodule found by its own centre; other centres inside a nodule are double detections.
    double = 0
    for uid, group in annotations.groupby("seriesuid"):
        xyz = group[["coordX", "coordY", "coordZ"]].to_numpy()
        for centre, diameter in zip(xyz, group["diameter_mm"]):
            double += int((((xyz - centre) ** 2).sum(axis=1) < (diameter / 2) ** 2).sum()) - 1
    assert (r.nodules, r.detected, r.matching.false_negatives, r.scans) == (1186, 1186, 0, 888)
    assert r.matching.false_positives == 2 * 888 and r.matching.double_detections == double and r.matching.ignored_on_excluded == 0
    assert r.fps.max() == pytest.approx(2.0) and r.sens.max() == 1.0
    # With drop_intermediate (the default) the run of FPs at sensitivity 1 keeps only its ends: points (0, 0),
    # (0, 1), (2, 1). Rates 0.125..1 are nearest to fps 0, where (0, 0) comes first; 2 is exact; 4 and 8 are not
    # nearer than max(fps) = 2. Without it, the points at k/888 FPs per scan give 1 up to 2 FPs per scan.
    assert r.fps.tolist() == [0.0, 0.0, 2.0]
    assert r.sensitivities == {"0.125": 0, "0.25": 0, "0.5": 0, "1": 0, "2": 1, "4": 0, "8": 0}
    assert r.cpm == pytest.approx(1 / 7)
    assert r.cpm_interpolated == pytest.approx(1.0)
    full = run(annotations, excluded, uids, results, drop_intermediate=False)
    assert full.sensitivities == {"0.125": 1, "0.25": 1, "0.5": 1, "1": 1, "2": 1, "4": 0, "8": 0}
    assert full.cpm == pytest.approx(5 / 7)
    assert full.cpm_interpolated == pytest.approx(1.0)


def test_real_annotations_half_detected(luna_files):
    annotations, excluded, uids = luna_files
    found = annotations.iloc[::2]  # detected nodules, each by its own centre at probability 0.9
    results = res(found[["seriesuid", "coordX", "coordY", "coordZ"]].assign(probability=0.9).to_numpy())
    # one FP per scan at 0.5, far away: 1 FP/scan after all TPs
    results = pd.concat([results, res([[u, 1e5, 1e5, 1e5 + i, 0.5] for i, u in enumerate(uids)])],
                        ignore_index=True)
    r = run(annotations, excluded, uids, results, n_bootstrap=30)
    # Found marks can also fall inside an odd neighbour: count detected nodules by the definition.
    assert r.detected >= len(found) and r.matching.false_negatives == 1186 - r.detected
    top = r.detected / 1186
    assert r.sens.max() == pytest.approx(top)
    # Curve points (0, 0), (0, top), (1, top), max fps 1. 0.125, 0.25: (0, 0) and (0, top) are equally near and
    # the first wins; 0.5 is equally near 0 and 1: first again, (0, 0); 1: exact; 2, 4, 8: not nearer than 1.
    assert r.fps.tolist() == [0.0, 0.0, 1.0]
    expected = [0.0, 0.0, 0.0, top, 0.0, 0.0, 0.0]
    assert [r.sensitivities[k] for k in FP_RATE_KEYS] == pytest.approx(expected)
    assert r.cpm == pytest.approx(top / 7)
    assert r.cpm_interpolated == pytest.approx(top)
    assert r.cpm_ci95[0] <= r.cpm <= r.cpm_ci95[1] + 1e-12


# --- files and plots ----------------------------------------------------------------------------------


def test_evaluate_files_writes_official_outputs(tmp_path, capsys):
    (tmp_path / "seriesuids.csv").write_text(f"{A}\n{B}\n")
    ann([[A, 0, 0, 0, 6], [B, 0, 0, 0, 6], [B, 40, 0, 0, 8]]).to_csv(tmp_path / "annotations.csv", index=False)
    ann([[A, 30, 0, 0, -1]]).to_csv(tmp_path / "annotations_excluded.csv", index=False)
    res([[A, 0.5, 0, 0, 0.9], [A, 30, 1, 0, 0.8], [A, 90, 0, 0, 0.4], [B, 40, 0, 0, 0.6], [B, 90, 0, 0, 0.7],
         [C, 0, 0, 0, 0.99]]).to_csv(tmp_path / "my_cad.csv", index=False)
    out = tmp_path / "out"
    r = evaluate_files(tmp_path / "annotations.csv", tmp_path / "annotations_excluded.csv",
                       tmp_path / "seriesuids.csv", tmp_path / "my_cad.csv", out, n_bootstrap=25, seed=4)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["CADAnalysis.txt", "cpm.json", "froc_gt_prob_vectors_my_cad.csv", "froc_my_cad.png",
                     "froc_my_cad.txt", "froc_my_cad_bootstrapping.csv", "nodulesWithoutCandidate_my_cad.txt"]
    data = json.loads((out / "cpm.json").read_text())
    assert set(data) == {"cpm", "cpm_interpolated", "sensitivities", "cpm_ci95", "nodules", "detected", "scans",
                         "seed", "n_bootstrap", "cpm_stable", "cpm_stable_ci95", "sensitivities_stable",
                         "candidates", "warnings", "readings"}
    assert data["cpm_stable"] == pytest.approx(r.cpm_stable) and set(data["readings"]) == {"cpm", "cpm_stable"}
    assert list(data["sensitivities"]) == list(FP_RATE_KEYS)
    assert (data["nodules"], data["detected"], data["scans"], data["seed"]) == (3, 2, 2, 4)
    assert data["cpm"] == pytest.approx(r.cpm) and len(data["cpm_ci95"]) == 2
    analysis = (out / "CADAnalysis.txt").read_text()
    for line in ["CAD Analysis: my_cad", "True positives: 2", "False positives: 2", "False negatives: 1",
                 "Total number of candidates: 5", "Total number of nodules: 3",
                 "Ignored candidates on excluded nodules: 1", "Sensitivity: 0.666666667",
                 "Average number of candidates per scan: 2.500000000"]:
        assert line in analysis
    froc = np.loadtxt(out / "froc_my_cad.txt", delimiter=",")
    np.testing.assert_allclose(froc[:, :2], np.column_stack([r.fps, r.sens]), atol=1e-9)
    assert (out / "nodulesWithoutCandidate_my_cad.txt").read_text() == f"{B},1,0.0,0.0,0.0,6.000000000,-1\n"
    boot = pd.read_csv(out / "froc_my_cad_bootstrapping.csv")
    assert list(boot.columns) == ["FPrate", "Sensivity[Mean]", "Sensivity[Lower bound]", "Sensivity[Upper bound]"]
    assert len(boot) == 10000 and (boot.iloc[:, 2] <= boot.iloc[:, 3] + 1e-9).all()
    assert (out / "froc_my_cad.png").read_bytes()[:4] == b"\x89PNG"
    assert "CPM" in capsys.readouterr().out


def test_plots_and_roc_auc(tmp_path):
    nodules, marks = _diagonal_case()
    a = run(nodules, NO_EXCLUDED, [A], marks, n_bootstrap=10)
    b = run(nodules, NO_EXCLUDED, [A], marks.iloc[:5])
    plot_froc({"U-Net": a, "U-Net + MGI-CNN": b}, tmp_path / "both.png", title="two systems")
    assert (tmp_path / "both.png").stat().st_size > 1000
    fpr, tpr, thr, area = roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert area == pytest.approx(0.75) and fpr[0] == 0 and tpr[-1] == 1
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 1], [0.2, 0.3])
    assert candidate_auc(np.array([0, 0, 1, 1]), [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert np.isnan(candidate_auc(np.array([1, 1]), [0.2, 0.3]))  # one class: no AUC, no error
    plot_roc({"MGI-CNN": ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])}, tmp_path / "roc.png")
    assert (tmp_path / "roc.png").stat().st_size > 1000


def test_compute_froc_empty_and_all_positive():
    fps, sens, _ = compute_froc(np.array([1.0]), np.array([-1e9]), np.array([True]), 3)
    assert fps.tolist() == [0.0] and sens.tolist() == [0.0]
    fps, sens, _ = compute_froc(np.array([1.0, 1.0]), np.array([0.4, 0.8]), np.array([False, False]), 3)
    assert np.all(fps == 0) and sens.max() == 1.0


def test_bootstrap_froc_direct_call_shapes():
    annotations, excluded, uids, results = _random_case(5)
    m = match_candidates(annotations, excluded, uids, results)
    boot = bootstrap_froc(m.gt, m.prob, m.exclude, m.sample_scan, m.scans, n_bootstrap=20, seed=1)
    assert boot.mean.shape == boot.lo.shape == boot.hi.shape == (10000,)
    assert np.all(boot.lo <= boot.hi) and boot.cpms.shape == (20,)


def test_evaluate_files_bad_results_raise_data_error_and_write_nothing(tmp_path):
    from lungnodule.errors import DataError

    (tmp_path / "seriesuids.csv").write_text(f"{A}\n")
    ann([[A, 0, 0, 0, 6]]).to_csv(tmp_path / "annotations.csv", index=False)
    ann([]).to_csv(tmp_path / "excluded.csv", index=False)
    (tmp_path / "cad.csv").write_text(f"seriesuid,coordX,coordY,coordZ\n{A},0,0,0\n")  # no probability column
    out = tmp_path / "out"
    with pytest.raises(DataError, match="cad.csv.*probability"):
        evaluate_files(tmp_path / "annotations.csv", tmp_path / "excluded.csv", tmp_path / "seriesuids.csv",
                       tmp_path / "cad.csv", out, n_bootstrap=0)
    assert not out.exists() or not any(out.iterdir())


def test_hit_pairs_follow_the_luna16_rule():
    from lungnodule.evaluation import hit_pairs

    ann = pd.DataFrame({"seriesuid": ["a", "a", "b"], "coordX": [0.0, 50.0, 0.0], "coordY": [0.0, 0.0, 0.0],
                        "coordZ": [0.0, 0.0, 0.0], "diameter_mm": [6.0, -1.0, 6.0]})
    cands = pd.DataFrame({"seriesuid": ["a", "a", "a", "b", "c"], "coordX": [3.0, 2.9, 54.9, 10.0, 0.0],
                          "coordY": 0.0, "coordZ": 0.0})
    c, a = hit_pairs(cands, ann)
    # Exactly at the radius is a miss; a negative diameter counts as 10 mm; other series never hit.
    assert sorted(zip(c.tolist(), a.tolist())) == [(1, 0), (2, 1)]
    assert [len(x) for x in hit_pairs(cands.iloc[:0], ann)] == [0, 0]


# --- the stable CPM: hand-made curves on a few scans ---------------------------------------------------------


def _few_scans(nodule_scores, fp_scores, n_scans=8):
    """`len(nodule_scores)` nodules (one mark each, at its centre) and `len(fp_scores)` false marks, dealt round
    the scans in order; returns (annotations, uids, marks)."""
    uids = [f"1.2.9.{i}" for i in range(n_scans)]
    nod = ann([[uids[i % n_scans], 100.0 * i, 0, 0, 8] for i in range(len(nodule_scores))])
    marks = [[uids[i % n_scans], 100.0 * i, 0, 0, p] for i, p in enumerate(nodule_scores)]
    marks += [[uids[i % n_scans], 100.0 * i, 300, 0, p] for i, p in enumerate(fp_scores)]
    return nod, uids, res(marks)


def test_perfect_ranking_scores_stable_one_and_warns_about_the_leaderboard_reading():
    nod, uids, marks = _few_scans([0.9, 0.85, 0.8, 0.75], [0.3, 0.2, 0.1, 0.05] * 3)
    r = run(nod, NO_EXCLUDED, uids, marks, n_bootstrap=200)
    assert r.cpm_stable == 1.0  # every nodule found before the first false positive
    assert r.cpm < 0.5  # the nearest-point reading takes (0, 0) for the low rates
    lo, hi = r.cpm_stable_ci95
    assert lo <= r.cpm_stable <= hi
    text = " ".join(r.warnings())
    assert "vertical run at 0 false positives" in text and "differ by" in text and "8 scans, 16 candidates" in text


def test_plateau_keeps_every_point_for_the_stable_reading():
    # The case of issue "a score that cannot punish": 10 of 14 nodules found above every FP; roc_curve drops the
    # plateau's inner points, so the official curve is (0, 0), (0, .07), (0, .71), (fps_max, .71).
    nodules = [0.99 - 0.01 * i for i in range(10)]
    nod, uids, marks = _few_scans(nodules, [0.2 - 0.001 * i for i in range(65)], n_scans=16)
    nod = pd.concat([nod, ann([[uids[i], 5000.0 + i, 0, 0, 6] for i in range(4)])], ignore_index=True)  # missed
    r = run(nod, NO_EXCLUDED, uids, marks)
    assert len(r.fps) == 4 and len(r.full_curve.fps) == 76  # the official curve lost the plateau's inner points
    np.testing.assert_allclose(r.fps, [0, 0, 0, 65 / 16])
    np.testing.assert_allclose(r.sens, [0, 1 / 14, 10 / 14, 10 / 14])
    assert r.cpm_stable == pytest.approx(10 / 14)
    assert r.cpm == pytest.approx(2 / 7 * 10 / 14)  # only 4 and 8 FPs per scan are nearer the far end
    assert any("too coarse" in w for w in r.warnings())


def test_curve_stopping_short_of_8_fps():
    # 8 scans, 5 false positives: the curve ends at 0.625 FP per scan.
    nod, uids, marks = _few_scans([0.9, 0.6, 0.3], [0.8, 0.5, 0.2, 0.1, 0.05])
    r = run(nod, NO_EXCLUDED, uids, marks)
    assert r.full_curve.fps.max() == pytest.approx(5 / 8)
    assert [r.sensitivities[k] for k in ("2", "4", "8")] == [0.0, 0.0, 0.0]  # the leaderboard counts 0 there
    assert [r.sensitivities_stable[k] for k in ("2", "4", "8")] == [1.0, 1.0, 1.0]  # the stable reading holds
    # One FP (1/8 per scan) is allowed at 0.125: the hit right after it counts, the next FP's does not.
    assert r.sensitivities_stable["0.125"] == pytest.approx(2 / 3)
    assert any("stops at 0.625" in w and "2, 4, 8" in w for w in r.warnings())


def test_stable_reading_on_a_hand_made_staircase():
    from lungnodule.evaluation import sensitivities_stable

    # Vertical run at 0 (two hits), one FP, a tied group of one hit and one FP, then FPs.
    fps = np.array([0.0, 0.0, 0.0, 0.125, 0.25, 0.375, 1.0])
    sens = np.array([0.0, 0.25, 0.5, 0.5, 0.75, 0.75, 0.75])
    got = sensitivities_stable(fps, sens, rates=[0.0, 0.1, 0.125, 0.1875, 0.25, 2.0])
    assert got == pytest.approx([0.5, 0.5, 0.5, 0.625, 0.75, 0.75])


def test_selection_uses_the_stable_cpm():
    from lungnodule.mgicnn.fusion import choose_weight

    # The MGI-CNN ranks every nodule above every false positive; the U-Net puts two FPs between its hits.
    nod, uids, marks = _few_scans([0.9, 0.9, 0.9, 0.9], [0.1] * 16)
    unet = marks["probability"].to_numpy().copy()
    unet[:4] = [0.9, 0.9, 0.7, 0.7]
    unet[4:6] = 0.8
    cands = marks.assign(unet_probability=unet, **{"class": [1] * 4 + [0] * 16})
    out = choose_weight(cands, marks["probability"].to_numpy(), (0.0, 1.0), nod, None, uids)
    by_weight = {r["weight"]: r for r in out["table"]}
    assert by_weight[1.0]["cpm"] > by_weight[0.0]["cpm"]  # the leaderboard reading would keep the U-Net alone
    assert by_weight[0.0]["cpm_stable"] > by_weight[1.0]["cpm_stable"]
    assert out["weight"] == 0.0  # the stable reading keeps the better second stage
    loo = out["leave_one_out"]
    assert loo["nodules"] == 4 and loo["stable"]["full_choice"] == 0.0 and loo["leaderboard"]["full_choice"] == 1.0
