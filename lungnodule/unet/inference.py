"""From a CT volume to 3-D nodule candidates in world mm: slice-wise U-Net, 3-D components, centroids.

The U-Net predicts the lung-bearing axial slices of a :class:`~lungnodule.volume.Volume` (others are
skipped and count as background); each probability map is resized back to the scan's in-plane size,
the stack (z, y, x) is thresholded, and 26-connected 3-D components become candidates: the
probability-weighted centroid (voxel z, y, x) is mapped to world (x, y, z) mm through the direction
matrix, the score is the component's maximum (or mean) probability, the size the equivalent-sphere
diameter (mm) of its voxels at half its peak probability or more.
"""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pandas as pd
from scipy import ndimage

from ..volume import Volume
from .config import UnetConfig
from .lungs import lung_field_mask, lung_slices
from .slices import prepare_stacks

CANDIDATE_COLUMNS = ["coordX", "coordY", "coordZ", "probability", "diameter_mm",
                     "voxel_z", "voxel_y", "voxel_x", "n_voxels"]
_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
_CHUNK = 64  # slices prepared and resized at a time, to bound memory on 500-slice scans


def _input_size(model: keras.Model, config: UnetConfig) -> int:
    shape = model.input_shape
    return int(shape[1]) if shape[1] is not None else config.image_size


def _predict_batch(model: keras.Model, x: np.ndarray, tta_flips: bool) -> np.ndarray:
    """Probability maps (N, S, S) of input slices (N, S, S, C); with `tta_flips` the mean over the four
    in-plane flips (none, y, x, both), each flipped back before averaging."""
    plain = keras.ops.convert_to_numpy(model(x, training=False))[..., 0]
    if not tta_flips:
        return plain
    total = plain.astype(np.float32)
    for axes in [(1,), (2,), (1, 2)]:
        p = keras.ops.convert_to_numpy(model(np.ascontiguousarray(np.flip(x, axis=axes)), training=False))[..., 0]
        total += np.flip(p, axis=axes)
    return total / 4


def predict_volume(model: keras.Model, volume: Volume, config: UnetConfig, batch_size: int | None = None) -> np.ndarray:
    """Per-voxel nodule probability (z, y, x) float16 of `volume`, same shape as its array.

    Only slices with at least `config.min_lung_fraction` lung field are predicted (all of them when the
    lung mask finds nothing); the network input size is the model's (else `config.image_size`).
    """
    config = config.replace(image_size=_input_size(model, config))
    batch_size = batch_size or config.predict_batch_size
    lungs = lung_field_mask(volume.array, volume.spacing_zyx)
    zs = lung_slices(lungs, config.min_lung_fraction)
    depth, h, w = volume.shape
    prob = np.zeros((depth, h, w), dtype=np.float16)
    for start in range(0, len(zs), _CHUNK):
        chunk = zs[start:start + _CHUNK]
        x = prepare_stacks(volume.array, chunk, config, lungs, volume.spacing_zyx[0])
        for b in range(0, len(chunk), batch_size):
            p = _predict_batch(model, x[b:b + batch_size], config.tta_flips)
            for i, z in enumerate(chunk[b:b + batch_size]):
                prob[z] = cv2.resize(p[i], (w, h), interpolation=cv2.INTER_LINEAR)
    return prob


def extract_candidates(prob: np.ndarray, volume: Volume, threshold: float, max_candidates: int | None = None,
                       min_voxels: int = 1, score: str = "max") -> pd.DataFrame:
    """3-D candidates from a probability volume (z, y, x) on `volume`'s grid; see the module docstring.

    Components smaller than `min_voxels` are dropped; at most `max_candidates` are kept, best score first
    (ties: larger first). Columns: :data:`CANDIDATE_COLUMNS` (world mm, probability, diameter mm,
    continuous voxel centroid, voxel count).
    """
    if prob.shape != volume.shape:
        raise ValueError(f"probability shape {prob.shape} differs from the volume's {volume.shape}")
    if score not in ("max", "mean"):
        raise ValueError(f"score must be 'max' or 'mean', got {score!r}")
    labels, n = ndimage.label(prob >= threshold, structure=_CONNECTIVITY)
    if n == 0:
        return pd.DataFrame({c: pd.Series(dtype=np.float64) for c in CANDIDATE_COLUMNS})
    flat = np.flatnonzero(labels)
    lab = labels.ravel()[flat]
    p = prob.ravel()[flat].astype(np.float64)
    z, y, x = np.unravel_index(flat, labels.shape)
    count = np.bincount(lab, minlength=n + 1)[1:]
    wsum = np.bincount(lab, weights=p, minlength=n + 1)[1:]
    centroid = np.stack([np.bincount(lab, weights=p * c, minlength=n + 1)[1:] / wsum for c in (z, y, x)], axis=1)
    # Per-component peak by an unbuffered maximum: ndimage.maximum sorts every labelled voxel, which took
    # minutes on a 512-px scan whose probability map is above a low threshold nearly everywhere.
    pmax = np.full(n + 1, -np.inf)
    np.maximum.at(pmax, lab, p)
    pmax = pmax[1:]
    probability = pmax if score == "max" else wsum / count
    # Size: the voxels at half the component's peak or more (at a low threshold a component spreads well
    # beyond the nodule); the equivalent-sphere diameter of those.
    half = np.bincount(lab[p >= 0.5 * pmax[lab - 1]], minlength=n + 1)[1:]
    diameter = np.cbrt(6.0 * half * np.prod(volume.spacing) / np.pi)
    keep = count >= min_voxels
    order = np.lexsort((-count[keep], -probability[keep]))
    if max_candidates is not None:
        order = order[:max_candidates]
    centroid, probability, diameter, count = (a[keep][order] for a in (centroid, probability, diameter, count))
    world = volume.voxel_to_world(centroid) if len(centroid) else np.zeros((0, 3))
    return pd.DataFrame({
        "coordX": world[:, 0], "coordY": world[:, 1], "coordZ": world[:, 2], "probability": probability,
        "diameter_mm": diameter, "voxel_z": centroid[:, 0], "voxel_y": centroid[:, 1], "voxel_x": centroid[:, 2],
        "n_voxels": count.astype(np.int64),
    })


