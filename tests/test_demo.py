"""`lungnodule demo` end to end with the tiny presets: every stage runs, joins and reports."""

import json
import math

import pytest

from lungnodule.demo import run_demo
from lungnodule.mgicnn.config import PRESETS

# Roc.png needs both classes among the test candidates, which the tiny U-Net need not give.
FIGURES = ["Unet_loss.png", "Unet_results.png", "3DCNN_acc.png", "FROC.png", "GAN_loss_curve.png", "GAN_results.png"]


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    out = run_demo(root / "synthetic", root / "work", root / "Results", n_scans=6, seed=0, preset="tiny")
    return root, out


def test_every_stage_reports_metrics_and_time(tiny_demo):
    root, out = tiny_demo
    assert list(out["timings"]) == ["synth", "baseline", "unet", "mgicnn", "ctgan"]
    for name in ("LUNA16-style candidates, random scores", "U-Net candidates (U-Net probability)", "U-Net + MGI-CNN"):
        m = out["metrics"][name]
        assert 0.0 <= m["cpm"] <= 1.0
        lo, hi = m["cpm_ci95"]
        assert lo <= m["cpm"] <= hi or m["cpm"] == 0.0
    unet = out["metrics"]["U-Net candidates (U-Net probability)"]
    assert 0.0 <= unet["candidate_sensitivity"] <= 1.0 and unet["candidates_per_scan"] <= 20
    fused = out["metrics"]["U-Net + MGI-CNN"]
    assert fused["fusion_weight"] in PRESETS["demo"].fusion_weights
    fold = json.loads(next((root / "work" / "mgicnn").glob("fold*/train.json")).read_text())
    assert len(fold["fusion"]["table"]) == len(PRESETS["demo"].fusion_weights)
    assert fold["fusion"]["cpm"] == max(r["cpm"] for r in fold["fusion"]["table"])
    ctgan = out["ctgan"]
    assert ctgan["metrics"]["inject"]["test_sites"] >= 1
    assert set(ctgan["detection"]) >= {"injected_detected", "removed_still_detected", "threshold"}
    summary = (root / "Results" / "summary.md").read_text()
    for text in ("U-Net + MGI-CNN", "CT-GAN tampering", "| unet |", "| total |", "stage presets `tiny`"):
        assert text in summary
    saved = json.loads((root / "work" / "demo_metrics.json").read_text())
    assert saved["info"]["seed"] == 0


def test_figures_are_written(tiny_demo):
    root, out = tiny_demo
    for name in FIGURES:
        assert (root / "Results" / name).stat().st_size > 1000, name
    auc = out["metrics"]["U-Net + MGI-CNN"].get("auc")
    assert (root / "Results" / "Roc.png").exists() == (auc is not None and not math.isnan(auc))


def test_unknown_step_or_preset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown demo step"):
        run_demo(tmp_path / "d", tmp_path / "w", tmp_path / "r", stages=["unet", "bogus"])
    with pytest.raises(ValueError, match="unknown demo preset"):
        run_demo(tmp_path / "d", tmp_path / "w", tmp_path / "r", preset="huge")
