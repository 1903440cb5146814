"""CT-GAN stage scripts on the tiny synthetic dataset: preprocess -> train (checkpoint, resume) -> test -> tamper."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lungnodule.ctgan.config import PRESETS, CTGANConfig
from lungnodule.scripting import script_args
from lungnodule.volume import read_volume

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["preprocess.py", "train.py", "test.py"]


def _script(name: str) -> dict:
    return runpy.run_path(str(ROOT / "CT-GAN" / name), run_name="not_main")


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_constants_are_the_paper_preset(name):
    namespace = _script(name)
    constants = {k: v for k, v in namespace.items() if k.isupper()}
    shared = [k for k in constants if k.lower() in CTGANConfig.__dataclass_fields__]
    assert len(shared) >= 3
    for k in shared:
        assert constants[k] == getattr(PRESETS["paper"], k.lower()), k
    args = script_args(None, constants, PRESETS, ["--preset", "demo", "--seed", "7"])
    assert args.seed == 7 and args.work_dir == "data/work/ctgan"


def test_stage_scripts_end_to_end(tiny_dataset, tmp_path):
    work, results = tmp_path / "work", tmp_path / "Results"
    common = ["--preset", "tiny", "--work-dir", str(work)]
    pre = _script("preprocess.py")["main"]([*common, "--data-root", str(tiny_dataset)])
    for mode in ("inject", "remove"):
        folder = work / mode
        train_cubes = np.load(folder / "train.npy", mmap_mode="r")
        assert train_cubes.shape == (pre[mode]["train_cubes"], 32, 32, 32) and train_cubes.dtype == np.float32
        assert pre[mode]["train_cubes"] == pre[mode]["train_sites"] * PRESETS["tiny"].n_instances > 0
        assert (folder / "normalization.npz").exists() and (folder / "sites.csv").exists()
        # Normalised: about 1 wide around 0.
        assert -1.0 < float(train_cubes.min()) < 0.0 < float(train_cubes.max()) < 1.0
    sites = pd.read_csv(work / "remove" / "sites.csv")
    ann = pd.read_csv(tiny_dataset / "annotations.csv")
    for _, s in sites.iterrows():  # healthy sites stay clear of every nodule
        near = ann[ann["seriesuid"] == s["seriesuid"]]
        d = np.abs(near[["coordX", "coordY", "coordZ"]].to_numpy() - s[["coordX", "coordY", "coordZ"]].to_numpy(float))
        assert np.all(d.max(axis=1) > 20.0)

    train = _script("train.py")["main"]
    out = train([*common, "--results-dir", str(results)])
    assert out["inject"]["epochs"] == 1 and out["inject"]["resumed_from_epoch"] == 0
    assert (results / "GAN_loss_curve.png").exists() and (work / "inject" / "progress" / "epoch_001.png").exists()
    state = json.loads((work / "inject" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1  # the last epoch is saved
    # Resume: one more epoch continues from the checkpoint and appends to the history.
    out = train([*common, "--results-dir", str(results), "--mode", "inject", "--inject-epochs", "2"])
    assert out["inject"]["resumed_from_epoch"] == 1 and out["inject"]["epochs"] == 2
    history = pd.read_csv(work / "inject" / "history.csv")
    assert history["epoch"].tolist() == [0, 1]
    assert {"d_loss", "g_loss", "g_l1", "val_mask_l1"} <= set(history.columns)

    tested = _script("test.py")["main"]([*common, "--data-root", str(tiny_dataset), "--results-dir", str(results)])
    assert (results / "GAN_results.png").exists()
    assert tested["inject"]["sites"] >= 1 and tested["remove"]["sites"] >= 1
    tampered = Path(tested["tampered_root"])
    uid = pd.read_csv(tampered / "inject" / "tampered_sites.csv")["seriesuid"].iloc[0]
    copy = next((tampered / "inject").glob(f"subset*/{uid}.mhd"))
    header = copy.read_text()  # a tampered copy says so, and what was done where
    assert "CTGAN_Derived = True" in header and "inject at" in header and "CTGAN_Source" in header
    source = next(tiny_dataset.glob(f"subset*/{uid}.mhd"))  # and is stored as its source is
    assert [ln for ln in header.splitlines() if ln.startswith("TransformMatrix")] == \
        [ln for ln in source.read_text().splitlines() if ln.startswith("TransformMatrix")]

    # Evaluation (a) with a stand-in detector that finds exactly the injected sites.
    from lungnodule.ctgan.heldout import detection_rates

    injected = pd.read_csv(tampered / "inject" / "tampered_sites.csv")

    def detect(volume):
        return injected[["coordX", "coordY", "coordZ"]].assign(probability=0.9)

    rates = detection_rates(detect, work, data_root=tiny_dataset, progress=False)
    assert rates["injected"] == len(injected) and rates["injected_detected"] == 1.0
    assert rates["removed"] == tested["remove"]["sites"] and rates["removed_still_detected"] == 0.0
    assert rates["clean_nodules_detected"] == 0.0
    assert detection_rates(detect, work, threshold=0.95, progress=False)["injected_detected"] == 0.0

    # The original's CLI: inject at a voxel, write DICOM; the input stays as it was.
    scan = next(tiny_dataset.glob(f"subset*/{uid}.mhd"))
    before = scan.read_bytes(), scan.with_suffix(".raw").read_bytes()
    vol = read_volume(scan, canonical=False)  # -s vox indexes the file as stored
    z, y, x = (np.asarray(vol.shape) // 2).tolist()
    dest = tmp_path / "cli_out"
    _script("tamper.py")["main"](["-t", str(scan), "-d", str(dest), "-a", "inject", "-c", f"{z},{y},{x}",
                                  "--work-dir", str(work)])
    assert (scan.read_bytes(), scan.with_suffix(".raw").read_bytes()) == before
    back = read_volume(dest, canonical=False)
    assert back.shape == vol.shape and np.allclose(back.origin, vol.origin, atol=1e-3)
    world = vol.voxel_to_world([z, y, x])
    _script("tamper.py")["main"](["-t", str(scan), "-d", str(tmp_path / "cli.mhd"), "-a", "remove", "-s", "world",
                                  "-f", "mhd", "-c", ",".join(f"{v:.3f}" for v in world), "--work-dir", str(work)])
    assert read_volume(tmp_path / "cli.mhd").shape == vol.shape
