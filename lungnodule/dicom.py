"""DICOM CT series: read a folder into a :class:`~lungnodule.volume.Volume`, write a Volume as a series.

Reading orders the slices by ImagePositionPatient projected on the slice normal (the cross product of
the two ImageOrientationPatient direction cosines), never by InstanceNumber, and applies
RescaleSlope / RescaleIntercept so values are HU. The geometry follows ITK (and SimpleITK's GDCM
series reader): origin = position of the first slice in that order, spacing (x, y, z) = (column
spacing, row spacing, slice step), direction columns = row cosine, column cosine, slice normal.
Anything that cannot be read as one regular CT volume raises :class:`~lungnodule.errors.DataError`
naming the folder or file and the problem. Writing makes one CT Image Storage file per z-slice with
new UIDs, HU stored through the rescale tags, and reads back identical.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    UID,
)
from pydicom.valuerep import format_number_as_ds

from .atomic import atomic_dir
from .errors import DataError
from .uids import new_uid
from .geometry import Volume

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
# Multi-frame CT objects: a whole volume in one file; recognised so the error can say so.
MULTIFRAME_CT_STORAGE = ("1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2")
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR

# Relative deviation of a slice step from the median step beyond which the series is rejected.
SLICE_STEP_TOLERANCE = 0.10
# Tolerances for "the same" orientation (direction cosines) and pixel spacing (mm) across slices.
ORIENTATION_TOLERANCE = 1e-3
SPACING_TOLERANCE = 1e-4

# Identity tags copied from a reference series by `write_dicom_series(reference_folder=...)`:
# patient, study, frame of reference and equipment, never series or instance identity.
REFERENCE_TAGS = (
    "SpecificCharacterSet",
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
    "ReferringPhysicianName", "StudyDescription",
    "FrameOfReferenceUID", "PositionReferenceIndicator",
    "Manufacturer", "ManufacturerModelName", "InstitutionName", "StationName",
    "PatientPosition", "BodyPartExamined",
)


@dataclass
class _Slice:
    """One DICOM file's header (pixel data deferred) and where it came from."""

    path: Path
    ds: Dataset

    def get(self, keyword: str, default=None):
        return self.ds.get(keyword, default)


