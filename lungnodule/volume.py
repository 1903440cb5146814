"""Reading and writing CT volumes: the one reader every stage uses, its checks, and atomic writes.

Volumes are :class:`~lungnodule.geometry.Volume` objects (re-exported here): HU arrays indexed (z, y, x) with
ITK geometry in (x, y, z) mm. :func:`read_volume` reads `.mhd/.raw`, `.mha`, `.nrrd`, `.nii(.gz)` and DICOM
folders, refuses what would be read silently wrong (a header that does not match its data file, non-finite
or non-orthonormal geometry, anything that is not a CT in Hounsfield units) and returns the scan in the one
canonical orientation every network sees; :func:`write_volume` writes atomically.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .atomic import atomic_dir, atomic_path
from .errors import DataError
from .geometry import Volume, voxel_to_world, world_to_voxel  # noqa: F401  (re-exported)

# Extensions read by SimpleITK that we accept as single-file (or header + data) volumes.
VOLUME_SUFFIXES = (".mhd", ".mha", ".nrrd", ".nhdr", ".nii", ".nii.gz")


def _is_volume_file(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in VOLUME_SUFFIXES)


_SITK_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
    "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8,
}
# Header fields holding geometry, under each of the names MetaImage allows for them.
_MHD_GEOMETRY = {"origin": ("Offset", "Origin", "Position"), "spacing": ("ElementSpacing",),
                 "direction": ("TransformMatrix", "Rotation", "Orientation")}
# |D^T D - I| above this means the direction matrix is not a rotation (or reflection) of the axes.
ORTHONORMAL_TOLERANCE = 1e-4


def _mhd_header(path: Path) -> dict[str, str]:
    """The `key = value` fields of a MetaImage header; DataError for a file that is not one."""
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
    return header


def _mhd_data_file(path: Path, header: dict[str, str]) -> Path | None:
    """The data file an `.mhd` header names (None for LOCAL, LIST or %-pattern data)."""
    data = header.get("ElementDataFile", "LOCAL")
    if data == "LOCAL" or data.startswith("LIST") or "%" in data:
        return None
    return path.parent / data


def volume_files(path: str | os.PathLike) -> list[Path]:
    """The files a volume on disk is made of: an `.mhd` / `.nhdr` header and the data file it names, a
    DICOM series folder, or a single file. Not a glob on `<uid>.*`: series UIDs contain dots, so another
    scan's files could match; and a header may name a data file of another stem."""
    path = Path(path)
    if path.suffix.lower() == ".mhd" and path.is_file():
        try:
            data = _mhd_data_file(path, _mhd_header(path))
        except DataError:
            return [path]
        return [path] if data is None else [path, data]
    if path.suffix.lower() == ".nhdr" and path.is_file():
        m = re.search(r"^\s*data file\s*:\s*(.+?)\s*$", path.read_text(errors="replace"),
                      flags=re.MULTILINE | re.IGNORECASE)
        return [path] if m is None or m.group(1).startswith("LIST") else [path, path.parent / m.group(1)]
    return [path]


def _finite_numbers(path: Path, key: str, text: str, count: int) -> np.ndarray:
    try:
        values = np.array([float(v) for v in text.split()], dtype=np.float64)
    except ValueError:
        raise DataError(path, f"corrupt MetaImage header: {key} {text!r} is not a list of numbers") from None
    if len(values) != count:
        raise DataError(path, f"corrupt MetaImage header: {key} has {len(values)} values, a 3-D volume needs {count}")
    if not np.isfinite(values).all():
        raise DataError(path, f"corrupt MetaImage header: {key} = {text!r} is not finite (NaN or infinite)")
    return values


