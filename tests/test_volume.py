"""CT volume geometry and file I/O (lungnodule.volume): conversions through the direction matrix,
round trips through .mhd/.nrrd/.nii.gz, and clear errors with no partial output for bad files."""

import os

import numpy as np
import pytest
import SimpleITK as sitk

from lungnodule import volume as volume_module
from lungnodule.errors import DataError
from lungnodule.volume import Volume, read_geometry, read_volume, voxel_to_world, world_to_voxel, write_volume

FLIPPED = np.diag([-1.0, -1.0, 1.0])


def _rotation() -> np.ndarray:
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    a = np.deg2rad(25)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


DIRECTIONS = {"identity": np.eye(3), "flipped": FLIPPED, "rotated": _rotation()}


def _phantom(shape=(8, 16, 16), seed: int = 0) -> np.ndarray:
    """A small CT-like HU array (z, y, x): air around an elliptic body holding two darker lungs, plus noise."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    hu = np.where((y / 0.8) ** 2 + (x / 0.9) ** 2 < 1, 40.0, -1000.0)
    lungs = ((y / 0.5) ** 2 + ((np.abs(x) - 0.45) / 0.3) ** 2 < 1) & (np.abs(z) < 0.9)
    hu[lungs] = -850.0 + 100 * z[lungs]
    return hu + np.random.default_rng(seed).normal(0, 15, shape)


def _volume(direction=np.eye(3), shape=(8, 16, 16), dtype=np.int16) -> Volume:
    array = np.rint(_phantom(shape)).astype(dtype)
    return Volume(array, origin=(-195.5, -170.3, -340.25), spacing=(0.703125, 0.6640625, 2.5), direction=direction)


@pytest.mark.parametrize("name", DIRECTIONS)
def test_world_voxel_round_trip_matches_simpleitk(name):
    vol = _volume(DIRECTIONS[name])
    image = vol.to_sitk()
    rng = np.random.default_rng(1)
    zyx = rng.uniform(-3, 20, (50, 3))
    world = vol.voxel_to_world(zyx)
    expected = np.array([image.TransformContinuousIndexToPhysicalPoint(p[::-1].tolist()) for p in zyx])
    np.testing.assert_allclose(world, expected, atol=1e-9)
    np.testing.assert_allclose(vol.world_to_voxel(world), zyx, atol=1e-9)
    back = np.array([image.TransformPhysicalPointToContinuousIndex(p.tolist()) for p in world])[:, ::-1]
    np.testing.assert_allclose(back, zyx, atol=1e-9)
    # Single points keep their (3,) shape; the module functions agree with the methods.
    assert vol.voxel_to_world(zyx[0]).shape == (3,)
    np.testing.assert_allclose(
        world_to_voxel(world, vol.origin, vol.spacing, vol.direction), vol.world_to_voxel(world), atol=0
    )
    np.testing.assert_allclose(voxel_to_world(zyx, vol.origin, vol.spacing, vol.direction), world, atol=0)


def test_flipped_direction_differs_from_naive_inverse():
    vol = _volume(FLIPPED)
    zyx = np.array([4.0, 10.0, 3.0])
    naive = zyx[::-1] * vol.spacing + vol.origin  # the widely copied formula, wrong for flipped scans
    world = vol.voxel_to_world(zyx)
    np.testing.assert_allclose(world[2], naive[2])
    assert abs(world[0] - naive[0]) > 1 and abs(world[1] - naive[1]) > 1
    np.testing.assert_allclose(world[:2], vol.origin[:2] - zyx[[2, 1]] * vol.spacing[:2])


def test_contains_and_spacing_zyx():
    vol = _volume()
    np.testing.assert_array_equal(vol.spacing_zyx, [2.5, 0.6640625, 0.703125])
    assert vol.contains((7.4, 15.2, 0)) and not vol.contains((7.6, 0, 0))
    np.testing.assert_array_equal(vol.contains([[0, 0, 0], [-0.6, 0, 0], [0, 16, 0]]), [True, False, False])


@pytest.mark.parametrize("suffix", [".mhd", ".nrrd", ".nii.gz"])
@pytest.mark.parametrize("name", ["identity", "flipped"])
def test_write_read_round_trip(tmp_path, suffix, name):
    vol = _volume(DIRECTIONS[name])
    path = write_volume(vol, tmp_path / f"scan{suffix}")
    back = read_volume(path, canonical=False)  # as stored
    assert back.array.dtype == np.int16
    np.testing.assert_array_equal(back.array, vol.array)
    # NIfTI stores its geometry in float32; MetaImage and NRRD are exact.
    atol = 1e-4 if suffix == ".nii.gz" else 1e-9
    np.testing.assert_allclose(back.origin, vol.origin, atol=atol)
    np.testing.assert_allclose(back.spacing, vol.spacing, atol=atol)
    np.testing.assert_allclose(back.direction, vol.direction, atol=atol)
    geometry = read_geometry(path)
    assert geometry["shape"] == vol.shape
    np.testing.assert_allclose(geometry["origin"], vol.origin, atol=atol)
    # Only the named output (and an .mhd's .raw) is left: no temporary files.
    expected = {"scan.mhd", "scan.raw"} if suffix == ".mhd" else {f"scan{suffix}"}
    assert set(os.listdir(tmp_path)) == expected


def test_mhd_header_is_plain_and_exact(tmp_path):
    vol = _volume(FLIPPED)
    write_volume(vol, tmp_path / "scan.mhd")
    header = (tmp_path / "scan.mhd").read_text()
    assert "TransformMatrix = -1 0 0 0 -1 0 0 0 1" in header and "ElementType = MET_SHORT" in header
    assert (tmp_path / "scan.raw").stat().st_size == vol.array.nbytes


def _mhd(tmp_path, name="scan"):
    write_volume(_volume(), tmp_path / f"{name}.mhd")
    return tmp_path / f"{name}.mhd", tmp_path / f"{name}.raw"


def test_corrupt_header_names_file(tmp_path):
    header, _ = _mhd(tmp_path)
    header.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe binary junk")
    with pytest.raises(DataError, match=rf"{header}.*corrupt MetaImage header"):
        read_volume(header)
    with pytest.raises(DataError, match=rf"{header}.*corrupt MetaImage header"):
        read_geometry(header)
    header.write_text("NDims = 3\nthis is not a header line\n")
    with pytest.raises(DataError, match=r"line 2.*cannot parse"):
        read_volume(header)
    header.write_text("NDims = 3\nElementType = MET_SHORT\nElementDataFile = scan.raw\n")
    with pytest.raises(DataError, match="no DimSize field"):
        read_volume(header)
    header.write_text("NDims = 3\nDimSize = 16 sixteen 8\nElementType = MET_SHORT\nElementDataFile = scan.raw\n")
    with pytest.raises(DataError, match=rf"{header}.*DimSize"):
        read_volume(header)


def test_corrupt_ndims_names_file(tmp_path):
    header, _ = _mhd(tmp_path)
    header.write_text(header.read_text().replace("NDims = 3", "NDims = three"))
    with pytest.raises(DataError, match=rf"{header}.*NDims"):
        read_volume(header)


def test_missing_and_truncated_raw(tmp_path):
    header, raw = _mhd(tmp_path)
    data = raw.read_bytes()
    raw.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"{raw}: truncated data file.*{header.name}"):
        read_volume(header)
    raw.unlink()
    with pytest.raises(DataError, match=rf"{header}: data file .*scan.raw.* missing"):
        read_volume(header)
    with pytest.raises(DataError, match="no such file"):
        read_volume(tmp_path / "absent.mhd")
    (tmp_path / "notes.txt").write_text("not a volume")
    with pytest.raises(DataError, match="unsupported volume format"):
        read_volume(tmp_path / "notes.txt")


def test_met_long_is_four_bytes(tmp_path):
    vol = _volume(dtype=np.int32)
    write_volume(vol, tmp_path / "scan.mhd")
    header = tmp_path / "scan.mhd"
    header.write_text(header.read_text().replace("MET_INT", "MET_LONG"))
    np.testing.assert_array_equal(read_volume(header).array, vol.array)


@pytest.mark.parametrize("suffix", [".mhd", ".nii.gz", ".nrrd"])
def test_failed_write_leaves_no_partial_output(tmp_path, monkeypatch, suffix):
    real_write = sitk.WriteImage

    def write_then_fail(image, path, *args):
        real_write(image, path, *args)  # the files exist, then the "disk" fails
        raise RuntimeError("disk full")

    monkeypatch.setattr(volume_module.sitk, "WriteImage", write_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        write_volume(_volume(), tmp_path / f"scan{suffix}")
    assert os.listdir(tmp_path) == []


def test_failed_overwrite_keeps_previous_file(tmp_path, monkeypatch):
    old = _volume()
    write_volume(old, tmp_path / "scan.mhd")

    def fail(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(volume_module.sitk, "WriteImage", fail)
    with pytest.raises(RuntimeError):
        write_volume(old.with_array(old.array + 1), tmp_path / "scan.mhd")
    np.testing.assert_array_equal(read_volume(tmp_path / "scan.mhd").array, old.array)
    assert sorted(os.listdir(tmp_path)) == ["scan.mhd", "scan.raw"]


def test_detached_nrrd_leaves_no_temporary_files(tmp_path):
    vol = _volume()
    write_volume(vol, tmp_path / "scan.nhdr")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]
    np.testing.assert_array_equal(read_volume(tmp_path / "scan.nhdr").array, vol.array)


def test_volume_validation():
    with pytest.raises(ValueError, match="3-D"):
        Volume(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="spacing must be positive"):
        Volume(np.zeros((2, 2, 2)), spacing=(1, 0, 1))
    vol = _volume()
    with pytest.raises(ValueError, match="differs"):
        vol.with_array(np.zeros((2, 2, 2)))
    moved = vol.with_array(vol.array * 0)
    moved.origin[0] += 5
    assert vol.origin[0] == -195.5  # geometry is copied, not shared
