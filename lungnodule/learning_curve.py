"""Held-out CPM against training budget and training data: where the detector is heading with more of either.

A point of the curve is the whole two-stage chain of a run preset (U-Net, its candidates, the MGI-CNN, the
fusion weight chosen on validation) trained from scratch with both networks' epochs scaled by a fraction of
the preset's (1/4, 1/2, 1, 2 ...; steps per epoch, data, folds and seed unchanged), and scored on the run's
held-out test subsets with the same scan-bootstrap CIs as the run itself. The point at fraction 1 is the run
(`lungnodule demo`) itself when its work folder holds models trained with the same configs, so the curve
costs only the other points. Each point is kept in ``<work_dir>/learning_curve/budget_<f>/point.json`` and a
rerun skips the finished ones. Nothing is chosen on the test subsets: each point selects its epoch, operating
point and fusion weight on validation exactly as the run does.

The curve against training data (:func:`data_curve`) keeps the preset's epochs and steps and trains the chain
on the first k of the run's training subsets (k = 1, 2, ... all): each point reads a LUNA16-layout root of
links to those subsets, the validation and test subsets and the dataset's CSVs
(:func:`training_subset_root`), so validation, test and every stage are unchanged; its x axis is the
number of annotated nodules in the training subsets kept. Its points live in
``<work_dir>/learning_curve/train_<k>of<n>/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import save_figure, write_text

# The systems of a point: the key in the run's metrics, and the label drawn.
SYSTEMS = {"unet": "U-Net alone", "mgicnn_alone": "MGI-CNN alone (stage-1 candidates)",
           "fused": "U-Net + MGI-CNN, fused", "fp_reduction_track": "MGI-CNN, FP-reduction track"}
_KEEP = ("cpm", "cpm_ci95", "cpm_stable", "cpm_stable_ci95", "candidate_sensitivity", "candidates_per_scan",
         "nodules", "scans")


def scaled_epochs(epochs: int, fraction: float) -> int:
    """`epochs` times `fraction`, rounded half up, at least 1."""
    if fraction <= 0:
        raise ValueError(f"a training budget must be a positive fraction of the preset's, got {fraction}")
    return max(1, int(np.floor(epochs * fraction + 0.5)))


def _systems(metrics: dict) -> dict:
    """The figures of each system kept for the curve, from a run's metrics or a point's."""
    out = {}
    for key in SYSTEMS:
        m = metrics.get(key)
        if m:
            out[key] = {k: m[k] for k in _KEEP if k in m and not isinstance(m[k], str)}
    return out


def _as_json(value) -> object:
    return json.loads(json.dumps(value, default=str))


def _trained_configs(work_dir: Path) -> tuple[dict | None, dict | None]:
    """The U-Net and MGI-CNN configs recorded by the models trained under `work_dir` (None where absent)."""
    unet = work_dir / "unet" / "train.json"
    folds = sorted((work_dir / "mgicnn").glob("fold*/train.json"))
    read = lambda p: json.loads(p.read_text()).get("config")  # noqa: E731
    return (read(unet) if unet.is_file() else None), (read(folds[0]) if len(folds) == 1 else None)


def _run_point(results_dir: Path, work_dir: Path, report: dict, unet_cfg, mgi_cfg) -> dict | None:
    """The fraction-1 point from the run in `work_dir` / `results_dir`, when its metrics.json has the same preset,
    seed and folds and its models were trained with these very configs; None otherwise."""
    try:
        run = json.loads((results_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    same = (run.get("preset") == report["preset"] and run.get("seed") == report["seed"]
            and run.get("folds") == report["folds"] and run.get("fused"))
    unet, mgi = _trained_configs(work_dir)
    if not same or unet != _as_json(unet_cfg.to_dict()) or mgi != _as_json(mgi_cfg.to_dict()):
        return None
    return {"systems": _systems(run), "fused_minus_unet": run.get("fused_minus_unet"),
            "fusion_weight": (run.get("fusion") or {}).get("weight"), "source": "run",
            "commit": run.get("run", {}).get("commit"), "wall_time_s": None}


def _run_setup(preset: str, data_root, work_dir, results_dir, test_subsets, val_subset):
    """The run preset, its paths (the preset's where not given), its dataset and its folds, as `lungnodule demo`
    resolves them; DataError when the dataset is missing or a held-out fold has no nodule."""
    from .errors import DataError
    from .luna import LunaDataset
    from .pipeline import check_folds_have_nodules, get_preset, run_folds

    p = get_preset(preset)
    data_root = Path(data_root or p.data_root)
    if not any(data_root.glob("subset*")):
        raise DataError(data_root, f"no LUNA16-layout dataset here; run `lungnodule demo --preset {preset}` first "
                                   "(or pass --data-root)")
    dataset = LunaDataset(data_root)
    folds = run_folds(dataset.subsets, p, test_subsets, val_subset)
    check_folds_have_nodules(dataset, folds, data_root)
    return (p, data_root, Path(work_dir or p.work_dir), Path(results_dir or p.results_dir), dataset, folds)


def _train_point(unet_cfg, mgi_cfg, data_root: Path, point_dir: Path, workers: int, commit) -> dict:
    """Train and score the whole chain with these configs on `data_root` under `point_dir`; the point's figures."""
    import time

    from .pipeline import Layout, mgicnn_step, unet_step

    t0 = time.perf_counter()
    layout = Layout(point_dir)
    figures = point_dir / "figures"
    unet_step(unet_cfg, data_root, layout, figures, workers)
    out = mgicnn_step(mgi_cfg, data_root, layout, figures, workers)
    # The systems as the run reports them (lungnodule.pipeline.run), so that the full point matches the run.
    metrics = {"unet": out.get("unet"), "mgicnn_alone": out.get("mgicnn_alone"), "fused": out.get("mgicnn"),
               "fp_reduction_track": out.get("fp_reduction_track")}
    return {"systems": _systems(metrics), "fused_minus_unet": out.get("fused_minus_unet"),
            "fusion_weight": (out.get("fusion") or {}).get("weight"), "source": "trained",
            "commit": commit, "wall_time_s": time.perf_counter() - t0}


def _point(label: str, detail: str, fields: dict, point_dir: Path, from_run: dict | None, train) -> dict:
    """One point of a curve, `fields` (its x values) first: `from_run` (the run's own figures) when given, else
    the `point_dir/point.json` a former call saved, else `train()`'s figures, saved there."""
    saved = point_dir / "point.json"
    point = from_run
    if point is None and saved.is_file():
        point = json.loads(saved.read_text())
        print(f"learning curve: {label} already scored ({saved})", flush=True)
    if point is None:
        print(f"\n=== learning curve: {label} ({detail}) ===", flush=True)
        point = {**fields, **train()}
        write_text(saved, json.dumps(_as_json(point), indent=2))
    point = _as_json({**fields, **point})
    fused = point["systems"].get("fused", {})
    print(f"{label}: fused stable CPM {fused.get('cpm_stable', float('nan')):.3f} ({point['source']})", flush=True)
    return point


def _write_curve(report: dict, info: dict, results_dir: Path, name: str) -> dict:
    """Record the run's provenance in `report` and write `results_dir/<name>.png` and `<name>.json`."""
    report["run"] = info
    results_dir.mkdir(parents=True, exist_ok=True)
    plot_learning_curve(report, results_dir / f"{name}.png")
    write_text(results_dir / f"{name}.json", json.dumps(report, indent=2))
    return report


def learning_curve(data_root: str | os.PathLike | None = None, work_dir: str | os.PathLike | None = None,
                   results_dir: str | os.PathLike | None = None, preset: str = "bench",
                   fractions: Sequence[float] = (0.25, 0.5, 1.0), seed: int = 0,
                   test_subsets: Sequence[int] | None = None, val_subset: int | None = None,
                   workers: int = 1) -> dict:
    """Train and score the chain of run preset `preset` at each training budget in `fractions`.

    Paths default to the preset's (the dataset must exist: run `lungnodule demo --preset P` first); folds as
    the run's (:func:`lungnodule.pipeline.run_folds`). Writes each point under
    ``<work_dir>/learning_curve/budget_<f>/`` (its models, candidates and figures), and
    ``<results_dir>/learning_curve.json`` and ``learning_curve.png`` (stable CPM of each system against the
    budget, with 95% CIs). Returns the content of the JSON: per point the fraction, the epochs of both
    networks, each system's CPMs with CIs, the paired fused - U-Net difference and where the point came from.
    """
    from .pipeline import stage_configs
    from .provenance import run_info

    p, data_root, work_dir, results_dir, dataset, folds = _run_setup(preset, data_root, work_dir, results_dir,
                                                                     test_subsets, val_subset)
    fractions = sorted({float(f) for f in fractions})
    unet_cfg, mgi_cfg, _ = stage_configs(p, folds, seed)
    info = run_info(seed)
    report = {"preset": p.name, "seed": int(seed), "folds": folds, "data_root": str(data_root),
              "base_epochs": {"unet": unet_cfg.epochs, "mgicnn": mgi_cfg.epochs}, "points": []}
    for f in fractions:
        unet_f = unet_cfg.replace(epochs=scaled_epochs(unet_cfg.epochs, f))
        mgi_f = mgi_cfg.replace(epochs=scaled_epochs(mgi_cfg.epochs, f))
        point_dir = work_dir / "learning_curve" / f"budget_{f:g}"
        from_run = _run_point(results_dir, work_dir, report, unet_f, mgi_f) if f == 1.0 else None
        report["points"].append(_point(
            f"budget {f:g}", f"U-Net {unet_f.epochs} epochs, MGI-CNN {mgi_f.epochs}",
            {"fraction": f, "epochs": {"unet": unet_f.epochs, "mgicnn": mgi_f.epochs}}, point_dir, from_run,
            lambda: _train_point(unet_f, mgi_f, data_root, point_dir, workers, info["commit"])))
    return _write_curve(report, info, results_dir, "learning_curve")


def training_subset_root(data_root: str | os.PathLike, keep: Sequence[int], dest: str | os.PathLike) -> Path:
    """A LUNA16-layout root at `dest` made of links: the subsets `keep` of `data_root` and every file at its top
    (the CSVs), so a stage reads only those scans while annotations and candidates stay the dataset's. Links
    already right are kept (a rerun resumes); anything else at a link's place is an error, never replaced."""
    from .errors import DataError

    data_root, dest = Path(data_root).resolve(), Path(dest)
    if dest.resolve() == data_root or data_root in dest.resolve().parents:
        raise DataError(dest, f"the reduced root must lie outside the dataset {data_root}")
    dest.mkdir(parents=True, exist_ok=True)
    wanted = [data_root / f"subset{k}" for k in sorted(set(int(k) for k in keep))]
    missing = [w for w in wanted if not w.is_dir()]
    if missing:
        raise DataError(missing[0], "no such subset folder in the dataset")
    for target in wanted + sorted(f for f in data_root.iterdir() if f.is_file()):
        link = dest / target.name
        if link.is_symlink() and link.resolve() == target.resolve():
            continue
        if link.exists() or link.is_symlink():
            raise DataError(link, f"exists and is not a link to {target}; remove it or choose another work folder")
        link.symlink_to(target, target_is_directory=target.is_dir())
    return dest


def data_curve(data_root: str | os.PathLike | None = None, work_dir: str | os.PathLike | None = None,
               results_dir: str | os.PathLike | None = None, preset: str = "bench",
               train_counts: Sequence[int] | None = None, seed: int = 0,
               test_subsets: Sequence[int] | None = None, val_subset: int | None = None,
               workers: int = 1) -> dict:
    """Train and score the chain of run preset `preset` on the first k of the run's training subsets, for each k
    in `train_counts` (default 1 ... all), with the preset's epochs and steps.

    Paths and folds as :func:`learning_curve`. The point with all training subsets is the run itself when its
    models match (else it is trained like the others). Writes each point under
    ``<work_dir>/learning_curve/train_<k>of<n>/`` (its linked root ``data/``, models, candidates, figures),
    and ``<results_dir>/learning_curve_data.json`` and ``learning_curve_data.png`` (stable CPM of each system
    against the number of annotated training nodules, with 95% CIs). Returns the content of the JSON.
    """
    from .errors import DataError
    from .pipeline import stage_configs
    from .provenance import run_info

    p, data_root, work_dir, results_dir, dataset, folds = _run_setup(preset, data_root, work_dir, results_dir,
                                                                     test_subsets, val_subset)
    train = list(folds["train"])
    counts = sorted({int(k) for k in (train_counts or range(1, len(train) + 1))})
    if counts[0] < 1 or counts[-1] > len(train):
        raise ValueError(f"training subset counts must lie in 1..{len(train)} (the run trains on subsets {train}), "
                         f"got {counts}")
    unet_cfg, mgi_cfg, _ = stage_configs(p, folds, seed)
    info = run_info(seed)
    report = {"preset": p.name, "seed": int(seed), "folds": folds, "data_root": str(data_root),
              "base_epochs": {"unet": unet_cfg.epochs, "mgicnn": mgi_cfg.epochs}, "axis": "training nodules",
              "points": []}
    for k in counts:
        kept = train[:k]
        uids = dataset.uids_in(kept)
        nodules = int(dataset.annotations["seriesuid"].isin(uids).sum())
        if nodules == 0:
            raise DataError(data_root, f"training subsets {kept} hold no annotated nodule")
        point_dir = work_dir / "learning_curve" / f"train_{k}of{len(train)}"
        from_run = _run_point(results_dir, work_dir, report, unet_cfg, mgi_cfg) if k == len(train) else None
        root = data_root if k == len(train) else point_dir / "data"

        def train_point():
            if root != data_root:
                training_subset_root(data_root, kept + folds["val"] + folds["test"], root)
            return _train_point(unet_cfg, mgi_cfg, root, point_dir, workers, info["commit"])

        report["points"].append(_point(
            f"training subsets {kept}", f"{len(uids)} scans, {nodules} nodules",
            {"train_subsets": kept, "train_scans": len(uids), "train_nodules": nodules}, point_dir, from_run,
            train_point))
    return _write_curve(report, info, results_dir, "learning_curve_data")


def plot_learning_curve(report: dict, path: str | os.PathLike) -> None:
    """Draw the stable CPM (with its 95% CI) of each system against the training budget of `report` (the content
    of learning_curve.json; a log2 axis) or, for a :func:`data_curve` report, against the annotated training
    nodules (a linear axis), and save it to `path` atomically."""
    from matplotlib.figure import Figure

    from .froc_plot import system_colour

    points = report["points"]
    by_data = report.get("axis") == "training nodules"
    xkey = "train_nodules" if by_data else "fraction"
    x = np.array([pt[xkey] for pt in points], dtype=float)
    fig = Figure(figsize=(7.5, 5.0))
    ax = fig.add_subplot()
    for i, (key, label) in enumerate(SYSTEMS.items()):
        rows = [(pt[xkey], pt["systems"][key]) for pt in points if key in pt["systems"]]
        if not rows:
            continue
        fx = np.array([r[0] for r in rows])
        y = np.array([r[1]["cpm_stable"] for r in rows])
        ci = np.array([r[1].get("cpm_stable_ci95") or (v, v) for r, v in zip(rows, y)], dtype=float)
        offset = 2.0 ** ((i - 1.5) * 0.03)  # a small horizontal shift keeps overlapping error bars apart
        style = "--" if key == "fp_reduction_track" else "-"
        ax.errorbar(fx * offset, y, yerr=[y - ci[:, 0], ci[:, 1] - y], fmt="o" + style, capsize=3,
                    color="C1" if key == "fp_reduction_track" else system_colour(label, i), label=label)
    base = report["base_epochs"]
    if by_data:
        ax.set_xticks(x)
        ax.set_xticklabels([f"{pt['train_nodules']}\n({len(pt['train_subsets'])} subsets, {pt['train_scans']} scans)"
                            for pt in points])
        ax.set_xlabel(f"annotated nodules in the training subsets (the {report['preset']} preset's epochs: "
                      f"U-Net {base['unet']}, MGI-CNN {base['mgicnn']})")
    else:
        ax.set_xscale("log", base=2)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{f:g}x\n({pt['epochs']['unet']}, {pt['epochs']['mgicnn']} ep.)"
                            for f, pt in zip(x, points)])
        ax.set_xlabel(f"training budget: fraction of the {report['preset']} preset's epochs "
                      f"(U-Net {base['unet']}, MGI-CNN {base['mgicnn']})")
    ax.set_ylabel("held-out stable CPM (95% scan-bootstrap CI)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    first = points[0]["systems"].get("fused") or next(iter(points[0]["systems"].values()))
    ax.set_title(f"Learning curve, preset {report['preset']}: test subsets {report['folds']['test']} "
                 f"({first.get('scans', '?')} scans, {first.get('nodules', '?')} nodules)", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(path, fig, dpi=110)