def extract_peaks(prob: np.ndarray, volume: Volume, threshold: float, max_candidates: int | None = None,
                  radius_mm: float = 5.0) -> pd.DataFrame:
    """Candidates at the local maxima of a probability volume (z, y, x) on `volume`'s grid.

    A voxel is a peak when it holds the highest probability within `radius_mm` along each axis (a box) and at
    least `threshold`; peaks on one plateau count once. Unlike thresholded components, a faint nodule touching
    a vessel keeps its own candidate, and a low threshold does not merge neighbours into one blob whose
    centroid lies outside both. At most `max_candidates` are kept, highest first. Each candidate's position is
    the probability-weighted centroid of the voxels connected to its peak at half its probability or more
    (within the box), its size their equivalent-sphere diameter. Columns: :data:`CANDIDATE_COLUMNS`.
    """
    if prob.shape != volume.shape:
        raise ValueError(f"probability shape {prob.shape} differs from the volume's {volume.shape}")
    half = np.maximum(1, np.rint(radius_mm / volume.spacing_zyx)).astype(int)
    p = np.asarray(prob, dtype=np.float32)
    local = ndimage.maximum_filter(p, size=tuple(2 * half + 1), mode="constant", cval=0.0)
    labels, n = ndimage.label((p == local) & (p >= threshold), structure=_CONNECTIVITY)
    if n == 0:
        return pd.DataFrame({c: pd.Series(dtype=np.float64) for c in CANDIDATE_COLUMNS})
    peak_value = ndimage.maximum(p, labels, np.arange(1, n + 1))
    peak_at = np.asarray(ndimage.maximum_position(p, labels, np.arange(1, n + 1)), dtype=int).reshape(-1, 3)
    order = np.argsort(-peak_value, kind="stable")
    if max_candidates is not None:
        order = order[:max_candidates]
    rows = []
    voxel_mm3 = float(np.prod(volume.spacing))
    for i in order:  # at most max_candidates small boxes
        c, v = peak_at[i], float(peak_value[i])
        lo, hi = np.maximum(c - half, 0), np.minimum(c + half + 1, p.shape)
        box = p[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        blob, _ = ndimage.label(box >= 0.5 * v, structure=_CONNECTIVITY)
        own = blob == blob[tuple(c - lo)]
        w = box[own].astype(np.float64)
        idx = np.argwhere(own) + lo
        centroid = (idx * w[:, None]).sum(axis=0) / w.sum()
        rows.append((*centroid, v, np.cbrt(6.0 * own.sum() * voxel_mm3 / np.pi), int(own.sum())))
    table = np.array(rows, dtype=np.float64).reshape(-1, 6)
    world = volume.voxel_to_world(table[:, :3]) if len(table) else np.zeros((0, 3))
    return pd.DataFrame({
        "coordX": world[:, 0], "coordY": world[:, 1], "coordZ": world[:, 2], "probability": table[:, 3],
        "diameter_mm": table[:, 4], "voxel_z": table[:, 0], "voxel_y": table[:, 1], "voxel_x": table[:, 2],
        "n_voxels": table[:, 5].astype(np.int64),
    })


def candidates_from_probability(prob: np.ndarray, volume: Volume, config: UnetConfig, threshold: float,
                                max_candidates: int | None) -> pd.DataFrame:
    """The candidates of a probability volume by `config.candidate_mode`: "components" (thresholded 3-D
    components, the original's way) or "peaks" (local maxima, :func:`extract_peaks`)."""
    if config.candidate_mode == "peaks":
        return extract_peaks(prob, volume, threshold, max_candidates, config.peak_radius_mm)
    if config.candidate_mode != "components":
        raise ValueError(f"candidate_mode must be 'components' or 'peaks', got {config.candidate_mode!r}")
    return extract_candidates(prob, volume, threshold, max_candidates, config.min_component_voxels, config.score)


def detect_candidates(model: keras.Model, volume: Volume, config: UnetConfig, threshold: float | None = None,
                      batch_size: int | None = None, max_candidates: int | None = None) -> pd.DataFrame:
    """Nodule candidates of one CT volume (HU, any direction matrix): world (x, y, z) mm, score and size.

    Runs :func:`predict_volume` then :func:`candidates_from_probability` with `threshold` (default
    `config.threshold`; `test` tunes it on the validation subset and records it in `detection.json`),
    `max_candidates` (default `config.max_candidates`), `config.min_component_voxels` and `config.score`.
    Returns a DataFrame with columns :data:`CANDIDATE_COLUMNS`, best first.
    """
    prob = predict_volume(model, volume, config, batch_size)
    return candidates_from_probability(prob, volume, config, config.threshold if threshold is None else threshold,
                                       config.max_candidates if max_candidates is None else max_candidates)
