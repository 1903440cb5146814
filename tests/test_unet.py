"""U-Net stage: model size, loss, augmentation, masks, candidate merging, checkpoints, short training."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from lungnodule.unet.augment import augment_pair
from lungnodule.unet.config import PRESETS
from lungnodule.unet.dataset import SliceBatches
from lungnodule.unet.slices import prepare_stacks
from lungnodule.unet.inference import detect_candidates, extract_candidates
from lungnodule.unet.losses import dice_coefficient, dice_loss
from lungnodule.unet.masks import draw_slice_mask, nodule_slice_range, to_output_pixels
from lungnodule.unet.model import build_unet, compile_unet
from lungnodule.unet.training import train
from lungnodule.volume import Volume

TINY = PRESETS["tiny"]


def test_original_parameter_count():
    model = build_unet((320, 320, 1))
    assert model.count_params() == 1_619_461
    assert model.output_shape == (None, 320, 320, 1)
    bn_stats = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert bn_stats == 2_370


def test_input_size_must_allow_five_poolings():
    with pytest.raises(ValueError, match="multiples of 32"):
        build_unet((100, 100, 1))


def test_dice_on_known_inputs():
    y = np.zeros((2, 4, 4, 1), np.float32)
    y[0, :2, :2] = 1  # 4 positives
    p = np.zeros_like(y)
    p[0, :2, :1] = 1  # 2 of them predicted, nothing else
    # dice = (2 * 2 + 100) / (4 + 2 + 100)
    assert float(dice_coefficient(y, p)) == pytest.approx(104 / 106, rel=1e-6)
    assert float(dice_loss(y, p)) == pytest.approx(-104 / 106, rel=1e-6)
    assert float(dice_coefficient(y, y)) == pytest.approx(1.0)
    # Over the whole batch, not per sample: moving the prediction to the other sample changes nothing.
    q = np.zeros_like(y)
    q[1, :2, :1] = 1
    assert float(dice_coefficient(y, q)) == pytest.approx(100 / 106, rel=1e-6)


def _shape_image(size=64):
    m = np.zeros((size, size), np.float32)
    m[10:30, 20:28] = 1  # asymmetric: a flip or rotation shows
    m[30:34, 20:40] = 1
    return m


def test_augmentation_keeps_masks_binary_and_aligned():
    cfg = TINY.replace(elastic_p=1.0, rotate_p=1.0, shift_p=1.0, distort_range=0.0, elastic_alpha=20.0,
                       elastic_sigma=3.0, shift_px=6)
    rng = np.random.default_rng(1)
    m = _shape_image()
    for _ in range(20):
        image, mask = augment_pair(m, m, rng, cfg)
        assert set(np.unique(mask)) <= {0.0, 1.0}
        # The image (equal to the mask before) went through the same transforms: its 0.5 level set is the mask,
        # up to pixels at the boundary where the mask was re-binarised between two interpolations.
        differ = (image >= 0.5) != (mask > 0)
        assert differ.sum() <= 0.1 * max(mask.sum(), 1)
        if mask.sum():
            assert np.all(np.abs(image[differ] - 0.5) < 0.5)


def test_exact_transforms_are_identical_on_image_and_mask():
    cfg = TINY.replace(elastic_p=0.0, rotate_p=0.0, shift_p=1.0, distort_range=0.0, flip_p=0.5)
    rng = np.random.default_rng(2)
    m = _shape_image()
    seen = set()
    for _ in range(10):
        image, mask = augment_pair(m, m, rng, cfg)
        assert np.array_equal(image, mask)  # flips and integer shifts are exact
        seen.add(image.tobytes())
    assert len(seen) > 1


def test_intensity_distortion_never_touches_the_mask():
    cfg = TINY.replace(elastic_p=0.0, rotate_p=0.0, shift_p=0.0, flip_p=0.0, distort_range=0.5)
    rng = np.random.default_rng(3)
    image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    mask = (image > 0.7).astype(np.float32)
    out_image, out_mask = augment_pair(image, mask, rng, cfg)
    assert np.array_equal(out_mask, mask)
    assert not np.allclose(out_image, image)
    assert out_image.min() >= 0 and out_image.max() <= 1


def test_elastic_field_differs_per_sample():
    cfg = TINY.replace(elastic_p=1.0, rotate_p=0.0, shift_p=0.0, flip_p=0.0, distort_range=0.0,
                       elastic_alpha=20.0, elastic_sigma=3.0)
    rng = np.random.default_rng(4)
    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    a, _ = augment_pair(ramp, ramp > 0.5, rng, cfg)
    b, _ = augment_pair(ramp, ramp > 0.5, rng, cfg)
    assert not np.allclose(a, b)


def test_mask_disc_radius_follows_the_sphere():
    # 10 mm nodule, 0.5 mm pixels, 1 mm slices, native 200 px drawn at 200 px: on the slice 3 mm from the centre
    # the disc radius is sqrt(5^2 - 3^2) = 4 mm = 8 px, area ~ pi * 64.
    shape, spacing = (30, 200, 200), (1.0, 0.5, 0.5)
    centre = np.array([[15.0, 100.0, 80.0]])
    m = draw_slice_mask(18, shape, spacing, centre, np.array([5.0]), (200, 200))
    assert m.sum() == pytest.approx(np.pi * 64, rel=0.08)
    assert m[100, 80] == 1 and m[100, 80 + 9] == 0
    # Resized to 100 px the radius halves.
    m2 = draw_slice_mask(18, shape, spacing, centre, np.array([5.0]), (100, 100))
    assert m2.sum() == pytest.approx(np.pi * 16, rel=0.15)
    first, last = nodule_slice_range(centre, np.array([5.0]), spacing, shape[0])
    assert (first[0], last[0]) == (10, 20)
    assert draw_slice_mask(9, shape, spacing, centre, np.array([5.0]), (200, 200)).sum() == 0


def test_tiny_nodule_keeps_its_centre_pixel():
    # A 2 mm nodule on 3 mm slices, 512 px downsized to 32 px: still one pixel on its nearest slice.
    centre = np.array([[7.4, 300.0, 100.0]])
    m = draw_slice_mask(7, (20, 512, 512), (3.0, 0.7, 0.7), centre, np.array([1.0]), (32, 32))
    iy, ix = (int(np.rint(to_output_pixels(c, 512, 32))) for c in (300.0, 100.0))
    assert m[iy, ix] == 1


def test_candidate_merging_on_a_flipped_scan():
    shape = (20, 64, 64)
    vol = Volume(np.zeros(shape, np.int16), origin=(10.0, 20.0, -30.0), spacing=(0.7, 0.8, 2.0),
                 direction=np.diag([-1.0, -1.0, 1.0]))
    prob = np.zeros(shape, np.float16)
    zz, yy, xx = np.mgrid[:20, :64, :64]
    ball = (zz - 8) ** 2 + (yy - 30) ** 2 + (xx - 40) ** 2 <= 9
    prob[ball] = 0.9
    prob[15, 5:7, 5:7] = 0.6  # a weaker, separate blob
    cands = extract_candidates(prob, vol, threshold=0.5)
    assert len(cands) == 2
    best = cands.iloc[0]
    assert best.probability == pytest.approx(0.9, abs=1e-3)
    # world = origin + direction @ (spacing * index_xyz); x and y axes flipped.
    expected = (10.0 - 0.7 * 40, 20.0 - 0.8 * 30, -30.0 + 2.0 * 8)
    assert (best.coordX, best.coordY, best.coordZ) == pytest.approx(expected, abs=1e-6)
    assert best.n_voxels == ball.sum()
    assert best.diameter_mm == pytest.approx(np.cbrt(6 * ball.sum() * 0.7 * 0.8 * 2.0 / np.pi))
    # Round trip through the volume's own geometry.
    assert vol.world_to_voxel(np.array(expected)) == pytest.approx([8, 30, 40])
    assert len(extract_candidates(prob, vol, threshold=0.5, max_candidates=1)) == 1
    assert len(extract_candidates(prob, vol, threshold=0.95)) == 0


def test_slices_joined_into_one_3d_component():
    shape = (10, 32, 32)
    vol = Volume(np.zeros(shape, np.int16))
    prob = np.zeros(shape, np.float16)
    prob[3:7, 10:13, 10:13] = 0.8  # four slices, one component
    prob[5, 11, 11] = 1.0
    cands = extract_candidates(prob, vol, threshold=0.5)
    assert len(cands) == 1
    assert cands.probability.iloc[0] == pytest.approx(1.0)
    assert extract_candidates(prob, vol, threshold=0.5, score="mean").probability.iloc[0] < 0.9


def test_short_training_lowers_the_loss():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n, s = 16, 32
    y = np.zeros((n, s, s), np.float32)
    x = rng.random((n, s, s)).astype(np.float32) * 0.3
    for i in range(n):
        cy, cx = rng.integers(8, 24, size=2)
        y[i, cy - 3:cy + 3, cx - 3:cx + 3] = 1
    x = np.clip(x + 0.7 * y, 0, 1)
    cfg = TINY.replace(batch_size=4)
    model = compile_unet(build_unet((s, s, 1), 4, 4), learning_rate=0.05)
    data = SliceBatches(x[..., None], y, cfg, augment=False)
    loss = model.fit(data, epochs=8, verbose=0).history["loss"]
    assert loss[-1] < loss[0] - 0.05
    assert np.isfinite(loss).all()


def test_batches_are_reproducible_and_augmented():
    rng = np.random.default_rng(0)
    x = rng.random((10, 32, 32, 3)).astype(np.float16)
    y = (rng.random((10, 32, 32)) > 0.8).astype(np.uint8)
    a = SliceBatches(x, y, TINY, augment=True, steps=3, seed=5)
    b = SliceBatches(x, y, TINY, augment=True, steps=3, seed=5)
    xa, ya = a[1]
    xb, yb = b[1]
    assert xa.shape == (TINY.batch_size, 32, 32, 3) and xa.dtype == np.float32
    assert ya.shape == (TINY.batch_size, 32, 32, 1)
    assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    assert set(np.unique(ya)) <= {0.0, 1.0}
    a.on_epoch_end()
    assert not np.array_equal(a[1][0], xa)


def test_positive_slice_fraction_sets_the_share_of_nodule_slices():
    x = np.zeros((40, 32, 32, 1), np.float16)
    y = np.zeros((40, 32, 32), np.uint8)
    y[[3, 17], 10:14, 10:14] = 1  # 2 nodule slices of 40
    uniform = SliceBatches(x, y, TINY, augment=True, steps=50, seed=1)
    assert np.isin(uniform._order, [3, 17]).mean() == pytest.approx(0.05, abs=0.01)
    half = SliceBatches(x, y, TINY.replace(positive_slice_fraction=0.5), augment=True, steps=50, seed=1)
    assert len(half._order) == 50 * TINY.batch_size
    assert np.isin(half._order, [3, 17]).mean() == pytest.approx(0.5, abs=0.005)
    assert set(half._order[~np.isin(half._order, [3, 17])]) == set(range(40)) - {3, 17}  # every negative drawn
    half.on_epoch_end()
    assert np.isin(half._order, [3, 17]).mean() == pytest.approx(0.5, abs=0.005)
    with pytest.raises(ValueError, match="positive_slice_fraction"):
        train(TINY.replace(positive_slice_fraction=1.0), "unused", "unused")


def test_detect_candidates_runs_on_a_volume():
    keras.utils.set_random_seed(0)
    model = build_unet((32, 32, 1), 4, 4)
    # A body (water) with two air lungs, padded by air: the lung mask finds the lungs.
    arr = np.full((12, 48, 48), -1000, np.int16)
    arr[:, 6:42, 4:44] = 0
    arr[:, 12:36, 8:22] = -850
    arr[:, 12:36, 26:40] = -850
    vol = Volume(arr, origin=(-30, -30, 0), spacing=(1.2, 1.2, 3.0), direction=np.diag([-1.0, -1.0, 1.0]))
    cfg = TINY.replace(threshold=0.0, max_candidates=5)
    cands = detect_candidates(model, vol, cfg)
    assert list(cands.columns[:5]) == ["coordX", "coordY", "coordZ", "probability", "diameter_mm"]
    assert 1 <= len(cands) <= 5
    back = vol.world_to_voxel(cands[["coordX", "coordY", "coordZ"]].to_numpy())
    assert np.allclose(back, cands[["voxel_z", "voxel_y", "voxel_x"]].to_numpy())


def test_context_channels_hold_neighbouring_slices_clamped_at_the_ends():
    arr = np.stack([np.full((16, 16), -1000 + 100 * z, np.int16) for z in range(5)])
    cfg = TINY.replace(image_size=16, context_slices=1)
    x = prepare_stacks(arr, np.array([0, 2, 4]), cfg)
    assert x.shape == (3, 16, 16, 3)
    level = x[:, 0, 0, :]  # window [-1000, 400]: slice z has value z * 100 / 1400
    expected = np.array([[0, 0, 1], [1, 2, 3], [3, 4, 4]]) * 100 / 1400
    assert np.allclose(level, expected, atol=1e-6)
    assert prepare_stacks(arr, np.array([2]), TINY.replace(image_size=16)).shape == (1, 16, 16, 1)


def test_augmentation_moves_every_channel_with_the_mask():
    rng = np.random.default_rng(3)
    mask = np.zeros((64, 64), np.float32)
    mask[20:30, 36:46] = 1
    image = np.repeat(mask[..., None], 3, axis=2) * np.array([0.2, 0.6, 1.0], np.float32)
    cfg = TINY.replace(elastic_p=1.0, rotate_p=1.0, shift_p=1.0, distort_range=0.0, elastic_alpha=8.0, elastic_sigma=4.0)
    assert augment_pair(image[..., :1], mask, rng, cfg)[0].shape == (64, 64, 1)
    for _ in range(5):
        out, m = augment_pair(image, mask, rng, cfg)
        assert out.shape == (64, 64, 3)
        on = m > 0
        assert on.any()
        # Each channel keeps its own level inside the moved mask and is dark well away from it.
        for c, level in enumerate((0.2, 0.6, 1.0)):
            assert np.median(out[..., c][on]) == pytest.approx(level, abs=0.15)


def test_random_crop_keeps_the_nodule_and_the_pairing():
    from lungnodule.unet.dataset import random_crop

    rng = np.random.default_rng(0)
    # Each pixel's value is its flat index, so a crop's first value tells where it was cut.
    image = np.repeat(np.arange(64 * 64, dtype=np.float32).reshape(64, 64, 1), 3, axis=2)
    mask = np.zeros((64, 64), np.float32)
    mask[60:63, 1:4] = 1  # a nodule in a corner: the crop must still hold it
    for _ in range(50):
        x, y = random_crop(image, mask, 32, rng)
        assert x.shape == (32, 32, 3) and y.shape == (32, 32)
        oy, ox = divmod(int(x[0, 0, 0]), 64)
        assert np.array_equal(mask[oy:oy + 32, ox:ox + 32], y) and y.sum() > 0
    empty = np.zeros_like(mask)
    origins = {int(random_crop(image, empty, 32, rng)[0][0, 0, 0]) for _ in range(30)}
    assert len(origins) > 10  # crops of slices without a nodule fall anywhere
    assert random_crop(image, mask, 64, rng)[0] is image


def test_crop_training_batches_and_a_size_free_model():
    rng = np.random.default_rng(0)
    x = rng.random((6, 64, 64, 1)).astype(np.float16)
    y = np.zeros((6, 64, 64), np.uint8)
    y[:3, 40:44, 10:14] = 1
    cfg = TINY.replace(train_crop_size=32, batch_size=6, elastic_p=0, rotate_p=0, shift_p=0)
    xb, yb = SliceBatches(x, y, cfg, augment=True, steps=1, seed=1)[0]
    assert xb.shape == (6, 32, 32, 1) and yb.shape == (6, 32, 32, 1)
    assert (yb.reshape(6, -1).sum(1) > 0).sum() == 3  # each nodule slice's crop holds its nodule
    model = build_unet((None, None, 1), 4, 4)
    assert model.predict(np.zeros((1, 64, 64, 1), np.float32), verbose=0).shape == (1, 64, 64, 1)


def test_nodule_weights_balance_small_and_large_nodules():
    from lungnodule.unet.dataset import nodule_weights

    masks = np.zeros((2, 32, 32), np.float32)
    masks[0, 2:4, 2:4] = 1        # 4 px
    masks[0, 10:26, 10:26] = 1    # 256 px
    w = nodule_weights(masks, 1.0)
    assert np.all(w[masks == 0] == 1.0)
    assert w[masks > 0].mean() == pytest.approx(1.0)
    # At power 1 each nodule's total weight is the same, whatever its size.
    assert w[0, 2:4, 2:4].sum() == pytest.approx(w[0, 10:26, 10:26].sum())
    assert np.array_equal(nodule_weights(masks, 0.0), np.ones_like(masks))


def test_weighted_target_channel_changes_only_the_cross_entropy():
    from lungnodule.unet.losses import SegmentationLoss

    rng = np.random.default_rng(0)
    y = (rng.random((2, 8, 8, 1)) > 0.7).astype(np.float32)
    p = rng.uniform(0.05, 0.95, (2, 8, 8, 1)).astype(np.float32)
    ones = np.concatenate([y, np.ones_like(y)], axis=-1)
    twice = np.concatenate([y, np.full_like(y, 2.0)], axis=-1)
    assert float(dice_coefficient(ones, p)) == pytest.approx(float(dice_coefficient(y, p)))
    loss = SegmentationLoss(bce_weight=1.0, positive_weight=3.0)
    assert float(loss(ones, p)) == pytest.approx(float(loss(y, p)), rel=1e-5)
    assert float(SegmentationLoss(bce_weight=1.0, positive_weight=6.0)(y, p)) == pytest.approx(
        float(loss(twice, p)), rel=1e-5)


def test_cosine_schedule_reaches_zero_and_validation_can_cover_the_split(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((8, 32, 32, 1)).astype(np.float32)
    y = (rng.random((8, 32, 32)) > 0.9).astype(np.float32)
    cfg = TINY.replace(batch_size=4)
    model = compile_unet(build_unet((32, 32, 1), 4, 4), learning_rate=0.01, optimizer="adam", decay_steps=4)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    model.fit(SliceBatches(x, y, cfg, augment=False), epochs=2, verbose=0)  # 2 x 2 steps
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    assert len(SliceBatches(x, y, cfg, augment=False, steps=None)) == 2


def test_train_rejects_bad_crop_size_and_schedule_before_reading_data(tmp_path):
    from lungnodule.unet.training import train

    with pytest.raises(ValueError, match="multiple of 32"):
        train(TINY.replace(train_crop_size=40), tmp_path, None)
    with pytest.raises(ValueError, match="lr_schedule"):
        train(TINY.replace(lr_schedule="step"), tmp_path, None)


def test_training_batches_do_not_depend_on_data_threads():
    # Training prepares batches in two threads; each batch must still be the one its (epoch, index) defines.
    rng = np.random.default_rng(5)
    x = rng.random((24, 32, 32, 1)).astype(np.float32)
    y = (rng.random((24, 32, 32)) > 0.9).astype(np.uint8)
    cfg = TINY.replace(nodule_balance=0.0)
    runs = []
    for workers in (1, 2):
        seen = []

        class Recording(SliceBatches):
            def __getitem__(self, index):
                batch = super().__getitem__(index)
                seen.append((self.epoch, index, batch[0].tobytes()))
                return batch

        model = build_unet((32, 32, 1), 4, 4)
        compile_unet(model, 1e-3, 0.9, "adam", 100.0, 0.0, 1.0, 0)
        model.fit(Recording(x, y, cfg, augment=True, steps=3, workers=workers), epochs=3, verbose=0)
        runs.append(sorted(seen))
    assert runs[0] == runs[1]
    assert len({e for e, _, _ in runs[0]}) >= 3  # every epoch drew a new stream


def test_peaks_keep_a_faint_nodule_beside_a_bright_blob_that_components_merge():
    from lungnodule.unet.inference import extract_candidates, extract_peaks
    from lungnodule.volume import Volume

    shape = (20, 48, 48)
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    prob = 0.9 * np.exp(-((z - 10) ** 2 + (y - 20) ** 2 + (x - 20) ** 2) / 8.0)  # a vessel-like bright blob
    prob += 0.05 * np.exp(-((z - 10) ** 2 + (y - 20) ** 2 + (x - 28) ** 2) / 3.0)  # a faint nodule 8 mm away
    prob = prob.astype(np.float32)
    vol = Volume(np.zeros(shape, np.int16), spacing=(1.0, 1.0, 1.0))
    comps = extract_candidates(prob, vol, 0.01)
    peaks = extract_peaks(prob, vol, 0.01, radius_mm=3.0)
    assert len(comps) == 1  # one merged component: its centroid lies between the two
    assert len(peaks) == 2
    np.testing.assert_allclose(peaks[["voxel_z", "voxel_y", "voxel_x"]].to_numpy()[1], [10, 20, 28], atol=0.2)
    assert peaks["probability"].iloc[1] == pytest.approx(0.05 + 0.9 * np.exp(-8.0), rel=1e-3)
    # Positions are world mm through the geometry; sizes from the voxels at half the peak or more.
    assert 3.0 < peaks["diameter_mm"].iloc[0] < 8.0
    assert extract_peaks(prob, vol, 0.01, max_candidates=1, radius_mm=3.0)["probability"].tolist() == [
        pytest.approx(peaks["probability"].iloc[0])]


def test_context_channels_lie_the_same_mm_apart_at_any_slice_spacing():
    from lungnodule.unet.slices import context_positions, prepare_stacks

    cfg = PRESETS["tiny"].replace(context_slices=1, context_mm=2.5, image_size=16)
    pos = context_positions(np.array([10]), cfg, spacing_z=0.625, depth=40)
    np.testing.assert_allclose(pos, [[6.0, 10.0, 14.0]])  # 4 slices of 0.625 mm on each side
    np.testing.assert_allclose(context_positions(np.array([10]), cfg, 2.5, 40), [[9.0, 10.0, 11.0]])
    # Between slices the channel is the linear blend of its two neighbours.
    ramp = np.broadcast_to(np.linspace(-1000, 200, 12)[:, None, None], (12, 16, 16)).astype(np.int16)
    stack = prepare_stacks(ramp, np.array([5]), cfg, spacing_z=2.0)  # neighbours 1.25 slices away
    expected = [ramp[3, 0, 0] * 0.25 + ramp[4, 0, 0] * 0.75, ramp[5, 0, 0], ramp[6, 0, 0] * 0.75 + ramp[7, 0, 0] * 0.25]
    np.testing.assert_allclose(stack[0, 0, 0], (np.array(expected) + 1000) / 1400, atol=1e-3)
    # context_mm 0 keeps the original's adjacent slices.
    plain = prepare_stacks(ramp, np.array([5]), cfg.replace(context_mm=0.0), spacing_z=2.0)
    np.testing.assert_allclose(plain[0, 0, 0], (ramp[4:7, 0, 0] + 1000) / 1400, atol=1e-3)
    # A whole-slice position above every fractional one, below the top of the volume (2.5 mm on 1 mm slices:
    # found on a 512-px root, where its unused upper neighbour lay past every slice prepared).
    wide = prepare_stacks(ramp, np.array([5]), cfg.replace(context_slices=2), spacing_z=1.0)
    blend = [ramp[0, 0, 0], (ramp[2, 0, 0] + ramp[3, 0, 0]) / 2, ramp[5, 0, 0], (ramp[7, 0, 0] + ramp[8, 0, 0]) / 2,
             ramp[10, 0, 0]]
    np.testing.assert_allclose(wide[0, 0, 0], (np.array(blend) + 1000) / 1400, atol=1e-3)


def test_unet_threshold_choice_keeps_the_configured_one_without_validation_nodules():
    import pandas as pd

    from lungnodule.unet.evaluate import _choose_threshold

    grid = pd.DataFrame({"threshold": [0.1, 0.5], "candidate_sensitivity": [float("nan")] * 2,
                         "candidates_per_scan": [9.0, 3.0]})
    assert _choose_threshold(grid) is None
    grid["candidate_sensitivity"] = [0.8, 0.8]
    assert _choose_threshold(grid) == 0.5


def test_flip_averaging_is_flip_equivariant_and_changes_the_map():
    from lungnodule.unet.inference import _predict_batch

    keras.utils.set_random_seed(0)
    model = build_unet((32, 32, 3), 4, 4)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    plain, tta = _predict_batch(model, x, False), _predict_batch(model, x, True)
    assert plain.shape == tta.shape == (2, 32, 32)
    # The mean over the four flips, each flipped back, is the same map for a flipped input, flipped.
    for axes in [(1,), (2,), (1, 2)]:
        flipped = _predict_batch(model, np.ascontiguousarray(np.flip(x, axis=axes)), True)
        np.testing.assert_allclose(flipped, np.flip(tta, axis=axes), atol=1e-5)
    # An untrained network is not flip-symmetric, so averaging changes its output.
    assert np.abs(plain - tta).max() > 1e-4
