"""CT volumes and their geometry.

Arrays are indexed (z, y, x); geometry follows ITK and the LUNA16 CSVs: `origin`, `spacing` and world
points are (x, y, z) in millimetres, and `direction` is the 3x3 matrix whose column i is the world
direction of index axis i (i = x, y, z). Every world <-> voxel conversion goes through the direction
matrix, so scans stored with a flipped direction (LUNA16 has some with diag(-1, -1, 1)) are exact.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .atomic import atomic_dir, atomic_path
from .errors import DataError

# Extensions read by SimpleITK that we accept as single-file (or header + data) volumes.
VOLUME_SUFFIXES = (".mhd", ".mha", ".nrrd", ".nhdr", ".nii", ".nii.gz")


def _as_points(points, name: str) -> tuple[np.ndarray, bool]:
    arr = np.asarray(points, dtype=np.float64)
    single = arr.ndim == 1
    arr = np.atleast_2d(arr)
    if arr.shape[-1] != 3 or arr.ndim != 2:
        raise ValueError(f"{name} must have shape (3,) or (N, 3), got {np.shape(points)}")
    return arr, single


def world_to_voxel(points_xyz, origin, spacing, direction) -> np.ndarray:
    """Convert world points (x, y, z) mm to continuous voxel indices (z, y, x).

    `points_xyz` is (3,) or (N, 3); `origin` and `spacing` are (x, y, z) mm; `direction` is the 3x3 ITK
    direction matrix. Solves world = origin + direction @ (spacing * index_xyz) for index_xyz, then
    reverses the axis order for array indexing. Indices are not rounded.
    """
    pts, single = _as_points(points_xyz, "points_xyz")
    origin = np.asarray(origin, dtype=np.float64)
    spacing = np.asarray(spacing, dtype=np.float64)
    direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    idx_xyz = np.linalg.solve(direction, (pts - origin).T).T / spacing
    out = idx_xyz[:, ::-1]
    return out[0] if single else out


def voxel_to_world(indices_zyx, origin, spacing, direction) -> np.ndarray:
    """Convert voxel indices (z, y, x), integer or continuous, to world points (x, y, z) mm.

    The inverse of :func:`world_to_voxel`: world = origin + direction @ (spacing * index_xyz).
    """
    idx, single = _as_points(indices_zyx, "indices_zyx")
    origin = np.asarray(origin, dtype=np.float64)
    spacing = np.asarray(spacing, dtype=np.float64)
    direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    out = origin + (direction @ (idx[:, ::-1] * spacing).T).T
    return out[0] if single else out


@dataclass
class Volume:
    """A CT scan: `array` of HU values indexed (z, y, x), with ITK geometry in (x, y, z) mm.

    `origin` is the world position of the centre of voxel (0, 0, 0); `spacing` the voxel size along
    x, y, z; `direction` the 3x3 direction cosine matrix (columns = index axes x, y, z).
    """

    array: np.ndarray
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    spacing: np.ndarray = field(default_factory=lambda: np.ones(3))
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        if self.array.ndim != 3:
            raise ValueError(f"a volume array must be 3-D (z, y, x), got shape {self.array.shape}")
        self.origin = np.asarray(self.origin, dtype=np.float64).reshape(3)
        self.spacing = np.asarray(self.spacing, dtype=np.float64).reshape(3)
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        if np.any(self.spacing <= 0):
            raise ValueError(f"spacing must be positive, got {self.spacing}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (z, y, x)."""
        return tuple(self.array.shape)

    @property
    def spacing_zyx(self) -> np.ndarray:
        """Voxel size in mm in array order (z, y, x)."""
        return self.spacing[::-1].copy()

    def world_to_voxel(self, points_xyz) -> np.ndarray:
        """World (x, y, z) mm -> continuous voxel index (z, y, x); see :func:`world_to_voxel`."""
        return world_to_voxel(points_xyz, self.origin, self.spacing, self.direction)

    def voxel_to_world(self, indices_zyx) -> np.ndarray:
        """Voxel index (z, y, x) -> world (x, y, z) mm; see :func:`voxel_to_world`."""
        return voxel_to_world(indices_zyx, self.origin, self.spacing, self.direction)

    def contains(self, indices_zyx) -> np.ndarray:
        """True where a continuous voxel index (z, y, x) rounds to a voxel inside the array."""
        idx = np.atleast_2d(np.asarray(indices_zyx, dtype=np.float64))
        r = np.rint(idx)
        inside = np.all((r >= 0) & (r < np.asarray(self.shape)), axis=1)
        return inside[0] if np.ndim(indices_zyx) == 1 else inside

    def to_sitk(self) -> sitk.Image:
        """The volume as a SimpleITK image (geometry copied)."""
        image = sitk.GetImageFromArray(self.array)
        image.SetOrigin(tuple(self.origin))
        image.SetSpacing(tuple(self.spacing))
        image.SetDirection(tuple(self.direction.ravel()))
        return image

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> "Volume":
        """A Volume from a 3-D scalar SimpleITK image."""
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise ValueError(
                f"expected a 3-D scalar image, got {image.GetDimension()}-D with "
                f"{image.GetNumberOfComponentsPerPixel()} components"
            )
        return cls(
            array=sitk.GetArrayFromImage(image),
            origin=np.array(image.GetOrigin()),
            spacing=np.array(image.GetSpacing()),
            direction=np.array(image.GetDirection()).reshape(3, 3),
        )

    def with_array(self, array: np.ndarray) -> "Volume":
        """A new Volume with the same geometry and another array of the same shape."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} differs from the volume's {self.array.shape}")
        return Volume(array, self.origin.copy(), self.spacing.copy(), self.direction.copy())


def _is_volume_file(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in VOLUME_SUFFIXES)


_SITK_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
    "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8,
}


def _check_mhd(path: Path) -> None:
    """Validate a MetaImage header and its data file before SimpleITK reads them."""
    try:
        text = path.read_text(errors="strict")
    except UnicodeDecodeError:
        raise DataError(path, "corrupt MetaImage header: not a text file") from None
    header = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = re.match(r"\s*([A-Za-z_]\w*)\s*=\s*(.*?)\s*$", line)
        if not m:
            raise DataError(path, f"corrupt MetaImage header: cannot parse {line.strip()!r}", line=n)
        header[m.group(1)] = m.group(2)
    for key in ("NDims", "DimSize", "ElementType", "ElementDataFile"):
        if key not in header:
            raise DataError(path, f"corrupt MetaImage header: no {key} field")
    try:
        dims = [int(v) for v in header["DimSize"].split()]
        ndims = int(header["NDims"])
        channels = int(header.get("ElementNumberOfChannels", "1"))
    except ValueError:
        raise DataError(
            path, f"corrupt MetaImage header: NDims {header['NDims']!r}, DimSize {header['DimSize']!r} or "
            f"ElementNumberOfChannels {header.get('ElementNumberOfChannels', '1')!r} is not an integer"
        ) from None
    if len(dims) != ndims or len(dims) != 3:
        raise DataError(path, f"expected a 3-D volume, header has NDims={header['NDims']} DimSize={dims}")
    data = header["ElementDataFile"]
    if data == "LOCAL" or data.startswith("LIST") or "%" in data:
        return
    data_path = path.parent / data
    if not data_path.exists():
        raise DataError(path, f"data file {data_path} named by ElementDataFile is missing")
    compressed = header.get("CompressedData", "False").lower() == "true"
    bytes_per = _SITK_BYTES.get(header["ElementType"])
    if not compressed and bytes_per:
        expected = int(np.prod(dims)) * bytes_per * channels
        actual = data_path.stat().st_size
        if actual < expected:
            raise DataError(data_path, f"truncated data file: {actual} bytes, header {path.name} needs {expected}")


def read_volume(path: str | os.PathLike, series_uid: str | None = None) -> Volume:
    """Read a CT volume: `.mhd/.raw`, `.mha`, `.nrrd`, `.nii(.gz)`, or a folder holding one DICOM series.

    Values are returned as stored in the file (LUNA16 `.mhd` files are int16 HU; DICOM is rescaled to
    HU). Raises :class:`DataError` naming the file for a missing file, corrupt header, missing or
    truncated data file, or anything that is not a 3-D scalar volume. `series_uid` picks one series
    from a DICOM folder holding several.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_dir():
        from .dicom import read_dicom_series

        return read_dicom_series(path, series_uid=series_uid)
    if not _is_volume_file(path):
        raise DataError(path, f"unsupported volume format; expected one of {', '.join(VOLUME_SUFFIXES)} or a DICOM folder")
    if path.suffix.lower() == ".mhd":
        _check_mhd(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        msg = str(exc).strip().splitlines()
        raise DataError(path, f"cannot read volume: {msg[-1] if msg else exc}") from None
    try:
        return Volume.from_sitk(image)
    except ValueError as exc:
        raise DataError(path, str(exc)) from None


def read_geometry(path: str | os.PathLike) -> dict:
    """Read only a volume file's header: `shape` (z, y, x), `origin`, `spacing` (x, y, z), `direction`.

    Fast (no voxel data is read); for DICOM folders the whole series is read.
    """
    path = Path(path)
    if path.is_dir():
        v = read_volume(path)
        return {"shape": v.shape, "origin": v.origin, "spacing": v.spacing, "direction": v.direction}
    if not path.exists():
        raise DataError(path, "no such file")
    if path.suffix.lower() == ".mhd":
        _check_mhd(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise DataError(path, f"cannot read header: {str(exc).strip().splitlines()[-1]}") from None
    return {
        "shape": tuple(reversed(reader.GetSize())),
        "origin": np.array(reader.GetOrigin()),
        "spacing": np.array(reader.GetSpacing()),
        "direction": np.array(reader.GetDirection()).reshape(3, 3),
    }


def write_volume(volume: Volume, path: str | os.PathLike, compress: bool = False) -> Path:
    """Write `volume` to `path` atomically; the format follows the suffix (`.mhd` writes `.mhd` + `.raw`).

    The array's dtype is kept (LUNA16 uses int16). Returns the path written. Nothing appears under
    the final name until every file is complete.
    """
    path = Path(path)
    if not _is_volume_file(path):
        raise ValueError(f"{path}: unsupported output format; use one of {', '.join(VOLUME_SUFFIXES)}")
    image = volume.to_sitk()
    if path.suffix.lower() in (".mhd", ".nhdr"):
        # Header + data file: both are written under their final names in a temporary folder.
        with atomic_dir(path.parent) as tmp:
            sitk.WriteImage(image, str(tmp / path.name), compress)
    else:
        suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix
        with atomic_path(path) as tmp:
            target = tmp.with_name(tmp.name + suffix)
            try:
                sitk.WriteImage(image, str(target), compress)
                os.replace(target, tmp)
            finally:
                if target.exists():
                    target.unlink()
    return path
