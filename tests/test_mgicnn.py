"""MGI-CNN stage: patches and scales, model sizes, fold isolation, training, the end-to-end tiny pipeline."""

from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

keras = pytest.importorskip("keras")

from lungnodule.errors import DataError
from lungnodule.luna import read_results
from lungnodule.mgicnn.config import PRESETS, MgiConfig
from lungnodule.mgicnn.dataset import PatchSet, TrainBatches, as_inputs
from lungnodule.mgicnn.model import build_mgicnn, compile_mgicnn
from lungnodule.mgicnn.patches import (augmented_crops, candidate_scales, centre_crops, extract_patches,
                                       scales_from_crops, windowed_volume, zoom_matrix)
from lungnodule.mgicnn.preprocess import label_candidates, preprocess
from lungnodule.mgicnn.training import train, train_fold
from lungnodule.scripting import script_args
from lungnodule.volume import Volume

TINY = PRESETS["tiny"]
ROOT = Path(__file__).resolve().parents[1]


def _blob_volume():
    """A flipped-direction scan (z, y, x) = (40, 60, 70) of -800 HU with a +100 HU ball (radius 3 voxels)."""
    arr = np.full((40, 60, 70), -800, np.int16)
    z, y, x = np.ogrid[:40, :60, :70]
    arr[(z - 20) ** 2 + (y - 25) ** 2 + (x - 35) ** 2 <= 9] = 100
    return Volume(arr, origin=(120.0, 80.0, -300.0), spacing=(0.7, 0.7, 2.5), direction=np.diag([-1.0, -1.0, 1.0]))


def test_scales_of_a_known_blob():
    vol = _blob_volume()
    world = vol.voxel_to_world([20, 25, 35])
    s = candidate_scales(vol, np.array([world]))
    assert s.shape == (1, 3, 20, 20, 6) and s.dtype == np.float32
    hu = lambda v: -1000 + 1400 * v  # noqa: E731  [0, 1] back to HU
    # Channels are z: the blob is at the centre of every scale, background elsewhere.
    small, mid, large = s[0]
    assert hu(small[10, 10, 3]) == pytest.approx(100, abs=1)  # voxel (20, 25, 35): patch centre (14, 21, 21)
    assert hu(small[0, 0, 0]) == pytest.approx(-800, abs=1)
    # Scale 0 is the native 6x20x20 centre crop (z 17..22, y 15..34, x 25..44), transposed to (y, x, z).
    win = (np.clip(vol.array.astype(np.float32), -1000, 400) + 1000) / 1400
    assert np.allclose(small, win[17:23, 15:35, 25:45].transpose(1, 2, 0), atol=1e-6)
    # Zoomed scales show the blob smaller (a wider field of view), the same spline zoom as scipy's.
    assert (mid > 0.5).sum() < (small > 0.5).sum() and (large > 0.5).sum() < (mid > 0.5).sum()
    crop = win[7:33, 5:45, 15:55]  # the 26x40x40 crop around (20, 25, 35)
    ref = ndimage.zoom(crop, (6 / 26, 0.5, 0.5), mode="nearest")
    assert np.allclose(large, ref.transpose(1, 2, 0), atol=1e-5)
    ref_mid = ndimage.zoom(crop[8:18, 5:35, 5:35], (0.6, 2 / 3, 2 / 3), mode="nearest")
    assert np.allclose(mid, ref_mid.transpose(1, 2, 0), atol=1e-5)


def test_candidate_at_the_volume_edge_sees_air_outside():
    vol = _blob_volume()
    padded = windowed_volume(vol)
    patch = extract_patches(padded, np.array([[0, 0, 69]]))[0]  # corner voxel (z 0, y 0, x 69)
    assert patch.shape == (28, 42, 42)
    win = (-800 + 1000) / 1400
    # Voxels c-14 .. c+13 (z) and c-21 .. c+20 (y, x): z rows 0..13 and y rows 0..20 lie before the scan,
    # x columns 22..41 (voxels 70..89) after it; all of them are air (0), the rest is the scan.
    assert np.all(patch[:14] == 0) and np.all(patch[:, :21] == 0) and np.all(patch[:, :, 22:] == 0)
    assert np.allclose(patch[14:, 21:, :22], win)
    s = candidate_scales(vol, vol.voxel_to_world(np.array([[0, 0, 69]])))
    # Cubic-spline zoom (as the original) may ring slightly past [0, 1] at the air edge.
    assert np.isfinite(s).all() and s.min() > -0.1 and s.max() < 1.1


