"""Dice loss and metric of the original U-Net (section 2.5 of the reference), in `keras.ops`.

Both are computed over the whole batch, flattened: dice = (2 * sum(y * p) + s) / (sum(y) + sum(p) + s)
with additive smoothing s = 100, and loss = -dice (so it runs from -1, perfect, towards 0).

:class:`SegmentationLoss` adds a positive-weighted binary cross-entropy to -Dice. On a small budget
(the demo's 128-pixel slices, where a nodule covers a few pixels, and a few hundred steps) -Dice alone
collapses to an all-background prediction: once the sigmoid saturates near 0 its gradient vanishes,
whereas cross-entropy's gradient on a missed nodule pixel stays -w in logit space.
"""

from __future__ import annotations

import keras
from keras import ops

SMOOTH = 100.0


def split_target(y_true, y_pred):
    """(mask, per-pixel weight or None) of a target: (..., 1) is a mask; (..., 2) a mask and its weights.

    The second channel, written by :class:`~lungnodule.unet.dataset.SliceBatches` when nodules are
    balanced, weights each nodule pixel in the cross-entropy; the Dice terms use the mask only.
    """
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 2 and y_pred.shape[-1] == 1:
        return y_true[..., :1], y_true[..., 1:]
    return y_true, None


@keras.saving.register_keras_serializable(package="lungnodule.unet")
def dice_coefficient(y_true, y_pred, smooth: float = SMOOTH):
    """Soft Dice of a batch of masks `y_true` and probabilities `y_pred` (any equal shapes), smoothed by `smooth`.

    A two-channel `y_true` (mask, weights; see :func:`split_target`) is scored on its mask.
    """
    y_true, _ = split_target(y_true, y_pred)
    y_true = ops.cast(ops.reshape(y_true, (-1,)), "float32")
    y_pred = ops.cast(ops.reshape(y_pred, (-1,)), "float32")
    intersection = ops.sum(y_true * y_pred)
    return (2.0 * intersection + smooth) / (ops.sum(y_true) + ops.sum(y_pred) + smooth)


@keras.saving.register_keras_serializable(package="lungnodule.unet")
def dice_loss(y_true, y_pred):
    """Minus the batch Dice coefficient (smoothing 100), the original's training loss."""
    return -dice_coefficient(y_true, y_pred)


@keras.saving.register_keras_serializable(package="lungnodule.unet")
class SegmentationLoss(keras.losses.Loss):
    """-Dice(smooth) + `bce_weight` * binary cross-entropy with nodule pixels weighted `positive_weight`.

    With `bce_weight` 0 this is the original's loss (:func:`dice_loss` at smooth 100). The cross-entropy
    is averaged over every pixel of the batch; probabilities are clipped to [1e-7, 1 - 1e-7]. A
    two-channel target (:func:`split_target`) multiplies each nodule pixel's weight by its second channel.
    """

    def __init__(self, smooth: float = SMOOTH, bce_weight: float = 0.0, positive_weight: float = 1.0,
                 name: str = "segmentation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth, self.bce_weight, self.positive_weight = float(smooth), float(bce_weight), float(positive_weight)

    def call(self, y_true, y_pred):
        y_true, weight = split_target(y_true, y_pred)
        loss = -dice_coefficient(y_true, y_pred, self.smooth)
        if self.bce_weight:
            y = ops.cast(y_true, "float32")
            p = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0 - 1e-7)
            w = self.positive_weight if weight is None else self.positive_weight * ops.cast(weight, "float32")
            bce = -(w * y * ops.log(p) + (1.0 - y) * ops.log(1.0 - p))
            loss = loss + self.bce_weight * ops.mean(bce)
        return loss

    def get_config(self) -> dict:
        return {**super().get_config(), "smooth": self.smooth, "bce_weight": self.bce_weight,
                "positive_weight": self.positive_weight}
