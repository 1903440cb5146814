"""The 2-D U-Net of the original system (julian de wit's "mass" segmenter, section 2.4 of the reference).

Input is a batch of axial slices (B, H, W, 1) with H and W divisible by 32, windowed to [0, 1]; output
is a per-pixel nodule probability (B, H, W, 1). Filters grow additively (32, 64, 96, 128, 128), the
finest encoder block is not a skip connection, and the head upsamples the 1/2-resolution decoder
features straight into a 1x1 sigmoid: all as in the original, which has 1,619,461 parameters at 320x320.
"""

from __future__ import annotations

import keras
from keras import layers

from .losses import SMOOTH, SegmentationLoss, dice_coefficient, dice_loss


def _conv(x, filters: int, name: str):
    # Keras defaults (Glorot-uniform kernels, zero biases) as in the original.
    return layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)


def build_unet(
    input_shape: tuple[int, int, int] = (320, 320, 1),
    base_filters: int = 32,
    growth_step: int = 32,
    name: str = "unet",
) -> keras.Model:
    """Build the original U-Net for `input_shape` (H, W, channels); H and W must be multiples of 32.

    `base_filters` and `growth_step` (both 32 in the original) set the widths: the encoder has
    base, base+g, base+2g, base+3g, base+3g filters, the bottom base+3g, the decoder base+2g, base+g,
    base, base. Smaller values give the faster demo model. The model is not compiled (see
    :func:`compile_unet`).
    """
    h, w = input_shape[:2]
    if h is not None and (h % 32 or w % 32):
        raise ValueError(f"input height and width must be multiples of 32 (five poolings), got {input_shape}")
    widths = [base_filters + i * growth_step for i in range(4)]
    widths.append(widths[-1])  # the fifth block keeps the fourth's width, as in the original
    inputs = keras.Input(input_shape, name="slice")
    x = layers.BatchNormalization(name="input_bn")(inputs)
    skips = []
    for i, f in enumerate(widths, start=1):
        x = _conv(x, f, f"enc{i}_conv1")
        x = _conv(x, f, f"enc{i}_conv2")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
        x = layers.BatchNormalization(name=f"enc{i}_bn")(x)
    x = _conv(x, widths[-1], "bottom_conv1")
    x = _conv(x, widths[-1], "bottom_conv2")
    # Decoder: skips from blocks 5, 4, 3, 2 (block 1 at full resolution is unused in the original).
    dec_widths = [widths[2], widths[1], widths[0], widths[0]]
    for j, (skip, f) in enumerate(zip(skips[:0:-1], dec_widths), start=1):
        x = layers.UpSampling2D(2, name=f"dec{j}_up")(x)
        x = layers.Concatenate(name=f"dec{j}_concat")([x, skip])
        x = layers.BatchNormalization(name=f"dec{j}_bn")(x)
        x = _conv(x, f, f"dec{j}_conv1")
        x = _conv(x, f, f"dec{j}_conv2")
    x = layers.UpSampling2D(2, name="head_up")(x)
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="mask", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def compile_unet(model: keras.Model, learning_rate: float = 1e-3, momentum: float = 0.9,
                 optimizer: str = "sgd", smooth: float = SMOOTH, bce_weight: float = 0.0,
                 positive_weight: float = 1.0, decay_steps: int = 0) -> keras.Model:
    """Compile for training; the defaults are the original's: SGD with Nesterov momentum, loss = -Dice (smooth 100).

    The original uses learning rate 1e-3 from scratch and 5e-4 when continuing from weights. `optimizer`
    "adam" uses Adam (`momentum` unused); `bce_weight` > 0 adds a positive-weighted cross-entropy
    (:class:`SegmentationLoss`). `decay_steps` > 0 lowers the learning rate along a cosine to 0 over that
    many steps (the original keeps it constant). The reported metric is always the original's Dice (smooth 100).
    """
    if decay_steps > 0:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    if optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=True)
    elif optimizer == "adam":
        opt = keras.optimizers.Adam(learning_rate=learning_rate)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    original = smooth == SMOOTH and bce_weight == 0
    loss = dice_loss if original else SegmentationLoss(smooth, bce_weight, positive_weight)
    model.compile(optimizer=opt, loss=loss, metrics=[dice_coefficient])
    return model
