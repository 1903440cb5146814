"""`lungnodule detect`: both stages on a scan from a file or a DICOM folder, reports, clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pydicom
import pytest

keras = pytest.importorskip("keras")

from conftest import save_untrained_detector
from lungnodule.cli import main as cli_main
from lungnodule.detect import detect
from lungnodule.dicom import write_dicom_series
from lungnodule.errors import DataError, ModelMissingError
from lungnodule.luna import LunaDataset
from lungnodule.volume import Volume, write_volume

XYZ = ["coordX", "coordY", "coordZ"]


@pytest.fixture(scope="module")
def scan(tiny_dataset, tmp_path_factory):
    """One tiny synthetic scan as an .mhd and as a DICOM series folder."""
    ds = LunaDataset(tiny_dataset)
    uid = ds.uids_in(0)[0]
    vol = ds.load(uid)
    root = tmp_path_factory.mktemp("scan")
    write_dicom_series(vol, root / "dicom", uid_entropy=("test", uid), series_uid=uid)
    return {"mhd": ds.scan_path(uid), "dicom": root / "dicom", "uid": uid, "volume": vol}


@pytest.fixture(scope="module")
def models(scan, tmp_path_factory):
    """Untrained tiny models where `detect` expects them (see conftest.save_untrained_detector)."""
    return save_untrained_detector(tmp_path_factory.mktemp("models"), scan["volume"])


def _run(paths, out, models, **kw):
    return detect(paths, out, unet_dir=models / "unet", mgicnn_dir=models / "mgicnn", progress=False, **kw)


def test_dicom_folder_and_mhd_give_the_same_world_coordinates(scan, models, tmp_path):
    a = _run([scan["mhd"]], tmp_path / "a.csv", models)
    b = _run([scan["dicom"]], tmp_path / "b.csv", models)
    assert len(a) >= 1 and len(a) == len(b)
    assert np.allclose(a[XYZ].to_numpy(), b[XYZ].to_numpy(), atol=1e-3)
    assert np.allclose(a["probability"], b["probability"], atol=1e-5)
    assert set(a["seriesuid"]) == set(b["seriesuid"]) == {scan["uid"]}  # file stem / SeriesInstanceUID
    out = pd.read_csv(tmp_path / "a.csv")
    assert list(out.columns) == ["seriesuid", *XYZ, "probability", "diameter_mm"]
    # World mm: every finding maps back inside the scan through the direction matrix.
    assert scan["volume"].contains(scan["volume"].world_to_voxel(out[XYZ].to_numpy())).all()
    assert (tmp_path / "a_report" / f"{scan['uid']}.png").stat().st_size > 1000


def test_a_scan_without_findings_is_a_normal_result(scan, models, tmp_path):
    rows = _run([scan["mhd"]], tmp_path / "none.csv", models, threshold=1.01)
    assert len(rows) == 0
    assert list(pd.read_csv(tmp_path / "none.csv").columns) == ["seriesuid", *XYZ, "probability", "diameter_mm"]
    assert (tmp_path / "none_report" / f"{scan['uid']}.png").is_file()
    every = _run([scan["mhd"]], tmp_path / "all.csv", models, threshold=1.01, all_candidates=True)
    assert len(every) >= 1


def test_fusion_weight_from_detection_json(scan, models, tmp_path):
    from lungnodule.detect import detect_volume, load_detector

    fused = tmp_path / "mgicnn"
    shutil.copytree(models / "mgicnn", fused)
    det = json.loads((fused / "detection.json").read_text())
    (fused / "detection.json").write_text(json.dumps({**det, "fusion_weight": 1.0}))
    detector = load_detector(models / "unet", fused)
    assert detector.fusion_weight == 1.0 and load_detector(models / "unet", models / "mgicnn").fusion_weight == 0.0
    rows = detect_volume(detector, scan["volume"])
    assert len(rows) >= 1
    # Weight 1: the final score is the U-Net's probability; the MGI-CNN's own is kept beside it.
    assert np.allclose(rows["probability"], rows["unet_probability"].clip(1e-7, 1 - 1e-7), atol=1e-9)
    assert rows["mgicnn_probability"].between(0, 1).all()


def test_missing_models_name_the_command(scan, models, tmp_path):
    with pytest.raises(ModelMissingError, match="3DCNN/train.py"):
        detect([scan["mhd"]], tmp_path / "x.csv", unet_dir=models / "unet", mgicnn_dir=tmp_path, progress=False)
    with pytest.raises(ModelMissingError, match="Unet/train.py"):
        detect([scan["mhd"]], tmp_path / "x.csv", unet_dir=tmp_path, mgicnn_dir=models / "mgicnn", progress=False)


def test_non_ct_dicom_is_refused(scan, models, tmp_path, capsys):
    mr = tmp_path / "mr"
    write_dicom_series(scan["volume"], mr, uid_entropy="mr")
    for f in mr.iterdir():
        ds = pydicom.dcmread(f)
        ds.Modality = "MR"
        ds.save_as(f)
    with pytest.raises(DataError, match="not CT"):
        _run([mr], tmp_path / "x.csv", models)
    assert cli_main(["detect", str(mr), "--out", str(tmp_path / "x.csv"), "--unet-dir", str(models / "unet"),
                     "--mgicnn-dir", str(models / "mgicnn")]) == 2
    err = capsys.readouterr().err
    assert "not CT" in err and str(mr) in err
    assert not (tmp_path / "x.csv").exists()


def test_broken_and_non_hu_files_are_refused(scan, models, tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b this is not a NIfTI file")
    with pytest.raises(DataError, match="broken.nii.gz"):
        _run([broken], tmp_path / "x.csv", models)
    # A truncated .raw: the header promises more voxels than the file holds.
    v = scan["volume"]
    write_volume(v, tmp_path / "cut.mhd")
    raw = tmp_path / "cut.raw"
    raw.write_bytes(raw.read_bytes()[:1000])
    with pytest.raises(DataError, match="truncated"):
        _run([tmp_path / "cut.mhd"], tmp_path / "x.csv", models)
    # An image without air (e.g. an 8-bit photo or an MR in arbitrary units) is not a CT in HU.
    photo = Volume(np.random.default_rng(0).integers(0, 256, (8, 32, 32)).astype(np.int16))
    write_volume(photo, tmp_path / "photo.nrrd")
    with pytest.raises(DataError, match="no air"):
        _run([tmp_path / "photo.nrrd"], tmp_path / "x.csv", models)
