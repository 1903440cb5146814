"""Stage 3 (CT-GAN): cubes, intensity mapping, networks, training steps, tampering and its outputs."""

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from lungnodule.ctgan.config import PRESETS, CTGANConfig
from lungnodule.ctgan.cubes import centre_crop, centre_mask, extract_cube, paste_cube, paste_region
from lungnodule.ctgan.normalization import CubeNormalizer
from lungnodule.errors import DataError
from lungnodule.volume import Volume, read_volume, write_volume

AWKWARD_Z = [0.625, 1.25, 2.2, 2.5]
FLIPPED = np.diag([-1.0, -1.0, 1.0])


def _ramp_volume(spacing_z: float, direction=np.eye(3), shape=(60, 70, 80)) -> Volume:
    """A float32 volume whose value is a linear function of the world position (x, y, z) mm."""
    vol = Volume(np.zeros(shape, np.float32), origin=(-31.0, 12.5, -140.0), spacing=(0.7, 0.8, spacing_z),
                 direction=direction)
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    world = vol.voxel_to_world(np.column_stack([zz.ravel(), yy.ravel(), xx.ravel()]))
    vol.array[...] = (world @ np.array([0.5, -0.25, 2.0])).reshape(shape).astype(np.float32)
    return vol


def _ramp(points_xyz) -> np.ndarray:
    return np.asarray(points_xyz) @ np.array([0.5, -0.25, 2.0])


def _files_digest(path: Path) -> dict:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if path.suffix == ".mhd":
        files.append(path.with_suffix(".raw"))
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


# ---------------------------------------------------------------------------------------------- cubes

@pytest.mark.parametrize("spacing_z", AWKWARD_Z)
@pytest.mark.parametrize("direction", [np.eye(3), FLIPPED], ids=["identity", "flipped"])
def test_cube_cut_is_32_cubed_centred_and_isotropic(spacing_z, direction):
    vol = _ramp_volume(spacing_z, direction)
    point = vol.voxel_to_world(np.array([29.3, 33.6, 41.2]))
    cube = extract_cube(vol, point, size=32, spacing_mm=1.0, coords="world")
    assert cube.shape == (32, 32, 32) and cube.dtype == np.float32
    # The 8 central samples straddle the point symmetrically: their mean is the value at the point.
    assert np.mean(cube[15:17, 15:17, 15:17]) == pytest.approx(_ramp(point), abs=1e-3)
    # One sample per mm along each index axis (through the direction matrix).
    axes = vol.direction
    assert np.allclose(np.diff(cube, axis=2), _ramp(axes[:, 0]), atol=1e-3)
    assert np.allclose(np.diff(cube, axis=1), _ramp(axes[:, 1]), atol=1e-3)
    assert np.allclose(np.diff(cube, axis=0), _ramp(axes[:, 2]), atol=1e-3)
    # Voxel and world coordinates give the same cube.
    assert np.array_equal(cube, extract_cube(vol, vol.world_to_voxel(point), coords="vox"))


@pytest.mark.parametrize("spacing_z", AWKWARD_Z)
def test_cut_paste_round_trip_is_exact_and_local(spacing_z):
    vol = _ramp_volume(spacing_z, FLIPPED)
    c = np.array([30.0, 35.4, 39.7])
    cube = extract_cube(vol, c, coords="vox")
    back = paste_cube(vol, cube, c, coords="vox")
    lo, hi = paste_region(vol, c, 32)
    inside = np.zeros(vol.shape, bool)
    inside[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1] = True
    # The pasted region covers the cube's 31 mm extent (no more, no less).
    extent = (hi - lo) * vol.spacing_zyx
    assert np.all(extent <= 31.0 + 1e-6) and np.all(extent > 31.0 - 2 * vol.spacing_zyx)
    # Linear resampling of a linear field: the round trip returns the scan's own values.
    assert np.allclose(back.array[inside], vol.array[inside], atol=2e-3)
    assert np.array_equal(back.array[~inside], vol.array[~inside])

    # An edited cube on an int16 scan changes only the region; the rest is bit-identical.
    rng = np.random.default_rng(0)
    scan = vol.with_array(rng.integers(-1000, 400, vol.shape).astype(np.int16))
    before = scan.array.copy()
    edited = paste_cube(scan, np.full((32,) * 3, 123.4, np.float32), c, coords="vox")
    assert edited.array.dtype == np.int16
    assert np.array_equal(scan.array, before)  # input untouched
    assert np.array_equal(edited.array[~inside], before[~inside])
    assert np.all(edited.array[inside] == 123)


