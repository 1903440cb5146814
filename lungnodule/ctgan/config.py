"""Settings of the CT-GAN stage: the original repository's values (the `paper` preset) and smaller presets.

Lengths in millimetres, cube sizes in voxels of the 1 mm isotropic cube. Subsets follow LUNA16's ten folds
(paper: test 9, validation 8); the synthetic demo dataset has five subsets (test 4, validation 3).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

MODES = ("inject", "remove")


@dataclass(frozen=True)
class CTGANConfig:
    """All CT-GAN stage settings; defaults reproduce the original repository (reference section 4 and 8)."""

    # Data and folds.
    test_subsets: tuple = (9,)
    val_subset: int = 8
    seed: int = 0
    # Cubes: a cut_mm cube resampled to spacing_mm, centre-cropped to cube_size; the condition zeroes the
    # centre mask_size^3 (indices 6..25 at 32^3).
    cut_mm: float = 40.0
    spacing_mm: float = 1.0
    cube_size: int = 32
    mask_size: int = 20
    # Training-set augmentation: 3 flips, 4 shifts of (0, +-shift, +-shift) voxels, rotations in the axial
    # plane at rotation_start + k * rotation_step degrees (k < n_rotations): 20 instances per site.
    shift: int = 4
    n_rotations: int = 12
    rotation_start: float = 6.0
    rotation_step: float = 30.0
    # Remover sites: healthy lung points per training scan, at least clearance_mm (box distance, beyond the
    # finding's radius) from every annotated and excluded finding, and lung_margin_mm deep inside the lung.
    # Injector sites: the annotated nodules of at least this diameter (0: all of them, as the original).
    inject_min_diameter_mm: float = 0.0
    healthy_sites_per_scan: int = 2
    clearance_mm: float = 20.0
    lung_margin_mm: float = 8.0
    # Histogram equalisation bins (fitted on the training cubes).
    nbins: int = 10000
    # Networks: gf = df = base_filters (40 in the original repository, 100 in the CT-GAN paper).
    base_filters: int = 40
    # Training: LSGAN with real = 0, fake = 1; G loss = adversarial + l1_weight * L1.
    lr_d: float = 1e-6
    lr_g: float = 2e-4
    beta_1: float = 0.5
    l1_weight: float = 100.0
    inject_epochs: int = 70
    inject_batch_size: int = 16
    remove_epochs: int = 200
    remove_batch_size: int = 32
    progress_cubes: int = 3  # validation cubes shown in each progress grid
    run_eagerly: bool = False  # eager train steps: faster than tracing for the tiny test networks
    # Tampering touch-ups (reference section 4.5): a touchup_scale x cube region, copied lung noise.
    touchup_scale: float = 1.3
    copynoise: bool = True
    # Test: scans of the test subset tampered (0 = all) and sites injected per scan.
    test_scans: int = 0
    inject_per_scan: int = 1

    def epochs_for(self, mode: str) -> int:
        """Epochs of the injector or the remover."""
        return self.inject_epochs if _mode(mode) == "inject" else self.remove_epochs

    def batch_size_for(self, mode: str) -> int:
        """Batch size of the injector or the remover."""
        return self.inject_batch_size if _mode(mode) == "inject" else self.remove_batch_size

    @property
    def n_instances(self) -> int:
        """Training cubes per site: the original, 3 flips, 4 shifts and the rotations."""
        return 8 + self.n_rotations

    def to_dict(self) -> dict:
        """The settings as a JSON-friendly dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "CTGANConfig":
        """A config from a dict, ignoring unknown keys (e.g. a script namespace's `preset`)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def replace(self, **changes) -> "CTGANConfig":
        """A copy with some settings changed."""
        return replace(self, **changes)


def _mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def trainset_dir(work_dir: str | os.PathLike, mode: str) -> Path:
    """The folder of one mode's training set and model: `<work_dir>/<mode>`."""
    return Path(work_dir) / _mode(mode)


PRESETS: dict[str, CTGANConfig] = {
    "paper": CTGANConfig(),
    # The CT-GAN paper / upstream repository: 100 filters, 59 rotations, both GANs 200 epochs x batch 32.
    "upstream": CTGANConfig(base_filters=100, n_rotations=59, rotation_step=6.0, inject_epochs=200,
                            inject_batch_size=32),
    # Sized for `lungnodule demo` on a 2-core CPU on the synthetic demo scans (about 5 minutes in all): 8
    # filters, lr_g 1e-3 (the paper's 2e-4 draws no nodule in so few steps), 3 injections per test scan.
    # The injector learns from nodules of 10 mm and more, with the original's 12 rotations: trained on
    # every nodule, a few hundred steps average the many 4-6 mm ones into faint lung and draw no nodule.
    "demo": CTGANConfig(
        test_subsets=(4,), val_subset=3, base_filters=8, healthy_sites_per_scan=2, inject_min_diameter_mm=10.0,
        lr_g=1e-3, inject_epochs=30, inject_batch_size=16, remove_epochs=3, remove_batch_size=16, test_scans=0,
        inject_per_scan=3,
    ),
    # For tests: seconds.
    "tiny": CTGANConfig(
        test_subsets=(2,), val_subset=1, base_filters=2, n_rotations=1, healthy_sites_per_scan=1, nbins=1000,
        inject_epochs=1, inject_batch_size=4, remove_epochs=1, remove_batch_size=4, progress_cubes=2,
        test_scans=1, run_eagerly=True,
    ),
}
# The bench preset (`lungnodule demo --preset bench`): the demo's settings on the larger bench dataset.
PRESETS["bench"] = PRESETS["demo"]
