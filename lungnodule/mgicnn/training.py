"""Training of the MGI-CNN per LUNA16 fold: checkpoints, resume, validation-based selection, history, figure.

Fold f (test subset t_f; a pooled fold, several test subsets, is named by its first) lives in
`<work_dir>/fold<t_f>/`: `last.keras` (every epoch), `best.keras` (best epoch on the validation subset:
highest validation stable CPM of the eval source's candidates, ties broken by the lower validation loss; or
the lowest loss), `history.csv` (one row per epoch: train loss / accuracy / AUC, validation loss / accuracy /
AUC / CPM, leaderboard and stable; kept across resumes), `train.json` (config, seed and versions, folds, the
chosen epoch, the U-Net fusion weight (when `fusion_weights` is set) and the operating threshold of the final
score, all chosen on validation). The model of fold f never sees its test subsets: training reads only
`fold["train"]` subsets, selection only `fold["val"]`. All files are written atomically; an interrupted run
resumes from `last.keras` at the epoch after the last row of `history.csv`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from ..atomic import save_csv, save_figure, write_text
from ..devices import data_parallel
from ..errors import DataError
from ..evaluation import evaluate_cad, threshold_at_fps
from ..keras_io import load_model, resume_or_build, save_model
from ..luna import LunaDataset
from ..provenance import run_info, seed_everything
from .config import MgiConfig
from .dataset import PatchSet, TrainBatches, predict_rows
from .fusion import choose_weight, fuse
from .model import build_mgicnn, compile_mgicnn
from .operating import choose_operating_point, keep

XYZ = ["coordX", "coordY", "coordZ"]


def load_mgicnn(path: str | os.PathLike, compile: bool = False) -> keras.Model:
    """Load an MGI-CNN saved as `.keras`; ModelMissingError (missing) or DataError (unreadable) naming the fix."""
    return load_model(path, "MGI-CNN", "run `python 3DCNN/train.py` (after `python 3DCNN/preprocess.py`), or "
                                       "`lungnodule demo` for the demo models", compile)


def _bce(labels: np.ndarray, prob: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities `prob` against 0/1 `labels` (clipped as Keras does)."""
    p = np.clip(prob, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def validation_scores(model: keras.Model, val: PatchSet, config: MgiConfig, annotations: pd.DataFrame,
                      excluded: pd.DataFrame | None, n_bootstrap: int = 0) -> dict:
    """Loss, accuracy (a ratio, threshold 0.5), AUC over every validation row; both CPMs of the eval source's rows
    (and the stable CPM of the dataset's candidate list, the FP-reduction track, when it is not the eval source).

    Also `_froc` (that CPM's FrocResult) and `_eval_rows` (the eval source's rows with their `probability`)."""
    from ..evaluation import candidate_auc, evaluate_cad

    prob = predict_rows(model, val, np.arange(len(val)), config.predict_batch_size, tta_flips=config.tta_flips)
    labels = val.rows["class"].to_numpy().astype(np.float64)
    out = {"val_loss": _bce(labels, prob), "val_accuracy": float(np.mean((prob >= 0.5) == (labels == 1)))}
    out["val_auc"] = candidate_auc(labels, prob)
    ev = val.rows["source"].to_numpy() == config.eval_source
    uids = val.uids
    results = val.rows.loc[ev, ["seriesuid", *XYZ]].assign(probability=prob[ev])
    froc = evaluate_cad(annotations, excluded, uids, results, n_bootstrap=n_bootstrap, seed=config.seed)
    out["val_cpm"] = froc.cpm
    out["val_cpm_stable"] = froc.cpm_stable
    own = val.rows["source"].to_numpy() == "candidates"
    if config.eval_source != "candidates" and own.any():  # the FP-reduction track on validation, for the record
        track = val.rows.loc[own, ["seriesuid", *XYZ]].assign(probability=prob[own])
        out["val_cpm_stable_candidates"] = evaluate_cad(annotations, excluded, uids, track, n_bootstrap=0).cpm_stable
    out["_froc"] = froc
    out["_eval_rows"] = val.rows.loc[ev].assign(probability=prob[ev])
    return out


class _EpochEnd(keras.callbacks.Callback):
    """Each epoch: validate, append to history.csv, save last.keras, and best.keras when selection improves."""

    def __init__(self, fold_dir: Path, history: pd.DataFrame, val: PatchSet, config: MgiConfig,
                 annotations, excluded, on_epoch=None):
        super().__init__()
        self.fold_dir, self.history, self.val, self.config = fold_dir, history, val, config
        self.annotations, self.excluded, self.on_epoch = annotations, excluded, on_epoch

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        scores = validation_scores(self.model, self.val, self.config, self.annotations, self.excluded)
        scores.pop("_froc")
        scores.pop("_eval_rows")
        row = pd.DataFrame([{"epoch": epoch, **logs, **scores}])
        improved = not len(self.history) or _key(row.iloc[0], self.config) > max(
            _key(r, self.config) for _, r in self.history.iterrows())
        self.history = pd.concat([self.history, row], ignore_index=True) if len(self.history) else row
        if improved:
            save_model(self.model, self.fold_dir / "best.keras")
        save_model(self.model, self.fold_dir / "last.keras")
        save_csv(self.fold_dir / "history.csv", self.history)  # last: its rows are the resume point
        print(f"  epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f} acc {logs.get('accuracy', float('nan')):.3f}"
              f" | val loss {scores['val_loss']:.4f} acc {scores['val_accuracy']:.3f} AUC {scores['val_auc']:.3f}"
              f" CPM {scores['val_cpm']:.3f} (stable {scores['val_cpm_stable']:.3f})"
              f"{' (best)' if improved else ''}", flush=True)
        if self.on_epoch is not None:
            self.on_epoch()


def _key(row, config: MgiConfig) -> tuple:
    """Selection key of a history row (larger is better): (validation stable CPM, -loss), or (-loss,).

    The stable CPM, not the leaderboard reading, which jumps on a validation subset's few scans."""
    loss = -float(row["val_loss"])
    stable = row["val_cpm_stable"] if "val_cpm_stable" in row else row["val_cpm"]  # histories from before it
    return (float(stable), loss) if config.select_by == "cpm" else (loss,)


def best_epoch(history: pd.DataFrame, config: MgiConfig) -> int:
    """Row index of the epoch selected on validation (see the module docstring)."""
    keys = [_key(r, config) for _, r in history.iterrows()]
    return int(max(range(len(keys)), key=lambda i: keys[i]))


def plot_history(histories: dict[int, pd.DataFrame], path: str | os.PathLike,
                 selected: dict[int, int] | None = None) -> None:
    """Loss, accuracy and the validation CPMs per epoch, train (solid) and validation (dashed), one colour per
    fold, to `path`; a dotted vertical line marks each fold's epoch selected on validation (`selected`: fold ->
    1-based epoch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for i, (test, h) in enumerate(sorted(histories.items())):
        colour = f"C{i % 10}"
        epochs = h["epoch"] + 1
        for ax, key in zip(axes[:2], ("loss", "accuracy")):
            if key in h:
                ax.plot(epochs, h[key], "-o", color=colour, ms=3, label=f"fold {test}: train")
            if f"val_{key}" in h:
                ax.plot(epochs, h[f"val_{key}"], "--s", color=colour, ms=3, label=f"fold {test}: validation")
        for key, style, label in (("val_cpm_stable", "-s", "stable"), ("val_cpm", ":^", "leaderboard")):
            if key in h:
                axes[2].plot(epochs, h[key], style, color=colour, ms=3, label=f"fold {test}: {label} CPM")
        if selected and test in selected:
            for ax in axes:
                ax.axvline(selected[test], color=colour, ls=":", lw=1)
    titles = ("loss (sigmoid cross-entropy)", "accuracy (fraction correct at 0.5)",
              "validation CPM of stage 1's candidates (the epoch is chosen by the stable one)")
    for ax, title in zip(axes, titles):
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if selected:
            handles.append(Line2D([], [], color="0.3", ls=":", lw=1))
            labels.append("selected epoch")
        ax.legend(handles, labels, fontsize=9)
    fig.suptitle("MGI-CNN training (train: the augmented epoch stream; validation: the fold's validation subset)",
                 fontsize=10)
    save_figure(path, fig)
    plt.close(fig)


def train_fold(config: MgiConfig, data_root: str | os.PathLike, work_dir: str | os.PathLike, fold: dict,
               resume: bool = True, verbose: int | str = "auto") -> dict:
    """Train the model of one fold ({"train", "val", "test"} subsets) from `work_dir/patches`; see the module docstring.

    Returns the fold's train.json content: best epoch, its validation scores, the operating threshold.
    """
    test = int(fold["test"][0])  # a fold is named by its (first) test subset
    if set(fold["test"]) & (set(fold["train"]) | set(fold["val"])) or set(fold["train"]) & set(fold["val"]):
        raise ValueError(f"fold {fold}: a test subset must not be in train or val, nor val in train")
    work_dir = Path(work_dir)
    fold_dir = work_dir / f"fold{test}"
    fold_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed + test)
    dataset = LunaDataset(data_root)
    annotations = dataset.annotations
    excluded = dataset.excluded
    train_set = PatchSet(work_dir / "patches", fold["train"])
    val_set = PatchSet(work_dir / "patches", fold["val"])
    val_set.uids = dataset.uids_in(fold["val"])
    history_path, last_path = fold_dir / "history.csv", fold_dir / "last.keras"
    with data_parallel(config.devices):  # one device: no distribution at all
        model, history = resume_or_build(fold_dir, resume, lambda p: load_mgicnn(p, compile=True),
                                         lambda: compile_mgicnn(build_mgicnn(config), config))
        initial_epoch = len(history)
        # Two threads cut and zoom the augmented patches while the model trains; a batch depends only on its
        # index and epoch, so the stream does not depend on the threads.
        data = TrainBatches(train_set, config, epoch=initial_epoch, workers=2)
        meta = {"config": config.to_dict(), "seed": config.seed, "run": run_info(config.seed + test), "fold": fold,
                "resumed_from_epoch": initial_epoch,
                "train_candidates": int(len(data.negative_idx) + len(data.positive_idx)),
                "train_positives": int(len(data.positive_idx)),
                "samples_per_epoch": int(data.steps * config.batch_size), "val_candidates": int(len(val_set))}
        write_text(fold_dir / "train.json", json.dumps(meta, indent=2))
        callback = _EpochEnd(fold_dir, history, val_set, config, annotations, excluded)
        if initial_epoch < config.epochs:
            model.fit(data, epochs=config.epochs, initial_epoch=initial_epoch, callbacks=[callback], verbose=verbose)
    history = callback.history
    if not (fold_dir / "best.keras").exists() or not len(history):
        raise DataError(fold_dir, "training produced no best.keras (no epoch ran and none was saved before)")
    best = best_epoch(history, config)
    # Fusion weight and operating threshold: on the validation subset, with the selected model.
    scores = validation_scores(load_mgicnn(fold_dir / "best.keras"), val_set, config, annotations, excluded)
    froc, rows = scores.pop("_froc"), scores.pop("_eval_rows")
    weight = 0.0
    if config.fusion_weights:
        fusion = choose_weight(rows, rows["probability"].to_numpy(), config.fusion_weights, annotations, excluded,
                               val_set.uids)
        weight, froc = fusion["weight"], fusion.pop("froc")
        meta["fusion"] = fusion
        print(f"  fusion: U-Net weight {weight:g} chosen on validation (stable CPM {fusion['cpm_stable']:.3f}; "
              f"MGI-CNN alone {scores['val_cpm_stable']:.3f}); with one validation nodule left out in turn, the "
              f"choice is the same {fusion['leave_one_out']['same_choice']} of {fusion['leave_one_out']['nodules']} "
              "times", flush=True)
    if config.operating_thresholds and config.eval_source == "unet":
        fused = fuse(rows["probability"].to_numpy(), rows["unet_probability"].to_numpy(), weight)
        point = choose_operating_point(rows, fused, config.operating_thresholds,
                                       config.operating_max_candidates or (0,), annotations, excluded, val_set.uids)
        meta["operating_point"] = point
        mask = keep(rows, point["threshold"], point["max_candidates"])
        froc = evaluate_cad(annotations, excluded, val_set.uids, rows[mask].assign(probability=fused[mask]),
                            n_bootstrap=0)
        print(f"  stage-1 operating point: U-Net probability >= {point['threshold']:g}, at most "
              f"{point['max_candidates']} per scan ({point['candidates_per_scan']:.1f} per validation scan; stable "
              f"CPM {point['cpm_stable']:.3f})", flush=True)
    threshold = threshold_at_fps(froc, config.operating_fps_per_scan)
    meta.update({"epochs": int(len(history)), "best_epoch": int(history["epoch"].iloc[best]) + 1,
                 "selected_by": f"validation {config.select_by} on subset {fold['val']}",
                 "validation": scores, "fusion_weight": weight, "threshold": threshold,
                 "threshold_rule": f"validation FROC at {config.operating_fps_per_scan:g} FPs per scan",
                 "best_model": str(fold_dir / "best.keras"), "last_model": str(last_path),
                 "history": str(history_path)})
    write_text(fold_dir / "train.json", json.dumps(meta, indent=2, default=float))
    return meta


def train(config: MgiConfig, data_root: str | os.PathLike, work_dir: str | os.PathLike,
          results_dir: str | os.PathLike | None = "Results", resume: bool = True, verbose: int | str = "auto") -> dict:
    """Train one model per fold of `config.test_subsets` (:meth:`MgiConfig.folds`); draw `results_dir/3DCNN_acc.png`.

    Returns {"folds": {test subset: train.json content}, "figure": path}.
    """
    dataset = LunaDataset(data_root)
    out: dict = {"folds": {}}
    histories, selected = {}, {}
    for fold in config.folds(dataset.subsets):
        test = fold["test"][0]
        print(f"MGI-CNN fold: test subset(s) {fold['test']}, validation {fold['val']}, train {fold['train']}",
              flush=True)
        out["folds"][test] = train_fold(config, data_root, work_dir, fold, resume=resume, verbose=verbose)
        histories[test] = pd.read_csv(Path(work_dir) / f"fold{test}" / "history.csv")
        selected[test] = out["folds"][test]["best_epoch"]
        if results_dir is not None:
            out["figure"] = str(Path(results_dir) / "3DCNN_acc.png")
            plot_history(histories, out["figure"], selected)
    return out