def _dicom_marker(path: Path) -> str | None:
    """'part10' for a file with the 'DICM' marker at byte 128, 'bare' for a preamble-less file
    starting with a group-0008 tag (old files written without the Part 10 header), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return None
    if head[128:132] == b"DICM":
        return "part10"
    return "bare" if head[:2] == b"\x08\x00" else None


def _read_header(path: Path) -> Dataset | None:
    """The dataset of a DICOM file with large elements (the pixel data) deferred, or None when the
    file is not DICOM or is a DICOMDIR. A file marked DICM that cannot be parsed is a DataError."""
    marker = _dicom_marker(path)
    if marker is None:
        return None
    try:
        ds = pydicom.dcmread(path, defer_size="2 KB", force=True)
    except Exception as exc:  # pydicom raises many types for broken files
        if marker == "bare":
            return None
        raise DataError(path, f"corrupt DICOM file: {exc}") from None
    sop_class = ds.get("SOPClassUID") or getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", None)
    if str(sop_class or "") == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
        return None
    if sop_class is None and marker == "bare":
        return None
    return ds


def _dicom_files(folder: Path) -> list[_Slice]:
    """Every DICOM file under `folder` (recursively; hidden files and folders such as the temporary
    folders of atomic writes are skipped), in sorted path order."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            path = Path(root) / name
            ds = _read_header(path)
            if ds is not None:
                found.append(_Slice(path, ds))
    return found


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True when `path` is a DICOM object file (not a DICOMDIR); a corrupt file marked DICM counts."""
    path = Path(path)
    try:
        return path.is_file() and _read_header(path) is not None
    except DataError:
        return True


def is_dicom_folder(path: str | os.PathLike) -> bool:
    """True when `path` is a folder holding at least one DICOM file (searched recursively, hidden
    files and folders skipped)."""
    path = Path(path)
    if not path.is_dir():
        return False
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(not n.startswith(".") and is_dicom_file(Path(root) / n) for n in files):
            return True
    return False


def _group_series(files: list[_Slice]) -> dict[str, list[_Slice]]:
    series: dict[str, list[_Slice]] = {}
    for s in files:
        series.setdefault(str(s.get("SeriesInstanceUID", "")), []).append(s)
    return series


def _series_table(series: dict[str, list[_Slice]]) -> pd.DataFrame:
    rows = []
    for uid, slices in series.items():
        first = slices[0]
        rows.append({
            "series_uid": uid,
            "description": str(first.get("SeriesDescription", "")),
            "modality": str(first.get("Modality", "")),
            "slices": len(slices),
            "study_uid": str(first.get("StudyInstanceUID", "")),
            "folder": str(first.path.parent),
        })
    return pd.DataFrame(rows, columns=["series_uid", "description", "modality", "slices", "study_uid", "folder"])


def list_series(folder: str | os.PathLike) -> pd.DataFrame:
    """The DICOM series found under `folder`: one row per SeriesInstanceUID with columns
    `series_uid, description, modality, slices, study_uid, folder` (folder of its first file).
    Empty when the folder holds no DICOM file."""
    return _series_table(_group_series(_dicom_files(Path(folder))))


def _describe(table: pd.DataFrame) -> str:
    return "; ".join(
        f"{r.series_uid or '<no SeriesInstanceUID>'} ({r.modality or 'no modality'}, "
        f"{r.description!r}, {r.slices} file{'s' if r.slices != 1 else ''})"
        for r in table.itertuples()
    )


def _select_series(folder: Path, files: list[_Slice], series_uid: str | None) -> list[_Slice]:
    """The files of the one series to read, or a DataError naming the series found."""
    if not files:
        raise DataError(folder, "no DICOM files found in this folder")
    for s in files:
        if not s.get("SeriesInstanceUID"):
            raise DataError(s.path, "DICOM file without SeriesInstanceUID (truncated or incomplete file?)")
    series = _group_series(files)
    table = _series_table(series)
    if series_uid is not None:
        if series_uid not in series:
            raise DataError(folder, f"no series with SeriesInstanceUID {series_uid}; found {_describe(table)}")
        return series[series_uid]
    if len(series) > 1:
        raise DataError(
            folder,
            f"holds {len(series)} DICOM series: {_describe(table)}. Pick one with "
            "read_dicom_series(folder, series_uid=...) or move each series into its own folder",
        )
    return next(iter(series.values()))


def _check_ct_images(folder: Path, slices: list[_Slice]) -> None:
    """Reject a series that is not single-frame CT images: other modality, non-image or multi-frame
    objects, missing geometry tags."""
    for s in slices:
        modality = str(s.get("Modality", "")) or "missing"
        sop = str(s.get("SOPClassUID", "")) or "missing"
        sop_name = UID(sop).name if sop != "missing" else "no SOPClassUID"
        if modality != "CT":
            raise DataError(
                s.path, f"modality {modality} ({sop_name}), not CT; only CT image series can be read"
            )
        if sop in MULTIFRAME_CT_STORAGE or int(s.get("NumberOfFrames", 1) or 1) > 1:
            raise DataError(s.path, f"multi-frame CT object ({sop_name}); only single-frame CT series are supported")
        if sop != CT_IMAGE_STORAGE:
            raise DataError(
                s.path, f"{sop_name} is not a CT image; keep only the CT image files of one series in the folder"
            )
        if "PixelData" not in s.ds:
            raise DataError(s.path, "CT image file without pixel data (truncated or incomplete file?)")
        for tag, count in (("ImagePositionPatient", 3), ("ImageOrientationPatient", 6), ("PixelSpacing", 2)):
            value = s.get(tag)
            try:
                ok = value is not None and len([float(v) for v in value]) == count
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise DataError(s.path, f"CT image with missing or invalid {tag} {value!r}: cannot place the slice")
        if not s.get("Rows") or not s.get("Columns"):
            raise DataError(s.path, "CT image without Rows/Columns")
        if int(s.get("SamplesPerPixel", 1)) != 1:
            raise DataError(s.path, f"SamplesPerPixel {s.get('SamplesPerPixel')}: a CT slice must be grey-scale")
    if len(slices) == 1:
        raise DataError(
            slices[0].path, f"the series in {folder} has a single slice; a CT volume needs at least two"
        )


def _files(slices: Sequence[_Slice], limit: int = 3) -> str:
    names = ", ".join(str(s.path) for s in slices[:limit])
    return names + (f" and {len(slices) - limit} more" if len(slices) > limit else "")


def _check_same(folder: Path, slices: list[_Slice], values: np.ndarray, what: str, atol: float) -> None:
    """Every row of `values` (one per slice) must match the most common row within `atol`."""
    unique, counts = np.unique(np.round(values, 6), axis=0, return_counts=True)
    ref = unique[np.argmax(counts)]
    off = np.flatnonzero(np.any(np.abs(values - ref) > atol, axis=1))
    if off.size:
        bad = [slices[i] for i in off]
        other = np.round(values[off[0]], 6).tolist()
        raise DataError(
            folder,
            f"slices differ in {what}: most are {np.round(ref, 6).tolist()}, but {_files(bad)} "
            f"{'has' if len(bad) == 1 else 'have'} {other}; a volume needs one {what} for all slices",
        )


def _geometry(folder: Path, slices: list[_Slice]) -> tuple[list[_Slice], np.ndarray, np.ndarray, np.ndarray]:
    """Sort the slices along the normal and check they form a regular grid.

    Returns (sorted slices, origin (x, y, z) mm, spacing (x, y, z) mm, direction 3x3).
    """
    iop = np.array([[float(v) for v in s.ds.ImageOrientationPatient] for s in slices])
    _check_same(folder, slices, iop, "ImageOrientationPatient", ORIENTATION_TOLERANCE)
    pixel_spacing = np.array([[float(v) for v in s.ds.PixelSpacing] for s in slices])
    _check_same(folder, slices, pixel_spacing, "PixelSpacing", SPACING_TOLERANCE)
    size = np.array([[int(s.ds.Rows), int(s.ds.Columns)] for s in slices], dtype=np.float64)
    _check_same(folder, slices, size, "Rows/Columns", 0)

    row_cos, col_cos = iop[0, :3], iop[0, 3:]
    unit = np.allclose([np.linalg.norm(row_cos), np.linalg.norm(col_cos)], 1, atol=1e-3)
    if not unit or abs(row_cos @ col_cos) > 1e-3:
        raise DataError(
            slices[0].path, f"ImageOrientationPatient {iop[0].tolist()} is not two orthogonal unit vectors"
        )
    row_cos = row_cos / np.linalg.norm(row_cos)
    col_cos = col_cos / np.linalg.norm(col_cos)
    normal = np.cross(row_cos, col_cos)
    normal /= np.linalg.norm(normal)

    ipp = np.array([[float(v) for v in s.ds.ImagePositionPatient] for s in slices])
    along = ipp @ normal
    order = np.argsort(along, kind="stable")
    slices = [slices[i] for i in order]
    ipp, along = ipp[order], along[order]

    steps = np.diff(along)
    dup = np.flatnonzero(steps < 1e-4 * max(float(np.median(np.abs(steps))), 1e-3))
    if dup.size:
        i = int(dup[0])
        raise DataError(
            folder,
            f"{dup.size} duplicate slice position(s): {slices[i].path} and {slices[i + 1].path} both lie at "
            f"{along[i]:.3f} mm along the normal (duplicate files, or several acquisitions in one series)",
        )
    median = float(np.median(steps))
    bad = np.flatnonzero(np.abs(steps - median) > SLICE_STEP_TOLERANCE * median)
    if bad.size:
        parts = []
        for i in bad[:5]:
            ratio = steps[i] / median
            hint = f", about {round(ratio) - 1} slice(s) missing" if ratio > 1.5 else ""
            parts.append(
                f"{along[i]:.3f} -> {along[i + 1]:.3f} mm ({slices[i].path.name} -> {slices[i + 1].path.name}): "
                f"step {steps[i]:.3f} mm{hint}"
            )
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        raise DataError(
            folder,
            f"inconsistent slice spacing or missing slices: median step {median:.4f} mm, but "
            + "; ".join(parts) + more,
        )

    step = (along[-1] - along[0]) / (len(slices) - 1)
    direction = np.column_stack([row_cos, col_cos, normal])
    origin = ipp[0]
    # Every slice must sit on the line origin + k * step * normal; an in-plane drift is a gantry tilt
    # or a sheared stack, which one direction matrix cannot describe.
    offsets = ipp - origin
    in_plane = np.abs(offsets @ np.column_stack([row_cos, col_cos]))
    tol = 0.1 * float(pixel_spacing[0].min())
    if np.any(in_plane > tol):
        k = int(np.argmax(in_plane.max(axis=1)))
        raise DataError(
            slices[k].path,
            f"slice is shifted {in_plane[k].max():.3f} mm in-plane from the first slice's position "
            "(gantry tilt or a sheared stack); resample the series to an orthogonal grid first",
        )
    spacing = np.array([pixel_spacing[0, 1], pixel_spacing[0, 0], step])
    return slices, origin, spacing, direction


def _pixels(slices: list[_Slice]) -> np.ndarray:
    """Stack the slices' HU values (z, y, x): stored values times RescaleSlope plus RescaleIntercept,
    per slice. int16 when every slope and intercept is an integer and the result fits, else float32."""
    stored = []
    for s in slices:
        try:
            stored.append(s.ds.pixel_array)
        except Exception as exc:  # pydicom raises several types for unsupported or broken pixel data
            syntax = getattr(getattr(s.ds, "file_meta", None), "TransferSyntaxUID", None)
            name = UID(str(syntax)).name if syntax else "unknown transfer syntax"
            raise DataError(s.path, f"cannot decode pixel data ({name}): {exc}") from None
        if stored[-1].shape != (int(s.ds.Rows), int(s.ds.Columns)):
            raise DataError(s.path, f"pixel data shape {stored[-1].shape} differs from Rows/Columns")
    stored = np.stack(stored)
    slope = np.array([float(s.get("RescaleSlope", 1) or 1) for s in slices])
    intercept = np.array([float(s.get("RescaleIntercept", 0) or 0) for s in slices])
    if np.all(slope == np.round(slope)) and np.all(intercept == np.round(intercept)):
        # Integer rescale: predict the HU range from each slice's stored range, then compute in int32
        # (a uint16 slice minus an intercept can leave int16 on the way but come back in range).
        smin = stored.reshape(len(slices), -1).min(axis=1).astype(np.int64)
        smax = stored.reshape(len(slices), -1).max(axis=1).astype(np.int64)
        ends = np.stack([smin, smax]) * slope.astype(np.int64) + intercept.astype(np.int64)
        info = np.iinfo(np.int16)
        if ends.min() >= info.min and ends.max() <= info.max:
            hu = stored.astype(np.int32)
            if np.any(slope != 1):
                hu *= slope.astype(np.int32)[:, None, None]
            hu += intercept.astype(np.int32)[:, None, None]
            return hu.astype(np.int16)
    hu = stored.astype(np.float64) * slope[:, None, None] + intercept[:, None, None]
    return hu.astype(np.float32)


def read_dicom_series(folder: str | os.PathLike, series_uid: str | None = None) -> Volume:
    """Read the CT series in `folder` (searched recursively) into a Volume of HU values (z, y, x).

    Non-DICOM files (DICOMDIR, text files) are skipped. `series_uid` picks one series when the folder
    holds several; `folder` may also be one file of the series, which then picks its series. Slices
    are ordered by ImagePositionPatient along the slice normal; origin, spacing (x, y, z) mm and
    direction follow ITK (see the module docstring). Raises :class:`DataError` naming the folder or
    file for: no DICOM files, several series without `series_uid`, a modality other than CT,
    non-image or multi-frame objects, slices differing in orientation, pixel spacing or size,
    duplicate positions, inconsistent slice spacing or missing slices (a step more than 10 % off the
    median), a tilted stack, a single slice, or undecodable pixel data.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DataError(folder, "no such file or folder")
    if folder.is_file():
        ds = _read_header(folder)
        if ds is None:
            raise DataError(folder, "not a DICOM file")
        series_uid = str(ds.get("SeriesInstanceUID", "")) if series_uid is None else series_uid
        folder = folder.parent
    slices = _select_series(folder, _dicom_files(folder), series_uid)
    _check_ct_images(folder, slices)
    slices, origin, spacing, direction = _geometry(folder, slices)
    return Volume(_pixels(slices), origin=origin, spacing=spacing, direction=direction)


