"""The official script's output files, ``cpm.json``, and the ``noduleCADEvaluationLUNA16.py`` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir
from .result import FrocResult, evaluate_cad


def _num(value: float) -> str:
    """A coordinate as the script echoes it from the CSV (Python's shortest repr of the float)."""
    return repr(float(value))


def _cad_analysis_text(r: FrocResult, name: str) -> str:
    m = r.matching
    star = 60 * "*"
    sensitivity = "0.0" if m.nodules == 0 else f"{m.true_positives / m.nodules:.9f}"
    return (
        f"\n{star}\nCAD Analysis: {name}\n{star}\n\n"
        "Candidate detection results:\n"
        f"    True positives: {m.true_positives}\n"
        f"    False positives: {m.false_positives}\n"
        f"    False negatives: {m.false_negatives}\n"
        "    True negatives: 0\n"
        f"    Total number of candidates: {m.total_candidates}\n"
        f"    Total number of nodules: {m.nodules}\n"
        f"    Ignored candidates on excluded nodules: {m.ignored_on_excluded}\n"
        f"    Ignored candidates which were double detections on a nodule: {m.double_detections}\n"
        f"    Sensitivity: {sensitivity}\n"
        f"    Average number of candidates per scan: {m.total_candidates / max(m.scans, 1):.9f}\n"
    )


def write_evaluation(result: FrocResult, outdir: str | os.PathLike, name: str) -> list[Path]:
    """Write the official script's outputs for `result` into `outdir`, plus ``cpm.json``; return the paths.

    Files: ``CADAnalysis.txt``, ``froc_<name>.txt`` (fps, sens, threshold), ``froc_gt_prob_vectors_<name>.csv``,
    ``nodulesWithoutCandidate_<name>.txt`` (its id column is the nodule's row in the annotations, where the script
    writes None), ``froc_<name>_bootstrapping.csv`` (when bootstrapped), ``froc_<name>.png`` and ``cpm.json``
    (both CPMs, their CIs, what each is, and the curve's warnings). All are written in a temporary folder first
    and moved in together.
    """
    from ..froc_plot import plot_froc

    m, boot = result.matching, result.bootstrap
    outdir = Path(outdir)
    with atomic_dir(outdir) as tmp:
        (tmp / "CADAnalysis.txt").write_text(_cad_analysis_text(result, name))
        rows = np.column_stack([result.fps, result.sens, result.thresholds])
        (tmp / f"froc_{name}.txt").write_text("".join("%.9f,%.9f,%.9f\n" % tuple(r) for r in rows))
        (tmp / f"froc_gt_prob_vectors_{name}.csv").write_text(
            "".join("%d,%.9f\n" % (g, p) for g, p in zip(m.gt, m.prob)))
        missed = m.nodule_table[~m.nodule_table["detected"].to_numpy(bool)]
        (tmp / f"nodulesWithoutCandidate_{name}.txt").write_text("".join(
            f"{row.seriesuid},{idx},{_num(row.coordX)},{_num(row.coordY)},{_num(row.coordZ)},"
            f"{row.diameter_mm:.9f},-1\n"
            for idx, row in zip(missed.index, missed.itertuples(index=False))))
        if boot is not None:
            lines = ["FPrate,Sensivity[Mean],Sensivity[Lower bound],Sensivity[Upper bound]\n"]
            table = np.column_stack([boot.fps, boot.mean, boot.lo, boot.hi])
            lines += ["%.9f,%.9f,%.9f,%.9f\n" % tuple(r) for r in table]
            (tmp / f"froc_{name}_bootstrapping.csv").write_text("".join(lines))
        plot_froc({name: result}, tmp / f"froc_{name}.png", title=f"FROC performance - {name}")
        (tmp / "cpm.json").write_text(json.dumps(result.cpm_json(), indent=2) + "\n")
        names = sorted(os.listdir(tmp))
    return [outdir / n for n in names]


def evaluate_files(
    annotations_csv: str | os.PathLike,
    excluded_csv: str | os.PathLike,
    seriesuids_csv: str | os.PathLike,
    results_csv: str | os.PathLike,
    outdir: str | os.PathLike,
    *,
    name: str | None = None,
    max_marks: int | None = 100,
    n_bootstrap: int = 1000,
    seed: int = 0,
    drop_intermediate: bool = True,
    progress: bool = True,
) -> FrocResult:
    """``noduleCADEvaluationLUNA16.py ANNOTATIONS EXCLUDED SERIESUIDS RESULTS OUTDIR``: read, evaluate, write, print.

    Reads the CSVs with :mod:`lungnodule.luna` (bad input -> :class:`DataError` naming the file and line), runs
    :func:`evaluate_cad`, writes :func:`write_evaluation`'s files into `outdir`, prints the summary (both CPMs)
    and, on stderr, a warning for each way the curve may mislead (see :meth:`FrocResult.warnings`) and when no
    result row belongs to a listed scan. `name` (used in the file names) defaults to the results file's stem.
    """
    from .. import luna  # the CSV readers live there; imported here so the core works without them

    uids = luna.read_seriesuids(seriesuids_csv)
    annotations = luna.read_annotations(annotations_csv)
    excluded = luna.read_annotations(excluded_csv)
    results = luna.read_results(results_csv)  # rows of unlisted UIDs are allowed and ignored, as in the script
    name = name or Path(results_csv).stem
    if len(results) and not results["seriesuid"].isin(set(uids)).any():
        # The official script ignores such rows too; a user who passed the wrong list should hear of it.
        print(f"warning: no row of {results_csv} belongs to a series UID listed in {seriesuids_csv}: every mark "
              "is ignored and every nodule counts as missed", file=sys.stderr)
    result = evaluate_cad(annotations, excluded, uids, results, max_marks=max_marks, n_bootstrap=n_bootstrap,
                          seed=seed, drop_intermediate=drop_intermediate, progress=progress)
    write_evaluation(result, outdir, name)
    print(result.summary(name))
    for line in result.warnings():
        print(f"warning: {line}", file=sys.stderr)
    print(f"outputs in {Path(outdir)}")
    return result