def test_zoom_operator_matches_scipy_and_augmentation_geometry():
    rng = np.random.default_rng(0)
    v = rng.random(26)
    assert np.allclose(zoom_matrix(26, 6) @ v, ndimage.zoom(v, 6 / 26, mode="nearest"))
    p = rng.random((4, 28, 42, 42)).astype(np.float32)
    assert np.array_equal(augmented_crops(p, np.full(4, 13)), centre_crops(p))  # rot 0, offsets (1, 1, 1)
    a = augmented_crops(p, np.array([27, 2 * 27 + 26, 0, 107]))
    assert np.array_equal(a[0], np.rot90(p[0], 1, axes=(1, 2))[:26, :40, :40])
    assert np.array_equal(a[1], np.rot90(p[1], 2, axes=(1, 2))[2:, 2:, 2:])
    assert np.array_equal(a[3], np.rot90(p[3], 3, axes=(1, 2))[2:, 2:, 2:])
    assert scales_from_crops(a).shape == (4, 3, 20, 20, 6)


@pytest.mark.parametrize("merge,count", [("sum", 21_451_781), ("concat", 22_631_429), ("conv", 21_585_413)])
def test_paper_parameter_counts(merge, count):
    model = build_mgicnn(MgiConfig(merge=merge))
    assert model.count_params() == count
    assert model.output_shape == (None, 1)
    assert [tuple(i.shape) for i in model.inputs] == [(None, 20, 20, 6)] * 3


@pytest.mark.parametrize("mode", ["ri", "lr", "zi", "zo"])
def test_ablations_build_and_predict(mode):
    model = build_mgicnn(TINY.replace(mode=mode))
    p = model.predict(as_inputs(np.random.default_rng(0).random((2, 3, 20, 20, 6))), verbose=0)
    assert p.shape == (2, 1) and np.all((p >= 0) & (p <= 1))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="merge"):
        MgiConfig(merge="max")
    with pytest.raises(ValueError, match="mode"):
        MgiConfig(mode="x")


def test_fold_logic_keeps_the_test_subset_out():
    for fold in MgiConfig().folds(list(range(10))):
        t = fold["test"][0]
        assert t not in fold["train"] and t not in fold["val"] and fold["val"] == [(t + 1) % 10]
        assert sorted(fold["train"] + fold["val"] + fold["test"]) == list(range(10))
    with pytest.raises(ValueError):
        train_fold(TINY, ".", ".", {"train": [0, 2], "val": [1], "test": [2]})


def test_hit_rule_labels():
    ann = pd.DataFrame({"seriesuid": ["a"], "coordX": [0.0], "coordY": [0.0], "coordZ": [0.0], "diameter_mm": [10.0]})
    c = pd.DataFrame({"seriesuid": ["a", "a", "b"], "coordX": [4.9, 5.0, 0.0], "coordY": [0.0] * 3,
                      "coordZ": [0.0] * 3})
    assert label_candidates(c, ann).tolist() == [1, 0, 0]


def test_a_few_training_steps_lower_the_loss():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((32, 3, 20, 20, 6)).astype(np.float32) * 0.3
    y = (np.arange(32) % 2).astype(np.float32)[:, None]
    x[y[:, 0] == 1, :, 7:13, 7:13, :] += 0.6  # positives: a bright centre in every scale
    cfg = TINY.replace(dropout=0.0, learning_rate=3e-3, init_std=0.05)
    model = compile_mgicnn(build_mgicnn(cfg), cfg)
    loss = [float(model.train_on_batch(as_inputs(x), y)[0]) for _ in range(15)]
    assert np.isfinite(loss).all()
    assert np.mean(loss[-3:]) < loss[0] - 0.05


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_dataset, tmp_path_factory):
    """Preprocess the tiny dataset (candidates_V2.csv), then drop the test subset's patches before training."""
    work = tmp_path_factory.mktemp("mgi") / "mgicnn"
    summary = preprocess(TINY, tiny_dataset, work, progress=False)
    return work, summary


