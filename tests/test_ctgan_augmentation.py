"""CT-GAN evaluation (b): the GAN-augmented training set and the paired CPM bootstrap."""

from __future__ import annotations

import hashlib
import json
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lungnodule.ctgan.config import PRESETS, CTGANConfig
from lungnodule.errors import DataError
from lungnodule.luna import LunaDataset, fold_split

ROOT = Path(__file__).resolve().parents[1]
XYZ = ["coordX", "coordY", "coordZ"]
TINY = PRESETS["tiny"]


def _digests(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def injector(tmp_path_factory):
    """A CT-GAN work dir with an untrained tiny injector (2 filters) and a lung-like normaliser, as test_ctgan's
    `tiny_model`, saved where `load_generator` looks for it."""
    import keras

    from lungnodule.ctgan.model import build_generator
    from lungnodule.ctgan.normalization import CubeNormalizer

    work = tmp_path_factory.mktemp("ctgan")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    hu = np.concatenate([rng.normal(-850, 50, 40000), rng.normal(30, 40, 10000)])
    (work / "inject").mkdir()
    build_generator(32, 2).save(work / "inject" / "generator.keras")
    CubeNormalizer.fit(hu, 2000).save(work / "inject" / "normalization.npz")
    return work


@pytest.fixture(scope="module")
def augmented(tiny_dataset, injector, tmp_path_factory):
    from lungnodule.ctgan.augmentation import build_augmented_dataset

    before = _digests(tiny_dataset)
    out = tmp_path_factory.mktemp("augmented") / "luna"
    summary = build_augmented_dataset(TINY, tiny_dataset, injector, out, copies_per_scan=1, progress=False)
    return out, summary, before


def test_augmented_dataset_layout_and_csvs(tiny_dataset, augmented):
    out, summary, before = augmented
    assert _digests(tiny_dataset) == before  # the source dataset is untouched
    src, aug = LunaDataset(tiny_dataset), LunaDataset(out)
    split = fold_split(src.subsets, test=TINY.test_subsets, val=TINY.val_subset)
    new = aug.scans[~aug.scans["seriesuid"].isin(src.scans["seriesuid"])]
    # One copy per training scan, each a new series in its source's subset; validation and test untouched.
    assert summary["tampered_scans"] == len(new) == len(src.uids_in(split["train"])) > 0
    assert set(new["subset"]) <= set(split["train"])
    for k in split["val"] + split["test"]:
        assert aug.uids_in(k) == src.uids_in(k)
    assert aug.seriesuids[:len(src.seriesuids)] == src.seriesuids
    assert sorted(aug.seriesuids[len(src.seriesuids):]) == sorted(new["seriesuid"])
    # Every original scan is there, as links to the unmodified source files.
    for uid in src.scans["seriesuid"]:
        linked = aug.scan_path(uid)
        assert linked.is_symlink() and linked.resolve() == src.scan_path(uid).resolve()
        assert linked.with_suffix(".raw").resolve() == src.scan_path(uid).with_suffix(".raw").resolve()
    first = src.scans["seriesuid"].iloc[0]
    assert np.array_equal(aug.load(first).array, src.load(first).array)

    sites = pd.read_csv(out / "injected_sites.csv", dtype={"seriesuid": str, "source_seriesuid": str})
    assert len(sites) == summary["injected_sites"] >= len(new)
    assert set(sites["seriesuid"]) == set(new["seriesuid"])
    # annotations.csv = the original rows + per copy its source's nodules and the injected ones.
    ann = aug.annotations
    pd.testing.assert_frame_equal(ann.iloc[:len(src.annotations)].reset_index(drop=True),
                                  src.annotations.reset_index(drop=True))
    # The injector came without its training set (no inject/sites.csv): its diameter is the median of the
    # training subsets' nodules.
    train = src.annotations["seriesuid"].isin(src.uids_in(summary["split"]["train"]))
    median = float(src.annotations.loc[train, "diameter_mm"].median())
    assert summary["injected_diameter_mm"] == pytest.approx(median)
    for copy_uid, group in sites.groupby("seriesuid"):
        source_uid = group["source_seriesuid"].iloc[0]
        vol, clean = aug.load(copy_uid), src.load(source_uid)
        assert vol.shape == clean.shape and vol.array.dtype == clean.array.dtype
        assert np.allclose(vol.origin, clean.origin) and np.allclose(vol.spacing, clean.spacing)
        assert not np.array_equal(vol.array, clean.array) and np.all(vol.array >= clean.array)  # injection brightens
        points = group[XYZ].to_numpy()
        assert np.all(vol.contains(vol.world_to_voxel(points)))
        rows = ann[ann["seriesuid"] == copy_uid]
        assert len(rows) == len(group) + (src.annotations["seriesuid"] == source_uid).sum()
        injected = rows.merge(group[XYZ], on=XYZ)
        assert len(injected) == len(group) and np.allclose(injected["diameter_mm"], median)
    assert len(aug.excluded) >= len(src.excluded)

    # candidates_V2.csv: the originals unchanged, then each copy's (source's + class-1 marks at its sites).
    cands = aug.candidates
    pd.testing.assert_frame_equal(cands.iloc[:len(src.candidates)].reset_index(drop=True),
                                  src.candidates.reset_index(drop=True))
    for copy_uid, group in sites.groupby("seriesuid"):
        own = cands[cands["seriesuid"] == copy_uid]
        source = src.candidates[src.candidates["seriesuid"] == group["source_seriesuid"].iloc[0]]
        assert len(own) > len(source) and own["class"].sum() > source["class"].sum()
        marks = own.iloc[len(source):]
        assert (marks["class"] == 1).all()
        d = np.linalg.norm(marks[XYZ].to_numpy()[:, None] - group[XYZ].to_numpy()[None], axis=2).min(axis=1)
        assert np.all(d <= 0.4 * median / 2 + 1e-9)
    manifest = json.loads((out / "augmented_dataset.json").read_text())
    assert manifest["seed"] == TINY.seed and manifest["config"]["seed"] == TINY.seed


def test_rebuild_is_reproducible_and_refuses_foreign_folders(tiny_dataset, injector, augmented, tmp_path):
    from lungnodule.ctgan.augmentation import build_augmented_dataset

    out, _, _ = augmented
    first = (out / "injected_sites.csv").read_text()
    build_augmented_dataset(TINY, tiny_dataset, injector, out, progress=False)  # same seed: same UIDs and sites
    assert (out / "injected_sites.csv").read_text() == first
    other = build_augmented_dataset(TINY.replace(seed=1), tiny_dataset, injector, tmp_path / "seed1", progress=False)
    assert pd.read_csv(tmp_path / "seed1" / "injected_sites.csv")["seriesuid"].iloc[0] not in first
    assert other["seed"] == 1
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        build_augmented_dataset(TINY, tiny_dataset, injector, foreign, progress=False)
    assert (foreign / "keep.txt").exists()
    with pytest.raises(DataError, match="overlap"):
        build_augmented_dataset(TINY, tiny_dataset, injector, tiny_dataset / "aug", progress=False)


def _system(rng, n_scans: int, skill: float):
    """Annotations (one 8 mm nodule per scan) and marks: a hit per nodule scored by `skill`, 20 random FPs."""
    uids = [f"1.2.{i}" for i in range(n_scans)]
    centres = rng.uniform(-100, 100, (n_scans, 3))
    ann = pd.DataFrame({"seriesuid": uids, "coordX": centres[:, 0], "coordY": centres[:, 1],
                        "coordZ": centres[:, 2], "diameter_mm": 8.0})
    fp = np.repeat(centres, 20, axis=0) + rng.uniform(10, 40, (n_scans * 20, 3))
    marks = pd.DataFrame({"seriesuid": [*uids, *np.repeat(uids, 20)], "coordX": [*centres[:, 0], *fp[:, 0]],
                          "coordY": [*centres[:, 1], *fp[:, 1]], "coordZ": [*centres[:, 2], *fp[:, 2]],
                          "probability": np.r_[np.clip(rng.normal(skill, 0.2, n_scans), 0, 1),
                                               rng.random(n_scans * 20)]})
    return uids, ann, marks


def test_paired_bootstrap_zero_for_identical_and_covers_a_difference():
    from lungnodule.evaluation import evaluate_cad, paired_cpm_bootstrap

    rng = np.random.default_rng(0)
    uids, ann, marks = _system(rng, 30, 0.5)
    a = evaluate_cad(ann, None, uids, marks, n_bootstrap=200, seed=3)
    same = paired_cpm_bootstrap(a, evaluate_cad(ann, None, uids, marks.copy(), n_bootstrap=0), 200, seed=3)
    assert same["difference"] == 0.0 and same["ci95"] == [0.0, 0.0] and same["share_improved"] == 0.0
    assert same["baseline_ci95"] == list(a.cpm_ci95)  # the same resamples as evaluate_cad's bootstrap

    better = marks.copy()
    better.loc[:29, "probability"] = np.clip(better.loc[:29, "probability"] + 0.4, 0, 1)
    b = evaluate_cad(ann, None, uids, better, n_bootstrap=200, seed=3)
    paired = paired_cpm_bootstrap(a, b, 200, seed=3)
    assert paired["difference"] == pytest.approx(b.cpm - a.cpm) and paired["difference"] > 0
    lo, hi = paired["ci95"]
    assert lo <= paired["difference"] <= hi and lo < hi
    assert paired["other_ci95"] == list(b.cpm_ci95)
    stable = paired["stable"]  # the same for the stable CPM
    assert stable["difference"] == pytest.approx(b.cpm_stable - a.cpm_stable) and stable["difference"] > 0
    assert stable["ci95"][0] <= stable["difference"] <= stable["ci95"][1]
    assert stable["baseline_ci95"] == list(a.cpm_stable_ci95) and stable["other_ci95"] == list(b.cpm_stable_ci95)
    with pytest.raises(ValueError, match="same scan list"):
        paired_cpm_bootstrap(a, evaluate_cad(ann, None, uids[::-1], marks, n_bootstrap=0))


def test_script_constants_are_the_paper_preset():
    namespace = runpy.run_path(str(ROOT / "CT-GAN" / "augment.py"), run_name="not_main")
    constants = {k: v for k, v in namespace.items() if k.isupper()}
    shared = [k for k in constants if k.lower() in CTGANConfig.__dataclass_fields__]
    assert {"TEST_SUBSETS", "VAL_SUBSET", "INJECT_PER_SCAN", "SEED"} <= set(shared)
    for k in shared:
        assert constants[k] == getattr(PRESETS["paper"], k.lower()), k
    from lungnodule.scripting import script_args

    args = script_args(None, constants, PRESETS, ["--preset", "demo", "--copies-per-scan", "2"])
    assert (args.test_subsets, args.inject_per_scan, args.copies_per_scan) == ((4,), 3, 2)
    assert args.work_dir == "data/work/ctgan_aug" and args.ctgan_dir == "data/work/ctgan"


def test_experiment_trains_both_and_writes_only_its_outputs(tiny_dataset, injector, tmp_path):
    from lungnodule.pipeline import augmentation_experiment

    work, results = tmp_path / "work" / "ctgan_aug", tmp_path / "Results"
    out = augmentation_experiment(tiny_dataset, work, results, seed=0, preset="tiny", ctgan_dir=injector,
                                  n_bootstrap=50, progress=False)
    saved = json.loads((work / "augmentation.json").read_text())
    assert saved["difference"]["cpm"] == pytest.approx(out["augmented"]["cpm"] - out["baseline"]["cpm"])
    lo, hi = saved["difference"]["ci95"]
    assert lo <= hi and saved["difference"]["n_bootstrap"] == 50 and saved["seed"] == 0
    # The augmented run sees the copies' injected nodules as extra positives; both score the same test scans.
    assert out["augmented"]["train_positives"] > out["baseline"]["train_positives"]
    assert out["test_scans"] == len(LunaDataset(tiny_dataset).uids_in(TINY.test_subsets))
    assert sorted(p.name for p in results.iterdir()) == ["GAN_augmentation.png"]
    assert sorted(p.name for p in work.iterdir()) == ["augmentation.json", "augmented", "mgicnn_augmented",
                                                      "mgicnn_baseline"]


def test_experiment_refuses_models_trained_on_its_held_out_scans(tiny_dataset, injector, tmp_path):
    import shutil

    from lungnodule.errors import DataError
    from lungnodule.pipeline import augmentation_experiment, check_trained_apart

    check_trained_apart([0, 1], [2, 3], tmp_path / "train.json", "a model")  # apart: nothing to say
    with pytest.raises(DataError, match=r"subset\(s\) \[3\]"):
        check_trained_apart([0, 3], [2, 3], tmp_path / "train.json", "a model")
    # An injector whose record says it trained on the experiment's test subset (a bench injector read with the
    # 5-subset preset's folds, say) is refused before any tampering.
    ctgan_dir = tmp_path / "ctgan"
    shutil.copytree(injector, ctgan_dir)
    (ctgan_dir / "inject" / "trainset.json").write_text(json.dumps(
        {"mode": "inject", "split": {"train": [0, *TINY.test_subsets], "val": [TINY.val_subset], "test": []}}))
    work = tmp_path / "work" / "ctgan_aug"
    with pytest.raises(DataError, match="trainset.json.*the injector"):
        augmentation_experiment(tiny_dataset, work, tmp_path / "Results", seed=0, preset="tiny",
                                ctgan_dir=ctgan_dir, n_bootstrap=10, progress=False)
    assert not (work / "augmented").exists()