def test_cube_outside_scan_is_air_and_crop_mask_indices():
    vol = _ramp_volume(1.25)
    cube = extract_cube(vol, np.array([0.0, 0.0, 0.0]), coords="vox")
    assert cube.shape == (32, 32, 32) and cube[0, 0, 0] == -1000.0 and cube[-1, -1, -1] != -1000.0
    m = centre_mask(32, 20)
    assert m.sum() == 20 ** 3 and m[6, 6, 6] and m[25, 25, 25] and not m[5, 6, 6] and not m[26, 25, 25]
    big = np.arange(40 ** 3, dtype=np.float32).reshape(40, 40, 40)
    assert np.array_equal(centre_crop(big, 32), big[4:36, 4:36, 4:36])
    assert np.array_equal(centre_crop(big, 32, (0, -4, 4)), big[4:36, 0:32, 8:40])


# -------------------------------------------------------------------------------------- normalisation

def test_equalisation_and_normalisation_invert(tmp_path):
    rng = np.random.default_rng(1)
    cubes = np.concatenate([rng.normal(-800, 60, 20000), rng.normal(40, 30, 5000), np.full(3000, -1000.0)])
    norm = CubeNormalizer.fit(cubes.reshape(28, 1000), nbins=10000)
    x = norm.normalize(cubes)
    assert x.dtype == np.float32
    # (x - mean) / (max - min): range exactly 1 wide, mean 0 on the training set.
    assert float(x.max() - x.min()) == pytest.approx(1.0, abs=1e-5)
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-4)
    # Equalisation maps the training values to their CDF: about uniform on [0, 1].
    eq = norm.equalize(cubes)
    assert 0.0 <= eq.min() <= eq.max() <= 1.0
    assert np.allclose(np.quantile(eq[cubes > -1000], [0.25, 0.5, 0.75]), [3 / 28 + 25 / 28 * q for q in (0.25, 0.5, 0.75)], atol=0.01)
    assert np.allclose(norm.dequalize(norm.equalize(cubes)), cubes, atol=1e-3)
    assert np.allclose(norm.denormalize(x), cubes, atol=0.05)  # float32 network values
    # Saved as .npz (no pickle) and read back identical.
    path = norm.save(tmp_path / "normalization.npz")
    loaded = CubeNormalizer.load(path)
    assert np.array_equal(loaded.normalize(cubes), x)
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["cdf", "edges", "stats"]
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        CubeNormalizer.load(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="missing.npz"):
        CubeNormalizer.load(tmp_path / "missing.npz")


# ------------------------------------------------------------------------------------------- networks

