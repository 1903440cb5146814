"""The synthetic LUNA16-format dataset: layout, determinism, geometry and what the annotations claim."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from lungnodule.luna import LunaDataset
from lungnodule.synth import generate_dataset, generate_scan
from lungnodule.synth.nodules import luna_statistics, render_nodule, sample_diameter
from lungnodule.synth.presets import PRESETS, sample_geometry
from lungnodule.volume import read_volume


def _valid_uid(uid: str) -> bool:
    """DICOM PS3.5 9.1: at most 64 characters, digits and dots, no leading zero in a component."""
    return len(uid) <= 64 and all(c.isdigit() and (c == "0" or c[0] != "0") for c in uid.split("."))


def _digest(root) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".csv", ".raw", ".mhd"))
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_layout_and_csvs(tiny_dataset):
    root = tiny_dataset
    for name in ("annotations.csv", "annotations_excluded.csv", "candidates.csv", "candidates_V2.csv",
                 "seriesuids.csv", "preview.png", "synth.json"):
        assert (root / name).exists(), name
    ds = LunaDataset(root)  # validates every CSV
    uids = (root / "seriesuids.csv").read_text().split()
    assert len(uids) == 6 and all(_valid_uid(u) for u in uids)
    subsets = {s["seriesuid"]: s["subset"] for s in json.loads((root / "synth.json").read_text())["scans"]}
    for uid in uids:
        assert (root / f"subset{subsets[uid]}" / f"{uid}.mhd").exists()
        assert (root / f"subset{subsets[uid]}" / f"{uid}.raw").exists()
    assert sorted(np.bincount(list(subsets.values()))) == [2, 2, 2]  # LUNA16: equal scan counts per subset
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # staging folders removed
    assert set(ds.candidates["class"].unique()) == {0, 1}
    # Several class-1 candidates near nodules, and far more class-0 ones.
    assert (ds.candidates["class"] == 0).sum() > 10 * (ds.candidates["class"] == 1).sum()
    assert (ds.excluded["diameter_mm"] == -1).mean() > 0.5
    meta = json.loads((root / "synth.json").read_text())
    assert meta["seed"] == 0 and meta["preset"] == "tiny"
    assert any(s["flipped"] for s in meta["scans"])


def test_volumes_are_int16_hu_with_luna_geometry(tiny_dataset):
    ds = LunaDataset(tiny_dataset)
    flipped = 0
    for uid in ds.seriesuids:
        vol = read_volume(ds.scan_path(uid), canonical=False)  # as stored
        assert vol.array.dtype == np.int16
        assert -3024 <= vol.array.min() and vol.array.max() <= 3071
        assert np.all(np.abs(vol.origin) > 1.0)
        flipped += bool(np.allclose(vol.direction, np.diag([-1, -1, 1])))
    assert flipped >= 1


def test_annotated_nodules_lie_inside_and_are_denser_than_lung(tiny_dataset):
    ds = LunaDataset(tiny_dataset)
    for uid, ann in ds.annotations.groupby("seriesuid"):
        vol = read_volume(ds.scan_path(uid))
        vox = vol.world_to_voxel(ann[["coordX", "coordY", "coordZ"]].to_numpy())
        assert np.all(vox > -0.5) and np.all(vox < np.array(vol.shape) - 0.5), uid
        lung = np.median(vol.array[(vol.array > -950) & (vol.array < -750)])
        for z, y, x in np.rint(vox).astype(int):
            centre = vol.array[max(z - 1, 0):z + 2, y - 1:y + 2, x - 1:x + 2].mean()
            assert centre > lung + 100, (uid, centre, lung)


def test_generator_is_deterministic(tmp_path, tiny_dataset):
    out = generate_dataset(tmp_path / "again", n_scans=6, seed=0, preset="tiny", n_subsets=3, progress=False)
    assert _digest(out) == _digest(tiny_dataset)
    other = generate_scan(np.random.default_rng(1), "tiny")
    assert not np.array_equal(other.volume.array, generate_scan(np.random.default_rng(2), "tiny").volume.array)


def test_parallel_generation_is_identical(tmp_path, tiny_dataset):
    out = generate_dataset(tmp_path / "par", n_scans=6, seed=0, preset="tiny", n_subsets=3, workers=2,
                           progress=False)
    assert _digest(out) == _digest(tiny_dataset)


def test_interrupted_generation_resumes(tmp_path, tiny_dataset):
    out = tmp_path / "resume"
    generate_dataset(out, n_scans=6, seed=0, preset="tiny", n_subsets=3, progress=False)
    (out / "annotations.csv").unlink()  # as if stopped before the CSVs were written
    generate_dataset(out, n_scans=6, seed=0, preset="tiny", n_subsets=3, progress=False)
    assert _digest(out) == _digest(tiny_dataset)


def test_rendered_nodule_matches_its_diameter():
    """The returned diameter is the equivalent-sphere diameter of the HU mass actually drawn."""
    spacing = np.array([2.5, 0.7, 0.7])
    for seed, (kind, shape) in enumerate([("solid", "round"), ("solid", "lobulated"), ("solid", "spiculated"),
                                          ("ground-glass", "round")]):
        rng = np.random.default_rng(seed)
        hu = np.full((40, 96, 96), -850.0, dtype=np.float32)
        lung = np.ones(hu.shape, dtype=bool)
        centre = np.array([20, 48, 48]) * spacing
        value = 30.0 if kind == "solid" else -600.0
        d = render_nodule(rng, hu, lung, centre, 12.0, spacing, kind, shape, value, value)
        drawn_mm3 = ((hu + 850.0) / (value + 850.0)).sum() * spacing.prod()
        assert d == pytest.approx(np.cbrt(6 * drawn_mm3 / np.pi), rel=1e-3)
        assert d == pytest.approx(12.0, rel=0.06)


def test_diameters_and_counts_follow_luna16():
    counts, diameters = luna_statistics()
    assert diameters.size == 1186 and counts.sum() == 1186
    rng = np.random.default_rng(0)
    drawn = np.array([sample_diameter(rng) for _ in range(3000)])
    assert 3.0 <= drawn.min() and drawn.max() <= 32.5
    assert np.median(drawn) == pytest.approx(np.median(diameters), rel=0.1)


def test_luna_preset_geometry():
    rng = np.random.default_rng(0)
    geoms = [sample_geometry(rng, PRESETS["luna"]) for _ in range(300)]
    sxy = np.array([g.spacing[0] for g in geoms])
    sz = np.array([g.spacing[2] for g in geoms])
    assert all(g.shape[1:] == (512, 512) for g in geoms)
    assert sxy.min() >= 0.5 and sxy.max() <= 1.0
    assert sz.min() >= 0.6 and sz.max() <= 2.5
    assert 0.05 < np.mean([g.flipped for g in geoms]) < 0.35
    assert {g.padding for g in geoms} == {None, -2000, -3024}


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown preset"):
        generate_dataset(tmp_path / "x", n_scans=1, preset="huge")
    with pytest.raises(ValueError, match="n_scans"):
        generate_dataset(tmp_path / "x", n_scans=0, preset="tiny")


def test_scan_tables_are_world_coordinates_of_what_was_drawn():
    scan = generate_scan(np.random.default_rng(3), "tiny", flipped=True)
    vol = scan.volume
    assert np.allclose(vol.direction, np.diag([-1, -1, 1]))
    assert isinstance(scan.nodules, pd.DataFrame)
    for _, n in scan.nodules.iterrows():
        z, y, x = np.rint(vol.world_to_voxel(np.array([[n.coordX, n.coordY, n.coordZ]]))[0]).astype(int)
        assert vol.array[z, y, x] > -700


def _within_bound(totals) -> bool:
    """Nodule counts per subset differ by at most max(2, 20% of their mean)."""
    totals = np.asarray(totals)
    return totals.max() - totals.min() <= max(2.0, 0.2 * totals.mean())


def test_subsets_are_balanced_by_nodules(tmp_path):
    out = generate_dataset(tmp_path / "bal", n_scans=40, seed=7, preset="tiny", n_subsets=5, workers=2,
                           progress=False)
    meta = json.loads((out / "synth.json").read_text())
    ds = LunaDataset(out)
    per_subset = [int(ds.annotations["seriesuid"].isin(ds.uids_in(k)).sum()) for k in range(5)]
    assert per_subset == meta["nodules_per_subset"] and sum(per_subset) == meta["nodules"]
    assert _within_bound(per_subset), per_subset
    assert sorted(ds.scans["subset"].value_counts()) == [8] * 5  # and by scan count, as LUNA16


def test_deal_subsets_meets_the_bound_on_luna_like_counts():
    """On 200 draws of LUNA16 per-scan nodule counts (40-120 scans, 5 or 10 subsets): equal scan counts (+-1)
    and nodule totals within max(2, 20% of the mean), or as near as a scan's own count allows."""
    from lungnodule.synth.dataset import deal_subsets
    from lungnodule.synth.nodules import sample_nodule_count

    for seed in range(200):
        rng = np.random.default_rng(seed)
        # At least 8 scans per subset (the demo's and the bench's): with 4, nodule-free scans to fill a subset
        # can run out, and one draw in 200 ends a nodule above the bound.
        n_scans, n_subsets = int(rng.choice([40, 80, 120])), int(rng.choice([5, 10]))
        n_scans = max(n_scans, 8 * n_subsets)
        counts = np.array([sample_nodule_count(rng, 1 / 3) for _ in range(n_scans)])
        subset = deal_subsets(counts, n_subsets)
        assert sorted(np.bincount(subset, minlength=n_subsets)) == sorted(
            [n_scans // n_subsets + (k < n_scans % n_subsets) for k in range(n_subsets)])
        totals = np.bincount(subset, weights=counts, minlength=n_subsets)
        # One scan may hold more nodules than a subset's share (LUNA16 has a scan with 12): its subset then
        # holds at least that many, and the emptiest of the others at most their mean.
        reachable = counts.max() - np.floor((counts.sum() - counts.max()) / (n_subsets - 1))
        assert totals.max() - totals.min() <= max(2.0, 0.2 * totals.mean(), reachable), (seed, counts, totals)
        np.testing.assert_array_equal(subset, deal_subsets(counts, n_subsets))  # deterministic