def test_preprocess_streams_every_candidate(tiny_dataset, tiny_pipeline):
    work, summary = tiny_pipeline
    cands = pd.read_csv(next(Path(tiny_dataset).glob("candidates_V2.csv")))
    assert sum(s["candidates"] for s in summary["subsets"].values()) == len(cands)
    for k in (0, 1, 2):
        scales = np.load(work / "patches" / f"subset{k}" / "scales.npy", mmap_mode="r")
        rows = pd.read_csv(work / "patches" / f"subset{k}" / "candidates.csv")
        pos = np.load(work / "patches" / f"subset{k}" / "positives.npy", mmap_mode="r")
        assert scales.dtype == np.float16 and scales.shape == (len(rows), 3, 20, 20, 6)
        assert pos.shape == ((rows["class"] == 1).sum(), 28, 42, 42)
        assert -0.5 < float(scales.min()) and float(scales.max()) < 1.5  # cubic-spline ringing only (sharp edges)
    again = preprocess(TINY, tiny_dataset, work, progress=False)  # resume: nothing redone
    assert all(s.get("reused") for s in again["subsets"].values()) and again["patches_cut"] == 0


def test_training_never_reads_the_test_subset(tiny_dataset, tiny_pipeline, tmp_path):
    work, _ = tiny_pipeline
    iso = tmp_path / "mgicnn"
    shutil.copytree(work / "patches", iso / "patches")
    shutil.rmtree(iso / "patches" / "subset2")  # the test subset of the tiny fold: unreadable from here on
    meta = train_fold(TINY, tiny_dataset, iso, {"train": [0], "val": [1], "test": [2]}, verbose=0)
    assert meta["fold"]["test"] == [2] and meta["val_candidates"] == len(PatchSet(iso / "patches", [1]))
    assert {r for r in PatchSet(iso / "patches", [0]).rows["subset"]} == {0}
    assert (iso / "fold2" / "best.keras").is_file() and (iso / "fold2" / "last.keras").is_file()
    assert len(pd.read_csv(iso / "fold2" / "history.csv")) == TINY.epochs


def test_batches_augment_positives_and_are_reproducible(tiny_pipeline):
    work, _ = tiny_pipeline
    ps = PatchSet(work / "patches", [0])
    a, b = TrainBatches(ps, TINY), TrainBatches(ps, TINY)
    n_pos = int((ps.rows["class"] == 1).sum())
    assert a.pool == int((ps.rows["class"] == 0).sum()) + n_pos * 109
    xa, ya = a[0]
    xb, yb = b[0]
    assert all(np.array_equal(xa[k], xb[k]) for k in xa) and np.array_equal(ya, yb)
    assert xa["scale_small"].shape == (TINY.batch_size, 20, 20, 6)
    assert set(np.unique(ya)) <= {0.0, 1.0}
    # Oversampling the eval source: each of its real rows enters the pool `eval_source_repeats` times.
    rep = TrainBatches(ps, TINY.replace(eval_source_repeats=3))
    assert rep.pool == 3 * (len(ps) - n_pos) + n_pos * (3 + 108)
    assert set(np.bincount(np.concatenate([rep.negative_pool, rep.positive_pool]))) <= {0, 3}


def test_train_test_resume_and_outputs(tiny_dataset, tiny_pipeline, tmp_path):
    from lungnodule.mgicnn.evaluate import test

    work, _ = tiny_pipeline
    results = tmp_path / "Results"
    out = train(TINY, tiny_dataset, work, results, verbose=0)
    assert (results / "3DCNN_acc.png").is_file()
    first = pd.read_csv(work / "fold2" / "history.csv")
    train(TINY, tiny_dataset, work, results, verbose=0)  # resume: already done, no new epoch
    assert len(pd.read_csv(work / "fold2" / "history.csv")) == len(first) == TINY.epochs
    assert 0 <= out["folds"][2]["threshold"] <= 1
    m = test(TINY, tiny_dataset, work, results, n_bootstrap=20)
    res = read_results(work / "results_mgicnn.csv")
    assert list(res.columns[:5]) == ["seriesuid", "coordX", "coordY", "coordZ", "probability"]
    assert set(res["seriesuid"]) <= set(pd.read_csv(work / "patches" / "subset2" / "candidates.csv")["seriesuid"])
    c = m["mgicnn"]["confusion"]
    assert c["TP"] + c["FN"] == int(pd.read_csv(work / "scored_test.csv")["class"].sum())
    assert 0 <= c["accuracy"] <= 1
    assert (results / "Roc.png").is_file() and (results / "FROC.png").is_file()
    assert (work / "froc_mgicnn" / "cpm.json").is_file()
    det = json.loads((work / "detection.json").read_text())
    assert (work / det["model"]).is_file()