def _check_mhd(path: Path) -> None:
    """Validate a MetaImage header and its data file before SimpleITK reads them.

    Checks what SimpleITK would read silently wrong: a 3-D size of positive integers, finite geometry
    (ITK reads `Offset = nan nan nan` as 0), and a data file exactly as large as the header says (a larger
    one would be read as its first slices).
    """
    header = _mhd_header(path)
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
    if min(dims) < 1:
        raise DataError(path, f"DimSize {header['DimSize']} (x y z) has an empty axis: the volume holds no voxels")
    for what, keys in _MHD_GEOMETRY.items():
        for key in keys:
            if key in header:
                _finite_numbers(path, key, header[key], 9 if what == "direction" else 3)
    data_path = _mhd_data_file(path, header)
    if data_path is None:
        return
    if not data_path.exists():
        raise DataError(path, f"data file {data_path} named by ElementDataFile is missing")
    compressed = header.get("CompressedData", "False").lower() == "true"
    bytes_per = _SITK_BYTES.get(header["ElementType"])
    if not compressed and bytes_per:
        expected = int(np.prod(dims)) * bytes_per * channels
        actual = data_path.stat().st_size
        if actual < expected:
            raise DataError(data_path, f"truncated data file: {actual} bytes, header {path.name} needs {expected}")
        if actual > expected:
            raise DataError(data_path, f"data file is larger than its header says: {actual} bytes, header "
                                       f"{path.name} (DimSize {header['DimSize']}, {header['ElementType']}) "
                                       f"describes {expected}; the header is wrong or belongs to another file")


