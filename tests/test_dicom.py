"""DICOM series I/O: write -> read identity, slice ordering, HU rescale, and the errors for bad series."""

import os
import re
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from lungnodule import dicom
from lungnodule.dicom import is_dicom_folder, list_series, read_dicom_series, write_dicom_series
from lungnodule.errors import DataError
from lungnodule.volume import Volume, read_volume

UID_RE = re.compile(r"^(0|[1-9]\d*)(\.(0|[1-9]\d*))+$")

FLIPPED = np.diag([-1.0, -1.0, 1.0])


def _oblique() -> np.ndarray:
    """A right-handed rotation (about 10 degrees about an oblique axis)."""
    axis = np.array([1.0, 2.0, 3.0]) / np.sqrt(14)
    a = np.deg2rad(10)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def _volume(direction=np.eye(3), spacing=(0.703125, 0.703125, 2.5), origin=(-172.699997, 150.3, -301.25),
            shape=(8, 16, 12), seed=0, dtype=np.int16, lo=-3024, hi=3071) -> Volume:
    rng = np.random.default_rng(seed)
    array = rng.integers(lo, hi + 1, shape).astype(dtype)
    return Volume(array, origin=origin, spacing=spacing, direction=direction)


def _assert_same(a: Volume, b: Volume) -> None:
    assert a.array.shape == b.array.shape
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.origin, b.origin, atol=1e-6)
    np.testing.assert_allclose(a.spacing, b.spacing, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(a.direction, b.direction, atol=1e-9)


@pytest.mark.parametrize(
    "direction, spacing",
    [
        (np.eye(3), (0.703125, 0.703125, 2.5)),
        (FLIPPED, (0.703125, 0.703125, 2.5)),
        (FLIPPED, (0.625, 0.5859375, 0.625)),
        (_oblique(), (0.7, 0.8, 1.25)),
    ],
    ids=["identity", "flipped", "flipped-0.625", "oblique"],
)
def test_write_read_identical(tmp_path, direction, spacing):
    vol = _volume(direction=direction, spacing=spacing)
    paths = write_dicom_series(vol, tmp_path / "series", uid_entropy=("test", 1))
    assert len(paths) == vol.shape[0] and all(p.exists() for p in paths)
    back = read_dicom_series(tmp_path / "series")
    assert back.array.dtype == np.int16
    _assert_same(vol, back)
    # Every slice's ImagePositionPatient is voxel_to_world of (k, 0, 0); PixelSpacing is [row, column].
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], vol.voxel_to_world((k, 0, 0)), atol=1e-6)
        assert [float(v) for v in ds.PixelSpacing] == [spacing[1], spacing[0]]
        assert ds.Modality == "CT" and ds.SOPClassUID == dicom.CT_IMAGE_STORAGE
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.InstanceNumber == k + 1


def test_read_matches_simpleitk_gdcm(tmp_path):
    vol = _volume(direction=FLIPPED, spacing=(0.625, 0.703125, 2.5))
    write_dicom_series(vol, tmp_path)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    image = reader.Execute()
    ours = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), ours.array)
    np.testing.assert_allclose(image.GetOrigin(), ours.origin, atol=1e-6)
    np.testing.assert_allclose(image.GetSpacing(), ours.spacing, atol=1e-6)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), ours.direction, atol=1e-9)
    # A world point maps to the same voxel through SimpleITK and through our direction-aware geometry.
    idx = (5.0, 3.0, 7.0)  # (z, y, x)
    expected = image.TransformContinuousIndexToPhysicalPoint(idx[::-1])
    np.testing.assert_allclose(ours.voxel_to_world(idx), expected, atol=1e-9)


def test_read_volume_dispatches_dicom_folders(tmp_path):
    vol = _volume(direction=FLIPPED)
    write_dicom_series(vol, tmp_path)
    assert is_dicom_folder(tmp_path) and not is_dicom_folder(tmp_path / "nothing")
    _assert_same(vol, read_volume(tmp_path, canonical=False))