def test_fusion_weights_and_their_choice_on_validation():
    from lungnodule.mgicnn.fusion import choose_weight, fuse

    rng = np.random.default_rng(0)
    mgi, unet = rng.random(50), rng.random(50)
    assert np.array_equal(fuse(mgi, np.full(50, np.nan), 0.0), mgi)  # weight 0: the MGI-CNN alone
    assert np.allclose(fuse(mgi, unet, 1.0), unet)
    half = fuse(mgi, unet, 0.5)  # the logit mean: between the two, and symmetric
    assert np.all((half >= np.minimum(mgi, unet) - 1e-12) & (half <= np.maximum(mgi, unet) + 1e-12))
    assert np.allclose(half, fuse(unet, mgi, 0.5))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        fuse(mgi, unet, 1.5)
    with pytest.raises(ValueError, match="U-Net probability"):
        fuse(mgi, np.full(50, np.nan), 0.3)
    # Eight scans, one nodule each; per scan the nodule's candidate and nine false positives.
    ann = pd.DataFrame({"seriesuid": [f"s{i}" for i in range(8)], "coordX": 0.0, "coordY": 0.0, "coordZ": 0.0,
                        "diameter_mm": 6.0})
    cands = pd.DataFrame({"seriesuid": np.repeat(ann["seriesuid"], 10).to_numpy(),
                          "coordX": np.tile([0.0] + [50.0 + 10 * k for k in range(9)], 8), "coordY": 0.0,
                          "coordZ": 0.0})
    cands["class"] = (cands["coordX"] == 0).astype(int)
    noise = rng.random(len(cands))
    good = np.where(cands["class"] == 1, 0.9 + 0.05 * noise, 0.5 * noise)  # nodules first, distinct FP scores
    uids = list(ann["seriesuid"])
    # The U-Net ranks every nodule first, the MGI-CNN at random: validation picks a U-Net-heavy weight.
    cpm = lambda pick, w: next(r["cpm_stable"] for r in pick["table"] if r["weight"] == w)  # noqa: E731
    pick = choose_weight(cands.assign(unet_probability=good), noise, (0.0, 0.5, 1.0), ann, None, uids)
    assert pick["weight"] > 0.0 and pick["cpm_stable"] > cpm(pick, 0.0)
    assert [r["weight"] for r in pick["table"]] == [0.0, 0.5, 1.0]
    assert pick["cpm_stable"] == max(r["cpm_stable"] for r in pick["table"])  # chosen by the stable CPM
    # The reverse: the MGI-CNN is the better score.
    pick = choose_weight(cands.assign(unet_probability=noise), good, (1.0, 0.0, 0.5), ann, None, uids)
    assert pick["weight"] < 1.0 and pick["cpm_stable"] > cpm(pick, 1.0)
    # Equal scores give equal CPMs and AUCs at every weight: the tie goes to the smallest weight.
    pick = choose_weight(cands.assign(unet_probability=good), good, (0.7, 0.2, 1.0), ann, None, uids)
    assert pick["weight"] == 0.2
    with pytest.raises(ValueError, match="eval_source 'unet'"):
        MgiConfig(fusion_weights=(0.5,))
    assert MgiConfig(eval_source="unet", fusion_weights=("0.5",)).fusion_weights == (0.5,)


def test_missing_patches_name_the_script_that_makes_them(tmp_path):
    with pytest.raises(DataError, match="preprocess.py"):
        PatchSet(tmp_path, [0])


@pytest.mark.parametrize("name", ["preprocess.py", "train.py", "test.py"])
def test_scripts_constants_are_the_paper_preset(name):
    ns = runpy.run_path(str(ROOT / "3DCNN" / name), run_name="not_main")
    constants = {k: v for k, v in ns.items() if k.isupper()}
    paper = PRESETS["paper"]
    shared = [k for k in constants if k.lower() in MgiConfig.__dataclass_fields__]
    assert len(shared) >= 3
    for k in shared:
        assert constants[k] == getattr(paper, k.lower()), k
    args = script_args(None, constants, PRESETS, ["--preset", "demo", "--eval-source", "candidates"])
    assert args.eval_source == "candidates"  # an explicit flag beats the preset
    assert args.work_dir == "data/work/mgicnn"
    if "TEST_SUBSETS" in constants:
        assert args.test_subsets == PRESETS["demo"].test_subsets