def _itk_reason(exc: Exception) -> str:
    """ITK's whole error message on one line, without the C++ source locations it starts with."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    kept = [re.sub(r"^.*\.(?:h|hxx|cxx|cpp):\d+:\s*", "", ln) for ln in lines]
    kept = [re.sub(r"^(?:ITK ERROR:|sitk::ERROR:)\s*(?:\w+\(0x[0-9a-fA-F]+\):\s*)?", "", ln) for ln in kept]
    text = " ".join(k for k in kept if k and not k.startswith("Exception thrown in SimpleITK"))
    return text or str(exc).strip()


def check_geometry(volume: Volume, path: str | os.PathLike | None) -> None:
    """DataError unless `volume`'s geometry is usable: finite origin, finite positive spacing, and an
    orthonormal direction matrix (its columns unit vectors at right angles; a singular or skewed one would
    move every world coordinate)."""
    if not np.isfinite(volume.origin).all():
        raise DataError(path, f"origin {volume.origin.tolist()} is not finite")
    if not np.isfinite(volume.spacing).all():
        raise DataError(path, f"spacing {volume.spacing.tolist()} is not finite")
    d = volume.direction
    if not np.isfinite(d).all() or np.abs(d.T @ d - np.eye(3)).max() > ORTHONORMAL_TOLERANCE:
        raise DataError(path, f"direction matrix {d.ravel().round(6).tolist()} is not orthonormal (its columns must "
                              "be unit vectors at right angles)")


# A neighbour along an axis of a CT differs from a voxel far less than a random voxel does. When the header's
# axes do not match how the data were stored (DimSize swapped, a wrong row length), one axis's "neighbours" lie
# far apart in the body. Noise (high with sharp kernels) is first averaged away along the other axes, which
# leaves the tested axis's neighbours as they are. Measured on synthetic tiny / demo / luna scans of every
# kernel: at most 0.13 for every axis of a correctly read scan (the three within a factor 3.5 of each other),
# 0.25-1.4 along a broken axis of a scrambled one, 10-25 times the intact axis. A volume is refused when one
# axis exceeds COHERENCE_LIMIT and COHERENCE_FACTOR times the most coherent axis. Arrays with an axis shorter
# than COHERENCE_MIN_VOXELS are too small to judge (edges dominate) and are not checked; chest CTs have 95+
# slices.
COHERENCE_LIMIT = 0.2
COHERENCE_FACTOR = 6.0
COHERENCE_MIN_VOXELS = 32
_COHERENCE_BLUR = 5  # voxels averaged along the other axes


def neighbour_ratios(array: np.ndarray, n_slices: int = 8, seed: int = 0) -> np.ndarray:
    """Mean |difference| between neighbouring voxels along z, y, x, each divided by that of random voxel pairs,
    after a 5-voxel mean along the other in-plane axes (noise averaged away), measured on `n_slices` evenly
    spaced slice pairs of a (z, y, x) array (cheap on any scan)."""
    nz = array.shape[0]
    zs = np.unique(np.linspace(0, nz - 2, num=min(n_slices, nz - 1)).astype(int))
    pair = np.asarray(array[np.concatenate([zs, zs + 1])], dtype=np.float32)
    k = _COHERENCE_BLUR
    rng = np.random.default_rng(seed)

    def ratio(x: np.ndarray, diff: np.ndarray) -> float:
        flat = x.ravel()
        i, j = rng.integers(0, flat.size, (2, min(flat.size, 100_000)))
        scale = float(np.mean(np.abs(flat[i] - flat[j])))
        return float(np.mean(np.abs(diff))) / scale if scale > 0 else 0.0

    both = ndimage.uniform_filter(pair, size=(1, k, k), mode="nearest")
    along_x = ndimage.uniform_filter(pair[:len(zs)], size=(1, 1, k), mode="nearest")  # keeps y neighbours apart
    along_y = ndimage.uniform_filter(pair[:len(zs)], size=(1, k, 1), mode="nearest")  # keeps x neighbours apart
    return np.array([ratio(both, both[len(zs):] - both[:len(zs)]), ratio(along_x, np.diff(along_x, axis=1)),
                     ratio(along_y, np.diff(along_y, axis=2))])


def check_ct(volume: Volume, path: str | os.PathLike | None) -> None:
    """DataError unless `volume` looks like a CT in Hounsfield units: numeric signed or float voxels, at least
    2 voxels along every axis, values in [-10000, 40000], some air (the 1st percentile below -500 HU; a
    chest CT has air at about -1000 HU), and neighbouring voxels alike along every axis (a header whose
    axes do not match the stored data scrambles the volume; see :data:`COHERENCE_LIMIT`; checked when every
    axis has at least :data:`COHERENCE_MIN_VOXELS` voxels)."""
    a = volume.array
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise DataError(path, f"voxel type {a.dtype} is not numeric: not a CT volume")
    if min(a.shape) < 2:
        raise DataError(path, f"shape {a.shape} (z, y, x): a CT volume needs at least 2 voxels along every axis")
    if np.issubdtype(a.dtype, np.unsignedinteger) and a.dtype.itemsize == 1:
        raise DataError(path, f"voxel type {a.dtype} (0-255) cannot hold Hounsfield units: an image, not a CT in HU")
    sample = np.asarray(a[:: max(1, a.shape[0] // 16)], dtype=np.float64)
    if not np.isfinite(sample).all():
        raise DataError(path, "NaN or infinite voxel values: not a CT volume in Hounsfield units")
    lo, hi = float(sample.min()), float(sample.max())
    if lo < -10000 or hi > 40000:
        raise DataError(path, f"values {lo:g} to {hi:g} lie outside any Hounsfield range: not a CT in HU")
    p1 = float(np.percentile(sample, 1))
    if p1 > -500:
        raise DataError(path, f"no air in the image (1st percentile {p1:g}; a chest CT in Hounsfield units has air "
                              "at about -1000 HU): not a CT, or not rescaled to HU")
    ratios = neighbour_ratios(a) if min(a.shape) >= COHERENCE_MIN_VOXELS else np.zeros(3)
    if ratios.max() > COHERENCE_LIMIT and ratios.max() > COHERENCE_FACTOR * ratios.min():
        axis = "zyx"[int(ratios.argmax())]
        raise DataError(path, f"neighbouring voxels along {axis} differ as much as random ones (ratio "
                              f"{ratios.max():.2f}, {ratios.max() / max(ratios.min(), 1e-9):.0f} times the most "
                              f"coherent axis; a CT stays below {COHERENCE_LIMIT}): the header's size "
                              f"{tuple(reversed(a.shape))} (x, y, z) does not match how the data are stored")


def read_volume(path: str | os.PathLike, series_uid: str | None = None, *, canonical: bool = True,
                ct: bool = True) -> Volume:
    """Read a CT volume: `.mhd/.raw`, `.mha`, `.nrrd`, `.nii(.gz)`, or a folder holding one DICOM series.

    The one reader every stage uses. Values are as stored (LUNA16 `.mhd` files are int16 HU; DICOM is
    rescaled to HU). With `canonical` (the default) the array is permuted and flipped so that its direction
    is as close to the identity as the scan allows (:meth:`Volume.canonical`): every network sees one
    orientation whatever the storage, and world coordinates are unchanged. With `ct` (the default) the volume
    must look like a CT in HU (:func:`check_ct`). Raises :class:`DataError` naming the file for a missing
    file, a corrupt header, a missing, truncated or oversized data file, non-finite or non-orthonormal
    geometry, anything that is not a 3-D scalar volume, and (with `ct`) a non-CT. `series_uid` picks one
    series from a DICOM folder holding several.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_dir():
        from .dicom import read_dicom_series

        volume = read_dicom_series(path, series_uid=series_uid)
    else:
        if not _is_volume_file(path):
            raise DataError(path, f"unsupported volume format; expected one of {', '.join(VOLUME_SUFFIXES)} or a "
                                  "DICOM folder")
        if path.suffix.lower() == ".mhd":
            _check_mhd(path)
        try:
            image = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            raise DataError(path, f"cannot read volume: {_itk_reason(exc)}") from None
        try:
            volume = Volume.from_sitk(image)
        except ValueError as exc:
            raise DataError(path, str(exc)) from None
    check_geometry(volume, path)
    if ct:
        check_ct(volume, path)
    return volume.canonical() if canonical else volume