def test_network_shapes_and_parameter_counts():
    import keras

    from lungnodule.ctgan.model import build_discriminator, build_generator, count_params

    g = build_generator(32, 40)
    d = build_discriminator(32, 40)
    assert g.output_shape == (None, 32, 32, 32, 1) and d.output_shape == (None, 2, 2, 2, 1)
    assert count_params(g) == 26_024_721 and count_params(d) == 4_329_241
    names = [layer.name for layer in g.layers]
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in g.layers) == 4
    assert "down1_bn" not in names and "down2_bn" in names
    bn = [layer for layer in g.layers + d.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bn and all(layer.momentum == 0.8 for layer in bn)
    assert g.layers[-1].activation.__name__ == "tanh"
    del g, d
    keras.backend.clear_session()
    # The CT-GAN paper's 100 filters: about 189.5 M parameters for the two networks together.
    g, d = build_generator(32, 100), build_discriminator(32, 100)
    assert count_params(g) == 162_597_801 and count_params(d) == 26_951_101
    assert round((count_params(g) + count_params(d)) / 1e6, 1) == 189.5
    del g, d
    keras.backend.clear_session()


def test_training_steps_update_g_and_d_separately():
    import keras

    from lungnodule.ctgan.dataset import CubeBatches
    from lungnodule.ctgan.model import build_gan

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    cubes = rng.uniform(-0.5, 0.5, (8, 16, 16, 16)).astype(np.float32)
    gan = build_gan(cube_size=16, base_filters=2, mask_size=10, lr_d=0.0)  # D frozen by a zero learning rate
    gan.run_eagerly = True  # tracing costs more than these tiny steps
    d_before = [np.array(v) for v in gan.discriminator.trainable_variables]
    g_before = [np.array(v) for v in gan.generator.trainable_variables]
    bn_before = [np.array(v) for v in gan.discriminator.non_trainable_variables]
    hist = gan.fit(CubeBatches(cubes, 4, seed=0), epochs=2, verbose=0)
    assert all(np.isfinite(hist.history[k]).all() for k in ("d_loss", "g_loss", "g_adv", "g_l1"))
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(d_before, gan.discriminator.trainable_variables))
    assert any(not np.array_equal(a, np.array(b)) for a, b in zip(g_before, gan.generator.trainable_variables))
    # D runs in training mode (batch statistics), so its BN moving statistics move.
    assert any(not np.array_equal(a, np.array(b)) for a, b in zip(bn_before, gan.discriminator.non_trainable_variables))
    # G loss = adversarial + 100 x L1.
    h = hist.history
    assert h["g_loss"][-1] == pytest.approx(h["g_adv"][-1] + 100 * h["g_l1"][-1], rel=1e-4)
    # The condition zeroes the centre only.
    cond = keras.ops.convert_to_numpy(gan.condition(cubes[..., None]))[..., 0]
    m = centre_mask(16, 10)
    assert np.all(cond[:, m] == 0) and np.array_equal(cond[:, ~m], cubes[:, ~m])

    gan2 = build_gan(cube_size=16, base_filters=2, mask_size=10)
    gan2.run_eagerly = True
    d_before = [np.array(v) for v in gan2.discriminator.trainable_variables]
    gan2.fit(CubeBatches(cubes, 4, seed=0), epochs=1, verbose=0)
    assert any(not np.array_equal(a, np.array(b)) for a, b in zip(d_before, gan2.discriminator.trainable_variables))
    keras.backend.clear_session()


def test_batches_reshuffle_every_epoch_and_keep_all_but_remainder():
    from lungnodule.ctgan.dataset import CubeBatches

    cubes = np.arange(10, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 2), np.float32)
    batches = CubeBatches(cubes, 3, seed=5)
    assert len(batches) == 3
    first = np.concatenate([batches[i][:, 0, 0, 0, 0] for i in range(len(batches))])
    batches.on_epoch_end()
    second = np.concatenate([batches[i][:, 0, 0, 0, 0] for i in range(len(batches))])
    assert len(set(first)) == 9 and len(set(second)) == 9
    assert not np.array_equal(first, second)
    again = CubeBatches(cubes, 3, seed=5, epoch=1)  # a resumed run continues the same sequence
    assert np.array_equal(second, np.concatenate([again[i][:, 0, 0, 0, 0] for i in range(len(again))]))


