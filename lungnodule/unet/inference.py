"""From a CT volume to 3-D nodule candidates in world mm: slice-wise U-Net, 3-D components, centroids.

The U-Net predicts the lung-bearing axial slices of a :class:`~lungnodule.volume.Volume` (others are
skipped and count as background); each probability map is resized back to the scan's in-plane size,
the stack (z, y, x) is thresholded, and 26-connected 3-D components become candidates: the
probability-weighted centroid (voxel z, y, x) is mapped to world (x, y, z) mm through the direction
matrix, the score is the component's maximum (or mean) probability, the size its equivalent-sphere
diameter in mm.
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
        x = prepare_stacks(volume.array, chunk, config, lungs)
        for b in range(0, len(chunk), batch_size):
            p = keras.ops.convert_to_numpy(model(x[b:b + batch_size], training=False))[..., 0]
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
    pmax = ndimage.maximum(p, lab, np.arange(1, n + 1))
    probability = pmax if score == "max" else wsum / count
    diameter = np.cbrt(6.0 * count * np.prod(volume.spacing) / np.pi)
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


def detect_candidates(model: keras.Model, volume: Volume, config: UnetConfig, threshold: float | None = None,
                      batch_size: int | None = None, max_candidates: int | None = None) -> pd.DataFrame:
    """Nodule candidates of one CT volume (HU, any direction matrix): world (x, y, z) mm, score and size.

    Runs :func:`predict_volume` then :func:`extract_candidates` with `threshold` (default
    `config.threshold`; `test` tunes it on the validation subset and records it in `detection.json`),
    `max_candidates` (default `config.max_candidates`), `config.min_component_voxels` and `config.score`.
    Returns a DataFrame with columns :data:`CANDIDATE_COLUMNS`, best first.
    """
    prob = predict_volume(model, volume, config, batch_size)
    return extract_candidates(prob, volume, config.threshold if threshold is None else threshold,
                              config.max_candidates if max_candidates is None else max_candidates,
                              config.min_component_voxels, config.score)
