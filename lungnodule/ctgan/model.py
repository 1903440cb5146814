"""The 3-D pix2pix of CT-GAN (reference section 4.4): a U-Net generator, a PatchGAN discriminator, and a
`keras.Model` that trains both with a custom `train_step`.

Shapes are (batch, z, y, x, 1) with cubes of `cube_size`^3 (32 in the original: five stride-2 levels down
to 1^3; the discriminator's 2^3 patch output). All convolutions have 4^3 kernels, padding `same`, Keras'
default Glorot-uniform initialisation; BatchNormalization momentum 0.8 (epsilon 1e-3) as in Keras 2.

Training (per batch, as the original `trainer.train`): the discriminator takes one Adam step on
(real, condition) -> 0 and one on (G(condition), condition) -> 1 (least squares, the original's inverted
labels), then the generator takes one step on adversarial MSE towards "real" (0) plus l1_weight x L1. The
fake images of the discriminator steps come from the generator in inference mode (the original used
`generator.predict`). During the generator step the discriminator runs with `training=True`, i.e. its
BatchNormalization normalises with the batch statistics, as a frozen BN did inside a Keras 2 combined
model; only the generator's weights are updated.

Backends: the losses and models use `keras` / `keras.ops` only; the gradient computation is dispatched to
`tf.GradientTape` (TensorFlow, the default) or `torch` autograd in `train_step`. JAX needs a stateless step:
`lungnodule.ctgan.training.train` runs the same losses and update order through `jax_train_step` in its own loop
(`train_step` itself raises NotImplementedError under JAX).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from .cubes import centre_mask

BN_MOMENTUM = 0.8
LEAKY_SLOPE = 0.2
KERNEL = 4


def _levels(cube_size: int) -> int:
    levels = int(round(math.log2(cube_size)))
    if 2 ** levels != cube_size or levels < 4:
        raise ValueError(f"cube_size must be a power of two >= 16, got {cube_size}")
    return levels


def build_generator(cube_size: int = 32, base_filters: int = 40, name: str = "generator") -> keras.Model:
    """The U-Net generator: condition cube (B, n, n, n, 1) -> in-painted cube, tanh.

    Encoder: log2(n) stride-2 convolutions with gf, 2gf, 4gf, 8gf, 8gf, ... filters, LeakyReLU 0.2 and
    BatchNorm after all but the first. Decoder: per skip, UpSampling3D 2, convolution (ReLU) with the skip's
    filters, Dropout 0.5, BatchNorm, concatenation with the skip; then UpSampling3D 2 and a 1-filter tanh
    convolution. At n = 32 and gf = 40 this has 26,024,721 parameters (162,597,801 at gf = 100).
    """
    levels = _levels(cube_size)
    filters = [base_filters * min(2 ** i, 8) for i in range(levels)]
    inp = keras.Input((cube_size, cube_size, cube_size, 1), name="condition")
    x, skips = inp, []
    for i, f in enumerate(filters):
        x = layers.Conv3D(f, KERNEL, strides=2, padding="same", name=f"down{i + 1}_conv")(x)
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"down{i + 1}_lrelu")(x)
        if i > 0:
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"down{i + 1}_bn")(x)
        skips.append(x)
    x = skips.pop()
    for j, skip in enumerate(reversed(skips)):
        f = skip.shape[-1]
        x = layers.UpSampling3D(2, name=f"up{j + 1}_upsample")(x)
        x = layers.Conv3D(f, KERNEL, strides=1, padding="same", activation="relu", name=f"up{j + 1}_conv")(x)
        x = layers.Dropout(0.5, name=f"up{j + 1}_dropout")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"up{j + 1}_bn")(x)
        x = layers.Concatenate(name=f"up{j + 1}_concat")([x, skip])
    x = layers.UpSampling3D(2, name="out_upsample")(x)
    out = layers.Conv3D(1, KERNEL, strides=1, padding="same", activation="tanh", name="out_conv")(x)
    return keras.Model(inp, out, name=name)


def build_discriminator(cube_size: int = 32, base_filters: int = 40, name: str = "discriminator") -> keras.Model:
    """The PatchGAN discriminator: [image, condition] -> (B, n/16, n/16, n/16, 1) linear scores.

    Four stride-2 convolutions (df, 2df, 4df, 8df; LeakyReLU 0.2; BatchNorm after all but the first) and
    a 1-filter stride-1 convolution. At n = 32 and df = 40: 4,329,241 parameters (26,951,101 at df = 100).
    """
    _levels(cube_size)
    shape = (cube_size, cube_size, cube_size, 1)
    image = keras.Input(shape, name="image")
    condition = keras.Input(shape, name="condition")
    x = layers.Concatenate(name="pair")([image, condition])
    for i in range(4):
        x = layers.Conv3D(base_filters * 2 ** i, KERNEL, strides=2, padding="same", name=f"d{i + 1}_conv")(x)
        x = layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=f"d{i + 1}_lrelu")(x)
        if i > 0:
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"d{i + 1}_bn")(x)
    out = layers.Conv3D(1, KERNEL, strides=1, padding="same", name="validity")(x)
    return keras.Model([image, condition], out, name=name)


def _gradients(loss_fn, variables):
    """Run `loss_fn() -> (loss, aux)` and return (loss, aux, d loss / d variables) on the current backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss, aux = loss_fn()
        return loss, aux, tape.gradient(loss, variables)
    if backend == "torch":
        import torch

        for v in variables:
            v.value.grad = None
        with torch.enable_grad():
            loss, aux = loss_fn()
            loss.backward()
        grads = [v.value.grad for v in variables]
        for v in variables:
            v.value.grad = None
        return loss, aux, grads
    raise NotImplementedError(
        f"Pix2Pix3D.train_step supports the tensorflow and torch Keras backends, not {backend!r}; under JAX "
        "training runs jax_train_step in its own loop (lungnodule.ctgan.training.train)"
    )