def read_geometry(path: str | os.PathLike) -> dict:
    """Read only a volume file's header: `shape` (z, y, x), `origin`, `spacing` (x, y, z), `direction`.

    Fast (no voxel data is read); for DICOM folders the whole series is read. The geometry is the stored
    one (not canonical). DataError for anything that is not a 3-D scalar volume with usable geometry.
    """
    path = Path(path)
    if path.is_dir():
        v = read_volume(path, canonical=False)
        return {"shape": v.shape, "origin": v.origin, "spacing": v.spacing, "direction": v.direction}
    if not path.exists():
        raise DataError(path, "no such file")
    if not _is_volume_file(path):
        raise DataError(path, f"unsupported volume format; expected one of {', '.join(VOLUME_SUFFIXES)} or a "
                              "DICOM folder")
    if path.suffix.lower() == ".mhd":
        _check_mhd(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise DataError(path, f"cannot read header: {_itk_reason(exc)}") from None
    dim, comps = reader.GetDimension(), reader.GetNumberOfComponents()
    if dim != 3 or comps != 1:
        raise DataError(path, f"expected a 3-D scalar volume, the file holds a {dim}-D image of size "
                              f"{list(reader.GetSize())} with {comps} component(s) per voxel")
    if min(reader.GetSize()) < 1:
        raise DataError(path, f"size {list(reader.GetSize())} (x, y, z) has an empty axis")
    geometry = Volume(np.zeros((1, 1, 1), np.int8), np.array(reader.GetOrigin()), np.array(reader.GetSpacing()),
                      np.array(reader.GetDirection()).reshape(3, 3))
    check_geometry(geometry, path)
    return {"shape": tuple(reversed(reader.GetSize())), "origin": geometry.origin, "spacing": geometry.spacing,
            "direction": geometry.direction}


def write_volume(volume: Volume, path: str | os.PathLike, compress: bool = False,
                 metadata: dict[str, str] | None = None) -> Path:
    """Write `volume` to `path` atomically; the format follows the suffix (`.mhd` writes `.mhd` + `.raw`).

    The array's dtype and orientation are kept (LUNA16 uses int16). `metadata` adds header fields (MetaImage
    and NRRD keep them as `key = value` lines; used to mark derived scans). Returns the path written. Nothing
    appears under the final name until every file is complete.
    """
    path = Path(path)
    if not _is_volume_file(path):
        raise ValueError(f"{path}: unsupported output format; use one of {', '.join(VOLUME_SUFFIXES)}")
    image = volume.to_sitk()
    for key, value in (metadata or {}).items():
        image.SetMetaData(str(key), str(value).replace("\n", " "))
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


def planned_volume_files(path: str | os.PathLike, compress: bool = False) -> list[Path]:
    """The files :func:`write_volume` writes for `path`: the `.mhd` / `.nhdr` header and its data file
    (`<stem>.raw`, or `.zraw` / `.raw.gz` compressed, as SimpleITK names them), else the one file."""
    path = Path(path)
    lower = path.name.lower()
    if lower.endswith(".mhd"):
        return [path, path.with_name(path.name[:-4] + (".zraw" if compress else ".raw"))]
    if lower.endswith(".nhdr"):
        return [path, path.with_name(path.name[:-5] + (".raw.gz" if compress else ".raw"))]
    return [path]
