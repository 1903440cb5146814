"""Data-parallel training over the visible devices, with the well-kept mechanism of each Keras backend.

`keras.distribution.DataParallel` under JAX, `tf.distribute.MirroredStrategy` under TensorFlow. Keras' distribution
API has no PyTorch implementation (Keras 3.15): under torch, training uses one device, and the log says so. Each batch of `batch_size` samples is split across the devices (the batch size is global: a
config's batch size means the same on one device and on eight), and the gradients are averaged, so the learning
rate needs no change; more devices only make each step faster. On one device nothing changes.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import keras


def visible(kind: str | None = None) -> list[str]:
    """The devices Keras' backend sees, accelerators first (names as the backend gives them)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        return gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    if backend == "torch":
        import torch

        return [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu"]
    try:
        return list(keras.distribution.list_devices(kind))
    except (NotImplementedError, ValueError, AttributeError):
        return ["cpu:0"]


def data_parallel(devices: int = 0, log=print) -> ContextManager:
    """A context in which models are built, compiled and fitted data-parallel over the first `devices` visible
    devices (0: all). One device: no distribution at all. `log` receives one line naming the devices used."""
    names = visible()
    names = names[:devices] if devices and devices > 0 else names
    if keras.backend.backend() == "torch" and len(names) > 1:
        if log is not None:
            log(f"training on 1 device: {names[0]} (Keras' data-parallel API does not cover PyTorch; "
                f"{len(names)} visible: use KERAS_BACKEND=jax to train on all of them)")
        return contextlib.nullcontext()
    if log is not None:
        log(f"training on {len(names)} device(s): {', '.join(names)}")
    if len(names) <= 1:
        return contextlib.nullcontext()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.MirroredStrategy(names).scope()
    return keras.distribution.DataParallel(devices=names).scope()