class Pix2Pix3D(keras.Model):
    """Generator + discriminator trained together; `fit` takes batches of real cubes (B, n, n, n, 1).

    The condition is the real cube with its central `mask_size`^3 set to 0. `compile(g_optimizer,
    d_optimizer)` sets the two Adam optimisers. Logged per epoch (means over batches): d_loss, d_acc,
    g_loss (adversarial + l1_weight x L1), g_adv, g_l1; `evaluate` / validation gives g_l1 and the L1
    inside the mask (mask_l1), with the generator in inference mode.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, mask_size: int = 20,
                 l1_weight: float = 100.0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.cube_size = int(generator.input_shape[1])
        self.mask_size = int(mask_size)
        self.l1_weight = float(l1_weight)
        mask = centre_mask(self.cube_size, self.mask_size)[None, ..., None]
        self._keep = mask.__invert__().astype("float32")
        self._inside = mask.astype("float32")
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("d_loss", "d_acc", "g_loss", "g_adv", "g_l1", "mask_l1")}

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer

    @property
    def metrics(self):
        return list(self.trackers.values())

    def condition(self, cubes):
        """The generator's input: `cubes` with the central mask zeroed."""
        return ops.multiply(ops.convert_to_tensor(cubes), ops.convert_to_tensor(self._keep))

    def call(self, condition, training=False):
        return self.generator(condition, training=training)

    def _d_update(self, image, cond, target: float):
        def loss_fn():
            score = self.discriminator([image, cond], training=True)
            return ops.mean(ops.square(score - target)), score

        weights = self.discriminator.trainable_variables
        loss, score, grads = _gradients(loss_fn, weights)
        self.d_optimizer.apply_gradients(zip(grads, weights))
        hit = ops.less(score, 0.5) if target == 0.0 else ops.greater_equal(score, 0.5)
        return loss, ops.mean(ops.cast(hit, "float32"))

    def train_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data
        cond = self.condition(real)
        fake = ops.stop_gradient(self.generator(cond, training=False))
        d_real, acc_real = self._d_update(real, cond, 0.0)
        d_fake, acc_fake = self._d_update(fake, cond, 1.0)

        def g_loss_fn():
            generated = self.generator(cond, training=True)
            score = self.discriminator([generated, cond], training=True)
            adv = ops.mean(ops.square(score))
            l1 = ops.mean(ops.abs(generated - real))
            return adv + self.l1_weight * l1, (adv, l1)

        weights = self.generator.trainable_variables
        g_loss, (adv, l1), grads = _gradients(g_loss_fn, weights)
        self.g_optimizer.apply_gradients(zip(grads, weights))
        for name, value in (("d_loss", 0.5 * (d_real + d_fake)), ("d_acc", 0.5 * (acc_real + acc_fake)),
                            ("g_loss", g_loss), ("g_adv", adv), ("g_l1", l1)):
            self.trackers[name].update_state(value)
        return {name: self.trackers[name].result() for name in ("d_loss", "d_acc", "g_loss", "g_adv", "g_l1")}

    def test_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data
        generated = self.generator(self.condition(real), training=False)
        err = ops.abs(generated - real)
        inside = ops.convert_to_tensor(self._inside)
        self.trackers["g_l1"].update_state(ops.mean(err))
        self.trackers["mask_l1"].update_state(ops.sum(err * inside) / (ops.sum(inside) * ops.cast(ops.shape(err)[0], "float32")))
        return {"g_l1": self.trackers["g_l1"].result(), "mask_l1": self.trackers["mask_l1"].result()}


