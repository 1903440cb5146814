"""Untrained two-stage detectors, saved as `lungnodule detect` expects them: for timing and for tests.

Inference costs the same whatever the weights, so benchmarks of `detect` (and tests of its plumbing) use networks
straight from their initialisers instead of hours of training.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .geometry import Volume


def save_untrained_detector(root: str | os.PathLike, volume: Volume, preset: str = "tiny", seed: int = 0,
                            max_candidates: int = 10) -> Path:
    """Save untrained U-Net and MGI-CNN networks of `preset` under `root/unet` and `root/mgicnn`.

    The U-Net threshold is the 99.7th percentile of its nonzero probabilities on `volume` (so candidates appear),
    at most `max_candidates` per scan; the MGI-CNN threshold is 0 (every candidate is a finding). Returns `root`.
    """
    import keras

    from .mgicnn.config import PRESETS as MGI_PRESETS
    from .mgicnn.model import build_mgicnn
    from .unet.config import PRESETS as UNET_PRESETS
    from .unet.inference import predict_volume
    from .unet.model import build_unet

    root = Path(root)
    keras.utils.set_random_seed(seed)
    ucfg = UNET_PRESETS[preset]
    unet = build_unet((ucfg.image_size, ucfg.image_size, 2 * ucfg.context_slices + 1), ucfg.base_filters,
                      ucfg.growth_step)
    (root / "unet").mkdir(parents=True, exist_ok=True)
    unet.save(root / "unet" / "best.keras")
    prob = predict_volume(unet, volume, ucfg).astype(np.float32)
    threshold = float(np.quantile(prob[prob > 0], 0.997)) if (prob > 0).any() else 0.5
    (root / "unet" / "train.json").write_text(json.dumps({"config": ucfg.to_dict()}))
    (root / "unet" / "detection.json").write_text(json.dumps({"threshold": threshold,
                                                               "max_candidates": max_candidates}))
    mcfg = MGI_PRESETS[preset]
    (root / "mgicnn" / "fold0").mkdir(parents=True, exist_ok=True)
    build_mgicnn(mcfg).save(root / "mgicnn" / "fold0" / "best.keras")
    (root / "mgicnn" / "detection.json").write_text(json.dumps(
        {"model": "fold0/best.keras", "threshold": 0.0, "config": mcfg.to_dict()}))
    return root
