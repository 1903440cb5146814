"""Write a synthetic dataset in the exact LUNA16 layout.

`out_dir/subset{k}/<seriesuid>.mhd/.raw` (int16 HU), `annotations.csv`, `annotations_excluded.csv`,
`candidates.csv` (V1), `candidates_V2.csv`, `seriesuids.csv` (no header), plus `synth.json` (seed,
preset, counts, generator version) and `preview.png`. Scan i is generated from the seed sequence (seed, i,
preset) alone, so the output is byte-identical for a seed whatever the number of workers. Scans are dealt to
subsets once all are generated, so that every subset holds the same number of scans (+-1, as LUNA16's) and
nodule counts per subset differ by at most max(2, 20% of their mean) (:func:`deal_subsets`; LUNA16's subsets
are balanced by scan count only, which on a few dozen scans makes the held-out set a lottery).

An interrupted run resumes: each scan is written atomically into `.synth-scans/` with a small record of its
tables in `.synth-parts/`, complete scans are skipped on the next run, and at the end the scans are moved
into their subset folders and the CSVs written (atomically). `synth.json` is written first: a folder without
it that is not empty is refused (it is not ours), as is one made with other arguments, unless `overwrite`,
which clears what a synth run writes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import remove_stale_tmp, save_csv, write_text
from ..errors import DataError
from ..parallel import ordered_map
from ..progress import track
from ..uids import new_uid
from ..volume import write_volume
from .presets import PRESETS, get_preset
from .scan import generate_scan

GENERATOR_VERSION = "1.2"  # 1.1: subsets dealt by nodule count; 1.2: reconstruction kernels, wider demo spacing
PARTS = ".synth-parts"
STAGING = ".synth-scans"  # generated scans wait here until every scan is dealt to a subset
SYNTH_FILES = ("annotations.csv", "annotations_excluded.csv", "candidates.csv", "candidates_V2.csv",
               "seriesuids.csv", "preview.png", "synth.json")
ANNOTATION_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
CANDIDATE_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "class"]


def scan_rng(seed: int, index: int, preset: str) -> np.random.Generator:
    """The random generator of scan `index` of a dataset (independent of every other scan)."""
    return np.random.default_rng([int(seed), int(index), list(PRESETS).index(preset)])


def _config(seed: int, preset: str, n_scans: int, n_subsets: int) -> dict:
    return {"generator": "lungnodule.synth", "version": GENERATOR_VERSION, "seed": int(seed), "preset": preset,
            "n_scans": int(n_scans), "n_subsets": int(n_subsets)}


def _make_scan(_shared: None, job: tuple) -> dict:
    """Generate scan `index`, write its volume (staged) and its table record; returns the record."""
    out, seed, preset, index, uid, config = job
    # Scan 1 of every dataset is stored flipped, so small datasets (tests, CI) always contain one.
    scan = generate_scan(scan_rng(seed, index, preset), preset, flipped=True if index == 1 else None)
    write_volume(scan.volume.with_array(scan.volume.array.astype(np.int16)), Path(out) / STAGING / f"{uid}.mhd")
    record = {"config": config, "index": index, "uid": uid, "info": scan.info,
              "nodules": scan.nodules.to_dict("list"), "excluded": scan.excluded.to_dict("list"),
              "candidates": scan.candidates.to_dict("list")}
    write_text(Path(out) / PARTS / f"{index:05d}.json", json.dumps(record, default=_json_default))
    return record


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def _load_part(out: Path, index: int, uid: str, config: dict) -> dict | None:
    """The record of scan `index` when the scan is complete on disk (staged, or already in a subset folder)."""
    part = out / PARTS / f"{index:05d}.json"
    if not part.exists():
        return None
    try:
        record = json.loads(part.read_text())
    except (OSError, ValueError):
        return None
    if record.get("config") != config or record.get("uid") != uid:
        return None
    staged = out / STAGING / f"{uid}.mhd"
    placed = [out / f"subset{k}" / f"{uid}.mhd" for k in range(config["n_subsets"])]
    if not any(m.exists() and m.with_suffix(".raw").exists() for m in [staged, *placed]):
        return None
    return record


def _complete(out: Path, config: dict, uids: list[str]) -> bool:
    meta = out / "synth.json"
    if not meta.exists() or not all((out / n).exists() for n in SYNTH_FILES):
        return False
    try:
        recorded = json.loads(meta.read_text())
    except ValueError:
        return False
    if {k: recorded.get(k) for k in config} != config or not recorded.get("complete", False):
        return False
    placed = {s["seriesuid"]: s["subset"] for s in recorded.get("scans", [])}
    return all(u in placed and (out / f"subset{placed[u]}" / f"{u}.mhd").exists() for u in uids)


def deal_subsets(nodule_counts, n_subsets: int) -> np.ndarray:
    """Subset (N,) of each scan: equal scan counts per subset (+-1) and balanced nodule counts.

    Scans are dealt largest nodule count first (ties: lower index first) to the subset with the fewest nodules
    among those with room left; then scans are swapped between two subsets (or rotated among three), best move
    first, while that lowers the sum of squared subset totals. Deterministic: a function of the counts alone. On LUNA16-like
    counts the subsets' nodule totals end within max(2, 20% of their mean) of each other, or as near as a scan
    holding more than a subset's share allows (tested).
    """
    counts = np.asarray(nodule_counts, dtype=np.int64)
    n = len(counts)
    capacity = np.full(n_subsets, n // n_subsets) + (np.arange(n_subsets) < n % n_subsets)
    subset = np.zeros(n, dtype=np.int64)
    totals, sizes = np.zeros(n_subsets, np.int64), np.zeros(n_subsets, np.int64)
    for i in np.lexsort((np.arange(n), -counts)):
        free = np.flatnonzero(sizes < capacity)
        k = free[np.argmin(totals[free])]  # the first of the emptiest: deterministic
        subset[i], totals[k], sizes[k] = k, totals[k] + counts[i], sizes[k] + 1
    # Local search on the sum of squared subset totals (it strictly falls, so this ends): the best swap of two
    # scans between two subsets, else the best rotation of three scans among three subsets (a swap alone can
    # stall when one subset must give a nodule that only a third can pass on).
    while _improve(subset, counts, totals, n_subsets):
        pass
    return subset


def _improve(subset: np.ndarray, counts: np.ndarray, totals: np.ndarray, n_subsets: int) -> bool:
    """Apply the best swap (or, failing that, the best 3-rotation) of scans between subsets if it lowers the
    sum of squared nodule totals; returns whether one was applied. `subset` and `totals` change in place."""
    members = [np.flatnonzero(subset == k) for k in range(n_subsets)]
    best, move = 0.0, None
    for p in range(n_subsets):
        for q in range(p + 1, n_subsets):
            d = counts[members[p]][:, None] - counts[members[q]][None, :]  # a: p -> q, b: q -> p
            change = 2.0 * d * d - 2.0 * d * (totals[p] - totals[q])
            if change.size and change.min() < best - 1e-9:
                i, j = np.unravel_index(np.argmin(change), change.shape)
                best, move = change.min(), [(members[p][i], q), (members[q][j], p)]
    if move is None:
        for p in range(n_subsets):
            for q in range(n_subsets):
                for r in range(n_subsets):
                    if len({p, q, r}) < 3 or p > min(q, r):  # each rotation once
                        continue
                    a, b, c = (counts[members[k]] for k in (p, q, r))
                    # a: p -> q, b: q -> r, c: r -> p; new totals p - a + c, q + a - b, r + b - c.
                    tp = totals[p] - a[:, None, None] + c[None, None, :]
                    tq = totals[q] + a[:, None, None] - b[None, :, None]
                    tr = totals[r] + b[None, :, None] - c[None, None, :]
                    change = tp ** 2 + tq ** 2 + tr ** 2 - (totals[p] ** 2 + totals[q] ** 2 + totals[r] ** 2)
                    if change.size and change.min() < best - 1e-9:
                        i, j, k = np.unravel_index(np.argmin(change), change.shape)
                        best = change.min()
                        move = [(members[p][i], q), (members[q][j], r), (members[r][k], p)]
    if move is None:
        return False
    for scan, target in move:
        totals[subset[scan]] -= counts[scan]
        totals[target] += counts[scan]
        subset[scan] = target
    return True


def _claim(out: Path, config: dict, overwrite: bool) -> None:
    """Make `out` this run's: refuse a folder of someone else's or of a run with other arguments, unless
    `overwrite` (then clear what a synth run writes); record the arguments in `synth.json` first."""
    meta = out / "synth.json"
    entries = list(out.iterdir()) if out.exists() else []
    if entries and not overwrite:
        if not meta.exists():
            raise DataError(out, "not empty and not written by lungnodule synth (no synth.json); choose an empty "
                                 "folder, or pass --overwrite to replace its subset folders and CSVs")
        try:
            recorded = json.loads(meta.read_text())
        except ValueError:
            raise DataError(meta, "unreadable; pass --overwrite to generate the dataset again") from None
        differ = {k: (recorded.get(k), v) for k, v in config.items() if recorded.get(k) != v}
        if differ:
            what = ", ".join(f"{k} {a!r} (asked: {b!r})" for k, (a, b) in differ.items())
            raise DataError(out, f"holds a synthetic dataset made with other arguments: {what}; choose another "
                                 "folder, or pass --overwrite to replace it")
        return
    for name in [*SYNTH_FILES, PARTS, STAGING, *(p.name for p in out.glob("subset*"))] if entries else []:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_text(meta, json.dumps({**config, "complete": False}, indent=1))


def _place(out: Path, uid: str, subset: int) -> None:
    """Move a staged scan into `subset<k>/` (data file first, header last: each rename is atomic)."""
    folder = out / f"subset{subset}"
    if (folder / f"{uid}.mhd").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    staged = out / STAGING / f"{uid}.mhd"
    os.replace(staged.with_suffix(".raw"), folder / f"{uid}.raw")
    os.replace(staged, folder / f"{uid}.mhd")


def generate_dataset(out_dir, n_scans: int, seed: int = 0, preset: str = "demo", n_subsets: int = 10,
                     workers: int = 1, progress: bool = True, overwrite: bool = False) -> Path:
    """Generate `n_scans` synthetic scans in LUNA16 layout under `out_dir`; returns `out_dir` as a Path.

    Deterministic for (`seed`, `preset`, `n_scans`, `n_subsets`). Series UIDs are
    `lungnodule.uids.new_uid(seed, index)`; subsets come from :func:`deal_subsets`. `workers` > 1 generates
    scans in parallel processes. A dataset already complete with the same arguments is left as it is; an
    interrupted one is resumed (stale temporary folders removed). A non-empty folder that this function did
    not write, or wrote with other arguments, is refused (DataError) unless `overwrite`.
    """
    get_preset(preset)
    if n_scans < 1 or n_subsets < 1:
        raise ValueError(f"n_scans and n_subsets must be >= 1, got {n_scans} and {n_subsets}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(out, "is a file; give a folder for the dataset")
    config = _config(seed, preset, n_scans, n_subsets)
    uids = [new_uid(seed, i) for i in range(n_scans)]
    if not overwrite and _complete(out, config, uids):
        return out
    _claim(out, config, overwrite)
    remove_stale_tmp(out)  # a kill during an atomic write leaves hidden .tmp-* folders behind
    records: dict[int, dict] = {}
    jobs = []
    for i, uid in enumerate(uids):
        rec = _load_part(out, i, uid, config)
        if rec is not None:
            records[i] = rec
        else:
            jobs.append((str(out), seed, preset, i, uid, config))
    desc = f"synth {preset}" + (f" ({len(records)} of {n_scans} scans already done)" if records else "")
    for rec in track(ordered_map(_make_scan, jobs, workers if len(jobs) > 1 else 1), desc, total=len(jobs),
                     enabled=progress):
        records[rec["index"]] = rec
    ordered = [records[i] for i in range(n_scans)]
    nodules = np.array([len(r["nodules"]["coordX"]) for r in ordered], dtype=np.int64)
    subsets = deal_subsets(nodules, n_subsets)
    for rec, subset in zip(ordered, subsets):
        rec["subset"] = int(subset)
        _place(out, rec["uid"], int(subset))
    tables = collect_tables(ordered)
    save_csv(out / "annotations.csv", tables["annotations"][ANNOTATION_COLUMNS])
    save_csv(out / "annotations_excluded.csv", tables["excluded"][ANNOTATION_COLUMNS])
    save_csv(out / "candidates_V2.csv", tables["candidates"][CANDIDATE_COLUMNS])
    v1 = tables["candidates"][tables["candidates"]["in_v1"].astype(bool)]
    save_csv(out / "candidates.csv", v1[CANDIDATE_COLUMNS])
    write_text(out / "seriesuids.csv", "".join(u + "\n" for u in uids))
    from .preview import render_preview

    render_preview(out, tables["annotations"], {r["uid"]: r["subset"] for r in ordered}, out / "preview.png")
    stats = {"nodules": int(len(tables["annotations"])), "excluded": int(len(tables["excluded"])),
             "candidates_v2": int(len(tables["candidates"])), "candidates_v1": int(len(v1)),
             "scans_without_nodules": int(n_scans - tables["annotations"]["seriesuid"].nunique()),
             "nodules_per_subset": np.bincount(subsets, weights=nodules, minlength=n_subsets).astype(int).tolist()}
    meta = {**config, **stats, "complete": True, "layout": "LUNA16", "subsets_dealt_by": "deal_subsets",
            "scans": [{"seriesuid": r["uid"], "subset": r["subset"], **r["info"]} for r in ordered]}
    write_text(out / "synth.json", json.dumps(meta, indent=1, default=_json_default))
    shutil.rmtree(out / PARTS, ignore_errors=True)
    shutil.rmtree(out / STAGING, ignore_errors=True)
    return out


def collect_tables(records: list[dict]) -> dict[str, pd.DataFrame]:
    """Concatenate per-scan records into the dataset's tables, each with a `seriesuid` column first."""
    out = {}
    for key, name in (("nodules", "annotations"), ("excluded", "excluded"), ("candidates", "candidates")):
        frames = []
        for rec in records:
            df = pd.DataFrame(rec[key])
            df.insert(0, "seriesuid", rec["uid"])
            frames.append(df)
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if key == "candidates":
            df["class"] = df["class"].astype(int)
        if "diameter_mm" in df:
            df["diameter_mm"] = df["diameter_mm"].astype(float)
        out[name] = df
    return out


def dataset_paths(out_dir) -> dict[str, Path]:
    """Where `generate_dataset` puts each CSV (for callers that do not want to hard-code names)."""
    out = Path(out_dir)
    return {n: out / f for n, f in (("annotations", "annotations.csv"), ("excluded", "annotations_excluded.csv"),
                                     ("candidates", "candidates.csv"), ("candidates_v2", "candidates_V2.csv"),
                                     ("seriesuids", "seriesuids.csv"), ("meta", "synth.json"),
                                     ("preview", "preview.png"))}

