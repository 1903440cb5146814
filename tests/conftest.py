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
    """Untrained tiny U-Net and MGI-CNN under `root` as `lungnodule detect` expects them (see
    :func:`lungnodule.untrained.save_untrained_detector`). Returns `root`."""
    from lungnodule.untrained import save_untrained_detector as save

    return save(root, volume, preset="tiny")
