"""Write a synthetic dataset in the exact LUNA16 layout.

`out_dir/subset{k}/<seriesuid>.mhd/.raw` (int16 HU; scan i goes to subset i mod n_subsets),
`annotations.csv`, `annotations_excluded.csv`, `candidates.csv` (V1), `candidates_V2.csv`,
`seriesuids.csv` (no header), plus `synth.json` (seed, preset, counts, generator version) and
`preview.png`. Scan i is generated from the seed sequence (seed, i, preset) alone, so the output is
byte-identical for a seed whatever the number of workers, and an interrupted run resumes: each scan
is written atomically together with a small record of its tables in `.synth-parts/`, complete scans
are skipped on the next run, and the CSVs are written (atomically) only at the end.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..atomic import save_csv, write_text
from ..uids import new_uid
from ..volume import write_volume
from .presets import PRESETS, get_preset
from .scan import generate_scan

GENERATOR_VERSION = "1.0"
PARTS = ".synth-parts"
ANNOTATION_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
CANDIDATE_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "class"]


def scan_rng(seed: int, index: int, preset: str) -> np.random.Generator:
    """The random generator of scan `index` of a dataset (independent of every other scan)."""
    return np.random.default_rng([int(seed), int(index), list(PRESETS).index(preset)])


def _config(seed: int, preset: str, n_scans: int, n_subsets: int) -> dict:
    return {"generator": "lungnodule.synth", "version": GENERATOR_VERSION, "seed": int(seed), "preset": preset,
            "n_scans": int(n_scans), "n_subsets": int(n_subsets)}


def _make_scan(job: tuple) -> dict:
    """Generate scan `index`, write its volume and its table record; returns the record."""
    out, seed, preset, index, uid, subset, config = job
    # Scan 1 of every dataset is stored flipped, so small datasets (tests, CI) always contain one.
    scan = generate_scan(scan_rng(seed, index, preset), preset, flipped=True if index == 1 else None)
    write_volume(scan.volume.with_array(scan.volume.array.astype(np.int16)),
                 Path(out) / f"subset{subset}" / f"{uid}.mhd")
    record = {"config": config, "index": index, "uid": uid, "subset": subset, "info": scan.info,
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


def _load_part(out: Path, index: int, uid: str, subset: int, config: dict) -> dict | None:
    part = out / PARTS / f"{index:05d}.json"
    mhd = out / f"subset{subset}" / f"{uid}.mhd"
    if not (part.exists() and mhd.exists() and mhd.with_suffix(".raw").exists()):
        return None
    try:
        record = json.loads(part.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("config") == config and record.get("uid") == uid else None


def _complete(out: Path, config: dict, uids: list[str]) -> bool:
    meta = out / "synth.json"
    names = ["annotations.csv", "annotations_excluded.csv", "candidates.csv", "candidates_V2.csv",
             "seriesuids.csv", "preview.png"]
    if not meta.exists() or not all((out / n).exists() for n in names):
        return False
    try:
        recorded = json.loads(meta.read_text())
    except ValueError:
        return False
    if {k: recorded.get(k) for k in config} != config:
        return False
    return all((out / f"subset{i % config['n_subsets']}" / f"{u}.mhd").exists() for i, u in enumerate(uids))


def generate_dataset(out_dir, n_scans: int, seed: int = 0, preset: str = "demo", n_subsets: int = 10,
                     workers: int = 1, progress: bool = True) -> Path:
    """Generate `n_scans` synthetic scans in LUNA16 layout under `out_dir`; returns `out_dir` as a Path.

    Deterministic for (`seed`, `preset`, `n_scans`, `n_subsets`). Series UIDs are
    `lungnodule.uids.new_uid(seed, index)`. `workers` > 1 generates scans in parallel processes. A
    dataset already complete with the same arguments is left as it is; an interrupted one is resumed.
    """
    get_preset(preset)
    if n_scans < 1 or n_subsets < 1:
        raise ValueError(f"n_scans and n_subsets must be >= 1, got {n_scans} and {n_subsets}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = _config(seed, preset, n_scans, n_subsets)
    uids = [new_uid(seed, i) for i in range(n_scans)]
    if _complete(out, config, uids):
        return out
    records: dict[int, dict] = {}
    jobs = []
    for i, uid in enumerate(uids):
        subset = i % n_subsets
        rec = _load_part(out, i, uid, subset, config)
        if rec is not None:
            records[i] = rec
        else:
            jobs.append((str(out), seed, preset, i, uid, subset, config))
    bar = tqdm(total=n_scans, initial=len(records), desc=f"synth {preset}", unit="scan", disable=not progress)
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for rec in pool.map(_make_scan, jobs):
                records[rec["index"]] = rec
                bar.update()
    else:
        for job in jobs:
            rec = _make_scan(job)
            records[rec["index"]] = rec
            bar.update()
    bar.close()
    tables = collect_tables([records[i] for i in range(n_scans)])
    save_csv(out / "annotations.csv", tables["annotations"][ANNOTATION_COLUMNS])
    save_csv(out / "annotations_excluded.csv", tables["excluded"][ANNOTATION_COLUMNS])
    save_csv(out / "candidates_V2.csv", tables["candidates"][CANDIDATE_COLUMNS])
    v1 = tables["candidates"][tables["candidates"]["in_v1"].astype(bool)]
    save_csv(out / "candidates.csv", v1[CANDIDATE_COLUMNS])
    write_text(out / "seriesuids.csv", "".join(u + "\n" for u in uids))
    from .preview import render_preview

    render_preview(out, tables["annotations"], uids, n_subsets, out / "preview.png")
    stats = {"nodules": int(len(tables["annotations"])), "excluded": int(len(tables["excluded"])),
             "candidates_v2": int(len(tables["candidates"])), "candidates_v1": int(len(v1)),
             "scans_without_nodules": int(n_scans - tables["annotations"]["seriesuid"].nunique())}
    meta = {**config, **stats, "layout": "LUNA16", "scans": [
        {"seriesuid": records[i]["uid"], "subset": records[i]["subset"], **records[i]["info"]} for i in range(n_scans)]}
    write_text(out / "synth.json", json.dumps(meta, indent=1, default=_json_default))
    shutil.rmtree(out / PARTS, ignore_errors=True)
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

