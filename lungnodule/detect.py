"""`lungnodule detect`: the trained stage 1 (U-Net candidates) + stage 2 (MGI-CNN) on any CT scan.

Input: `.mhd`, `.mha`, `.nrrd`, `.nii(.gz)` files or folders holding one DICOM CT series. Every scan is
read once (DICOM rescaled to HU, any direction matrix), checked to look like a CT in Hounsfield units, the
U-Net proposes candidates (its validation-chosen threshold from `detection.json`), the MGI-CNN scores each
one (its probability, fused with the U-Net's where validation chose a fusion weight), and the findings
(that score >= the threshold chosen on its validation subset, or every
candidate with `all_candidates`) go to a LUNA16-format CSV (`seriesuid, coordX, coordY, coordZ,
probability`, world mm; plus `diameter_mm`, the equivalent-sphere diameter of the U-Net's response at half its
peak or more, the stage's own measure of size). For each
scan a PNG report shows each finding on its axial slice, ringed, with its probability and diameter; a
scan without findings gets a report saying so (a normal result). Missing models raise
:class:`ModelMissingError` naming the command that makes them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from typing import TYPE_CHECKING

from .atomic import save_csv, save_figure
from .errors import DataError, ModelMissingError
from .parallel import Loaded, ordered_map
from .progress import track
from .volume import Volume, check_ct, read_volume  # noqa: F401  (check_ct: detect's CT check)

if TYPE_CHECKING:  # the models' types, without importing Keras to read this module
    import keras

    from .mgicnn.config import MgiConfig
    from .unet.config import UnetConfig

RESULT_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "probability", "diameter_mm"]
MAX_PANELS = 12


@dataclass
class Detector:
    """The two trained stages and their validation-chosen settings (see :func:`load_detector`)."""

    unet: keras.Model
    unet_config: UnetConfig
    unet_threshold: float
    unet_max_candidates: int
    mgicnn: keras.Model
    mgicnn_config: MgiConfig
    threshold: float
    fusion_weight: float = 0.0  # U-Net weight of the fused score (mgicnn.fusion); 0 = MGI-CNN alone
    operating_point: dict | None = None  # the stage-1 candidates the final score ranks (mgicnn.operating)


def _read_json(path: Path, fix: str) -> dict:
    if not path.is_file():
        raise ModelMissingError(f"{path}: missing; {fix}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON ({exc}); {fix}") from None


def load_detector(unet_dir: str | os.PathLike = "data/work/unet",
                  mgicnn_dir: str | os.PathLike = "data/work/mgicnn") -> Detector:
    """Load the U-Net (`unet_dir/best.keras`, `train.json`, `detection.json`) and the MGI-CNN (`mgicnn_dir/
    detection.json` -> its model and threshold). ModelMissingError names the command that makes what is missing."""
    from .mgicnn.config import MgiConfig
    from .mgicnn.training import load_mgicnn
    from .unet.config import PRESETS as UNET_PRESETS
    from .unet.config import UnetConfig
    from .unet.training import load_unet

    unet_dir, mgicnn_dir = Path(unet_dir), Path(mgicnn_dir)
    unet_fix = ("`python Unet/preprocess.py`, `python Unet/train.py` and `python Unet/test.py` make it "
                "(or `lungnodule demo` for the demo models)")
    unet = load_unet(unet_dir / "best.keras")
    train_json = unet_dir / "train.json"
    unet_config = (UnetConfig.from_dict(_read_json(train_json, unet_fix).get("config", {}))
                   if train_json.is_file() else UNET_PRESETS["paper"])
    det = _read_json(unet_dir / "detection.json", unet_fix)
    unet_config = unet_config.replace(**{k: det[k] for k in ("candidate_mode", "peak_radius_mm", "score",
                                                             "min_component_voxels", "tta_flips") if k in det})
    mgi_fix = ("`python 3DCNN/preprocess.py`, `python 3DCNN/train.py` and `python 3DCNN/test.py` make it "
               "(or `lungnodule demo` for the demo models)")
    mdet = _read_json(mgicnn_dir / "detection.json", mgi_fix)
    # detection.json names the model relative to its own folder (the selected fold's best.keras).
    model_path = Path(mdet.get("model", ""))
    if not model_path.is_absolute():
        model_path = mgicnn_dir / model_path
    mgicnn = load_mgicnn(model_path)
    return Detector(unet=unet, unet_config=unet_config, unet_threshold=float(det["threshold"]),
                    unet_max_candidates=int(det.get("max_candidates", unet_config.max_candidates)),
                    mgicnn=mgicnn, mgicnn_config=MgiConfig.from_dict(mdet.get("config", {})),
                    threshold=float(mdet["threshold"]), fusion_weight=float(mdet.get("fusion_weight", 0.0)),
                    operating_point=mdet.get("operating_point"))


def scan_uid(path: str | os.PathLike) -> str:
    """The series UID of a scan: a DICOM folder's SeriesInstanceUID, else the file name without its suffix."""
    path = Path(path)
    if path.is_dir():
        from .dicom import list_series

        table = list_series(path)
        if len(table) == 1 and table["series_uid"].iloc[0]:
            return str(table["series_uid"].iloc[0])
        return path.name
    name = path.name
    for suffix in (".nii.gz", ".mhd", ".mha", ".nrrd", ".nhdr", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def detect_volume(detector: Detector, volume: Volume) -> pd.DataFrame:
    """Every stage-1 candidate of one volume, scored by the MGI-CNN: world (x, y, z) mm, `probability` (the
    final score: the MGI-CNN's, fused with the U-Net's when the detector has a fusion weight),
    `mgicnn_probability`, `unet_probability`, `diameter_mm`, voxel centroid (z, y, x); best first."""
    from .mgicnn.dataset import predict_scales
    from .mgicnn.fusion import fuse
    from .mgicnn.operating import keep
    from .mgicnn.patches import candidate_scales
    from .unet.inference import detect_candidates

    cands = detect_candidates(detector.unet, volume, detector.unet_config, threshold=detector.unet_threshold,
                              max_candidates=detector.unet_max_candidates)
    cands = cands.rename(columns={"probability": "unet_probability"})
    if detector.operating_point and len(cands):
        op = detector.operating_point
        cands = cands[keep(cands.assign(seriesuid=""), op["threshold"], op["max_candidates"])]
    if len(cands):
        c = detector.mgicnn_config
        scales = candidate_scales(volume, cands[["coordX", "coordY", "coordZ"]].to_numpy(np.float64),
                                  c.hu_min, c.hu_max, c.spline_order, patch_spacing_mm=c.patch_spacing_mm)
        cands["mgicnn_probability"] = predict_scales(detector.mgicnn, scales, c.predict_batch_size, c.tta_flips)
        cands["probability"] = fuse(cands["mgicnn_probability"], cands["unet_probability"], detector.fusion_weight)
    else:
        cands["mgicnn_probability"] = cands["probability"] = pd.Series(dtype=np.float64)
    return cands.sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)


