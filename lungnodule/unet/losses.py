"""Dice loss and metric of the original U-Net (section 2.5 of the reference), in `keras.ops`.

Both are computed over the whole batch, flattened: dice = (2 * sum(y * p) + s) / (sum(y) + sum(p) + s)
with additive smoothing s = 100, and loss = -dice (so it runs from -1, perfect, towards 0).
"""

from __future__ import annotations

import keras
from keras import ops

SMOOTH = 100.0


@keras.saving.register_keras_serializable(package="lungnodule.unet")
def dice_coefficient(y_true, y_pred, smooth: float = SMOOTH):
    """Soft Dice of a batch of masks `y_true` and probabilities `y_pred` (any equal shapes), smoothed by `smooth`."""
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "float32")
    y_pred = ops.cast(ops.reshape(y_pred, (-1,)), "float32")
    intersection = ops.sum(y_true * y_pred)
    return (2.0 * intersection + smooth) / (ops.sum(y_true) + ops.sum(y_pred) + smooth)


@keras.saving.register_keras_serializable(package="lungnodule.unet")
def dice_loss(y_true, y_pred):
    """Minus the batch Dice coefficient (smoothing 100), the original's training loss."""
    return -dice_coefficient(y_true, y_pred)
