"""Intensity mapping of the GAN's cubes: histogram equalisation, then (x - mean) / (max - min).

Both are fitted on the training cubes (HU) and saved beside the model as one `.npz` (no pickle). The
equaliser is the training set's empirical CDF, piecewise linear on `nbins` equal bins between the
smallest and largest training value (the original's 10,000 bins). The original inverted its CDF by
interpolating across flat (empty-bin) stretches, which is ill-posed; here a 1e-6 share of a uniform CDF
is mixed in so the lookup is strictly increasing and inverts exactly. The CDF is scaled to [0, 1]
instead of the original's voxels-per-cube scale; the normalisation that follows removes that scale, so
the network sees the same values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import DataError

UNIFORM_SHARE = 1e-6
CHUNK = 1 << 22  # voxels per pass when fitting on large (memory-mapped) training sets


@dataclass
class CubeNormalizer:
    """Fitted equalisation (`edges` HU -> `cdf` in [0, 1]) and normalisation (`mean`, `min`, `max` of the CDF)."""

    edges: np.ndarray
    cdf: np.ndarray
    mean: float
    min: float
    max: float

    @classmethod
    def fit(cls, cubes_hu: np.ndarray, nbins: int = 10000) -> "CubeNormalizer":
        """Fit on training cubes in HU (any shape; memory-mapped arrays are read in chunks)."""
        flat = np.asarray(cubes_hu).reshape(-1)
        if flat.size == 0:
            raise ValueError("cannot fit the normaliser on an empty training set")
        chunks = [flat[i:i + CHUNK] for i in range(0, flat.size, CHUNK)]
        lo = min(float(c.min()) for c in chunks)
        hi = max(float(c.max()) for c in chunks)
        if hi <= lo:
            hi = lo + 1.0
        edges = np.linspace(lo, hi, nbins + 1)
        counts = np.zeros(nbins, dtype=np.float64)
        for c in chunks:
            counts += np.histogram(c, bins=edges)[0]
        cdf = np.concatenate([[0.0], np.cumsum(counts)]) / counts.sum()
        cdf = (1.0 - UNIFORM_SHARE) * cdf + UNIFORM_SHARE * np.linspace(0.0, 1.0, nbins + 1)
        total, vmin, vmax = 0.0, np.inf, -np.inf
        for c in chunks:
            e = np.interp(c, edges, cdf)
            total += e.sum()
            vmin, vmax = min(vmin, e.min()), max(vmax, e.max())
        return cls(edges, cdf, total / flat.size, float(vmin), float(vmax))

    def equalize(self, hu) -> np.ndarray:
        """HU -> equalised value in [0, 1] (values outside the fitted range are clamped)."""
        return np.interp(np.asarray(hu, dtype=np.float64), self.edges, self.cdf)

    def dequalize(self, values) -> np.ndarray:
        """Equalised value -> HU: the exact inverse of :meth:`equalize` on the fitted range."""
        return np.interp(np.asarray(values, dtype=np.float64), self.cdf, self.edges)

    @property
    def range(self) -> tuple[float, float]:
        """The interval of normalised values that map back into the fitted HU range (about 1 wide)."""
        scale = self.max - self.min
        return (self.min - self.mean) / scale, (self.max - self.mean) / scale

    def normalize(self, hu) -> np.ndarray:
        """HU -> network input: equalise, then (x - mean) / (max - min); float32."""
        return ((self.equalize(hu) - self.mean) / (self.max - self.min)).astype(np.float32)

    def denormalize(self, x) -> np.ndarray:
        """Network output -> HU (float32); values are clipped to :attr:`range` first."""
        lo, hi = self.range
        x = np.clip(np.asarray(x, dtype=np.float64), lo, hi)
        return self.dequalize(x * (self.max - self.min) + self.mean).astype(np.float32)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted values to an `.npz` file (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, edges=self.edges, cdf=self.cdf, stats=np.array([self.mean, self.min, self.max]))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CubeNormalizer":
        """Read a file written by :meth:`save`; :class:`DataError` if it is missing or corrupt."""
        path = Path(path)
        if not path.exists():
            raise DataError(path, "no such normalisation file (made by CT-GAN/preprocess.py)")
        try:
            with np.load(path, allow_pickle=False) as z:
                edges, cdf, stats = z["edges"], z["cdf"], z["stats"]
        except Exception as exc:  # zip, key or format errors all mean the same to the user
            raise DataError(path, f"corrupt normalisation file: {exc}") from None
        if edges.shape != cdf.shape or edges.ndim != 1 or stats.shape != (3,) or np.any(np.diff(cdf) <= 0):
            raise DataError(path, "corrupt normalisation file: inconsistent edges / cdf / stats")
        return cls(edges, cdf, float(stats[0]), float(stats[1]), float(stats[2]))