def plot_report(volume: Volume, findings: pd.DataFrame, uid: str, path: str | os.PathLike, threshold: float,
                source: str = "", threshold_note: str = "chosen on validation") -> None:
    """A PNG report: each finding (up to 12, best first) on its axial slice (lung window), ringed with its
    diameter, titled with its probability, diameter and world position; a single slice and a note when there
    is none."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse

    from .intensity import window_hu

    shown = findings.head(MAX_PANELS)
    n = max(len(shown), 1)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(4.2 * cols, 4.5 * rows + 0.6))
    sz, sy, sx = volume.spacing_zyx
    aspect = sy / sx
    if not len(shown):
        ax = fig.add_subplot(1, 1, 1)
        z = volume.shape[0] // 2
        ax.imshow(window_hu(volume.array[z]), cmap="gray", vmin=0, vmax=1, aspect=aspect)
        ax.set_title(f"slice {z} (middle)", fontsize=9)
        ax.text(0.5, 0.04, f"no findings (score >= {threshold:.3g})", color="yellow",
                ha="center", transform=ax.transAxes, fontsize=10)
        ax.axis("off")
    for i, r in enumerate(shown.itertuples()):
        ax = fig.add_subplot(rows, cols, i + 1)
        z = int(np.clip(np.rint(r.voxel_z), 0, volume.shape[0] - 1))
        ax.imshow(window_hu(volume.array[z]), cmap="gray", vmin=0, vmax=1, aspect=aspect)
        rad_y, rad_x = r.diameter_mm / 2 / sy + 3, r.diameter_mm / 2 / sx + 3
        colour = "red" if r.probability >= threshold else "orange"
        ax.add_patch(Ellipse((r.voxel_x, r.voxel_y), 2 * rad_x, 2 * rad_y, fill=False, ec=colour, lw=1.5))
        ax.text(r.voxel_x + rad_x + 2, r.voxel_y - rad_y - 2, f"#{i + 1}", color=colour, fontsize=9)
        ax.set_title(f"#{i + 1}  p = {r.probability:.3f}, ~{r.diameter_mm:.1f} mm, slice {z}\n"
                     f"({r.coordX:.1f}, {r.coordY:.1f}, {r.coordZ:.1f}) mm", fontsize=8)
        ax.axis("off")
    more = f"; {len(findings) - len(shown)} more in the CSV" if len(findings) > len(shown) else ""
    fig.suptitle(f"{uid}\n{source}  {len(findings)} finding(s){more}; score threshold {threshold:.3g} "
                 f"({threshold_note})", fontsize=9)
    fig.tight_layout()
    save_figure(path, fig)


def describe_score(detector: Detector) -> str:
    """One line saying what the final score is: the MGI-CNN's probability, or its fusion with the U-Net's."""
    w = detector.fusion_weight
    text = ("the MGI-CNN probability alone" if w == 0 else
            "the U-Net probability alone (the MGI-CNN has weight 0)" if w == 1 else
            f"sigmoid({1 - w:g} logit(MGI-CNN) + {w:g} logit(U-Net)), the U-Net weight chosen on validation")
    op = detector.operating_point
    if op:
        text += (f"; stage-1 candidates with U-Net probability >= {op['threshold']:g}, at most "
                 f"{op['max_candidates']} per scan")
    return text


def default_report_dir(out: str | os.PathLike) -> Path:
    """Where :func:`detect` puts the reports when no folder is given: `<out stem>_report/` beside `out`."""
    out = Path(out)
    return out.with_name(out.stem + "_report")


def check_detect_inputs(scans: list[str | os.PathLike], out: str | os.PathLike,
                        report_dir: str | os.PathLike | None = None) -> tuple[dict[str, str], Path]:
    """What :func:`detect` checks before any model runs: at least one scan, readable headers, distinct series
    UIDs, and no output (the CSV, a report) that is, or lies inside, an input. Returns ({series UID: scan},
    the report folder); DataError naming the file and the problem otherwise."""
    from .outputs import check_file_output, check_outputs
    from .volume import read_geometry

    if not scans:
        raise DataError(None, "no scan given")
    out = check_file_output(out, "findings CSV")
    for s in scans:  # headers first (cheap): a missing or corrupt file fails before any model work
        if not Path(s).is_dir():
            read_geometry(s)
    uids: dict[str, str] = {}
    for s in scans:
        uid = scan_uid(s)
        if uid in uids:
            raise DataError(s, f"series UID {uid} given twice (also {uids[uid]})")
        uids[uid] = str(s)
    report_dir = Path(report_dir) if report_dir else default_report_dir(out)
    check_outputs([out, *(report_dir / f"{uid}.png" for uid in uids)], scans)
    return uids, report_dir


def _detect_job(shared: tuple, item: tuple[str, str]) -> pd.DataFrame:
    """One scan through both stages (a worker of :func:`detect`; `shared` is (detector, threshold, report
    folder, threshold note, all_candidates), `item` (uid, path)): draws its report, returns its rows."""
    detector, thr, reports, note, all_candidates = shared
    uid, path = item
    volume = read_volume(path)  # one scan in memory at a time; checked to be a CT in HU
    scored = detect_volume(detector.get(), volume).assign(seriesuid=uid, scan=path)
    findings = scored[scored["probability"] >= thr]
    plot_report(volume, findings, uid, Path(reports) / f"{uid}.png", thr, source=path, threshold_note=note)
    return scored if all_candidates else findings


def detect(scans: list[str | os.PathLike], out: str | os.PathLike, unet_dir: str | os.PathLike = "data/work/unet",
           mgicnn_dir: str | os.PathLike = "data/work/mgicnn", report_dir: str | os.PathLike | None = None,
           threshold: float | None = None, all_candidates: bool = False, progress: bool = True,
           detector: Detector | None = None, workers: int = 1) -> pd.DataFrame:
    """Run both stages on `scans` and write the findings to `out` (CSV, atomic) and one report PNG per scan.

    `threshold` overrides the MGI-CNN's validation-chosen one; `all_candidates` writes every scored candidate
    (for a FROC evaluation) instead of the findings. Reports go to `report_dir` (default: `<out stem>_report/`
    beside `out`). Before any model runs: file headers are checked, series UIDs must differ, and no output
    (the CSV, a report) may be or lie inside an input (DataError naming both). Scans are then read one at a
    time (memory stays at one scan per worker), each checked to be a CT in HU. The CSV and the reports are
    written only when every scan succeeded (reports are drawn in a temporary folder and moved in at the end).
    `detector`, when given, is used instead of loading the models from `unet_dir` and `mgicnn_dir`; `workers`
    processes (each loading the models from those folders) run the scans, and the CSV is the same for any
    number. Returns the rows written.
    """
    from .atomic import atomic_dir

    out = Path(out)
    uids, report_dir = check_detect_inputs(scans, out, report_dir)
    if detector is not None and workers > 1:
        raise ValueError("workers > 1 load the models from unet_dir and mgicnn_dir in each worker; "
                         "pass no detector, or workers=1")
    detector = detector or load_detector(unet_dir, mgicnn_dir)
    thr = detector.threshold if threshold is None else float(threshold)
    note = "chosen on validation" if threshold is None else "given"
    with atomic_dir(report_dir) as reports:  # moved into report_dir only if every scan succeeds
        shared = (Loaded(load_detector, str(unet_dir), str(mgicnn_dir), value=detector), thr, str(reports), note,
                  all_candidates)
        items = [(uid, str(s)) for uid, s in uids.items()]
        frames = list(track(ordered_map(_detect_job, items, workers, shared), "detect", total=len(items),
                            enabled=progress))
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RESULT_COLUMNS)
        rows = rows[RESULT_COLUMNS]
        # Eight significant digits: readable (not 0.9999998999999999) and the ranking of scores is kept.
        save_csv(out, rows, float_format="%.8g")
    return rows
