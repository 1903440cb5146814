"""Nothing a user gives the toolkit is overwritten, misread, or read differently because of how it is stored.

Each case checks the inputs' checksums before and after, exit status 2, a one-line message naming the file
and the problem, and no traceback.
"""

from __future__ import annotations

import hashlib
import json
import runpy
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from conftest import save_untrained_detector
from lungnodule.cli import main as cli_main
from lungnodule.errors import DataError
from lungnodule.luna import LunaDataset
from lungnodule.scripting import run
from lungnodule.synth import generate_dataset
from lungnodule.volume import Volume, read_volume, write_volume

ROOT = Path(__file__).resolve().parents[1]
XYZ = ["coordX", "coordY", "coordZ"]


def _digest(*paths) -> dict[str, str]:
    files = []
    for p in map(Path, paths):
        files += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def _one_line_error(capsys, *names) -> str:
    """The one error line on stderr (progress bars aside), which names every one of `names`."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if "error:" in ln]
    assert "Traceback" not in err and len(lines) == 1, err
    for n in names:
        assert str(n) in lines[0], (n, err)
    return lines[0]


@pytest.fixture(scope="module")
def tiny_scan(tiny_dataset):
    """A tiny synthetic scan (.mhd) and its volume as stored; big enough for every check of read_volume."""
    ds = LunaDataset(tiny_dataset)
    uid = ds.uids_in(0)[0]
    return ds.scan_path(uid), ds.load(uid, canonical=False)


# --- inputs that must not be overwritten --------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tiny_scan, tmp_path_factory):
    """Untrained tiny models where `detect` expects them (see conftest.save_untrained_detector)."""
    pytest.importorskip("keras")
    return save_untrained_detector(tmp_path_factory.mktemp("models"), read_volume(tiny_scan[0]))


def _detect_cli(scans, out, models, *extra) -> int:
    return cli_main(["detect", *map(str, scans), "--out", str(out), "--unet-dir", str(models / "unet"),
                     "--mgicnn-dir", str(models / "mgicnn"), *extra])


def test_detect_refuses_an_output_that_is_an_input(tiny_scan, models, tmp_path, capsys):
    src = tmp_path / "scan.mhd"
    write_volume(tiny_scan[1], src)
    before = _digest(tmp_path)
    for out in (src, src.with_suffix(".raw")):
        assert _detect_cli([src], out, models) == 2
        _one_line_error(capsys, out, f"the input {src}", "would overwrite")
    upper = tmp_path / "Scan.MHD"  # a case-insensitive file system would write onto scan.mhd
    assert _detect_cli([src], upper, models) == 2
    _one_line_error(capsys, "would overwrite", f"the input {src}")
    assert _digest(tmp_path) == before
    # --out naming a folder is refused before any model runs.
    assert _detect_cli([src], tmp_path, models) == 2
    _one_line_error(capsys, str(tmp_path), "is a folder")
    assert _digest(tmp_path) == before


def test_detect_writes_no_report_when_a_later_scan_fails(tiny_scan, models, tmp_path, capsys):
    good = tmp_path / "good.mhd"
    write_volume(tiny_scan[1], good)
    bad = tmp_path / "bad.mhd"
    write_volume(tiny_scan[1].with_array(np.zeros_like(tiny_scan[1].array)), bad)  # no air: not a CT in HU
    out = tmp_path / "found" / "findings.csv"
    assert _detect_cli([good, bad], out, models) == 2
    _one_line_error(capsys, bad.name, "no air")
    assert not out.exists() and not (tmp_path / "found" / "findings_report").exists()
    assert _detect_cli([good], out, models) == 0
    assert (tmp_path / "found" / "findings_report" / "good.png").is_file()


def test_synth_refuses_folders_it_did_not_write_or_wrote_otherwise(tmp_path, capsys):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,0,0,0,5\n")
    (user / "seriesuids.csv").write_text("1.2.3\n")
    before = _digest(user)
    assert cli_main(["synth", "--out", str(user), "--scans", "2", "--preset", "tiny", "--subsets", "2"]) == 2
    _one_line_error(capsys, str(user), "not written by lungnodule synth")
    assert _digest(user) == before

    ours = tmp_path / "ours"
    generate_dataset(ours, n_scans=2, seed=0, preset="tiny", n_subsets=2, progress=False)
    first = _digest(ours)
    assert cli_main(["synth", "--out", str(ours), "--scans", "2", "--seed", "1", "--preset", "tiny",
                     "--subsets", "2"]) == 2
    _one_line_error(capsys, "other arguments", "seed 0")
    assert _digest(ours) == first
    # --overwrite replaces it: the old seed's scans are gone, so no stage takes them for nodule-free scans.
    assert cli_main(["synth", "--out", str(ours), "--scans", "2", "--seed", "1", "--preset", "tiny",
                     "--subsets", "2", "--overwrite"]) == 0
    ds = LunaDataset(ours)
    assert len(ds) == 2 and sorted(ds.scans["seriesuid"]) == sorted(ds.seriesuids)
    assert (user / "annotations.csv").exists()


def test_dataset_refuses_scans_not_in_seriesuids(tiny_dataset, tmp_path):
    root = tmp_path / "luna"
    shutil.copytree(tiny_dataset, root)
    stray = root / "subset0" / "9.9.9.mhd"
    write_volume(Volume(np.full((2, 2, 2), -1000, np.int16)), stray)
    with pytest.raises(DataError, match=r"9\.9\.9\.mhd: scan not listed in .*seriesuids\.csv"):
        LunaDataset(root)


def test_stale_temporary_copies_are_never_scans_and_are_cleaned_on_resume(tiny_dataset, tmp_path):
    root = tmp_path / "luna"
    shutil.copytree(tiny_dataset, root)
    ds = LunaDataset(root)
    uid = ds.seriesuids[0]
    stale = ds.scan_path(uid).parent / ".tmp-abc123"  # as a kill during atomic_dir's rename leaves it
    stale.mkdir()
    for f in (ds.scan_path(uid), ds.scan_path(uid).with_suffix(".raw")):
        shutil.copy(f, stale / f.name)
    assert len(LunaDataset(root)) == len(ds)  # hidden folders are not searched: no duplicate UID
    meta = json.loads((root / "synth.json").read_text())
    (root / "annotations.csv").unlink()  # as if stopped before the CSVs
    generate_dataset(root, n_scans=meta["n_scans"], seed=meta["seed"], preset=meta["preset"],
                     n_subsets=meta["n_subsets"], progress=False)
    assert not stale.exists() and (root / "annotations.csv").is_file()
    assert len(LunaDataset(root)) == len(ds)


@pytest.mark.parametrize("case", ["stem", "folder", "other_raw", "same"])
def test_tamper_script_never_writes_onto_its_input(tmp_path, capsys, tiny_scan, case):
    folder = tmp_path / "dir"
    folder.mkdir()
    if case == "folder":
        src = write_volume(tiny_scan[1], folder / "tampered.mhd")
        dest = folder  # would resolve to dir/tampered.mhd: the input itself
    elif case == "other_raw":
        src = write_volume(tiny_scan[1], folder / "a.mhd")
        (folder / "a.raw").rename(folder / "b.raw")  # a.mhd's data lives in b.raw
        (folder / "a.mhd").write_text((folder / "a.mhd").read_text().replace("a.raw", "b.raw"))
        dest = folder / "b.mhd"  # would write b.raw
    else:
        src = write_volume(tiny_scan[1], folder / "scan.mhd")
        dest = folder / "scan" if case == "stem" else src  # "dir/scan" + .mhd is the input
    before = _digest(folder)
    main = runpy.run_path(str(ROOT / "CT-GAN" / "tamper.py"), run_name="not_main")["main"]
    with pytest.raises(SystemExit) as exit_info:
        run(main, ["-t", str(src), "-d", str(dest), "-a", "inject", "-c", "10,20,20", "-f", "mhd",
                   "--work-dir", str(tmp_path / "no-models")])
    assert exit_info.value.code == 2
    _one_line_error(capsys, "would overwrite", f"input {src}")
    assert _digest(folder) == before


# --- reads that would be silently wrong -----------------------------------------------------------------------


def _header(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new))


def test_mhd_headers_that_misdescribe_their_data_are_refused(tiny_scan, tmp_path):
    vol = tiny_scan[1]
    nz, ny, nx = vol.shape
    cases = {
        "smaller": (f"DimSize = {nx} {ny} {nz}", f"DimSize = {nx} {ny} {nz - 3}", "larger than its header says"),
        "swapped": (f"DimSize = {nx} {ny} {nz}", f"DimSize = {nx} {nz} {ny}", "does not match how the data"),
        "nan": ("Offset = ", "Offset = nan nan nan\nOldOffset = ", "not finite"),
        "singular": ("TransformMatrix = 1 0 0 0 1 0 0 0 1", "TransformMatrix = 1 0 0 1 0 0 0 0 1",
                     "Bad direction, determinant is 0"),
        "skewed": ("TransformMatrix = 1 0 0 0 1 0 0 0 1", "TransformMatrix = 1 0.5 0 0 1 0 0 0 1", "not orthonormal"),
        "empty": (f"DimSize = {nx} {ny} {nz}", f"DimSize = {nx} {ny} 0", "empty axis"),
    }
    for name, (old, new, problem) in cases.items():
        path = write_volume(vol.canonical(), tmp_path / f"{name}.mhd")
        _header(path, old, new)
        with pytest.raises(DataError, match=problem) as info:
            read_volume(path)
        assert path.stem in str(info.value), name


def test_one_reader_refuses_what_is_not_a_ct_in_hu(tiny_scan, tmp_path):
    vol = tiny_scan[1]
    uchar = write_volume(vol.with_array(np.clip(vol.array // 8 + 128, 0, 255).astype(np.uint8)), tmp_path / "u.mhd")
    with pytest.raises(DataError, match="uint8.*cannot hold Hounsfield"):
        read_volume(uchar)
    scaled = write_volume(vol.with_array(((vol.array + 1024) / 4096).astype(np.float32)), tmp_path / "f.nii.gz")
    with pytest.raises(DataError, match="no air"):
        read_volume(scaled)
    # The dataset reader is the same reader.
    ds = LunaDataset(Path(tiny_scan[0]).parents[1])
    assert ds.load(ds.seriesuids[0]).array.dtype == np.int16


def test_images_that_are_not_3d_volumes_get_a_clear_error(tiny_scan, models, tmp_path, capsys):
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((16, 16), -1000, np.int16)), str(flat))
    four = tmp_path / "four.nii.gz"
    sitk.WriteImage(sitk.Image([4, 4, 4, 2], sitk.sitkInt16), str(four))
    png = tmp_path / "photo.png"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.uint8)), str(png))
    fake = tmp_path / "photo.mha"
    shutil.copy(png, fake)
    for path in (flat, four, fake):
        assert _detect_cli([path], tmp_path / "x.csv", models) == 2
        err = _one_line_error(capsys, path.name)
        assert "reshape" not in err


# --- findings that depend on how a scan is stored ---------------------------------------------------------


def _flipped(vol: Volume) -> Volume:
    """The same physical scan stored with direction diag(-1, -1, 1) (array mirrored in y and x)."""
    nz, ny, nx = vol.shape
    origin = vol.voxel_to_world([0, ny - 1, nx - 1])
    return Volume(np.ascontiguousarray(vol.array[:, ::-1, ::-1]), origin, vol.spacing.copy(),
                  vol.direction @ np.diag([-1.0, -1.0, 1.0]))


@pytest.fixture(scope="module")
def two_storages(tiny_scan, tmp_path_factory):
    root = tmp_path_factory.mktemp("storage")
    plain = tiny_scan[1].canonical()
    paths = {"plain": write_volume(plain, root / "plain.mhd"), "flipped": write_volume(_flipped(plain), root / "flipped.mhd")}
    assert "TransformMatrix = -1 0 0 0 -1 0 0 0 1" in paths["flipped"].read_text()
    return paths


def test_unet_candidates_do_not_depend_on_storage(two_storages, models):
    from lungnodule.detect import detect_volume, load_detector

    detector = load_detector(models / "unet", models / "mgicnn")
    a, b = (detect_volume(detector, read_volume(two_storages[k])) for k in ("plain", "flipped"))
    assert len(a) >= 1 and len(a) == len(b)
    assert np.abs(a[XYZ].to_numpy() - b[XYZ].to_numpy()).max() < 1.0
    assert np.abs(a["unet_probability"] - b["unet_probability"]).max() < 1e-4
    assert np.abs(a["probability"] - b["probability"]).max() < 1e-4  # MGI-CNN patches too


def test_mgicnn_patches_and_ctgan_cubes_do_not_depend_on_storage(two_storages):
    from lungnodule.ctgan.cubes import extract_cube
    from lungnodule.mgicnn.patches import candidate_scales

    a, b = (read_volume(two_storages[k]) for k in ("plain", "flipped"))
    points = a.voxel_to_world(np.array([[10.0, 40.0, 50.0], [30.0, 70.0, 90.0]]))
    np.testing.assert_array_equal(candidate_scales(a, points), candidate_scales(b, points))
    for p in points:
        np.testing.assert_allclose(extract_cube(a, p, size=32), extract_cube(b, p, size=32), atol=1e-4)
    # As stored, the two arrays differ: the canonical read is what makes every stage see the same one.
    raw_a, raw_b = (read_volume(two_storages[k], canonical=False) for k in ("plain", "flipped"))
    assert not np.array_equal(raw_a.array, raw_b.array)


def test_unet_training_slices_do_not_depend_on_storage(tiny_dataset, tmp_path):
    from lungnodule.unet.config import PRESETS
    from lungnodule.unet.preprocess import scan_slices

    ds = LunaDataset(tiny_dataset)
    uid = ds.annotations["seriesuid"].iloc[0]
    plain = ds.load(uid)
    flipped_path = write_volume(_flipped(plain), tmp_path / "f.mhd")
    cfg = PRESETS["tiny"]
    a = scan_slices(plain, uid, 0, ds.annotations, ds.excluded, cfg)
    b = scan_slices(read_volume(flipped_path), uid, 0, ds.annotations, ds.excluded, cfg)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


# --- caches ---------------------------------------------------------------------------------------------------


def test_unet_cache_follows_the_annotations_and_the_data_root(tiny_dataset, tmp_path):
    from lungnodule.unet.config import PRESETS
    from lungnodule.unet.preprocess import preprocess

    root = tmp_path / "luna"
    shutil.copytree(tiny_dataset, root)
    cfg = PRESETS["tiny"]
    work = tmp_path / "work"
    first = preprocess(cfg, root, work, progress=False)
    ann = pd.read_csv(root / "annotations.csv")
    train_uids = set(LunaDataset(root).uids_in(first["folds"]["train"]))
    drop = ann.index[ann["seriesuid"].isin(train_uids)][0]
    ann.drop(index=drop).to_csv(root / "annotations.csv", index=False)
    second = preprocess(cfg, root, work, progress=False)
    assert second["splits"]["train"]["nodule_slices"] < first["splits"]["train"]["nodule_slices"]
    # Another data root with the same UIDs (here: the untouched original) is not read from the cache either.
    third = preprocess(cfg, tiny_dataset, work, progress=False)
    assert third["splits"]["train"]["nodule_slices"] == first["splits"]["train"]["nodule_slices"]


# --- marks ------------------------------------------------------------------------------------------------


def test_evaluate_warns_when_no_result_matches_a_listed_scan(tmp_path, capsys):
    (tmp_path / "ann.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,0,0,0,5\n")
    (tmp_path / "exc.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n")
    (tmp_path / "uids.csv").write_text("1.2.3\n")
    (tmp_path / "res.csv").write_text("seriesuid,coordX,coordY,coordZ,probability\n4.5.6,0,0,0,0.9\n")
    args = [str(tmp_path / n) for n in ("ann.csv", "exc.csv", "uids.csv", "res.csv")]
    assert cli_main(["evaluate", *args, str(tmp_path / "out"), "--bootstrap", "0"]) == 0
    err = capsys.readouterr().err
    assert "no row of" in err and "res.csv" in err and "uids.csv" in err


@pytest.mark.parametrize("stage", ["unet", "mgicnn"])
def test_missing_and_corrupt_models_name_the_file_and_the_script(stage, tmp_path):
    from lungnodule.errors import ModelMissingError
    from lungnodule.mgicnn.training import load_mgicnn
    from lungnodule.unet.training import load_unet

    load, script = {"unet": (load_unet, "Unet/train.py"), "mgicnn": (load_mgicnn, "3DCNN/train.py")}[stage]
    with pytest.raises(ModelMissingError, match=script):
        load(tmp_path / "best.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a keras zip file")
    with pytest.raises(DataError, match="bad.keras"):
        load(bad)
