import json
import subprocess
import sys

import pandas as pd

from lungnodule.cli import main
from lungnodule.luna import package_annotation_dir


def _luna_files():
    d = package_annotation_dir()
    return d / "annotations.csv", d / "annotations_excluded.csv", d / "seriesuids.csv"


def test_evaluate_command_on_real_annotations(tmp_path):
    ann, exc, uids = _luna_files()
    gt = pd.read_csv(ann)
    # Every nodule found once (prob 0.9) plus one far-away false positive per annotated scan (prob 0.5).
    hits = gt[["seriesuid", "coordX", "coordY", "coordZ"]].assign(probability=0.9)
    fps = gt.drop_duplicates("seriesuid")[["seriesuid", "coordX", "coordY", "coordZ"]].assign(probability=0.5)
    fps["coordX"] += 500.0
    results = tmp_path / "results.csv"
    pd.concat([hits, fps]).to_csv(results, index=False)
    out = tmp_path / "eval"
    assert main(["evaluate", str(ann), str(exc), str(uids), str(results), str(out), "--bootstrap", "50"]) == 0
    cpm = json.loads((out / "cpm.json").read_text())
    assert cpm["nodules"] == 1186 and cpm["detected"] == 1186 and cpm["scans"] == 888
    # Curve points: (0, 0), (0, 1) at p=0.9, (601/888 = 0.677, 1) at p=0.5. The leaderboard reading takes the
    # first nearest point and only if it is nearer than max(fps) = 0.677: 0.125 and 0.25 -> (0, 0); 0.5 and
    # 1 -> (0.677, 1); 2, 4, 8 -> nothing near enough, 0. Interpolation is flat at 1 beyond the first hit.
    sens = [cpm["sensitivities"][k] for k in ("0.125", "0.25", "0.5", "1", "2", "4", "8")]
    assert sens == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert abs(cpm["cpm"] - 2 / 7) < 1e-12
    assert cpm["cpm_interpolated"] == 1.0
    assert (out / "froc_results.png").exists() and (out / "CADAnalysis.txt").exists()


def test_bad_input_gives_exit_2_and_names_the_file(tmp_path, capsys):
    ann, exc, uids = _luna_files()
    bad = tmp_path / "results.csv"
    bad.write_text("seriesuid,coordX,coordY,coordZ\n1.2.3,0,0,0\n")
    out = tmp_path / "eval"
    assert main(["evaluate", str(ann), str(exc), str(uids), str(bad), str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "probability" in err
    assert not out.exists() or not any(out.iterdir())


def test_module_entry_point_lists_commands():
    out = subprocess.run([sys.executable, "-m", "lungnodule", "--help"], capture_output=True, text=True, check=True)
    for command in ("synth", "evaluate", "demo"):
        assert command in out.stdout


def test_a_run_prints_no_tensorflow_log_lines_and_ends_with_its_metrics(tiny_dataset, tmp_path):
    """The console a user sees: TensorFlow's C++ start-up lines (I0000 / E0000 / W0000, cuInit, absl) are
    silenced, and the run ends with its metrics table."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    proc = subprocess.run([sys.executable, "-m", "lungnodule", "demo", "--preset", "tiny", "--data-root",
                           str(tiny_dataset), "--work-dir", str(tmp_path / "work"), "--results-dir",
                           str(tmp_path / "Results"), "--stages", "baseline", "unet"],
                          env={**env, "MPLBACKEND": "Agg"}, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    noise = [line for line in out.splitlines()
             if line[:5] in ("I0000", "E0000", "W0000") or "cuInit" in line or "absl::" in line]
    assert not noise, "\n".join(noise[:5])
    tail = proc.stdout.strip().splitlines()[-15:]
    assert any("CPM" in line for line in tail) and any(line.startswith("U-Net candidates") for line in tail), "\n".join(tail)


def test_compare_command_reports_each_differing_metric(tmp_path, capsys):
    run = {"seed": 0, "timings": {"unet_train": 12.0}, "run": {"commit": "a"},
           "fused": {"cpm": 0.5, "auc": float("nan"), "sensitivities": {"1": 0.25, "8": 0.75}}}
    rerun = json.loads(json.dumps(run))
    rerun["timings"]["unet_train"], rerun["run"]["commit"] = 99.0, "b"  # not compared
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(run))
    second.write_text(json.dumps(rerun))
    assert main(["compare", str(first), str(second)]) == 0
    assert "identical" in capsys.readouterr().out
    rerun["fused"]["sensitivities"]["8"] = 0.8
    second.write_text(json.dumps(rerun))
    assert main(["compare", str(first), str(second)]) == 1
    out = capsys.readouterr().out
    assert "/fused/sensitivities/8: 0.75 != 0.8" in out and "1 metric(s) differ" in out
    assert main(["compare", str(first), str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
