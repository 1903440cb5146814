"""The multi-scale gradual integration CNN (Kim et al., Neural Networks 2019) in Keras 3.

Inputs: three scales, each (20, 20, 6) (y, x, six z-slices as channels) in [0, 1]: `scale_small` (6x20x20
centre crop), `scale_mid` (10x30x30 zoomed), `scale_large` (26x40x40 zoomed). Every convolution is
3x3 'same' with bias -> BatchNorm (momentum 0.9, eps 1e-5) -> LeakyReLU 0.2, kernels from a truncated
normal (std 0.001), as the original's `layers.py`. Gradual Feature Extraction (GFE): conv f1 x2 on the first
scale -> concat the second scale -> conv f2 x2 -> concat the third -> conv f3 x2 -> max-pool 3/2 -> conv f4 x2.
Zoom-in stream = GFE(small, mid, large); zoom-out stream = GFE(large, mid, small); merged by element-wise
sum (or concat, or a 1x1 conv on each then sum). Head: max-pool 3/2 -> conv f5 x2 -> flatten ->
[dropout -> dense -> BN -> LeakyReLU] x2 -> dense 1 (-> BN, as the original) -> sigmoid. The paper
configuration has 21,451,781 parameters (BN moving statistics included). Ablations (`mode`): "ri" (the
three scales concatenated into one trunk), "lr" (per-scale 1x1 convs, concatenated, one trunk), "zi" /
"zo" (one stream only). Only `keras` / `keras.ops`: runs under the TensorFlow, JAX and PyTorch backends.
"""

from __future__ import annotations

import keras
from keras import layers

from .config import MgiConfig
from .patches import INPUT_SHAPE

INPUT_NAMES = ("scale_small", "scale_mid", "scale_large")


class _Builder:
    """Creates uniquely named layers with the configuration's initialiser, BN and activation settings."""

    def __init__(self, config: MgiConfig):
        self.c = config
        self.n = 0

    def _name(self, kind: str) -> str:
        self.n += 1
        return f"{kind}_{self.n}"

    def _bn_act(self, x, act: bool = True):
        x = layers.BatchNormalization(momentum=self.c.bn_momentum, epsilon=self.c.bn_epsilon,
                                      name=self._name("bn"))(x)
        return layers.LeakyReLU(negative_slope=self.c.leaky_slope, name=self._name("lrelu"))(x) if act else x

    def init(self):
        return keras.initializers.TruncatedNormal(mean=0.0, stddev=self.c.init_std, seed=self.c.seed + self.n)

    def conv(self, x, filters: int, kernel: int = 3):
        x = layers.Conv2D(filters, kernel, padding="same", kernel_initializer=self.init(),
                          name=self._name("conv"))(x)
        return self._bn_act(x)

    def conv2(self, x, filters: int, kernel: int = 3):
        return self.conv(self.conv(x, filters, kernel), filters, kernel)

    def pool(self, x):
        return layers.MaxPooling2D(3, strides=2, padding="same", name=self._name("pool"))(x)

    def concat(self, tensors):
        return layers.Concatenate(axis=-1, name=self._name("concat"))(tensors)

    def dense(self, x, units: int, act: bool = True, bn: bool = True):
        x = layers.Dense(units, kernel_initializer=self.init(), name=self._name("dense"))(x)
        return self._bn_act(x, act) if bn else x

    def gfe(self, x1, x2, x3):
        """Gradual feature extraction: one scale at a time, each joining the features of the previous ones."""
        f = self.c.filters
        h = self.conv2(x1, f[0])
        h = self.conv2(self.concat([x2, h]), f[1])
        h = self.conv2(self.concat([x3, h]), f[2])
        return self.conv2(self.pool(h), f[3])

    def trunk(self, x):
        """The single-stream trunk of the RI / LR ablations: f1 x2, f2 x2, f3 x2, pool, f4 x2."""
        f = self.c.filters
        h = self.conv2(self.conv2(self.conv2(x, f[0]), f[1]), f[2])
        return self.conv2(self.pool(h), f[3])


def build_mgicnn(config: MgiConfig | None = None) -> keras.Model:
    """Build the (uncompiled) MGI-CNN of `config` (default: the paper configuration); see the module docstring.

    The model takes a dict or list of the three scales (batch, 20, 20, 6) float32 and returns the nodule
    probability (batch, 1).
    """
    c = config or MgiConfig()
    b = _Builder(c)
    small, mid, large = (keras.Input(INPUT_SHAPE, name=n) for n in INPUT_NAMES)
    if c.mode == "proposed":
        zoom_in, zoom_out = b.gfe(small, mid, large), b.gfe(large, mid, small)
        if c.merge == "sum":
            h = layers.Add(name="merge_sum")([zoom_in, zoom_out])
        elif c.merge == "concat":
            h = layers.Concatenate(axis=-1, name="merge_concat")([zoom_in, zoom_out])
        else:
            h = layers.Add(name="merge_conv")([b.conv(zoom_in, c.filters[3], 1), b.conv(zoom_out, c.filters[3], 1)])
    elif c.mode == "zi":
        h = b.gfe(small, mid, large)
    elif c.mode == "zo":
        h = b.gfe(large, mid, small)
    elif c.mode == "ri":
        h = b.trunk(b.concat([small, mid, large]))
    else:  # "lr": per-scale 1x1 convs, concatenated
        h = b.trunk(b.concat([b.conv2(s, c.filters[0], 1) for s in (small, mid, large)]))
    h = b.conv2(b.pool(h), c.filters[4])
    h = layers.Flatten(name="flatten")(h)
    for _ in range(2):
        h = layers.Dropout(c.dropout, name=b._name("dropout"))(h)
        h = b.dense(h, c.dense_units)
    logit = b.dense(h, 1, act=False, bn=c.logit_batchnorm)
    prob = layers.Activation("sigmoid", dtype="float32", name="probability")(logit)
    return keras.Model(inputs=[small, mid, large], outputs=prob, name=f"mgicnn_{c.mode}_{c.merge}")


def compile_mgicnn(model: keras.Model, config: MgiConfig) -> keras.Model:
    """Compile with sigmoid cross-entropy and Adam(learning_rate, beta1, beta2); metrics: accuracy (a ratio) and AUC."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate, beta_1=config.beta1, beta_2=config.beta2),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
    )
    return model