def test_wide_integer_range_and_float_values(tmp_path):
    # Integers beyond int16 are stored as uint16 above an intercept at the minimum, read back exact.
    wide = _volume(dtype=np.int32, lo=-3024, hi=40000)
    write_dicom_series(wide, tmp_path / "wide")
    back = read_dicom_series(tmp_path / "wide")
    np.testing.assert_array_equal(back.array, wide.array)
    # Float arrays holding integers come back as the same integers (int16).
    whole = Volume(wide.array.clip(-1024, 3000).astype(np.float32), wide.origin, wide.spacing, wide.direction)
    write_dicom_series(whole, tmp_path / "whole")
    back = read_dicom_series(tmp_path / "whole")
    assert back.array.dtype == np.int16
    np.testing.assert_array_equal(back.array, whole.array)
    # Non-integer values are quantised into 16 bits over their range: error at most half a step.
    rng = np.random.default_rng(1)
    frac = Volume(rng.uniform(-1000.5, 400.25, (4, 8, 8)).astype(np.float32))
    write_dicom_series(frac, tmp_path / "frac")
    back = read_dicom_series(tmp_path / "frac")
    assert back.array.dtype == np.float32
    step = float(pydicom.dcmread(next((tmp_path / "frac").glob("*.dcm"))).RescaleSlope)
    assert step < 0.03
    np.testing.assert_allclose(back.array, frac.array, atol=step / 2 + 1e-3)