def test_augmentation_instances():
    from lungnodule.ctgan.dataset import augment

    cube = np.random.default_rng(0).normal(size=(40, 40, 40)).astype(np.float32)
    out = augment(cube, PRESETS["paper"])
    assert out.shape == (20, 32, 32, 32) and out.dtype == np.float32
    assert np.array_equal(out[0], cube[4:36, 4:36, 4:36])
    assert np.array_equal(out[1], cube[4:36, ::-1][:, 4:36, 4:36])
    assert np.array_equal(out[3], cube[:, ::-1, ::-1][4:36, 4:36, 4:36])
    assert PRESETS["upstream"].n_instances == 67


# ------------------------------------------------------------------------------------------ tampering

@pytest.fixture(scope="module")
def tiny_model():
    """An untrained 32^3 generator (2 filters) with a normaliser fitted on lung-like HU values."""
    import keras

    from lungnodule.ctgan.model import build_generator
    from lungnodule.ctgan.tampering import TamperModel

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    hu = np.concatenate([rng.normal(-850, 50, 40000), rng.normal(30, 40, 10000)])
    return TamperModel(build_generator(32, 2), CubeNormalizer.fit(hu, 2000))


def _lung_scan(spacing_z=2.5, shape=(40, 96, 96), direction=np.eye(3)) -> Volume:
    rng = np.random.default_rng(3)
    a = rng.normal(-850, 30, shape)
    a[:, :8] = a[:, -8:] = 40.0
    a[:, :, :8] = a[:, :, -8:] = 40.0
    return Volume(np.rint(a).astype(np.int16), origin=(-100.0, -90.0, -300.0), spacing=(0.72, 0.72, spacing_z),
                  direction=direction)


@pytest.mark.parametrize("spacing_z", [0.625, 2.2])
@pytest.mark.parametrize("mode", ["inject", "remove"])
def test_tamper_changes_only_the_touch_up_region(tiny_model, mode, spacing_z):
    from lungnodule.ctgan.tampering import tamper

    vol = _lung_scan(spacing_z, shape=(int(60 / spacing_z), 96, 96), direction=FLIPPED)
    before = vol.array.copy()
    point = vol.voxel_to_world(np.array([vol.shape[0] / 2, 48.0, 47.0]))
    out = tamper(vol, point, mode, tiny_model, coords="world", config=PRESETS["paper"])
    assert np.array_equal(vol.array, before)
    assert out.array.dtype == np.int16 and out.shape == vol.shape
    assert np.allclose(out.origin, vol.origin) and np.allclose(out.direction, vol.direction)
    changed = np.argwhere(out.array != before)
    assert len(changed)
    # The touch-up region is 1.3 x 32 mm wide, isotropic in mm, around the point.
    c = vol.world_to_voxel(point)
    reach_mm = np.abs(changed - c).max(axis=0) * vol.spacing_zyx
    assert np.all(reach_mm <= 1.3 * 32 / 2 + vol.spacing_zyx)
    if mode == "inject":
        assert np.all(out.array >= before)  # injection only brightens


