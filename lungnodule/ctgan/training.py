"""Train the injector or the remover, with per-epoch checkpoints (resumable), history and figures.

Layout under `<work_dir>/<mode>/`: `checkpoint/` (generator.keras, discriminator.keras, optimizers.npz,
state.json: the state after the last finished epoch, the final epoch included), `history.csv` (per-epoch
means of the batch losses; appended on resume), `generator.keras` (the trained generator that tampering
loads, beside `normalization.npz`), `progress/epoch_NNN.png` (condition / generated / original on
validation cubes) and `train.json` (config and seed). `Results/GAN_loss_curve.png` shows the histories of
both modes found in the work dir.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from ..atomic import atomic_dir, atomic_path, save_figure, write_text
from ..devices import data_parallel
from ..errors import DataError, ModelMissingError
from ..keras_io import load_model, save_model
from ..provenance import run_info, seed_everything
from .config import MODES, CTGANConfig, _mode
from .config import trainset_dir
from .dataset import CubeBatches, load_cubes
from .model import Pix2Pix3D, build_gan
from .normalization import CubeNormalizer

STATE = "state.json"


def _load_model(path: Path) -> keras.Model:
    return load_model(path, "CT-GAN network", "train it with `python CT-GAN/train.py`")


def save_checkpoint(folder: str | os.PathLike, gan: Pix2Pix3D, epoch: int, seed: int) -> None:
    """Save G, D and both optimisers' variables after `epoch` finished epochs; state.json is written last."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        save_model(gan.generator, tmp / "generator.keras")
        save_model(gan.discriminator, tmp / "discriminator.keras")
        arrays = {f"{k}_{i:04d}": keras.ops.convert_to_numpy(v)
                  for k, opt in (("g", gan.g_optimizer), ("d", gan.d_optimizer)) for i, v in enumerate(opt.variables)}
        with open(tmp / "optimizers.npz", "wb") as f:
            np.savez(f, **arrays)
    write_text(folder / STATE, json.dumps({"epoch": int(epoch), "seed": int(seed)}))


def load_checkpoint(folder: str | os.PathLike, config: CTGANConfig) -> tuple[Pix2Pix3D, int]:
    """The GAN of a checkpoint with its optimiser state restored, and the number of finished epochs."""
    folder = Path(folder)
    try:
        state = json.loads((folder / STATE).read_text())
        epoch = int(state["epoch"])
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(folder / STATE, f"corrupt checkpoint state: {exc}") from None
    gan = build_gan(config.cube_size, config.base_filters, config.mask_size, config.l1_weight, config.lr_g,
                    config.lr_d, config.beta_1, generator=_load_model(folder / "generator.keras"),
                    discriminator=_load_model(folder / "discriminator.keras"))
    path = folder / "optimizers.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            for key, opt, model in (("g", gan.g_optimizer, gan.generator), ("d", gan.d_optimizer, gan.discriminator)):
                opt.build(model.trainable_variables)
                names = sorted(n for n in z.files if n.startswith(key + "_"))
                if len(names) != len(opt.variables):
                    raise ValueError(f"{len(names)} saved {key} optimiser variables, the optimiser has {len(opt.variables)}")
                for var, name in zip(opt.variables, names):
                    var.assign(z[name])
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(path, f"corrupt optimiser state: {exc}") from None
    return gan, epoch


class _Checkpoint(keras.callbacks.Callback):
    def __init__(self, folder: Path, seed: int):
        super().__init__()
        self.folder, self.seed = folder, seed

    def on_epoch_end(self, epoch, logs=None):
        save_checkpoint(self.folder, self.model, epoch + 1, self.seed)


class _Progress(keras.callbacks.Callback):
    """Write a condition / generated / original grid of the same validation cubes after every epoch."""

    def __init__(self, cubes: np.ndarray, normalizer: CubeNormalizer, folder: Path, mode: str):
        super().__init__()
        self.cubes, self.normalizer, self.folder, self.mode = cubes, normalizer, folder, mode

    def on_epoch_end(self, epoch, logs=None):
        path = self.folder / f"epoch_{epoch + 1:03d}.png"
        save_progress_grid(self.model, self.cubes, self.normalizer, path, f"{self.mode}, epoch {epoch + 1}")


