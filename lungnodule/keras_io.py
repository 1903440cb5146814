"""Saving and loading Keras models for every stage: atomic saves, safe-mode loads, errors that say the fix.

A `.keras` file is written under a temporary name beside its destination and renamed, so an interrupted
save never leaves half a model. Loading uses Keras' safe mode (no arbitrary code from the file): a missing
file raises :class:`~lungnodule.errors.ModelMissingError` and an unreadable one
:class:`~lungnodule.errors.DataError`, each naming the command that makes the model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping

import keras
import numpy as np
import pandas as pd

from .atomic import atomic_path
from .errors import DataError, ModelMissingError


def save_model(model: keras.Model, path: str | os.PathLike) -> None:
    """Save `model` to `path` (`.keras`) atomically."""
    path = Path(path)
    # Keras needs the .keras suffix on the file it writes; the temporary name keeps it.
    with atomic_path(path) as tmp:
        target = tmp.with_name(tmp.name + ".keras")
        try:
            model.save(target)
            os.replace(target, tmp)
        finally:
            if target.exists():
                target.unlink()


def load_model(path: str | os.PathLike, what: str, fix: str, compile: bool = False,
               custom_objects: Mapping[str, object] | None = None) -> keras.Model:
    """Load the `what` model (e.g. "U-Net") saved at `path` in safe mode; `fix` says which command makes it.

    `compile=True` restores the optimiser state too (to resume training)."""
    path = Path(path)
    if not path.is_file():
        raise ModelMissingError(f"{path}: no trained {what} here; {fix}")
    try:
        return keras.saving.load_model(path, compile=compile, custom_objects=dict(custom_objects or {}),
                                       safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors... for a bad file
        raise DataError(path, f"corrupt or unreadable {what} checkpoint ({type(exc).__name__}: {exc}); delete it "
                              f"and {fix[0].lower() + fix[1:]}") from None


def resume_or_build(folder: str | os.PathLike, resume: bool, load: Callable[[Path], keras.Model],
                    build: Callable[[], keras.Model]) -> tuple[keras.Model, pd.DataFrame]:
    """The compiled model and the history to train on from: `load(folder / "last.keras")` and
    `folder / "history.csv"` when `resume` and both exist (a run stopped after an epoch), else `build()` and an
    empty history. The epoch to start at is the history's length."""
    folder = Path(folder)
    last_path, history_path = folder / "last.keras", folder / "history.csv"
    if resume and last_path.exists() and history_path.exists():
        return load(last_path), pd.read_csv(history_path)
    return build(), pd.DataFrame()


def predict_fixed(model: keras.Model, inputs, batch_size: int) -> np.ndarray:
    """`model`'s output for `inputs` (an array, or a dict of arrays of equal length) in batches of exactly
    `batch_size`: the last one is padded and cut, so the predict function is traced once for every call
    (Keras' `predict` traces again for each new final-batch size, which is slow and warns)."""
    arrays = inputs if isinstance(inputs, dict) else {"_": inputs}
    n = len(next(iter(arrays.values())))
    outs = []
    for start in range(0, n, batch_size):
        batch = {k: np.asarray(v[start:start + batch_size]) for k, v in arrays.items()}
        short = batch_size - len(next(iter(batch.values())))
        if short:
            batch = {k: np.concatenate([v, np.zeros((short, *v.shape[1:]), v.dtype)]) for k, v in batch.items()}
        x = batch if isinstance(inputs, dict) else batch["_"]
        out = keras.ops.convert_to_numpy(model.predict_on_batch(x))
        outs.append(out[:batch_size - short])
    if not outs:
        return np.zeros((0, *model.output_shape[1:]), np.float32)
    return np.concatenate(outs)