def _ds(value: float) -> str:
    """A decimal string (DS, at most 16 characters) as close to `value` as DS allows."""
    return format_number_as_ds(float(value))


def _store(array: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Stored 16-bit pixels, slope and intercept representing `array` (HU).

    Integer values are kept exactly: int16 with intercept 0 when they fit, else uint16 with the
    intercept at the minimum. Non-integer values are quantised linearly over their range into uint16
    (error at most half the slope).
    """
    if not np.all(np.isfinite(array)):
        raise ValueError("the volume holds NaN or infinite values; DICOM cannot store them")
    lo, hi = float(array.min()), float(array.max())
    integral = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_) or np.array_equal(
        array, np.round(array)
    )
    if integral:
        if lo >= -32768 and hi <= 32767:
            return array.astype(np.int16), 1.0, 0.0
        if hi - lo <= 65535:
            return (array.astype(np.int64) - int(lo)).astype(np.uint16), 1.0, float(lo)
        raise ValueError(f"integer values span {lo}..{hi}, more than 16 bits can store")
    intercept = float(_ds(lo))
    slope = float(_ds((hi - intercept) / 65535)) if hi > intercept else 1.0
    # Round up until the top value fits after DS formatting.
    while (hi - intercept) / slope > 65535:
        slope = float(_ds(slope * (1 + 1e-9) + 1e-15))
    stored = np.clip(np.rint((array.astype(np.float64) - intercept) / slope), 0, 65535)
    return stored.astype(np.uint16), slope, intercept


def _reference_dataset(reference: Path) -> Dataset:
    """The header of one file of the reference series (`reference` is its folder or one of its files)."""
    if reference.is_file():
        ds = _read_header(reference)
        if ds is None:
            raise DataError(reference, "not a DICOM file")
        return ds
    return _select_series(reference, _dicom_files(reference), None)[0].ds


def write_dicom_series(
    volume: Volume,
    folder: str | os.PathLike,
    *,
    series_description: str = "lungnodule export",
    derived: bool = False,
    image_type: Sequence[str] | None = None,
    patient_id: str | None = None,
    patient_name: str | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    uid_entropy: object = None,
    reference_folder: str | os.PathLike | None = None,
) -> list[Path]:
    """Write `volume` (HU, (z, y, x)) as a CT Image Storage series, one file per z-slice, into `folder`.

    Geometry: ImagePositionPatient of slice k = ``volume.voxel_to_world((k, 0, 0))``,
    ImageOrientationPatient = the direction's first two columns, PixelSpacing = [spacing_y,
    spacing_x] (row, column), SliceThickness = spacing_z. HU are stored as 16-bit pixels through
    RescaleSlope / RescaleIntercept; integer HU read back identical (see :func:`_store`). New
    Study / Series / SOP / FrameOfReference UIDs come from :func:`lungnodule.uids.new_uid`,
    deterministic when `uid_entropy` (a value or tuple) is given; `study_uid` / `series_uid`
    override. `derived=True` marks the images DERIVED\\SECONDARY (`image_type` overrides ImageType).
    With `reference_folder` (the source series) the patient, study, frame-of-reference and equipment
    tags are copied from it; Series and SOP UIDs are always new. The files appear atomically; a
    folder already holding DICOM files is refused (DataError) so series never mix. Returns the paths.
    The direction's third column must be +-(first x second); a left-handed direction (-) reads back
    as the equivalent right-handed volume (z reversed), since DICOM orders slices by position only.
    """
    folder = Path(folder)
    array = np.asarray(volume.array)
    if array.ndim != 3 or array.shape[0] < 2:
        raise ValueError(f"a DICOM series needs a 3-D array with at least 2 slices, got shape {array.shape}")
    d = volume.direction
    normal = np.cross(d[:, 0], d[:, 1])
    if not np.allclose(np.abs(normal @ d[:, 2]), 1, atol=1e-6):
        raise ValueError(f"direction {d.tolist()}: the slice axis is not perpendicular to the slice plane")
    if folder.exists() and is_dicom_folder(folder):
        raise DataError(folder, "already holds DICOM files; write each series into a new or empty folder")

    entropy = () if uid_entropy is None else (
        tuple(uid_entropy) if isinstance(uid_entropy, (tuple, list)) else (uid_entropy,)
    )

    def uid(*parts: object) -> str:
        return new_uid(*entropy, *parts) if entropy else new_uid()

    base = Dataset()
    if reference_folder is not None:
        ref = _reference_dataset(Path(reference_folder))
        for keyword in REFERENCE_TAGS:
            if keyword in ref:
                setattr(base, keyword, ref.data_element(keyword).value)
    if patient_id is not None or "PatientID" not in base:
        base.PatientID = patient_id if patient_id is not None else "ANONYMOUS"
    if patient_name is not None or "PatientName" not in base:
        base.PatientName = patient_name if patient_name is not None else "Anonymous"
    for keyword in ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
                    "ReferringPhysicianName", "PositionReferenceIndicator", "PatientPosition"):
        if keyword not in base:
            setattr(base, keyword, "")  # type 2: present, may be empty
    if study_uid is not None or "StudyInstanceUID" not in base:
        base.StudyInstanceUID = study_uid or uid("study")
    if "FrameOfReferenceUID" not in base:
        base.FrameOfReferenceUID = uid("frame")
    if "Manufacturer" not in base:
        base.Manufacturer = "lungnodule"
    series_uid = series_uid or uid("series")

    base.SOPClassUID = CT_IMAGE_STORAGE
    base.Modality = "CT"
    base.SeriesInstanceUID = series_uid
    base.SeriesNumber = 1
    base.SeriesDescription = series_description[:64]  # LO: at most 64 characters
    base.ImageType = list(image_type) if image_type is not None else (
        ["DERIVED", "SECONDARY", "AXIAL"] if derived else ["ORIGINAL", "PRIMARY", "AXIAL"]
    )
    if derived:
        base.DerivationDescription = series_description[:1024]
    texts = [str(base.PatientName), str(base.PatientID), series_description]
    if "SpecificCharacterSet" not in base and not all(t.isascii() for t in texts):
        base.SpecificCharacterSet = "ISO_IR 192"  # UTF-8
    base.ImageOrientationPatient = [_ds(v) for v in np.concatenate([d[:, 0], d[:, 1]])]
    base.PixelSpacing = [_ds(volume.spacing[1]), _ds(volume.spacing[0])]
    base.SliceThickness = _ds(volume.spacing[2])
    base.SamplesPerPixel = 1
    base.PhotometricInterpretation = "MONOCHROME2"
    base.Rows, base.Columns = int(array.shape[1]), int(array.shape[2])
    stored, slope, intercept = _store(array)
    base.BitsAllocated = 16
    base.BitsStored = 16
    base.HighBit = 15
    base.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    base.RescaleIntercept = _ds(intercept)
    base.RescaleSlope = _ds(slope)
    base.RescaleType = "HU"
    base.KVP = ""
    base.AcquisitionNumber = 1

    positions = volume.voxel_to_world(np.column_stack([np.arange(array.shape[0]), np.zeros((array.shape[0], 2))]))
    normal_unit = normal / np.linalg.norm(normal)
    width = max(4, len(str(array.shape[0])))
    paths = []
    with atomic_dir(folder) as tmp:
        for k in range(array.shape[0]):
            ds = copy.deepcopy(base)
            sop_uid = uid("sop", k)
            ds.SOPInstanceUID = sop_uid
            ds.InstanceNumber = k + 1
            ds.ImagePositionPatient = [_ds(v) for v in positions[k]]
            ds.SliceLocation = _ds(positions[k] @ normal_unit)
            ds.PixelData = np.ascontiguousarray(stored[k]).astype(stored.dtype.newbyteorder("<")).tobytes()
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
            meta.MediaStorageSOPInstanceUID = sop_uid
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            meta.ImplementationVersionName = "LUNGNODULE"
            ds.file_meta = meta
            name = f"CT{k + 1:0{width}d}.dcm"
            ds.save_as(tmp / name, enforce_file_format=True)
            paths.append(folder / name)
    return paths
