"""What passes between the stages, owned in one place: the names and readers of the hand-off files.

Stage 1 (the U-Net) writes its candidates per split into its work folder as LUNA16 results CSVs (world
(x, y, z) mm and `probability`, plus `diameter_mm` and the voxel centroid); stage 2 (the MGI-CNN) and the
pipeline read them from there. Nothing else crosses from one stage package to another.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from .errors import DataError

SPLITS = ("train", "val", "test")
UNET_CANDIDATES = "candidates_unet_{split}.csv"
UNET_RESULTS = "candidates_unet.csv"  # the test split's candidates in the LUNA16 results format alone


def unet_candidates_path(unet_dir: str | os.PathLike, split: str) -> Path:
    """Where stage 1 writes the candidates of `split` ("train", "val" or "test")."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return Path(unet_dir) / UNET_CANDIDATES.format(split=split)


def unet_candidate_files(unet_dir: str | os.PathLike, splits: Sequence[str] = SPLITS) -> list[Path]:
    """Stage 1's candidate files of `splits` that exist in `unet_dir`; DataError naming the command if none."""
    files = [p for p in (unet_candidates_path(unet_dir, s) for s in splits) if p.is_file()]
    if not files:
        raise DataError(unet_dir, f"no stage-1 candidates ({UNET_CANDIDATES.format(split='{' + ','.join(splits) + '}')}"
                                  "); `python Unet/test.py` makes them")
    return files


def read_unet_candidates(unet_dir: str | os.PathLike, uids: Sequence[str] | None = None,
                         splits: Sequence[str] = SPLITS) -> pd.DataFrame:
    """Stage 1's candidates (every split's file, or those of `splits`), restricted to the scans `uids` if given:
    LUNA16 results columns first, then the extra ones. DataError when stage 1 has not run."""
    from .luna import read_results

    frames = [read_results(p) for p in unet_candidate_files(unet_dir, splits)]
    cands = pd.concat(frames, ignore_index=True)
    return cands if uids is None else cands[cands["seriesuid"].isin(set(uids))].reset_index(drop=True)
