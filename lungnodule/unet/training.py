"""Training of the U-Net on the preprocessed slices: checkpoints, resume, history and the loss figure.

`work_dir` holds the preprocessed splits (`train/`, `val/`) and receives `last.keras` (every epoch),
`best.keras` (best validation Dice), `history.csv` (one row per epoch, kept across resumes) and
`train.json` (config, seed, result). An interrupted run continues from `last.keras` at the epoch after
the last one in `history.csv`. All files are written atomically.
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
from ..keras_io import load_model, resume_or_build, save_model
from ..provenance import run_info, seed_everything
from .config import UnetConfig
from .dataset import SliceBatches, load_split
from .losses import SegmentationLoss, dice_coefficient, dice_loss
from .model import build_unet, compile_unet

MONITOR = "val_dice_coefficient"


def load_unet(path: str | os.PathLike, compile: bool = False) -> keras.Model:
    """Load a U-Net saved as `.keras`; ModelMissingError (missing) or DataError (unreadable) with the fix.

    `python Unet/train.py` makes the model. `compile=True` restores the optimiser state too.
    """
    return load_model(path, "U-Net", "run `python Unet/train.py` (after `python Unet/preprocess.py`)", compile,
                      {"dice_loss": dice_loss, "dice_coefficient": dice_coefficient,
                       "SegmentationLoss": SegmentationLoss})


# Settings that define what the network sees; inference must use the values it was trained with.
INPUT_FIELDS = ("image_size", "hu_min", "hu_max", "image_interpolation", "mask_lungs", "min_lung_fraction",
                "context_slices", "context_mm")


def trained_input_config(config: UnetConfig, model_path: str | os.PathLike) -> UnetConfig:
    """`config` with its input settings (:data:`INPUT_FIELDS`) taken from the `train.json` beside `model_path`.

    Without a `train.json` the config is returned unchanged.
    """
    train_json = Path(model_path).parent / "train.json"
    if not train_json.is_file():
        return config
    trained = json.loads(train_json.read_text()).get("config", {})
    return config.replace(**{k: trained[k] for k in INPUT_FIELDS if k in trained})


class _Checkpoints(keras.callbacks.Callback):
    """Each epoch: append the logs to history.csv, save last.keras, and best.keras when validation Dice improves
    (or every epoch with `last`: the final epoch is the selected one)."""

    def __init__(self, work_dir: Path, history: pd.DataFrame, best: float, on_epoch=None, last: bool = False):
        super().__init__()
        self.work_dir, self.history, self.best, self.on_epoch = work_dir, history, best, on_epoch
        self.last = last

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        row = pd.DataFrame([{"epoch": epoch, **logs}])
        self.history = pd.concat([self.history, row], ignore_index=True) if len(self.history) else row
        if self.last or logs.get(MONITOR, -np.inf) > self.best:
            self.best = max(self.best, logs.get(MONITOR, -np.inf))
            save_model(self.model, self.work_dir / "best.keras")
        save_model(self.model, self.work_dir / "last.keras")
        # History last: its row count is the resume point, so it never runs ahead of last.keras.
        save_csv(self.work_dir / "history.csv", self.history)
        if self.on_epoch is not None:
            self.on_epoch(self.history)


def plot_history(history: pd.DataFrame, path: str | os.PathLike, title: str = "U-Net training") -> None:
    """Draw train/validation loss and Dice per epoch, side by side, to `path` (atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = history["epoch"] + 1
    for ax, key, label in ((ax1, "loss", "loss"), (ax2, "dice_coefficient", "Dice")):
        if key in history:
            ax.plot(epochs, history[key], "o-", label="train", ms=3)
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "s-", label="validation", ms=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    ax1.set_title("loss (-Dice, plus the weighted cross-entropy if set)")
    ax2.set_title("Dice coefficient (smooth 100)")
    fig.suptitle(title)
    save_figure(path, fig)
    plt.close(fig)


def train(config: UnetConfig, work_dir: str | os.PathLike, results_dir: str | os.PathLike | None = "Results",
          resume: bool = True, initial_weights: str | os.PathLike | None = None, verbose: int | str = "auto") -> dict:
    """Train the U-Net on `work_dir/train`, validate on `work_dir/val`, checkpoint into `work_dir`.

    Resumes from `work_dir/last.keras` and `history.csv` when `resume` and both exist; otherwise starts
    fresh, from `initial_weights` (a `.keras` model; learning rate `continue_learning_rate`, as the original)
    when given. Draws `results_dir/Unet_loss.png` (skipped when `results_dir` is None). Returns a dict
    with the epochs run, the best validation Dice and its epoch, and the paths written.
    """
    work_dir = Path(work_dir)
    if config.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {config.lr_schedule!r}")
    if not 0.0 <= config.positive_slice_fraction < 1.0:
        raise ValueError(f"positive_slice_fraction must be in [0, 1), got {config.positive_slice_fraction}")
    if config.train_crop_size % 32:
        raise ValueError(f"train_crop_size must be a multiple of 32 (five poolings), got {config.train_crop_size}")
    seed_everything(config.seed)
    x_train, y_train = load_split(work_dir / "train")
    x_val, y_val = load_split(work_dir / "val")
    # The slices define the input: size and channels as preprocessed, recorded in train.json for inference.
    config = config.replace(image_size=int(x_train.shape[1]), context_slices=(int(x_train.shape[-1]) - 1) // 2)
    history_path, last_path = work_dir / "history.csv", work_dir / "last.keras"

    def build() -> keras.Model:
        # Crop training needs a size-free input; the model then predicts slices of any multiple of 32.
        side = None if config.train_crop_size else config.image_size
        model = build_unet((side, side, 2 * config.context_slices + 1), config.base_filters, config.growth_step)
        lr = config.learning_rate
        if initial_weights is not None:
            model.set_weights(load_unet(initial_weights).get_weights())
            lr = config.continue_learning_rate
        decay = config.epochs * config.steps_per_epoch if config.lr_schedule == "cosine" else 0
        compile_unet(model, lr, config.momentum, config.optimizer, config.dice_smooth, config.bce_weight,
                     config.positive_weight, decay)
        return model

    with data_parallel(config.devices):  # one device: no distribution at all
        model, history = resume_or_build(work_dir, resume, lambda p: load_unet(p, compile=True), build)
        initial_epoch = len(history)
        best = float(history[MONITOR].max()) if MONITOR in history else -np.inf
        # Two threads prepare batches while the model trains: no gain on 2 cores, where the model uses both, but
        # a batch (about 55 ms) would otherwise hold up a GPU step. Every batch is drawn from its own seeded
        # generator, so the stream does not depend on the threads.
        train_data = SliceBatches(x_train, y_train, config, augment=True, steps=config.steps_per_epoch,
                                  seed=config.seed, epoch=initial_epoch, workers=2)
        val_data = SliceBatches(x_val, y_val, config, augment=False, steps=config.validation_steps or None)
        plot = None
        if results_dir is not None:
            plot = lambda h: plot_history(h, Path(results_dir) / "Unet_loss.png")
        if config.select_epoch not in ("dice", "last"):
            raise ValueError(f"select_epoch must be 'dice' or 'last', got {config.select_epoch!r}")
        callback = _Checkpoints(work_dir, history, best, plot, last=config.select_epoch == "last")
        meta = {"config": config.to_dict(), "seed": config.seed, "run": run_info(config.seed),
                "initial_weights": str(initial_weights or ""),
                "resumed_from_epoch": initial_epoch, "train_slices": int(len(x_train)), "val_slices": int(len(x_val))}
        write_text(work_dir / "train.json", json.dumps(meta, indent=2))
        if initial_epoch < config.epochs:
            model.fit(train_data, validation_data=val_data, epochs=config.epochs, initial_epoch=initial_epoch,
                      callbacks=[callback], verbose=verbose)
    history = callback.history
    if not (work_dir / "best.keras").exists():
        raise DataError(work_dir, "training produced no best.keras (no epoch ran and none was saved before)")
    best_row = history.iloc[-1] if config.select_epoch == "last" else history.loc[history[MONITOR].idxmax()]
    meta.update({"epochs": int(len(history)), "best_epoch": int(best_row["epoch"]) + 1,
                 "best_val_dice": float(best_row[MONITOR]), "final_val_dice": float(history[MONITOR].iloc[-1]),
                 "best_model": str(work_dir / "best.keras"), "last_model": str(last_path),
                 "history": str(history_path)})
    if plot is not None:
        plot(history)
        meta["figure"] = str(Path(results_dir) / "Unet_loss.png")
    write_text(work_dir / "train.json", json.dumps(meta, indent=2))
    return meta
