"""`lungnodule demo`: every stage on the synthetic dataset, with figures in Results/ and a summary.

Steps, in order: generate the synthetic LUNA16-format dataset (demo preset, 5 subsets: train 0-2,
validation 3, test 4); evaluate a baseline (the dataset's LUNA16-style candidates scored at random);
stage 1, the U-Net (preprocess, train, candidates on every subset, threshold chosen on validation);
stage 2, the MGI-CNN on the U-Net's candidates (epoch and threshold chosen on validation); stage 3,
CT-GAN (train injector and remover, tamper the test scans) and how the trained two-stage detector
sees the tampered scans. Each step's wall time and metrics go into `Results/summary.md`.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from .atomic import write_text

# Subsets of the generated dataset per preset: train on the first ones, validate on the next, test on the last.
SUBSETS = {"demo": 5, "tiny": 3}
STEPS = ("synth", "baseline", "unet", "mgicnn", "ctgan")


def baseline_random(data_root: str | Path, out_dir: str | Path, test_subset: int, seed: int) -> dict:
    """Score the test subset's LUNA16-style candidates (`candidates_V2.csv`) uniformly at random.

    A floor for every later stage: the CPM of a detector that proposes the dataset's candidates and
    knows nothing about them. Writes the results CSV and the evaluator's outputs to `out_dir`.
    """
    from .evaluation import evaluate_cad, write_evaluation
    from .luna import LunaDataset, write_results

    ds = LunaDataset(data_root)
    uids = ds.uids_in([test_subset])
    cands = ds.candidates[ds.candidates.seriesuid.isin(uids)]
    rng = np.random.default_rng(seed)
    results = cands[["seriesuid", "coordX", "coordY", "coordZ"]].assign(probability=rng.random(len(cands)))
    out_dir = Path(out_dir)
    write_results(out_dir / "baseline_random.csv", results)
    res = evaluate_cad(ds.annotations, ds.excluded, uids, results, seed=seed)
    write_evaluation(res, out_dir, name="baseline_random")
    return {"cpm": res.cpm, "cpm_ci95": list(res.cpm_ci95), "scans": len(uids),
            "candidates_per_scan": len(results) / max(len(uids), 1),
            "nodules": res.nodules, "detected": res.detected}


def ctgan_step(data_root: str | Path, work_dir: Path, results_dir: Path, seed: int, preset: str = "demo") -> dict:
    """Train CT-GAN, tamper the test subset, and, when the two-stage detector is trained, run it on the
    tampered and clean scans (evaluation (a): are injected nodules found, are removed ones missed)."""
    from .ctgan.testing import detection_rates, run_demo_stage as ctgan_stage
    from .detect import detect_volume, load_detector
    from .errors import ModelMissingError

    out = ctgan_stage(data_root, work_dir / "ctgan", results_dir, seed, preset)
    try:
        detector = load_detector(work_dir / "unet", work_dir / "mgicnn")
    except ModelMissingError as exc:
        print(f"CT-GAN detection rates skipped: {exc}")
        return out
    out["detection"] = detection_rates(lambda volume: detect_volume(detector, volume), work_dir / "ctgan",
                                       detector.threshold, data_root, progress=False)
    return out


def _fmt_ci(m: dict) -> str:
    lo, hi = m["cpm_ci95"]
    return f"{m['cpm']:.3f} [{lo:.3f}, {hi:.3f}]"


def write_summary(path: Path, info: dict, metrics: dict, timings: dict, ctgan: dict | None = None) -> None:
    """Write `summary.md`: what data, the metrics table and each step's wall time."""
    lines = ["# Demo summary", "",
             f"Data: {info['data']}", "",
             f"Machine: {info['machine']}; Keras backend {info['backend']}; seed {info['seed']}.", "",
             "## Metrics (held-out test subset)", "",
             "| system | candidates / scan | candidate sensitivity | AUC | CPM [95% CI] |",
             "|---|---|---|---|---|"]
    for name, m in metrics.items():
        cps = f"{m['candidates_per_scan']:.1f}" if "candidates_per_scan" in m else "-"
        sens = f"{m['candidate_sensitivity']:.3f}" if "candidate_sensitivity" in m else "-"
        auc = f"{m['auc']:.3f}" if "auc" in m else "-"
        lines.append(f"| {name} | {cps} | {sens} | {auc} | {_fmt_ci(m)} |")
    w = metrics.get("U-Net + MGI-CNN", {}).get("fusion_weight", 0.0)
    if w > 0:
        lines += ["", f"U-Net + MGI-CNN scores each candidate by sigmoid({1 - w:g} logit(MGI-CNN) + {w:g} "
                      "logit(U-Net)), the U-Net weight chosen by validation CPM."]
    lines += ["", "CPM: mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4, 8 false positives per scan, read off the FROC "
              "curve as the LUNA16 leaderboard does; 95% CI from 1000 scan-level bootstrap resamples.", "",
              "## Time per step", "", "| step | wall time (s) |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    lines += [f"| total | {sum(timings.values()):.1f} |", ""]
    if ctgan:
        lines[lines.index("## Time per step"):lines.index("## Time per step")] = _ctgan_lines(ctgan)
    write_text(path, "\n".join(lines))


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _ctgan_lines(ctgan: dict) -> list[str]:
    """The CT-GAN section of summary.md: HU at the tampered sites and what the detector sees there."""
    m, d = ctgan["metrics"], ctgan.get("detection", {})
    lines = ["## CT-GAN tampering (held-out test subset)", "",
             "| GAN | sites | mean HU within 5 mm, before -> after | s / site | detector finds the site, clean -> tampered |",
             "|---|---|---|---|---|"]
    rates = {"inject": (d.get("clean_inject_sites_detected"), d.get("injected_detected")),
             "remove": (d.get("clean_nodules_detected"), d.get("removed_still_detected"))}
    for mode in ("inject", "remove"):
        t = m[mode]
        before, after = rates[mode]
        lines.append(f"| {mode} | {t['test_sites']} | {t['test_mean_hu_before']:.0f} -> {t['test_mean_hu_after']:.0f} | "
                     f"{t['test_seconds_per_site']:.2f} | {_pct(before)} -> {_pct(after)} |")
    if d:
        lines += ["", f"Detector: the demo's U-Net + MGI-CNN at its validation-chosen threshold "
                      f"{d['threshold']:.3f}; a site is found when a finding lies within its radius."]
    return lines + [""]


def run_demo(data_root: str | Path = "data/synthetic", work_dir: str | Path = "data/work",
             results_dir: str | Path = "Results", n_scans: int = 40, seed: int = 0,
             stages: list[str] | None = None, preset: str = "demo") -> dict:
    """Run the demo steps (all, or those named in `stages`) and write `results_dir/summary.md`.

    `preset` names the synthetic-data and stage presets: "demo" (the default, minutes on a CPU) or
    "tiny" (seconds, for tests). Returns {"metrics": ..., "timings": ..., "ctgan": ...}. The dataset is
    generated once and reused when it is already complete with the same arguments.
    """
    import keras

    from .mgicnn.config import PRESETS as MGI_PRESETS
    from .synth import generate_dataset

    if preset not in SUBSETS:
        raise ValueError(f"unknown demo preset {preset!r}; presets are {', '.join(SUBSETS)}")
    n_subsets = SUBSETS[preset]
    test_subset, val_subset = n_subsets - 1, n_subsets - 2

    data_root, work_dir, results_dir = Path(data_root), Path(work_dir), Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    unknown = set(stages or ()) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown demo step(s) {sorted(unknown)}; steps are {', '.join(STEPS)}")
    todo = [s for s in STEPS if stages is None or s in stages]
    timings: dict[str, float] = {}
    metrics: dict[str, dict] = {}
    ctgan: dict | None = None
    for step in todo:
        print(f"\n=== demo step: {step} ===", flush=True)
        t0 = time.perf_counter()
        if step == "synth":
            generate_dataset(data_root, n_scans=n_scans, seed=seed, preset=preset, n_subsets=n_subsets)
        elif step == "baseline":
            metrics["LUNA16-style candidates, random scores"] = baseline_random(
                data_root, work_dir / "baseline", test_subset, seed)
        elif step == "unet":
            from .unet.evaluate import run_demo_stage as unet_stage

            out = unet_stage(data_root, work_dir, results_dir, seed, preset)
            metrics["U-Net candidates (U-Net probability)"] = out
        elif step == "mgicnn":
            from .mgicnn.evaluate import run_demo_stage as mgicnn_stage

            # The demo always scores stage 1's candidates, whatever the preset's own sources, and lets
            # validation choose how much of the U-Net's score to fuse in (the demo preset's weight grid).
            mgi_config = MGI_PRESETS[preset].replace(train_sources=("candidates", "unet"), eval_source="unet",
                                                     fusion_weights=MGI_PRESETS["demo"].fusion_weights)
            out = mgicnn_stage(data_root, work_dir, results_dir, seed, mgi_config)
            metrics["U-Net candidates (U-Net probability)"] = {
                **metrics.get("U-Net candidates (U-Net probability)", {}), **out["unet"]}
            if "mgicnn_alone" in out:
                metrics["MGI-CNN score alone (U-Net candidates)"] = {
                    **out["mgicnn_alone"], **{k: out["mgicnn"][k] for k in ("candidates_per_scan",
                                                                             "candidate_sensitivity")}}
            metrics["U-Net + MGI-CNN"] = out["mgicnn"]
        elif step == "ctgan":
            ctgan = ctgan_step(data_root, work_dir, results_dir, seed, preset)
        timings[step] = time.perf_counter() - t0
    info = {
        "data": f"synthetic LUNA16-format dataset `{data_root}` (`lungnodule synth --preset {preset} --scans {n_scans} "
                f"--seed {seed} --subsets {n_subsets}`); train subsets 0-{val_subset - 1}, validation subset "
                f"{val_subset}, test subset {test_subset}; stage presets `{preset}`",
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
        "backend": keras.backend.backend(),
        "seed": seed,
    }
    write_summary(results_dir / "summary.md", info, metrics, timings, ctgan)
    write_text(work_dir / "demo_metrics.json", json.dumps({"info": info, "metrics": metrics, "timings": timings,
                                                           "ctgan": ctgan}, indent=2, default=float))
    print(f"\nsummary: {results_dir / 'summary.md'}")
    return {"metrics": metrics, "timings": timings, "ctgan": ctgan}