def test_resampled_patches_are_trilinear_samples_in_mm():
    from scipy.ndimage import map_coordinates

    from lungnodule.intensity import window_hu
    from lungnodule.mgicnn.patches import PATCH_SHAPE, resampled_patches

    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 400, (30, 50, 60)).astype(np.int16)
    windowed = window_hu(hu)
    centres = np.array([[15.2, 24.7, 30.1], [1.0, 2.0, 58.5]])  # the second one hangs over the edges
    spacing, target = (2.5, 1.4, 1.4), (2.0, 1.0, 1.0)
    got = resampled_patches(windowed, centres, spacing, target)
    for c, patch in zip(centres, got):
        axes = [c[i] + (np.arange(n) - (n - 1) / 2) * target[i] / spacing[i] for i, n in enumerate(PATCH_SHAPE)]
        grid = np.meshgrid(*axes, indexing="ij")
        ref = map_coordinates(windowed, grid, order=1, mode="grid-constant", cval=0.0)  # air outside
        np.testing.assert_allclose(patch, ref, atol=1e-5)


def test_resampled_patches_look_the_same_at_any_voxel_size():
    from lungnodule.mgicnn.patches import candidate_scales
    from lungnodule.volume import Volume

    def ball(spacing_zyx):
        shape = np.rint(np.array([60.0, 60.0, 60.0]) / spacing_zyx).astype(int)
        grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing_zyx)], indexing="ij")
        hu = np.where(sum(g ** 2 for g in grids) <= 5.0 ** 2, 40, -900).astype(np.int16)
        return Volume(hu, spacing=spacing_zyx[::-1])

    fine, coarse = ball(np.array([0.625, 0.7, 0.7])), ball(np.array([2.5, 1.4, 1.4]))
    at = lambda v: v.voxel_to_world((np.asarray(v.shape) - 1) / 2)  # noqa: E731  the ball's centre
    native = [candidate_scales(v, at(v)[None])[0] for v in (fine, coarse)]
    mm = [candidate_scales(v, at(v)[None], patch_spacing_mm=(2.0, 1.0, 1.0))[0] for v in (fine, coarse)]
    # Native patches show a 10 mm ball at two different sizes; resampled ones at one size.
    assert abs(native[0].mean() - native[1].mean()) > 3 * abs(mm[0].mean() - mm[1].mean())
    assert np.abs(mm[0] - mm[1]).mean() < 0.05


def test_operating_point_keeps_the_best_validation_candidates():
    from lungnodule.mgicnn.operating import choose_operating_point, keep

    cands = pd.DataFrame({"seriesuid": ["a"] * 4 + ["b"] * 3, "unet_probability": [0.9, 0.5, 0.2, 0.01, 0.8, 0.3, 0.05]})
    np.testing.assert_array_equal(keep(cands, 0.1, None), [1, 1, 1, 0, 1, 1, 0])
    np.testing.assert_array_equal(keep(cands, 0.0, 2), [1, 1, 0, 0, 1, 1, 0])
    # 8 scans, one nodule each, found only by a candidate of low U-Net probability that the final score
    # ranks first; 10 false positives per scan: a low threshold wins, and the curve reaches 8 FP/scan.
    uids = [f"s{i}" for i in range(8)]
    ann = pd.DataFrame({"seriesuid": uids, "coordX": 0.0, "coordY": 0.0, "coordZ": 0.0, "diameter_mm": 6.0})
    rows = []
    for u in uids:
        rows.append([u, 0.0, 0.0, 0.0, 0.02])
        rows += [[u, 50.0 + 10 * k, 0.0, 0.0, 0.5 + 0.01 * k] for k in range(10)]
    cands = pd.DataFrame(rows, columns=["seriesuid", "coordX", "coordY", "coordZ", "unet_probability"])
    score = np.where(cands["coordX"] == 0, 0.99, 0.1)
    point = choose_operating_point(cands, score, (0.01, 0.1), (5, 20), ann, None, uids)
    assert point["threshold"] == 0.01 and point["max_candidates"] == 20 and point["cpm_stable"] == 1.0
    assert point["reaches_8_fps"] and len(point["table"]) == 4


def test_fixed_batches_trace_the_predict_function_once():
    from lungnodule.keras_io import predict_fixed

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    x = np.random.default_rng(0).random((37, 3)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(model(x))
    for n in (37, 5, 16, 1):  # every length, including a partial last batch
        np.testing.assert_allclose(predict_fixed(model, x[:n], 16), expected[:n], atol=1e-6)
