"""Candidates CSV -> multi-scale patch files per LUNA16 subset, streamed scan by scan and memory-mapped.

For each subset k, `<work_dir>/patches/subset<k>/` receives:

- `scales.npy`: (N, 3, 20, 20, 6) float16 in [0, 1], the three scales of every candidate of the subset's
  scans (see :mod:`lungnodule.mgicnn.patches`), written into a memory map so RAM stays at one scan;
- `positives.npy`: (P, 28, 42, 42) float16, the full patch of every positive (class 1) candidate, from which
  training cuts the 4 rotations x 27 shifts on the fly;
- `candidates.csv`: one row per row of `scales.npy`: seriesuid, world coordX/Y/Z mm, class, source
  ("candidates" = the dataset's candidates_V2.csv, "unet" = stage-1 output), stage-1 probability and
  diameter where known, the voxel centre (z, y, x) and `positive_row` (row in positives.npy, or -1);
- `meta.json`: counts and a fingerprint; a subset whose fingerprint matches is not redone (resume).

Each scan is read once for all its candidates, whatever their source. Files appear atomically.
Stage-1 candidates carry no class; they are labelled by the LUNA16 hit rule (distance to an annotated
nodule's centre < its radius; a negative diameter means 10 mm).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path, save_csv, write_text
from ..errors import DataError
from ..evaluation import label_candidates
from ..handoff import unet_candidate_files
from ..luna import LunaDataset, read_candidates, read_results
from ..parallel import Loaded, ordered_map
from ..progress import track
from .config import MgiConfig
from .patches import (INPUT_SHAPE, N_SCALES, PATCH_SHAPE, candidate_centres, centre_crops, cut_patches,
                      scales_from_crops, windowed_for)

XYZ = ["coordX", "coordY", "coordZ"]
ROW_COLUMNS = ["seriesuid", *XYZ, "class", "source", "unet_probability", "diameter_mm",
               "voxel_z", "voxel_y", "voxel_x", "positive_row"]
_CHUNK = 256  # candidates cut at a time


def load_candidate_file(path: str | os.PathLike, source: str, annotations: pd.DataFrame) -> pd.DataFrame:
    """Read a candidates CSV (with `class`, e.g. candidates_V2.csv) or a results CSV (stage 1's, with
    `probability`; labelled by :func:`label_candidates`) into rows of the common layout, tagged `source`."""
    path = Path(path)
    try:
        head = pd.read_csv(path, nrows=0).columns if path.is_file() else []
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a readable CSV ({exc})") from None
    frame = read_candidates(path) if "class" in head else read_results(path)
    return candidate_rows(frame, source, annotations)


def candidate_rows(frame: pd.DataFrame, source: str, annotations: pd.DataFrame) -> pd.DataFrame:
    """Candidates (LUNA16 candidates or results columns) in the common row layout, tagged `source`; rows
    without a `class` column are labelled by :func:`label_candidates`."""
    frame = frame.copy()
    if "class" in frame:
        frame["unet_probability"] = frame["probability"] if "probability" in frame else np.nan
    else:
        frame = frame.rename(columns={"probability": "unet_probability"})
        frame["class"] = label_candidates(frame, annotations)
    if "diameter_mm" not in frame:
        frame["diameter_mm"] = np.nan
    frame["source"] = source
    return frame[["seriesuid", *XYZ, "class", "source", "unet_probability", "diameter_mm"]]


def _fingerprint(config: MgiConfig, rows: pd.DataFrame, dataset: LunaDataset) -> str:
    """SHA-1 of the patch settings, a subset's candidate rows and what its scans are made from
    (:meth:`LunaDataset.scan_key`): equal fingerprints mean nothing to redo."""
    h = hashlib.sha1()
    h.update(json.dumps([config.hu_min, config.hu_max, config.spline_order, list(PATCH_SHAPE),
                         list(config.patch_spacing_mm)]).encode())
    h.update(pd.util.hash_pandas_object(rows[["seriesuid", *XYZ, "class", "source"]], index=False).values.tobytes())
    for uid in sorted(rows["seriesuid"].unique()):
        h.update(dataset.scan_key(uid).encode())
    return h.hexdigest()


def _scan_patches(shared: tuple, item: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scan's candidates (a worker of :func:`_write_subset`; `shared` is (dataset, config), `item` is
    (uid, world points (N, 3) x, y, z mm, positive flags (N,))): their voxel centres (N, 3) z, y, x, scales
    (N, N_SCALES, *INPUT_SHAPE) and the full patches of the positives."""
    dataset, config = shared
    uid, points, positive = item
    volume = dataset.get().load(uid)
    windowed = windowed_for(volume, config.hu_min, config.hu_max, config.patch_spacing_mm)
    scales = np.empty((len(points), N_SCALES, *INPUT_SHAPE), dtype=np.float16)
    kept = []
    for s in range(0, len(points), _CHUNK):
        patches = cut_patches(volume, points[s:s + _CHUNK], windowed, config.patch_spacing_mm)
        scales[s:s + _CHUNK] = scales_from_crops(centre_crops(patches), config.spline_order)
        kept.append(patches[positive[s:s + _CHUNK]].astype(np.float16))
    return candidate_centres(volume, points), scales, np.concatenate(kept) if kept else np.zeros((0, *PATCH_SHAPE))