def jax_train_step(gan: Pix2Pix3D):
    """The train step of :class:`Pix2Pix3D` for the JAX backend, as a pure jitted function.

    Keras' JAX trainer calls a stateless `train_step(state, data)` with one optimizer's variables, and the GAN has
    two; so, under JAX, training runs this step in its own loop (:func:`lungnodule.ctgan.training.train`). It makes
    the same updates in the same order as :meth:`Pix2Pix3D.train_step`: D on real (target 0), D on G(condition)
    (target 1), then G on the adversarial MSE + `l1_weight` x L1 with D in training mode (its batch statistics are
    updated, only G's weights change). `state` is (G trainable, G non-trainable, D trainable, D non-trainable,
    G optimizer, D optimizer) variable values; returns (new state, per-batch losses).
    """
    import jax
    import jax.numpy as jnp

    g, d = gan.generator, gan.discriminator
    g_opt, d_opt = gan.g_optimizer, gan.d_optimizer
    keep = jnp.asarray(gan._keep)
    l1_weight = gan.l1_weight

    def d_loss(d_tv, d_ntv, image, cond, target):
        score, d_ntv = d.stateless_call(d_tv, d_ntv, [image, cond], training=True)
        return jnp.mean(jnp.square(score - target)), (score, d_ntv)

    def g_loss(g_tv, g_ntv, d_tv, d_ntv, cond, real):
        generated, g_ntv = g.stateless_call(g_tv, g_ntv, cond, training=True)
        score, d_ntv = d.stateless_call(d_tv, d_ntv, [generated, cond], training=True)
        adv = jnp.mean(jnp.square(score))
        l1 = jnp.mean(jnp.abs(generated - real))
        return adv + l1_weight * l1, (adv, l1, g_ntv, d_ntv)

    @jax.jit
    def step(state, real):
        g_tv, g_ntv, d_tv, d_ntv, g_ov, d_ov = state
        cond = real * keep
        fake, _ = g.stateless_call(g_tv, g_ntv, cond, training=False)
        fake = jax.lax.stop_gradient(fake)
        (d_real, (s_real, d_ntv)), grads = jax.value_and_grad(d_loss, has_aux=True)(d_tv, d_ntv, real, cond, 0.0)
        d_tv, d_ov = d_opt.stateless_apply(d_ov, grads, d_tv)
        (d_fake, (s_fake, d_ntv)), grads = jax.value_and_grad(d_loss, has_aux=True)(d_tv, d_ntv, fake, cond, 1.0)
        d_tv, d_ov = d_opt.stateless_apply(d_ov, grads, d_tv)
        (total, (adv, l1, g_ntv, d_ntv)), grads = jax.value_and_grad(g_loss, has_aux=True)(
            g_tv, g_ntv, d_tv, d_ntv, cond, real)
        g_tv, g_ov = g_opt.stateless_apply(g_ov, grads, g_tv)
        acc = 0.5 * (jnp.mean(s_real < 0.5) + jnp.mean(s_fake >= 0.5))
        logs = {"d_loss": 0.5 * (d_real + d_fake), "d_acc": acc, "g_loss": total, "g_adv": adv, "g_l1": l1}
        return (g_tv, g_ntv, d_tv, d_ntv, g_ov, d_ov), logs

    return step


def build_gan(cube_size: int = 32, base_filters: int = 40, mask_size: int = 20, l1_weight: float = 100.0,
              lr_g: float = 2e-4, lr_d: float = 1e-6, beta_1: float = 0.5,
              generator: keras.Model | None = None, discriminator: keras.Model | None = None) -> Pix2Pix3D:
    """A compiled :class:`Pix2Pix3D` (new networks unless given): Adam(lr_g) for G, Adam(lr_d) for D."""
    generator = generator or build_generator(cube_size, base_filters)
    discriminator = discriminator or build_discriminator(cube_size, base_filters)
    gan = Pix2Pix3D(generator, discriminator, mask_size=mask_size, l1_weight=l1_weight)
    gan.compile(g_optimizer=keras.optimizers.Adam(lr_g, beta_1=beta_1),
                d_optimizer=keras.optimizers.Adam(lr_d, beta_1=beta_1), jit_compile=False)
    return gan


def count_params(model: keras.Model) -> int:
    """Total number of weights (trainable and not) of a built model."""
    return int(sum(np.prod(v.shape) for v in model.weights))
