"""Settings of the CT-GAN stage: the original repository's values (the `paper` preset) and smaller presets.

Lengths in millimetres, cube sizes in voxels of the 1 mm isotropic cube. Subsets follow LUNA16's ten folds
(paper: test 9, validation 8); the synthetic demo dataset has five subsets (test 4, validation 3).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..settings import Settings, setting

MODES = ("inject", "remove")


@dataclass(frozen=True)
class CTGANConfig(Settings):
    """All CT-GAN stage settings; defaults reproduce the original repository (reference section 4 and 8)."""

    # Data and folds.
    test_subsets: tuple = setting((9,), "subsets whose scans are tampered for the evaluation")
    val_subset: int = setting(8, "validation subset (progress grids, validation losses)")
    seed: int = setting(0, "seed of sites, batches and weights")
    # Cubes: a cut_mm cube resampled to spacing_mm, centre-cropped to cube_size; the condition zeroes the
    # centre mask_size^3 (indices 6..25 at 32^3).
    cut_mm: float = setting(40.0, "edge of the cube cut around a site (mm)")
    spacing_mm: float = setting(1.0, "isotropic spacing the cube is resampled to (mm)")
    cube_size: int = setting(32, "edge of the network's cube (voxels)")
    mask_size: int = setting(20, "edge of the in-painted centre (voxels)")
    # Training-set augmentation: 3 flips, 4 shifts of (0, +-shift, +-shift) voxels, rotations in the axial
    # plane at rotation_start + k * rotation_step degrees (k < n_rotations): 20 instances per site.
    shift: int = setting(4, "in-plane shift of the off-centre crops (voxels)")
    n_rotations: int = setting(12, "axial rotations per site")
    rotation_start: float = setting(6.0, "first rotation (degrees)")
    rotation_step: float = setting(30.0, "step between rotations (degrees)")
    # Sites: injector = annotated nodules of at least inject_min_diameter_mm (0: all, as the original);
    # remover = healthy lung points away from every finding and deep inside the lung.
    inject_min_diameter_mm: float = setting(0.0, "smallest annotated nodule the injector learns from (0: all)")
    healthy_sites_per_scan: int = setting(2, "remover: healthy lung sites per training scan")
    clearance_mm: float = setting(20.0, "healthy sites: distance beyond every finding's radius (mm)")
    lung_margin_mm: float = setting(8.0, "healthy sites: depth inside the lung (mm)")
    nbins: int = setting(10000, "bins of the histogram equalisation (fitted on the training cubes)")
    # Networks: gf = df = base_filters (40 in the original repository, 100 in the CT-GAN paper).
    base_filters: int = setting(40, "filters of the first generator and discriminator level")
    # Training: LSGAN with real = 0, fake = 1; G loss = adversarial + l1_weight * L1.
    lr_d: float = setting(1e-6, "discriminator learning rate")
    lr_g: float = setting(2e-4, "generator learning rate")
    beta_1: float = setting(0.5, "Adam beta 1 of both optimisers")
    l1_weight: float = setting(100.0, "weight of the L1 term of the generator loss")
    inject_epochs: int = setting(70, "injector epochs")
    inject_batch_size: int = setting(16, "injector batch size")
    remove_epochs: int = setting(200, "remover epochs")
    remove_batch_size: int = setting(32, "remover batch size")
    devices: int = setting(0, "devices to train on, data-parallel; batch sizes are global (0: every visible one)")
    progress_cubes: int = setting(3, "validation cubes in each progress grid")
    run_eagerly: bool = setting(False, "eager train steps (faster than tracing for the tiny test networks)")
    # Tampering touch-ups (reference section 4.5): a touchup_scale x cube region, copied lung noise.
    touchup_scale: float = setting(1.3, "touch-up region as a multiple of the cube")
    copynoise: bool = setting(True, "add lung texture copied from the clean scan")
    # Test: scans of the test subsets tampered (0 = all) and sites injected per scan.
    test_scans: int = setting(0, "test scans tampered (0: all)")
    inject_per_scan: int = setting(1, "nodules injected per test scan")

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
# The bench preset: the demo's settings, with the epochs cut to about twice the demo's steps (the bench's
# training subsets hold 4.7 times its nodules of 10 mm and more) and 24 test scans tampered (72 injected
# sites): the detector's pass over clean and tampered scans is the step's largest cost.
PRESETS["bench"] = PRESETS["demo"].replace(inject_epochs=12, healthy_sites_per_scan=1, remove_epochs=2,
                                           test_scans=24)