def _write_subset(dataset: LunaDataset, rows: pd.DataFrame, folder: Path, config: MgiConfig, fingerprint: str,
                  progress: bool, workers: int = 1) -> dict:
    """Cut every candidate of one subset, scan by scan, into memory-mapped files; see the module docstring."""
    rows = rows.sort_values("seriesuid", kind="stable").reset_index(drop=True)
    pos_rows = np.flatnonzero(rows["class"].to_numpy() == 1)
    rows["positive_row"] = -1
    rows.loc[pos_rows, "positive_row"] = np.arange(len(pos_rows))
    centres = np.zeros((len(rows), 3), dtype=np.int64)
    positive_row = rows["positive_row"].to_numpy()
    points = rows[XYZ].to_numpy(np.float64)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "scales.npy") as tmp_s, atomic_path(folder / "positives.npy") as tmp_p:
        scales = np.lib.format.open_memmap(tmp_s, mode="w+", dtype=np.float16,
                                           shape=(len(rows), N_SCALES, *INPUT_SHAPE))
        positives = np.lib.format.open_memmap(tmp_p, mode="w+", dtype=np.float16, shape=(len(pos_rows), *PATCH_SHAPE))
        groups = list(rows.groupby("seriesuid", sort=False).indices.items())
        items = ((uid, points[idx], positive_row[idx] >= 0) for uid, idx in groups)
        shared = (Loaded(LunaDataset, str(dataset.root), value=dataset), config)
        done = ordered_map(_scan_patches, items, workers, shared)
        for (uid, idx), (c, sc, pos) in zip(groups, track(done, f"MGI-CNN patches {folder.name}",
                                                          total=len(groups), enabled=progress)):
            centres[idx] = c
            scales[idx] = sc
            prow = positive_row[idx]
            positives[prow[prow >= 0]] = pos
        scales.flush()
        positives.flush()
        del scales, positives
    rows["voxel_z"], rows["voxel_y"], rows["voxel_x"] = centres.T
    save_csv(folder / "candidates.csv", rows[ROW_COLUMNS])
    meta = {"fingerprint": fingerprint, "candidates": int(len(rows)), "positives": int(len(pos_rows)),
            "scans": int(rows["seriesuid"].nunique()),
            "by_source": {k: int(v) for k, v in rows["source"].value_counts().items()},
            "scales_shape": [int(len(rows)), N_SCALES, *INPUT_SHAPE], "dtype": "float16"}
    write_text(folder / "meta.json", json.dumps(meta, indent=2))  # last: marks the subset complete
    return meta


def preprocess(config: MgiConfig, data_root: str | os.PathLike, work_dir: str | os.PathLike,
               candidates_csv: str | os.PathLike | None = None, unet_dir: str | os.PathLike | None = None,
               subsets: list[int] | None = None, progress: bool = True, workers: int = 1) -> dict:
    """Cut the multi-scale patches of every candidate of the needed sources, per subset, into `work_dir/patches`.

    Sources are `config.train_sources` plus `config.eval_source`: "candidates" reads `candidates_csv`
    (default: the dataset's candidates_V2.csv), "unet" reads stage 1's candidate files
    (:mod:`lungnodule.handoff`) in `unet_dir`. `subsets` defaults to every subset of the dataset. Candidates
    of scans not on disk are skipped (counted). `workers` processes cut the scans' patches (the files written
    are the same for any number). Returns per-subset counts and the throughput.
    """
    import time

    dataset = LunaDataset(data_root)
    work_dir = Path(work_dir)
    annotations = dataset.annotations
    frames = []
    for source in dict.fromkeys([*config.train_sources, config.eval_source]):
        if source == "candidates":
            frames.append(load_candidate_file(candidates_csv, source, annotations) if candidates_csv
                          else candidate_rows(dataset.candidates, source, annotations))
        elif source == "unet":
            if unet_dir is None:
                raise ValueError("the 'unet' candidate source needs unet_dir (stage 1's work folder)")
            for f in unet_candidate_files(unet_dir):
                frames.append(load_candidate_file(f, source, annotations))
        else:
            raise ValueError(f"unknown candidate source {source!r}; use 'candidates' or 'unet'")
    rows = pd.concat(frames, ignore_index=True)
    on_disk = rows["seriesuid"].isin(dataset.scans["seriesuid"])
    skipped = int((~on_disk).sum())
    rows = rows[on_disk].copy()
    rows["subset"] = rows["seriesuid"].map(dict(zip(dataset.scans["seriesuid"], dataset.scans["subset"])))
    subsets = dataset.subsets if subsets is None else sorted(int(s) for s in subsets)
    out: dict = {"subsets": {}, "skipped_not_on_disk": skipped, "config": config.to_dict()}
    t0, n_done = time.perf_counter(), 0
    for k in subsets:
        sub = rows[rows["subset"] == k].drop(columns="subset")
        folder = work_dir / "patches" / f"subset{k}"
        fp = _fingerprint(config, sub.sort_values("seriesuid", kind="stable"), dataset)
        meta_path = folder / "meta.json"
        if meta_path.is_file() and json.loads(meta_path.read_text()).get("fingerprint") == fp:
            out["subsets"][k] = {**json.loads(meta_path.read_text()), "reused": True}
            continue
        meta_path.unlink(missing_ok=True)
        out["subsets"][k] = _write_subset(dataset, sub, folder, config, fp, progress, workers)
        n_done += out["subsets"][k]["candidates"]
    seconds = time.perf_counter() - t0
    out.update({"seconds": seconds, "patches_cut": n_done,
                "patches_per_second": n_done / seconds if n_done and seconds > 0 else None})
    write_text(work_dir / "preprocess.json", json.dumps(out, indent=2, default=str))
    return out
