"""`lungnodule demo`: every stage on the synthetic dataset, with figures in Results/ and a summary.

Steps, in order: generate the synthetic LUNA16-format dataset (demo preset, 5 subsets: train 0-2,
validation 3, test 4), evaluate a baseline (the dataset's LUNA16-style candidates scored at random),
then the stages. Each step's wall time and metrics go into `Results/summary.md`.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from .atomic import write_text

DEMO_SUBSETS = 5
TEST_SUBSET = 4
VAL_SUBSET = 3
STEPS = ("synth", "baseline")


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


def _fmt_ci(m: dict) -> str:
    lo, hi = m["cpm_ci95"]
    return f"{m['cpm']:.3f} [{lo:.3f}, {hi:.3f}]"


def write_summary(path: Path, info: dict, metrics: dict, timings: dict) -> None:
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
    lines += ["", "CPM: mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4, 8 false positives per scan, read off the FROC "
              "curve as the LUNA16 leaderboard does; 95% CI from 1000 scan-level bootstrap resamples.", "",
              "## Time per step", "", "| step | wall time (s) |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()]
    lines += [f"| total | {sum(timings.values()):.1f} |", ""]
    write_text(path, "\n".join(lines))


def run_demo(data_root: str | Path = "data/synthetic", work_dir: str | Path = "data/work",
             results_dir: str | Path = "Results", n_scans: int = 40, seed: int = 0,
             stages: list[str] | None = None) -> dict:
    """Run the demo steps (all, or those named in `stages`) and write `results_dir/summary.md`.

    Returns {"metrics": ..., "timings": ...}. The dataset is generated once and reused when it is
    already complete with the same arguments.
    """
    import keras

    from .synth import generate_dataset

    data_root, work_dir, results_dir = Path(data_root), Path(work_dir), Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    unknown = set(stages or ()) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown demo step(s) {sorted(unknown)}; steps are {', '.join(STEPS)}")
    todo = [s for s in STEPS if stages is None or s in stages]
    timings: dict[str, float] = {}
    metrics: dict[str, dict] = {}
    for step in todo:
        print(f"\n=== demo step: {step} ===", flush=True)
        t0 = time.perf_counter()
        if step == "synth":
            generate_dataset(data_root, n_scans=n_scans, seed=seed, preset="demo", n_subsets=DEMO_SUBSETS)
        elif step == "baseline":
            metrics["LUNA16-style candidates, random scores"] = baseline_random(
                data_root, work_dir / "baseline", TEST_SUBSET, seed)
        timings[step] = time.perf_counter() - t0
    info = {
        "data": f"synthetic LUNA16-format dataset `{data_root}` (`lungnodule synth --preset demo --scans {n_scans} "
                f"--seed {seed} --subsets {DEMO_SUBSETS}`); train subsets 0-2, validation subset {VAL_SUBSET}, "
                f"test subset {TEST_SUBSET}",
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
        "backend": keras.backend.backend(),
        "seed": seed,
    }
    write_summary(results_dir / "summary.md", info, metrics, timings)
    write_text(work_dir / "demo_metrics.json", json.dumps({"info": info, "metrics": metrics, "timings": timings},
                                                           indent=2))
    print(f"\nsummary: {results_dir / 'summary.md'}")
    return {"metrics": metrics, "timings": timings}
