"""The pipeline end to end with the tiny presets: every stage runs, joins and reports, the same way twice."""

import json
import math

import pytest

from lungnodule.mgicnn.fusion import DEFAULT_WEIGHTS
from lungnodule.pipeline import run
from lungnodule.run_report import metric_differences

# Roc.png needs both classes among the test candidates, which the tiny U-Net need not give.
FIGURES = ["Unet_loss.png", "Unet_results.png", "3DCNN_acc.png", "FROC.png", "GAN_loss_curve.png", "GAN_results.png"]


def _tiny(root):
    return run(root / "synthetic", root / "work", root / "Results", preset="tiny", seed=0)


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return root, _tiny(root)


def test_every_stage_reports_metrics_and_time(tiny_demo):
    root, out = tiny_demo
    assert list(out["timings"])[0] == "synth" and out["wall_time_s"] > 0
    for name in ("baseline_random", "unet", "fused", "mgicnn_alone"):
        m = out[name]
        assert 0.0 <= m["cpm"] <= 1.0 and 0.0 <= m["cpm_stable"] <= 1.0
        assert m["cpm_stable_ci95"][0] <= m["cpm_stable_ci95"][1]
    unet = out["unet"]
    assert 0.0 <= unet["candidate_sensitivity"] <= 1.0 and unet["candidates_per_scan"] <= 20
    fold = json.loads(next((root / "work" / "mgicnn").glob("fold*/train.json")).read_text())
    table = fold["fusion"]["table"]
    assert [r["weight"] for r in table] == list(DEFAULT_WEIGHTS)  # the tiny preset names no grid of its own
    assert fold["fusion"]["cpm_stable"] == max(r["cpm_stable"] for r in table)
    assert out["fusion"]["weight"] == fold["fusion_weight"] and out["fusion"]["leave_one_out"]["nodules"] >= 1
    assert out["heldout_scans"] == 2 and out["heldout_nodules"] >= 1 and out["run"]["seed"] == 0
    ctgan = out["ctgan"]
    assert ctgan["metrics"]["inject"]["test_sites"] >= 1
    assert set(ctgan["detection"]) >= {"injected_detected", "removed_still_detected", "threshold"}
    summary = (root / "Results" / "summary.md").read_text()
    for text in ("U-Net + MGI-CNN", "CT-GAN tampering", "| unet_train |", "| total |", "stable CPM", "Keras",
                 "leaderboard CPM"):
        assert text in summary, text
    saved = json.loads((root / "Results" / "metrics.json").read_text())
    assert saved["seed"] == 0 and saved["run"]["keras"] and saved["run"]["backend"] == "tensorflow"
    assert {"unet", "mgicnn_alone", "fused", "fp_reduction_track", "fused_minus_unet"} <= set(saved)


def test_figures_are_written(tiny_demo):
    root, out = tiny_demo
    for name in FIGURES:
        assert (root / "Results" / name).stat().st_size > 1000, name
    auc = out["fused"].get("auc")
    assert (root / "Results" / "Roc.png").exists() == (auc is not None and not math.isnan(auc))


def test_the_same_run_twice_gives_the_same_metrics(tiny_demo, tmp_path):
    _, first = tiny_demo
    second = _tiny(tmp_path)
    assert metric_differences(first, second) == []
    # The comparison itself sees a change in any metric, at any depth.
    changed = json.loads(json.dumps(second))
    changed["fused"]["sensitivities"]["1"] += 1e-12
    assert metric_differences(first, changed) == [f"/fused/sensitivities/1: {first['fused']['sensitivities']['1']!r}"
                                                  f" != {changed['fused']['sensitivities']['1']!r}"]


def test_unknown_step_or_preset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown step"):
        run(tmp_path / "d", tmp_path / "w", tmp_path / "r", stages=["unet", "bogus"])
    with pytest.raises(ValueError, match="unknown run preset"):
        run(tmp_path / "d", tmp_path / "w", tmp_path / "r", preset="huge")


def test_a_validation_subset_without_nodules_is_refused_before_any_training(tiny_dataset, tmp_path):
    # A small LUNA16-layout root can deal no nodule to the validation subset: every choice made on
    # validation would then be NaN, so the run must stop at once with a message naming the root and subset.
    import shutil

    import pandas as pd

    from lungnodule.errors import DataError
    from lungnodule.luna import LunaDataset

    root = tmp_path / "root"
    shutil.copytree(tiny_dataset, root)
    (root / "synth.json").unlink(missing_ok=True)
    dataset = LunaDataset(root)
    val = dataset.uids_in(1)
    ann = pd.read_csv(root / "annotations.csv")
    ann[~ann["seriesuid"].isin(val)].to_csv(root / "annotations.csv", index=False)
    with pytest.raises(DataError, match=r"validation subset\(s\) \[1\] hold no annotated nodule") as err:
        run(root, tmp_path / "work", tmp_path / "Results", preset="tiny", stages=["baseline", "unet"])
    assert str(root) in str(err.value) and not (tmp_path / "work" / "unet").exists()