def save_progress_grid(gan: Pix2Pix3D, cubes: np.ndarray, normalizer: CubeNormalizer, path: str | os.PathLike,
                       title: str) -> None:
    """Rows condition / generated / original: the middle axial slice of each cube, lung window, HU."""
    import matplotlib.pyplot as plt

    real = np.asarray(cubes, dtype=np.float32)[..., None]
    cond = keras.ops.convert_to_numpy(gan.condition(real))
    fake = keras.ops.convert_to_numpy(gan.generator(cond, training=False))
    mid = real.shape[1] // 2
    rows = {"Condition": cond, "Generated": fake, "Original": real}
    fig, axes = plt.subplots(3, len(real), figsize=(2.2 * len(real) + 1.2, 6.6), squeeze=False)
    shown = None
    for r, (label, data) in enumerate(rows.items()):
        for c in range(len(real)):
            hu = normalizer.denormalize(data[c, mid, :, :, 0])
            if label == "Condition":  # the zeroed centre is not HU: show it as it is fed, mid-grey
                hu = np.where(np.abs(data[c, mid, :, :, 0]) == 0, -300.0, hu)
            shown = axes[r, c].imshow(np.clip(hu, -1000, 400), cmap="gray", vmin=-1000, vmax=400)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(label)
    bar = fig.colorbar(shown, ax=axes, fraction=0.04, pad=0.02)
    bar.set_label("HU (lung window; the condition's in-painted centre shown at -300)")
    fig.suptitle(f"{title}: middle axial slice of 32 mm validation cubes at 1 mm")
    save_figure(path, fig)
    plt.close(fig)


def _fit_jax(gan: Pix2Pix3D, data: CubeBatches, epochs: int, initial_epoch: int, val_data: CubeBatches | None,
             callbacks: list, verbose: int) -> None:
    """`gan.fit` for the JAX backend: the same epochs, batches, per-epoch means, validation losses and callbacks,
    with :func:`~lungnodule.ctgan.model.jax_train_step` (Keras' JAX trainer takes one optimizer, the GAN has two).
    The variables are written back into the models after every epoch, before the callbacks (checkpoints, the
    history, the progress grid) see them."""
    from .model import jax_train_step

    g, d = gan.generator, gan.discriminator
    gan.g_optimizer.build(g.trainable_variables)
    gan.d_optimizer.build(d.trainable_variables)
    groups = (g.trainable_variables, g.non_trainable_variables, d.trainable_variables, d.non_trainable_variables,
              gan.g_optimizer.variables, gan.d_optimizer.variables)
    step = jax_train_step(gan)
    distribution = keras.distribution.distribution()  # set by data_parallel over several devices

    def batch(i: int):
        x = data[i]
        if distribution is None:
            return x
        # Split each batch across the devices; the jitted step then runs on every shard, its gradients averaged.
        return keras.distribution.distribute_tensor(x, distribution.get_data_layout(np.shape(x)))

    hooks = keras.callbacks.CallbackList(callbacks, model=gan)
    hooks.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        hooks.on_epoch_begin(epoch)
        state = tuple([v.value for v in group] for group in groups)
        sums: dict[str, float] = {}
        for i in range(len(data)):
            state, logs = step(state, batch(i))
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        for group, values in zip(groups, state):
            for variable, value in zip(group, values):
                variable.assign(value)
        logs = {k: v / max(len(data), 1) for k, v in sums.items()}
        if val_data is not None:
            for tracker in gan.trackers.values():
                tracker.reset_state()
            for i in range(len(val_data)):
                out = gan.test_step(val_data[i])
            logs.update({f"val_{k}": float(v) for k, v in out.items()})
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: " + " - ".join(f"{k} {v:.4f}" for k, v in logs.items()), flush=True)
        data.on_epoch_end()
        hooks.on_epoch_end(epoch, logs)
    hooks.on_train_end()


def plot_loss_curves(work_dir: str | os.PathLike, path: str | os.PathLike) -> Path | None:
    """`Results/GAN_loss_curve.png`: per-epoch D and G losses (and validation mask L1) of each trained mode."""
    import matplotlib.pyplot as plt

    histories = {m: trainset_dir(work_dir, m) / "history.csv" for m in MODES}
    histories = {m: pd.read_csv(p) for m, p in histories.items() if p.exists() and p.stat().st_size > 0}
    histories = {m: h for m, h in histories.items() if len(h)}
    if not histories:
        return None
    panels = [("d_loss", "D loss (LSGAN, real 0 / fake 1)", "b"), ("g_loss", "G loss (adversarial + 100 x L1)", "r"),
              ("val_mask_l1", "validation L1 inside the mask", "g")]
    fig, axes = plt.subplots(len(panels), len(histories), figsize=(5.5 * len(histories), 8), squeeze=False,
                             sharex="col")
    for col, (mode, h) in enumerate(histories.items()):
        epochs = h["epoch"] + 1
        for row, (key, label, colour) in enumerate(panels):
            ax = axes[row, col]
            if key in h:
                ax.plot(epochs, h[key], colour + "o-", ms=3)
            ax.set_ylabel(label, fontsize=8)
            ax.grid(alpha=0.3)
        axes[0, col].set_title({"inject": "injector", "remove": "remover"}[mode])
        axes[-1, col].set_xlabel("epoch (means over the epoch's batches)")
    fig.suptitle("CT-GAN training")
    save_figure(path, fig)
    plt.close(fig)
    return Path(path)


