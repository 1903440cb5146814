"""CT volumes and their geometry: the :class:`Volume` (an HU array with its ITK geometry) and the world <-> voxel
conversions.

Arrays are indexed (z, y, x); geometry follows ITK and the LUNA16 CSVs: `origin`, `spacing` and world
points are (x, y, z) in millimetres, and `direction` is the 3x3 matrix whose column i is the world
direction of index axis i (i = x, y, z). Every world <-> voxel conversion goes through the direction
matrix, so scans stored with a flipped direction (LUNA16 has some with diag(-1, -1, 1)) are exact.
Reading and writing volume files is :mod:`lungnodule.volume`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk


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

    def reoriented(self, direction) -> "Volume":
        """The same scan stored the way closest to `direction` (3x3): the array permuted and flipped
        (SimpleITK's DICOMOrient), origin, spacing and direction updated so that every voxel keeps its world
        position. A scan already stored that way is returned as it is (no copy)."""
        direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
        code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(tuple(direction.ravel()))
        current = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(tuple(self.direction.ravel()))
        if code == current:
            return self
        return Volume.from_sitk(sitk.DICOMOrient(self.to_sitk(), code))

    def canonical(self) -> "Volume":
        """The scan in the one orientation every network sees: index axes x, y, z along the world's +x, +y, +z
        as nearly as the storage allows (DICOM's "LPS", identity direction for axis-aligned scans). A LUNA16
        scan stored with direction diag(-1, -1, 1) comes back mirrored in y and x with the identity direction
        and the same world coordinates; see :meth:`reoriented` to store a result as its source was."""
        return self.reoriented(np.eye(3))
