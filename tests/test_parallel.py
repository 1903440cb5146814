"""`workers`: every per-scan step writes the same bytes with two worker processes as with one."""

import hashlib
import shutil
import time
from pathlib import Path

import pytest

from conftest import save_untrained_detector
from lungnodule.parallel import Loaded, ordered_map


def _slow_square(shared, x):
    time.sleep(0.05 * (3 - x % 3))  # later items finish first
    if x == 99:
        raise ValueError("item 99")
    return shared * x * x


def _digests(folder: Path, pattern: str = "**/*") -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob(pattern)) if p.is_file() and not p.name.endswith(".config.json")}


def test_ordered_map_keeps_the_order_and_raises_at_the_item():
    assert list(ordered_map(_slow_square, range(7), workers=2, shared=2)) == [2 * x * x for x in range(7)]
    assert list(ordered_map(_slow_square, range(7), workers=1, shared=2)) == [2 * x * x for x in range(7)]
    with pytest.raises(ValueError, match="item 99"):
        list(ordered_map(_slow_square, [1, 99, 2], workers=2, shared=1))


def test_loaded_pickles_as_its_recipe():
    import pickle

    value = Loaded(len, "abc", value=["cached"])
    assert value.get() == ["cached"]  # in this process: the value given
    assert pickle.loads(pickle.dumps(value)).get() == 3  # elsewhere: loaded again, from its recipe


def test_two_workers_write_the_same_bytes_as_one(tiny_dataset, tmp_path):
    """U-Net slices and candidates, MGI-CNN patches, CT-GAN cubes and healthy sites, and `detect`."""
    from lungnodule.ctgan.config import PRESETS as CTGAN
    from lungnodule.ctgan.dataset import build_trainset
    from lungnodule.detect import detect
    from lungnodule.luna import LunaDataset
    from lungnodule.mgicnn.config import PRESETS as MGI
    from lungnodule.mgicnn.preprocess import preprocess as mgi_preprocess
    from lungnodule.unet.config import PRESETS as UNET
    from lungnodule.unet.evaluate import test as unet_test
    from lungnodule.unet.preprocess import preprocess as unet_preprocess

    ds = LunaDataset(tiny_dataset)
    models = save_untrained_detector(tmp_path / "models", ds.load(ds.seriesuids[0]))
    scans = [ds.scan_path(uid) for uid in ds.seriesuids[:3]]
    out = {}
    for workers in (1, 2):
        w = tmp_path / f"w{workers}"
        unet_preprocess(UNET["tiny"], tiny_dataset, w / "unet", progress=False, workers=workers)
        shutil.copytree(models / "unet", w / "unet_model")
        unet_test(UNET["tiny"].replace(threshold_grid=(0.3, 0.5)), tiny_dataset, w / "unet_model",
                  results_dir=None, n_bootstrap=0, progress=False, workers=workers)
        mgi_preprocess(MGI["tiny"], tiny_dataset, w / "mgicnn", subsets=[0, 2], progress=False, workers=workers)
        build_trainset(CTGAN["tiny"].replace(n_rotations=1), tiny_dataset, w / "ctgan", "remove", progress=False,
                       workers=workers)
        detect(scans, w / "detect" / "findings.csv", models / "unet", models / "mgicnn", all_candidates=True,
               progress=False, workers=workers)
        out[workers] = {
            "unet": _digests(w / "unet", "[tv]*/*"),
            "candidates": _digests(w / "unet_model", "candidates_unet_*.csv"),
            "mgicnn": _digests(w / "mgicnn" / "patches"),
            "ctgan": _digests(w / "ctgan", "*/*.[nc]*"),  # the arrays and sites.csv (the JSON names w's path)
            "detect": _digests(w / "detect", "*.csv"),
        }
    for step, files in out[1].items():
        assert files, f"{step}: nothing written"
        assert out[2][step] == files, f"{step}: two workers wrote other bytes than one"
    # The steps did real work: slices, candidates and patches of every split and subset.
    assert {"train/images.npy", "val/images.npy", "test/images.npy"} <= set(out[1]["unet"])
    assert {"subset0/scales.npy", "subset2/scales.npy"} <= set(out[1]["mgicnn"])


def test_detect_refuses_a_given_detector_with_workers(tiny_dataset, tmp_path):
    from lungnodule.detect import detect, load_detector
    from lungnodule.luna import LunaDataset

    ds = LunaDataset(tiny_dataset)
    models = save_untrained_detector(tmp_path / "models", ds.load(ds.seriesuids[0]))
    detector = load_detector(models / "unet", models / "mgicnn")
    with pytest.raises(ValueError, match="workers"):
        detect([ds.scan_path(ds.seriesuids[0])], tmp_path / "f.csv", detector=detector, workers=2, progress=False)