def _start(config: CTGANConfig, ckpt: Path, history: Path, folder: Path, resume: bool) -> tuple[Pix2Pix3D, int]:
    """The GAN to train and its first epoch: the checkpoint's when `resume` and one exists (the history cut to
    the epochs it holds), else a new one (an old history and progress grids removed)."""
    if resume and (ckpt / STATE).exists():
        gan, initial = load_checkpoint(ckpt, config)
        seed_everything(config.seed + initial)
        if history.exists():  # keep only the rows of the epochs the checkpoint holds
            h = pd.read_csv(history)
            h[h["epoch"] < initial].to_csv(history, index=False)
        return gan, initial
    seed_everything(config.seed)
    gan = build_gan(config.cube_size, config.base_filters, config.mask_size, config.l1_weight, config.lr_g,
                    config.lr_d, config.beta_1)
    if history.exists():
        history.unlink()
    shutil.rmtree(folder / "progress", ignore_errors=True)
    return gan, 0


def train(config: CTGANConfig, work_dir: str | os.PathLike, results_dir: str | os.PathLike = "Results",
          mode: str = "inject", resume: bool = True, epochs: int | None = None, verbose: int = 1) -> dict:
    """Train the `mode` GAN on `<work_dir>/<mode>/train.npy`; returns a summary dict.

    Resumes from `checkpoint/` when `resume` and one exists (after its last finished epoch), else starts
    afresh (an old history is then replaced). `epochs` overrides the config's epoch count (total, not
    additional). Writes the files listed in the module docstring and `Results/GAN_loss_curve.png`.
    """
    mode = _mode(mode)
    folder = trainset_dir(work_dir, mode)
    cubes = load_cubes(work_dir, mode, "train")
    val = load_cubes(work_dir, mode, "val", mmap=False)
    normalizer = CubeNormalizer.load(folder / "normalization.npz")
    config = config.replace(cube_size=int(cubes.shape[1]))  # the networks follow the training set's cubes
    total = int(epochs if epochs is not None else config.epochs_for(mode))
    batch = min(config.batch_size_for(mode), len(cubes))
    ckpt = folder / "checkpoint"
    history = folder / "history.csv"
    with data_parallel(config.devices):  # one device: no distribution at all
        gan, initial = _start(config, ckpt, history, folder, resume)
        gan.run_eagerly = config.run_eagerly
        shown = val[:config.progress_cubes] if len(val) else np.asarray(cubes[:config.progress_cubes])
        callbacks = [_Checkpoint(ckpt, config.seed), keras.callbacks.CSVLogger(str(history), append=True),
                     _Progress(shown, normalizer, folder / "progress", mode)]
        started = time.time()
        if initial < total:
            val_data = CubeBatches(val, min(batch, len(val)), shuffle=False) if len(val) else None
            data = CubeBatches(cubes, batch, seed=config.seed, epoch=initial)
            if keras.backend.backend() == "jax":
                _fit_jax(gan, data, total, initial, val_data, callbacks, verbose)
            else:
                gan.fit(data, epochs=total, initial_epoch=initial, validation_data=val_data, callbacks=callbacks,
                        verbose=verbose)
        seconds = time.time() - started
    final = folder / "generator.keras"
    with atomic_path(final) as tmp:
        shutil.copyfile(ckpt / "generator.keras", tmp)
    curve = plot_loss_curves(work_dir, Path(results_dir) / "GAN_loss_curve.png")
    grids = sorted((folder / "progress").glob("epoch_*.png"))
    if grids:
        with atomic_path(Path(results_dir) / f"GAN_progress_{mode}.png") as tmp:
            shutil.copyfile(grids[-1], tmp)
    h = pd.read_csv(history) if history.exists() else pd.DataFrame()
    summary = {"mode": mode, "epochs": total, "resumed_from_epoch": initial, "batch_size": batch,
               "train_cubes": len(cubes), "val_cubes": len(val), "seconds": round(seconds, 1),
               "seed": config.seed, "generator": str(final), "history": str(history),
               "loss_curve": str(curve) if curve else None,
               "final": {k: float(v) for k, v in h.iloc[-1].items() if k != "epoch"} if len(h) else {},
               "config": config.to_dict(), "run": run_info(config.seed)}
    write_text(folder / "train.json", json.dumps(summary, indent=2))
    return summary


def load_generator(work_dir: str | os.PathLike, mode: str) -> tuple[keras.Model, CubeNormalizer]:
    """The trained generator of `mode` and its normaliser (ModelMissingError naming the command if absent)."""
    folder = trainset_dir(work_dir, mode)
    path = folder / "generator.keras"
    if not path.exists():
        raise ModelMissingError(f"{path} not found: train it with `python CT-GAN/train.py --mode {mode}`")
    return _load_model(path), CubeNormalizer.load(folder / "normalization.npz")
