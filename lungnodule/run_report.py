"""The report of a pipeline run: `summary.md` (tables for people), the metrics table on the console, and the
comparison of two runs' `metrics.json` (what a reproduction check reads).

Everything comes from the run's `metrics.json` content (:func:`lungnodule.pipeline.run`): what data and
folds, the versions and seed, each system's candidate coverage, AUC and both CPMs with their 95% CIs, the
paired difference between the fused detector and stage 1 alone, how the fusion weight was chosen and how
stable that choice is, the CT-GAN rates, the warnings of every CPM that may mislead, and the wall time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .atomic import write_text
from .provenance import describe

SYSTEMS = (("baseline_random", "LUNA16-style candidates, random scores"),
           ("unet", "U-Net candidates (U-Net probability)"),
           ("mgicnn_alone", "MGI-CNN score alone (U-Net candidates)"),
           ("fused", "U-Net + MGI-CNN (fused score)"),
           ("fp_reduction_track", "MGI-CNN on the dataset's candidates (FP-reduction track)"))


def _ci(m: dict, key: str) -> str:
    ci = m.get(f"{key}_ci95")
    return f"{m[key]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _num(m: dict, key: str, fmt: str) -> str:
    v = m.get(key)
    return "-" if v is None or v != v else format(v, fmt)


def metrics_rows(report: dict) -> list[tuple[str, dict]]:
    """(label, metrics) of each system the run evaluated, in report order."""
    return [(label, report[key]) for key, label in SYSTEMS if report.get(key)]


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _delta(d: dict) -> str:
    return (f"stable CPM {d['delta_stable']:+.3f}, paired 95% CI [{d['ci95_stable'][0]:+.3f}, "
            f"{d['ci95_stable'][1]:+.3f}]; leaderboard CPM {d['delta']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]")


def summary_lines(report: dict) -> list[str]:
    """The lines of `summary.md`."""
    folds = report.get("folds", {})
    data = report.get("data") or {}
    where = data.get("command") or f"the LUNA16-layout dataset at `{report['data_root']}`"
    lines = [f"# Run summary: preset `{report['preset']}`", "",
             f"Data: {where}. Folds: train subsets {folds.get('train')}, validation {folds.get('val')}, "
             f"held-out test {folds.get('test')}: {report.get('heldout_scans')} scans, "
             f"{report.get('heldout_nodules')} nodules.", "",
             f"Ran on: {describe(report['run'])}.", "",
             "## Metrics (held-out test subsets)", "",
             "| system | candidates / scan | candidate sensitivity | AUC | stable CPM [95% CI] | "
             "leaderboard CPM [95% CI] |", "|---|---|---|---|---|---|"]
    notes = []
    for label, m in metrics_rows(report):
        lines.append(f"| {label} | {_num(m, 'candidates_per_scan', '.1f')} | "
                     f"{_num(m, 'candidate_sensitivity', '.3f')} | {_num(m, 'auc', '.3f')} | "
                     f"{_ci(m, 'cpm_stable')} | {_ci(m, 'cpm')} |")
        notes += [f"- {label}: {w}" for w in m.get("warnings", [])]
    if report.get("fused_minus_unet"):
        lines += ["", f"Fused minus U-Net alone (same candidates, same scans): {_delta(report['fused_minus_unet'])}. "
                      "A difference is shown only when its CI excludes 0."]
    fusion = report.get("fusion")
    if fusion:
        loo = fusion.get("leave_one_out", {})
        w = fusion["weight"]
        lines += ["", f"Fusion: sigmoid({1 - w:g} logit(MGI-CNN) + {w:g} logit(U-Net)), the U-Net weight chosen by "
                      f"the validation stable CPM ({fusion['cpm_stable']:.3f})."]
        if loo:
            st, lb = loo["stable"], loo["leaderboard"]
            lines.append(f"With each of the {loo['nodules']} validation nodules left out in turn, the stable CPM "
                         f"chose the same weight {st['same_choice']} times (weights {st['distinct']}); the "
                         f"leaderboard reading would have chosen {lb['full_choice']:g} and changed its mind "
                         f"{loo['nodules'] - lb['same_choice']} times (weights {lb['distinct']}).")
    lines += ["", "CPM: mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4, 8 false positives per scan. Leaderboard CPM: read "
              "off the official FROC curve as the LUNA16 site does (comparable with published numbers). Stable CPM: "
              "read on the full curve, every threshold kept (the sensitivity reached with at most that many false "
              "positives per scan); every choice made on validation uses it. 95% CIs from 1000 scan-level "
              "bootstrap resamples."]
    if notes:
        lines += ["", "Where a CPM may mislead:", "", *notes]
    ctgan = report.get("ctgan")
    if ctgan:
        m, d = ctgan["metrics"], ctgan.get("detection", {})
        lines += ["", "## CT-GAN tampering (held-out test subsets)", "",
                  "| GAN | sites | mean HU within 5 mm, before -> after | s / site | detector finds the site, "
                  "clean -> tampered |", "|---|---|---|---|---|"]
        rates = {"inject": (d.get("clean_inject_sites_detected"), d.get("injected_detected")),
                 "remove": (d.get("clean_nodules_detected"), d.get("removed_still_detected"))}
        for mode in ("inject", "remove"):
            t = m[mode]
            before, after = rates[mode]
            hu = (f"{t['test_mean_hu_before']:.0f} -> {t['test_mean_hu_after']:.0f}"
                  if t.get("test_mean_hu_before") is not None else "-")
            secs = _num(t, "test_seconds_per_site", ".2f")
            lines.append(f"| {mode} | {t.get('test_sites')} | {hu} | {secs} | {_pct(before)} -> {_pct(after)} |")
        if d:
            lines += ["", f"Detector: U-Net + MGI-CNN at its validation-chosen threshold {d['threshold']:.3f}; a site "
                          "is found when a finding lies within its radius."]
    timings = report.get("timings", {})
    lines += ["", "## Time per step", "", "| step | wall time (s) |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    lines += [f"| total | {report['wall_time_s']:.1f} ({report['wall_time_s'] / 60:.1f} min) |", ""]
    return lines


def write_summary(path: str | Path, report: dict) -> None:
    """Write `summary.md` (atomically)."""
    write_text(path, "\n".join(summary_lines(report)))


def print_summary(report: dict, results_dir: str | Path) -> None:
    """The metrics table on the console at the end of a run, and where the report is."""
    print(f"\nHeld-out test subsets {report.get('folds', {}).get('test')}: {report.get('heldout_scans')} scans, "
          f"{report.get('heldout_nodules')} nodules")
    width = max((len(label) for label, _ in metrics_rows(report)), default=10)
    print(f"{'system':<{width}}  cand/scan  sens   stable CPM [95% CI]     leaderboard CPM [95% CI]")
    for label, m in metrics_rows(report):
        print(f"{label:<{width}}  {_num(m, 'candidates_per_scan', '9.1f')}  {_num(m, 'candidate_sensitivity', '.3f')}"
              f"  {_ci(m, 'cpm_stable'):<22}  {_ci(m, 'cpm')}")
    if report.get("fused_minus_unet"):
        print(f"fused - U-Net: {_delta(report['fused_minus_unet'])}")
    d = (report.get("ctgan") or {}).get("detection")
    if d:
        print(f"CT-GAN: injected sites found {_pct(d.get('injected_detected'))}; removed nodules still found "
              f"{_pct(d.get('removed_still_detected'))}")
    print(f"wall time {report['wall_time_s'] / 60:.1f} min; summary: {Path(results_dir) / 'summary.md'}, "
          f"metrics: {Path(results_dir) / 'metrics.json'}", file=sys.stdout, flush=True)


# What may differ between two runs of the same commit, seed and machine: times, paths, versions, model files.
NOT_COMPARED = frozenset({
    "timings", "wall_time_s", "data_root", "run", "data", "details", "froc_dir", "path", "figure", "froc_figure",
    "roc_figure", "model", "tampered_root", "figures", "seconds", "patches_per_second",
    "preprocess_patches_per_second", "test_seconds_per_site", "best_model", "last_model", "history"})


def comparable_metrics(report: dict) -> dict:
    """`report` (a run's metrics.json content) without the keys of :data:`NOT_COMPARED` or any key naming
    seconds, at any depth: what must be identical between two runs of the same commit, seed and machine."""

    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if k not in NOT_COMPARED and "seconds" not in k}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return clean(json.loads(json.dumps(report, default=str)))


def metric_differences(first: dict, second: dict) -> list[str]:
    """Each difference between two runs' comparable metrics (:func:`comparable_metrics`) as one line
    ``path: first != second`` (or ``path: only in first``); empty when the runs agree to the last digit."""
    out: list[str] = []

    def walk(a, b, where: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                if k not in b or k not in a:
                    out.append(f"{where}/{k}: only in {'first' if k in a else 'second'}")
                else:
                    walk(a[k], b[k], f"{where}/{k}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{where}[{i}]")
        elif a != b and not (a != a and b != b):  # NaN on both sides agrees
            out.append(f"{where}: {a!r} != {b!r}")

    walk(comparable_metrics(first), comparable_metrics(second), "")
    return out