def test_tamper_rejects_points_outside(tiny_model):
    from lungnodule.ctgan.tampering import parse_points, tamper

    vol = _lung_scan()
    with pytest.raises(DataError, match="outside"):
        tamper(vol, [500.0, 10.0, 10.0], "inject", tiny_model, coords="vox")
    assert np.array_equal(parse_points(["1,2,3", "4,5,6"]), [[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError):
        parse_points(["1,2"])


def test_tampered_dicom_reads_back_derived_with_new_uids(tiny_model, tmp_path):
    from lungnodule.ctgan.tampering import tamper_file
    from lungnodule.dicom import write_dicom_series

    vol = _lung_scan(1.25, shape=(24, 64, 64), direction=FLIPPED)
    src = tmp_path / "source"
    write_dicom_series(vol, src, series_description="original")
    digest = _files_digest(src)
    src_ds = pydicom.dcmread(sorted(src.glob("*.dcm"))[0])
    out, seconds = tamper_file(src, tmp_path / "tampered", "inject", [[12, 32, 30]], tiny_model, coords="vox",
                               fmt="dicom")
    assert seconds > 0
    assert _files_digest(src) == digest  # the input's bytes are unchanged
    files = sorted(out.glob("*.dcm"))
    assert len(files) == 24
    ds = [pydicom.dcmread(f) for f in files]
    assert all(d.ImageType[0] == "DERIVED" for d in ds)
    assert "synthetic nodule inserted" in ds[0].SeriesDescription
    assert ds[0].SeriesInstanceUID != src_ds.SeriesInstanceUID
    assert len({d.SOPInstanceUID for d in ds}) == 24
    assert not {d.SOPInstanceUID for d in ds} & {pydicom.dcmread(f).SOPInstanceUID for f in src.glob("*.dcm")}
    assert all(pydicom.uid.UID(d.SOPInstanceUID).is_valid for d in ds)
    back, orig = read_volume(out), read_volume(src)
    assert back.shape == orig.shape
    assert np.allclose(back.origin, orig.origin, atol=1e-3) and np.allclose(back.spacing, orig.spacing)
    assert np.allclose(back.direction, orig.direction)
    assert not np.array_equal(back.array, orig.array)
    # Writing into the input folder is refused.
    with pytest.raises(DataError, match="input"):
        tamper_file(src, src / "x", "inject", [[12, 32, 30]], tiny_model, fmt="dicom")


def test_tamper_mhd_keeps_input_and_refuses_overwrite(tiny_model, tmp_path):
    from lungnodule.ctgan.tampering import tamper_file

    vol = _lung_scan()
    src = write_volume(vol, tmp_path / "scan.mhd")
    digest = _files_digest(src)
    with pytest.raises(DataError, match="input"):
        tamper_file(src, src, "remove", [[20, 48, 48]], tiny_model, fmt="mhd")
    out, _ = tamper_file(src, tmp_path / "out" / "t.mhd", "remove", vol.voxel_to_world([20, 48, 48]), tiny_model,
                         coords="world", fmt="mhd")
    assert _files_digest(src) == digest
    back = read_volume(out, canonical=False)
    assert np.allclose(back.origin, vol.origin) and back.array.dtype == np.int16
    header = out.read_text()  # marked as CT-GAN-derived, with what was done where
    assert "CTGAN_Derived = True" in header and "remove at" in header and str(src) in header


def test_viewer_session_click_undo_save(tiny_model, tmp_path):
    import pandas as pd

    from lungnodule.ctgan.viewer import TamperSession

    src = write_volume(_lung_scan(), tmp_path / "scan.mhd")
    s = TamperSession.open(src, {"inject": tiny_model, "remove": tiny_model}, PRESETS["paper"])
    assert s.slice_index == 20 and s.scroll(100) == 39 and s.scroll(-39) == 0
    s.scroll(18)
    assert s.image().shape == (96, 96) and 0 <= s.image().min() <= s.image().max() <= 1
    s.equalize = True
    assert s.image().max() == pytest.approx(1.0)
    original = s.volume.array.copy()
    s.click(48, 40)
    s.set_mode("remove")
    s.click(50, 52)
    assert len(s.records) == 2 and not np.array_equal(s.volume.array, original)
    assert s.undo() and len(s.records) == 1
    scan, csv = s.save(tmp_path / "gui_out", fmt="dicom")
    table = pd.read_csv(csv)
    assert list(table.columns[:5]) == ["filename", "x", "y", "z", "tamper_type"]
    assert table["tamper_type"].tolist() == ["inject"]
    assert np.allclose(table[["x", "y", "z"]].to_numpy()[0], s.original.voxel_to_world([18, 48, 40]))
    assert "inserted" in pydicom.dcmread(sorted(Path(scan).glob("*.dcm"))[0]).SeriesDescription
    assert s.undo() and not s.undo()
    assert np.array_equal(s.volume.array, original)
    with pytest.raises(ValueError):
        s.click(500, 5)
    with pytest.raises(ValueError):
        s.set_mode("erase")


def test_config_presets():
    assert PRESETS["paper"] == CTGANConfig()
    c = PRESETS["paper"]
    assert (c.base_filters, c.lr_d, c.lr_g, c.beta_1, c.l1_weight, c.nbins) == (40, 1e-6, 2e-4, 0.5, 100.0, 10000)
    assert (c.inject_epochs, c.inject_batch_size, c.n_instances) == (70, 16, 20)
    assert CTGANConfig.from_dict({**c.to_dict(), "preset": "x"}) == c


def test_injector_sites_keep_nodules_of_the_minimum_diameter(tiny_dataset):
    from lungnodule.ctgan.dataset import training_sites
    from lungnodule.luna import LunaDataset, fold_split

    ds = LunaDataset(tiny_dataset)
    cfg = PRESETS["tiny"]
    split = fold_split(ds.subsets, test=cfg.test_subsets, val=cfg.val_subset)
    every = training_sites(ds, cfg, "inject", split, progress=False)
    train_uids = ds.uids_in(split["train"]) + ds.uids_in(split["val"])
    assert len(every) == ds.annotations["seriesuid"].isin(train_uids).sum()
    cut = float(np.median(every["diameter_mm"]))
    big = training_sites(ds, cfg.replace(inject_min_diameter_mm=cut), "inject", split, progress=False)
    assert 0 < len(big) < len(every) and (big["diameter_mm"] >= cut).all()
    assert len(big) == (every["diameter_mm"] >= cut).sum()


def test_injected_diameter_is_the_injectors_training_median(tiny_dataset, tmp_path):
    from lungnodule.ctgan.sites import injection_diameter
    from lungnodule.luna import LunaDataset

    ds = LunaDataset(tiny_dataset)
    train = ds.annotations["seriesuid"].isin(ds.uids_in([0]))
    # Without the injector's training set: the training subsets' nodules.
    assert injection_diameter(tmp_path, ds, [0]) == pytest.approx(ds.annotations.loc[train, "diameter_mm"].median())
    (tmp_path / "inject").mkdir()
    (tmp_path / "inject" / "sites.csv").write_text(
        "seriesuid,coordX,coordY,coordZ,diameter_mm,split\na,0,0,0,10,train\nb,0,0,0,20,train\nc,0,0,0,30,train\n"
        "d,0,0,0,99,val\n")
    assert injection_diameter(tmp_path, ds, [0]) == 20.0


# ------------------------------------------------------------------------------------------ the GUI

def _gui_backends() -> list:
    """Agg always (the real figure, widgets and callbacks, drawn off screen); TkAgg in a real window when an
    X server can be started (Xvfb on PATH) or one is already set in DISPLAY."""
    cases = ["agg"]
    marks = []
    if not (shutil.which("Xvfb") or os.environ.get("DISPLAY")):
        marks = [pytest.mark.skip(reason="no Xvfb on PATH and no DISPLAY: install xvfb (apt install xvfb) to run "
                                         "the CT-GAN GUI test in a real TkAgg window")]
    cases.append(pytest.param("tkagg", marks=marks))
    return cases


@pytest.fixture
def gui_backend(request):
    """Switch matplotlib to the requested backend (starting Xvfb on a free display for TkAgg) and back."""
    import matplotlib
    import matplotlib.pyplot as plt

    previous, xvfb = matplotlib.get_backend(), None
    if request.param == "tkagg" and not os.environ.get("DISPLAY"):
        xvfb = subprocess.Popen(["Xvfb", ":97", "-screen", "0", "1024x1024x24"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        os.environ["DISPLAY"] = ":97"
        time.sleep(1.0)
    plt.switch_backend("TkAgg" if request.param == "tkagg" else "Agg")
    yield request.param
    plt.close("all")
    plt.switch_backend(previous)
    if xvfb is not None:
        xvfb.terminate()
        xvfb.wait(10)
        del os.environ["DISPLAY"]


def _press(fig, ax, xy_data=None) -> None:
    """A left-button press and release at data point `xy_data` of `ax` (its centre when None), through the
    canvas's own event processing (what a mouse click in the window produces)."""
    from matplotlib.backend_bases import MouseEvent

    if xy_data is None:
        bbox = ax.get_window_extent()
        px, py = (bbox.x0 + bbox.x1) / 2, (bbox.y0 + bbox.y1) / 2
    else:
        px, py = ax.transData.transform(xy_data)
    for name in ("button_press_event", "button_release_event"):
        MouseEvent(name, fig.canvas, px, py, button=1)._process()


def _screen(fig, ax) -> np.ndarray:
    """The pixels of `ax` as the window shows them (RGB, rows top to bottom)."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    b = ax.get_window_extent()
    height = rgba.shape[0]
    return rgba[int(height - b.y1) + 1:int(height - b.y0) - 1, int(b.x0) + 1:int(b.x1) - 1, :3].astype(int)


@pytest.mark.parametrize("gui_backend", _gui_backends(), indirect=True)
def test_gui_click_injects_what_the_window_shows_and_save_writes_it(gui_backend, tiny_model, tmp_path):
    """CT-GAN/gui.py as a user drives it: open a scan, click the image to inject, press "Save mhd"; the
    screenshot changes only around the click, and the saved scan holds the same change."""
    import importlib.util

    import keras
    import matplotlib.pyplot as plt
    import pandas as pd

    from lungnodule.ctgan.tampering import TamperModel

    spec = importlib.util.spec_from_file_location("ctgan_gui", Path(__file__).parents[1] / "CT-GAN" / "gui.py")
    gui = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gui)
    # The untrained generator, its output bias raised so that it paints tissue: an injection one can see.
    painter = TamperModel(keras.models.clone_model(tiny_model.generator), tiny_model.normalizer)
    painter.generator.set_weights(tiny_model.generator.get_weights())
    out_conv = painter.generator.get_layer("out_conv")
    out_conv.bias.assign(np.full(out_conv.bias.shape, 1.5, dtype="float32"))
    gui._models = lambda work_dir: {"inject": painter, "remove": painter}
    src = write_volume(_lung_scan(), tmp_path / "scan.mhd")
    digest = _files_digest(src)
    out_dir = tmp_path / "gui_out"
    session, buttons, _radio = gui.main([str(src), "--out-dir", str(out_dir)])
    fig = plt.gcf()
    image_ax = fig.axes[0]
    before = _screen(fig, image_ax)
    row, col = 34, 62  # not symmetric: a swapped x and y would land 28 voxels away
    _press(fig, image_ax, (col, row))
    after = _screen(fig, image_ax)
    assert len(session.records) == 1 and session.records[0]["tamper_type"] == "inject"
    changed = np.argwhere(np.abs(after - before).max(axis=2) > 8)
    assert len(changed) > 50, "the click changed nothing on screen"
    # Where the screen changed, in voxels: inside the touch-up cube (32 voxels wide in mm at 0.72 mm) around the click.
    scale = np.array(before.shape[:2]) / np.array(session.volume.shape[1:])
    where = changed / scale
    assert np.all(np.abs(where - [row, col]).max(axis=1) <= 24), "the screen changed away from the click"
    _press(fig, buttons[-1].ax)  # "Save mhd"
    saved = sorted(out_dir.glob("*/*.mhd"))
    assert len(saved) == 1 and _files_digest(src) == digest
    back = read_volume(saved[0])
    original = read_volume(src)
    diff = np.argwhere(back.array != original.array)
    assert len(diff) and np.all(np.abs(diff[:, 1:] - [row, col]).max(axis=1) <= 24)
    assert np.array_equal(back.array[session.slice_index], session.volume.array[session.slice_index])
    table = pd.read_csv(saved[0].parent / "tamper_coordinates.csv")
    assert table["tamper_type"].tolist() == ["inject"]
    assert "saved" in image_ax.get_title()