def test_learning_curve_reuses_the_run_and_resumes(tiny_demo, monkeypatch):
    import lungnodule.pipeline as pipeline
    from lungnodule.learning_curve import learning_curve, scaled_epochs

    root, out = tiny_demo
    args = (root / "synthetic", root / "work", root / "Results")
    curve = learning_curve(*args, preset="tiny", fractions=(1.0, 0.5), seed=0)
    half, full = curve["points"]  # sorted by budget
    assert (half["fraction"], full["fraction"]) == (0.5, 1.0)
    assert half["epochs"] == {"unet": 1, "mgicnn": 1} and full["epochs"] == {"unet": 2, "mgicnn": 2}
    # Budget 1 is the run itself: the same figures, not a retraining.
    assert full["source"] == "run" and half["source"] == "trained"
    assert full["systems"]["fused"]["cpm_stable"] == out["fused"]["cpm_stable"]
    assert full["systems"]["unet"]["candidates_per_scan"] == out["unet"]["candidates_per_scan"]
    assert (root / "work" / "learning_curve" / "budget_0.5" / "unet" / "best.keras").is_file()
    assert (root / "Results" / "learning_curve.png").stat().st_size > 1000
    assert json.loads((root / "Results" / "learning_curve.json").read_text())["points"] == curve["points"]

    def no_training(*a, **k):
        raise AssertionError("a finished point was trained again")

    monkeypatch.setattr(pipeline, "unet_step", no_training)
    assert learning_curve(*args, preset="tiny", fractions=(0.5, 1.0), seed=0)["points"] == curve["points"]
    assert scaled_epochs(50, 0.25) == 13 and scaled_epochs(3, 0.1) == 1
    with pytest.raises(ValueError, match="positive"):
        scaled_epochs(10, 0)


def test_data_curve_links_a_reduced_root_and_reuses_the_run(tiny_demo, tmp_path):
    from lungnodule.errors import DataError
    from lungnodule.learning_curve import data_curve, training_subset_root
    from lungnodule.luna import LunaDataset

    root, out = tiny_demo
    full = LunaDataset(root / "synthetic")
    reduced = training_subset_root(root / "synthetic", [2, 0], tmp_path / "reduced")
    ds = LunaDataset(reduced)
    assert list(ds.subsets) == [0, 2] and (reduced / "subset0").is_symlink()
    assert sorted(ds.uids_in([0, 2])) == sorted(full.uids_in([0, 2])) and ds.uids_in([1]) == []
    assert ds.annotations.equals(full.annotations)  # the CSVs are the dataset's own
    assert training_subset_root(root / "synthetic", [0, 2], tmp_path / "reduced") == reduced  # a rerun resumes
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "subset0").write_text("not a link")
    with pytest.raises(DataError, match="not a link"):
        training_subset_root(root / "synthetic", [0], tmp_path / "taken")
    with pytest.raises(DataError, match="outside the dataset"):
        training_subset_root(root / "synthetic", [0], root / "synthetic" / "reduced")
    with pytest.raises(DataError, match="subset7"):
        training_subset_root(root / "synthetic", [7], tmp_path / "other")

    # The tiny run trains on one subset: its only point is the run itself, drawn against its training nodules.
    curve = data_curve(root / "synthetic", root / "work", root / "Results", preset="tiny", seed=0)
    (point,) = curve["points"]
    assert point["source"] == "run" and point["train_subsets"] == [0]
    assert point["train_nodules"] == int(full.annotations["seriesuid"].isin(full.uids_in([0])).sum()) > 0
    assert point["systems"]["fused"]["cpm_stable"] == out["fused"]["cpm_stable"]
    assert (root / "Results" / "learning_curve_data.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="1..1"):
        data_curve(root / "synthetic", root / "work", root / "Results", preset="tiny", train_counts=(2,))


def test_flip_study_reruns_the_chain_from_the_same_unet_and_pairs_it(tiny_demo, monkeypatch):
    import importlib.util
    from pathlib import Path

    import lungnodule.pipeline as pipeline
    import lungnodule.unet.evaluate as unet_evaluate
    from lungnodule.errors import DataError

    root, out = tiny_demo
    path = Path(__file__).resolve().parents[1] / "bench" / "study_flips_heldout.py"
    spec = importlib.util.spec_from_file_location("study_flips_heldout", path)
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    args = ["--data-root", str(root / "synthetic"), "--base-dir", str(root / "work"), "--preset", "tiny",
            "--n-bootstrap", "50"]
    flips = root / "work" / "flips"
    got = study.main([*args, "--work-dir", str(flips)])
    # The same network, now averaged over flips; the run it compares with is read, not rewritten.
    assert (flips / "unet" / "best.keras").read_bytes() == (root / "work" / "unet" / "best.keras").read_bytes()
    assert json.loads((flips / "unet" / "detection.json").read_text())["tta_flips"] is True
    assert json.loads((root / "work" / "unet" / "detection.json").read_text())["tta_flips"] is False
    assert got["systems"]["fused_plain"]["cpm_stable"] == out["fused"]["cpm_stable"]
    assert got["systems"]["unet_plain"]["cpm_stable"] == out["unet"]["cpm_stable"]
    for system in ("unet", "fused"):
        d = got["difference"][system]
        assert d["difference"] == pytest.approx(got["systems"][f"{system}_flips"]["cpm"]
                                                - got["systems"][f"{system}_plain"]["cpm"])
        assert d["ci95"][0] <= d["ci95"][1] and d["n_bootstrap"] == 50
    assert (flips / "flips_heldout.png").stat().st_size > 1000
    assert json.loads((flips / "flips_heldout.json").read_text())["test_scans"] == out["heldout_scans"]

    def no_training(*a, **k):
        raise AssertionError("a finished step was run again")

    monkeypatch.setattr(pipeline, "mgicnn_step", no_training)
    monkeypatch.setattr(unet_evaluate, "test", no_training)
    assert study.main([*args, "--work-dir", str(flips)])["systems"] == got["systems"]
    with pytest.raises(DataError, match="overwrite"):
        study.main([*args, "--work-dir", str(root / "work")])
