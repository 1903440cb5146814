"""Shared fixtures. TensorFlow is the default Keras backend; logs are kept quiet."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A LUNA16-layout synthetic dataset (tiny preset, 6 scans in 3 subsets, seed 0)."""
    from lungnodule.synth import generate_dataset

    root = tmp_path_factory.mktemp("tiny_luna")
    generate_dataset(root, n_scans=6, seed=0, preset="tiny", n_subsets=3, progress=False)
    return root


def save_untrained_detector(root, volume):
    """Untrained tiny U-Net and MGI-CNN saved under `root` as `lungnodule detect` expects them, with a U-Net
    threshold that yields candidates on `volume` (the 99.7th percentile of its probabilities) and an MGI-CNN
    threshold of 0. Returns `root`."""
    import json
    from pathlib import Path

    import keras
    import numpy as np

    from lungnodule.mgicnn.config import PRESETS as MGI_PRESETS
    from lungnodule.mgicnn.model import build_mgicnn
    from lungnodule.unet.config import PRESETS as UNET_PRESETS
    from lungnodule.unet.inference import predict_volume
    from lungnodule.unet.model import build_unet

    root = Path(root)
    keras.utils.set_random_seed(0)
    ucfg = UNET_PRESETS["tiny"]
    unet = build_unet((ucfg.image_size, ucfg.image_size, 1), ucfg.base_filters, ucfg.growth_step)
    (root / "unet").mkdir(parents=True, exist_ok=True)
    unet.save(root / "unet" / "best.keras")
    prob = predict_volume(unet, volume, ucfg).astype(np.float32)
    threshold = float(np.quantile(prob[prob > 0], 0.997))
    (root / "unet" / "train.json").write_text(json.dumps({"config": ucfg.to_dict()}))
    (root / "unet" / "detection.json").write_text(json.dumps({"threshold": threshold, "max_candidates": 10}))
    mcfg = MGI_PRESETS["tiny"]
    (root / "mgicnn" / "fold2").mkdir(parents=True, exist_ok=True)
    build_mgicnn(mcfg).save(root / "mgicnn" / "fold2" / "best.keras")
    (root / "mgicnn" / "detection.json").write_text(json.dumps(
        {"model": "fold2/best.keras", "threshold": 0.0, "config": mcfg.to_dict()}))
    return root
