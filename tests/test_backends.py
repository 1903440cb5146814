"""Every stage under the JAX and PyTorch Keras backends: the tiny run trains, resumes and predicts.

Each backend runs in its own interpreter (Keras picks its backend at import). JAX runs on two virtual CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=2`), so the data-parallel training of every network is tested
too. The figures need not match TensorFlow's bit for bit. The README's test command installs the CPU builds of
JAX and PyTorch (requirements.lock); where one is missing, its test is skipped and says how to install it.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

# Runs in the child: the tiny run (no synth: the session's tiny dataset), one more epoch of each network from its
# checkpoint, then `detect` on one scan with the resumed models.
CHILD = r"""
import json, sys
from pathlib import Path

from lungnodule.pipeline import Layout, get_preset, run, stage_configs
from lungnodule.luna import LunaDataset

root, data = Path(sys.argv[1]), sys.argv[2]
report = run(data, root / "work", root / "Results", preset="tiny", seed=0, stages=["unet", "mgicnn", "ctgan"])
unet, mgi, gan = stage_configs(get_preset("tiny"), report["folds"], 0)
layout = Layout(root / "work")

from lungnodule.ctgan.training import train as train_gan
from lungnodule.detect import detect
from lungnodule.mgicnn.training import train as train_mgi
from lungnodule.unet.training import train as train_unet

u = train_unet(unet.replace(epochs=unet.epochs + 1), layout.unet, None, resume=True, verbose=0)
m = train_mgi(mgi.replace(epochs=mgi.epochs + 1), data, layout.mgicnn, None, resume=True, verbose=0)
g = train_gan(gan, layout.ctgan, str(root / "Results"), "inject", resume=True, epochs=gan.inject_epochs + 1,
              verbose=0)
ds = LunaDataset(data)
rows = detect([ds.scan_path(ds.seriesuids[0])], root / "findings.csv", layout.unet, layout.mgicnn,
              all_candidates=True, progress=False)
fold = next(iter(m["folds"].values()))
print("RESULT " + json.dumps({
    "backend": report["run"]["backend"], "fused_cpm": report["fused"]["cpm"],
    "unet": [u["resumed_from_epoch"], u["epochs"], unet.epochs],
    "mgicnn": [fold["resumed_from_epoch"], fold["epochs"], mgi.epochs],
    "ctgan": [g["resumed_from_epoch"], g["epochs"], gan.inject_epochs],
    "ctgan_detection": sorted(report["ctgan"].get("detection", {})),
    "detect_rows": len(rows), "detect_columns": list(rows.columns)}))
"""


def _run_backend(backend: str, tiny_dataset, tmp_path, extra_env: dict) -> tuple[dict, str]:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed: `pip install -c requirements.lock -e '.[test]'` installs its CPU "
                    "build (the README's test command)")
    env = {**os.environ, "KERAS_BACKEND": backend, "MPLBACKEND": "Agg", **extra_env}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(tiny_dataset)], env=env,
                          capture_output=True, text=True, timeout=1500)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):]), log


def _check(result: dict, backend: str) -> None:
    assert result["backend"] == backend
    assert 0.0 <= result["fused_cpm"] <= 1.0
    for stage in ("unet", "mgicnn", "ctgan"):
        resumed_from, epochs, planned = result[stage]
        assert resumed_from == planned and epochs == planned + 1, (stage, result[stage])  # one more, not afresh
    assert {"injected_detected", "removed_still_detected"} <= set(result["ctgan_detection"])
    assert result["detect_columns"][:5] == ["seriesuid", "coordX", "coordY", "coordZ", "probability"]


def test_every_stage_under_jax_on_two_devices(tiny_dataset, tmp_path):
    result, log = _run_backend("jax", tiny_dataset, tmp_path, {"XLA_FLAGS": "--xla_force_host_platform_device_count=2",
                                                                "JAX_PLATFORMS": "cpu"})
    _check(result, "jax")
    # U-Net, MGI-CNN, both GANs and the resumed runs: every training names its two devices.
    assert log.count("training on 2 device(s): cpu:0, cpu:1") >= 7, log[-3000:]


def test_every_stage_under_torch(tiny_dataset, tmp_path):
    result, log = _run_backend("torch", tiny_dataset, tmp_path, {})
    _check(result, "torch")
    assert "training on 1 device(s): cpu" in log