def _handmade(path, stored, *, position, slope=1.0, intercept=0.0, instance=1, series="1.2.3.4", modality="CT",
              orientation=(1, 0, 0, 0, 1, 0), spacing=(0.5, 0.5), sop_class=dicom.CT_IMAGE_STORAGE, pixels=True):
    """Write one DICOM slice with pydicom only (independent of the writer under test)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.4.5.{instance}"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = f"1.2.3.4.5.{instance}"
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesInstanceUID = series
    ds.SeriesDescription = f"series {series}"
    ds.Modality = modality
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in spacing]
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0 if stored.dtype == np.uint16 else 1
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    if pixels:
        ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_hu_rescale_applied(tmp_path):
    stored = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5) * 37
    for k in range(3):
        _handmade(tmp_path / f"s{k}.dcm", stored[k], position=(0, 0, 2.0 * k), slope=2, intercept=-1024, instance=k)
    vol = read_dicom_series(tmp_path)
    assert vol.array.dtype == np.int16
    np.testing.assert_array_equal(vol.array, stored.astype(np.int64) * 2 - 1024)
    np.testing.assert_allclose(vol.spacing, (0.5, 0.5, 2.0))

    frac = tmp_path / "frac"
    frac.mkdir()
    for k in range(3):
        _handmade(frac / f"s{k}.dcm", stored[k], position=(0, 0, 2.0 * k), slope=0.5, intercept=-1024.25, instance=k)
    vol = read_dicom_series(frac)
    assert vol.array.dtype == np.float32
    np.testing.assert_allclose(vol.array, stored * 0.5 - 1024.25)


def test_order_from_positions_not_instance_numbers(tmp_path):
    vol = _volume(direction=FLIPPED, spacing=(0.703125, 0.703125, 0.625))
    paths = write_dicom_series(vol, tmp_path / "w")
    shuffled = tmp_path / "shuffled"
    (shuffled / "sub").mkdir(parents=True)
    rng = np.random.default_rng(3)
    numbers = rng.permutation(len(paths)) + 1
    for i, (p, name) in enumerate(zip(paths, rng.permutation(len(paths)))):
        ds = pydicom.dcmread(p)
        ds.InstanceNumber = int(numbers[i])
        ds.save_as((shuffled / ("sub" if i % 2 else "")) / f"IM{name:03d}", enforce_file_format=True)
    # Non-DICOM files beside the series are skipped.
    (shuffled / "README.txt").write_text("not DICOM\n")
    (shuffled / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)
    media = Dataset()
    media.file_meta = FileMetaDataset()
    media.file_meta.MediaStorageSOPClassUID = dicom.MEDIA_STORAGE_DIRECTORY
    media.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.9"
    media.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    media.FileSetID = "LUNG"
    media.DirectoryRecordSequence = []
    media.save_as(shuffled / "sub" / "INDEX", enforce_file_format=True)
    _assert_same(vol, read_dicom_series(shuffled))


def test_sagittal_geometry_matches_every_position(tmp_path):
    # Sagittal slices: normal = row x column = (0, 1, 0) x (0, 0, -1) = (-1, 0, 0), so ascending
    # positions along the normal run towards smaller x; each file's value tells which slice it is.
    xs = [12.0, 10.5, 9.0, 7.5, 6.0]
    rng = np.random.default_rng(4)
    for k in rng.permutation(len(xs)):
        _handmade(tmp_path / f"f{k}.dcm", np.full((3, 4), k, np.int16), position=(xs[k], -20.0, 35.0),
                  orientation=(0, 1, 0, 0, 0, -1), spacing=(0.8, 0.6), instance=int(rng.integers(1, 99)))
    vol = read_dicom_series(tmp_path)
    np.testing.assert_allclose(vol.direction, [[0, 0, -1], [1, 0, 0], [0, -1, 0]], atol=1e-12)
    np.testing.assert_allclose(vol.spacing, (0.6, 0.8, 1.5))
    for z in range(len(xs)):
        k = int(vol.array[z, 0, 0])
        assert np.all(vol.array[z] == k)
        np.testing.assert_allclose(vol.voxel_to_world((z, 0, 0)), (xs[k], -20.0, 35.0), atol=1e-12)
    np.testing.assert_array_equal(vol.array[:, 0, 0], [0, 1, 2, 3, 4])


def test_single_file_path_reads_its_series(tmp_path):
    vol = _volume()
    paths = write_dicom_series(vol, tmp_path)
    _assert_same(vol, read_dicom_series(paths[3]))


def test_non_ct_modality(tmp_path):
    write_dicom_series(_volume(), tmp_path)
    for p in tmp_path.glob("*.dcm"):
        ds = pydicom.dcmread(p)
        ds.Modality = "MR"
        ds.save_as(p)
    with pytest.raises(DataError, match=r"modality MR.*not CT"):
        read_dicom_series(tmp_path)


@pytest.mark.parametrize(
    "modality, sop_class, name",
    [
        ("MR", "1.2.840.10008.5.1.4.1.1.4", "MR Image Storage"),
        ("CR", "1.2.840.10008.5.1.4.1.1.1", "Computed Radiography Image Storage"),
        ("DX", "1.2.840.10008.5.1.4.1.1.1.1", "Digital X-Ray Image Storage - For Presentation"),
        ("SEG", "1.2.840.10008.5.1.4.1.1.66.4", "Segmentation Storage"),
    ],
)
def test_other_modalities_named(tmp_path, modality, sop_class, name):
    for k in range(3):
        _handmade(tmp_path / f"s{k}.dcm", np.zeros((4, 4), np.uint16), position=(0, 0, k), instance=k,
                  modality=modality, sop_class=sop_class)
    with pytest.raises(DataError, match=rf"s0\.dcm: modality {modality} \({re.escape(name)}\), not CT"):
        read_dicom_series(tmp_path)


def test_ct_non_image_and_multiframe_objects(tmp_path):
    stored = np.zeros((4, 4), np.int16)
    _handmade(tmp_path / "raw.dcm", stored, position=(0, 0, 0), sop_class="1.2.840.10008.5.1.4.1.1.66")
    _handmade(tmp_path / "ct.dcm", stored, position=(0, 0, 1), instance=2)
    with pytest.raises(DataError, match=r"raw\.dcm: Raw Data Storage is not a CT image"):
        read_dicom_series(tmp_path)
    (tmp_path / "raw.dcm").unlink()
    _handmade(tmp_path / "enh.dcm", stored, position=(0, 0, 0), sop_class="1.2.840.10008.5.1.4.1.1.2.1")
    with pytest.raises(DataError, match=r"enh\.dcm: multi-frame CT object \(Enhanced CT Image Storage\)"):
        read_dicom_series(tmp_path)
    (tmp_path / "enh.dcm").unlink()
    _handmade(tmp_path / "nopos.dcm", stored, position=(0, 0), instance=3)
    with pytest.raises(DataError, match=r"nopos\.dcm: CT image with missing or invalid ImagePositionPatient"):
        read_dicom_series(tmp_path)


def test_non_image_object(tmp_path):
    stored = np.zeros((4, 4), np.int16)
    for k in range(3):
        _handmade(tmp_path / f"s{k}.dcm", stored, position=(0, 0, k), instance=k, pixels=k != 1)
    with pytest.raises(DataError, match=r"s1\.dcm: CT image file without pixel data"):
        read_dicom_series(tmp_path)
    rt = tmp_path / "rt"
    rt.mkdir()
    _handmade(rt / "rt.dcm", stored, position=(0, 0, 0), modality="RTSTRUCT",
              sop_class="1.2.840.10008.5.1.4.1.1.481.3", pixels=False)
    with pytest.raises(DataError, match=r"rt\.dcm: modality RTSTRUCT \(RT Structure Set Storage\), not CT"):
        read_dicom_series(rt)


def test_several_series_named_and_selectable(tmp_path):
    a = _volume(seed=1)
    b = _volume(seed=2, shape=(5, 16, 12))
    pa = write_dicom_series(a, tmp_path / "a", series_description="lung kernel", uid_entropy="a")
    pb = write_dicom_series(b, tmp_path / "b", series_description="soft kernel", uid_entropy="b")
    uid_a = pydicom.dcmread(pa[0]).SeriesInstanceUID
    uid_b = pydicom.dcmread(pb[0]).SeriesInstanceUID
    with pytest.raises(DataError) as err:
        read_dicom_series(tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and uid_a in msg and uid_b in msg
    assert "'lung kernel', 8 files" in msg and "'soft kernel', 5 files" in msg and "series_uid=" in msg
    _assert_same(b, read_dicom_series(tmp_path, series_uid=uid_b))
    table = list_series(tmp_path).set_index("series_uid")
    assert table.loc[uid_a, "slices"] == 8 and table.loc[uid_b, "description"] == "soft kernel"
    with pytest.raises(DataError, match="no series with SeriesInstanceUID 9.9"):
        read_dicom_series(tmp_path, series_uid="9.9")


def test_missing_slice_named(tmp_path):
    paths = write_dicom_series(_volume(origin=(0, 0, 0), spacing=(0.7, 0.7, 2.5)), tmp_path)
    paths[4].unlink()
    with pytest.raises(DataError, match=r"missing slices.*7\.500 -> 12\.500 mm.*about 1 slice\(s\) missing") as err:
        read_dicom_series(tmp_path)
    assert str(err.value).startswith(str(tmp_path)) and "CT0004.dcm -> CT0006.dcm" in str(err.value)


def test_truncated_files_named(tmp_path):
    paths = write_dicom_series(_volume(shape=(4, 32, 32)), tmp_path)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[:-500])  # pixel data cut short
    with pytest.raises(DataError, match=rf"{paths[1]}: cannot decode pixel data"):
        read_dicom_series(tmp_path)
    paths[1].write_bytes(data[:300])  # header cut short
    with pytest.raises(DataError, match=rf"{paths[1]}: DICOM file without SeriesInstanceUID"):
        read_dicom_series(tmp_path)
    paths[1].write_bytes(data[:128] + b"DICM" + b"\x02\x00\x00\x00UL\x04")  # corrupt meta header
    with pytest.raises(DataError, match=rf"{paths[1]}"):
        read_dicom_series(tmp_path)
    assert is_dicom_folder(tmp_path)


def test_inconsistent_spacing(tmp_path):
    stored = np.zeros((4, 4), np.int16)
    for k, z in enumerate([0.0, 1.0, 2.0, 3.3, 4.3]):
        _handmade(tmp_path / f"s{k}.dcm", stored, position=(0, 0, z), instance=k)
    with pytest.raises(DataError, match=r"inconsistent slice spacing.*2\.000 -> 3\.300 mm"):
        read_dicom_series(tmp_path)


def test_duplicate_positions(tmp_path):
    paths = write_dicom_series(_volume(), tmp_path)
    ds = pydicom.dcmread(paths[2])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.99"
    ds.save_as(tmp_path / "copy.dcm")
    with pytest.raises(DataError, match="duplicate slice position"):
        read_dicom_series(tmp_path)


@pytest.mark.parametrize(
    "field, value, what",
    [
        ("orientation", (0, 1, 0, 1, 0, 0), "ImageOrientationPatient"),
        ("spacing", (0.6, 0.5), "PixelSpacing"),
        ("shape", (4, 5), "Rows/Columns"),
    ],
)
def test_slices_must_agree(tmp_path, field, value, what):
    for k in range(4):
        odd = k == 2
        _handmade(
            tmp_path / f"s{k}.dcm",
            np.zeros(value if odd and field == "shape" else (4, 4), np.int16),
            position=(0, 0, k),
            orientation=value if odd and field == "orientation" else (1, 0, 0, 0, 1, 0),
            spacing=value if odd and field == "spacing" else (0.5, 0.5),
            instance=k,
        )
    with pytest.raises(DataError, match=rf"slices differ in {what}.*s2\.dcm"):
        read_dicom_series(tmp_path)


def test_tilted_stack_rejected(tmp_path):
    stored = np.zeros((4, 4), np.int16)
    for k in range(4):
        _handmade(tmp_path / f"s{k}.dcm", stored, position=(0, 0.4 * k, k), instance=k)
    with pytest.raises(DataError, match="gantry tilt"):
        read_dicom_series(tmp_path)


def test_empty_single_slice_and_missing(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="no DICOM files"):
        read_dicom_series(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        read_dicom_series(tmp_path / "absent")
    _handmade(tmp_path / "one.dcm", np.zeros((4, 4), np.int16), position=(0, 0, 0))
    with pytest.raises(DataError, match="single slice"):
        read_dicom_series(tmp_path)


def test_uids_deterministic_and_valid(tmp_path):
    vol = _volume(shape=(3, 4, 4))
    p1 = write_dicom_series(vol, tmp_path / "1", uid_entropy=("scan", 7))
    p2 = write_dicom_series(vol, tmp_path / "2", uid_entropy=("scan", 7))
    p3 = write_dicom_series(vol, tmp_path / "3")
    d1, d2, d3 = ([pydicom.dcmread(p) for p in ps] for ps in (p1, p2, p3))
    keys = ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")
    for k in keys:
        assert d1[0].data_element(k).value == d2[0].data_element(k).value != d3[0].data_element(k).value
    sops = [d.SOPInstanceUID for d in d1]
    assert sops == [d.SOPInstanceUID for d in d2] and len(set(sops)) == len(sops)
    for d in d1:
        for uid in [d.SOPInstanceUID, *(d.data_element(k).value for k in keys)]:
            assert UID_RE.match(uid) and len(uid) <= 64
        assert d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID
    assert (tmp_path / "1" / p1[0].name).read_bytes() == (tmp_path / "2" / p2[0].name).read_bytes()


def test_derived_and_reference_identity(tmp_path):
    source = tmp_path / "source"
    write_dicom_series(_volume(), source, patient_id="P42", patient_name="Doe^Jane", uid_entropy="src")
    src = pydicom.dcmread(next(source.glob("*.dcm")))
    out = write_dicom_series(_volume(seed=5), tmp_path / "tampered", derived=True, series_description="tampered",
                             reference_folder=source)
    ds = pydicom.dcmread(out[0])
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"] and ds.SeriesDescription == "tampered"
    assert ds.PatientID == "P42" and str(ds.PatientName) == "Doe^Jane"
    assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert ds.SOPInstanceUID not in {pydicom.dcmread(p).SOPInstanceUID for p in source.glob("*.dcm")}
    # A single file of the source series works as the reference too; non-ASCII names are kept (UTF-8).
    out = write_dicom_series(_volume(), tmp_path / "again", reference_folder=next(source.glob("*.dcm")),
                             patient_name="Müller^Jürgen")
    ds = pydicom.dcmread(out[0])
    assert ds.PatientID == "P42" and str(ds.PatientName) == "Müller^Jürgen" and ds.SpecificCharacterSet == "ISO_IR 192"
    # The tampered series beside its source: two series, both listed.
    shutil.copytree(tmp_path / "tampered", source / "tampered")
    assert len(list_series(source)) == 2


def test_refuses_folder_with_dicom_and_writes_atomically(tmp_path, monkeypatch):
    vol = _volume()
    write_dicom_series(vol, tmp_path / "s")
    before = sorted(os.listdir(tmp_path / "s"))
    with pytest.raises(DataError, match="already holds DICOM files"):
        write_dicom_series(vol, tmp_path / "s")
    assert sorted(os.listdir(tmp_path / "s")) == before
    # A folder with only other files is fine.
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "notes.txt").write_text("x")
    write_dicom_series(vol, tmp_path / "t")
    assert len(list((tmp_path / "t").glob("*.dcm"))) == vol.shape[0]

    # A failure half-way leaves no DICOM file and no temporary folder behind.
    real_save = Dataset.save_as
    calls = []

    def failing_save(self, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_save(self, filename, *args, **kwargs)

    monkeypatch.setattr(Dataset, "save_as", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_dicom_series(vol, tmp_path / "u")
    assert len(calls) == 3
    assert not (tmp_path / "u").exists()  # the folder the write made is gone again, with its temporary files


def test_left_handed_direction_reads_back_equivalent(tmp_path):
    vol = _volume(direction=np.diag([1.0, 1.0, -1.0]), shape=(5, 4, 4))
    write_dicom_series(vol, tmp_path)
    back = read_dicom_series(tmp_path)
    # DICOM orders slices by position, so z comes back reversed with a right-handed direction;
    # every voxel keeps its value at its world position.
    np.testing.assert_array_equal(back.array, vol.array[::-1])
    np.testing.assert_allclose(back.voxel_to_world((0, 0, 0)), vol.voxel_to_world((4, 0, 0)), atol=1e-9)
    np.testing.assert_allclose(back.direction, np.eye(3), atol=1e-12)


def test_writer_rejects_bad_volumes(tmp_path):
    with pytest.raises(ValueError, match="at least 2 slices"):
        write_dicom_series(_volume(shape=(1, 4, 4)), tmp_path / "a")
    sheared = np.eye(3)
    sheared[:, 2] = (0, 0.6, 0.8)
    with pytest.raises(ValueError, match="not perpendicular"):
        write_dicom_series(_volume(direction=sheared), tmp_path / "b")
    bad = _volume().array.astype(np.float32)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_dicom_series(Volume(bad), tmp_path / "c")
    assert not any((tmp_path / n).exists() and os.listdir(tmp_path / n) for n in "abc")
