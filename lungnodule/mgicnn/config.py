"""Settings of the MGI-CNN false-positive-reduction stage: the original's values (`paper`) and smaller presets.

Patch geometry is in voxels at the scan's native spacing, arrays (z, y, x): a 28x42x42 patch around each
candidate, windowed [hu_min, hu_max] -> [0, 1] (outside the volume = air = 0); three 6x20x20 scales from its
26x40x40 centre crop (reference section 3.2). Folds are LUNA16 subsets: each test subset gets its own model,
trained on the other subsets except the validation subset, on which the epoch and the operating threshold
are chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import Settings, setting

MERGES = ("sum", "concat", "conv")  # multistream_mode 0, 1, 2
MODES = ("proposed", "ri", "lr", "zi", "zo")  # model_mode 0..4: proposed, RI, LR, zoom-in only, zoom-out only


@dataclass(frozen=True)
class MgiConfig(Settings):
    """All MGI-CNN stage settings; defaults reproduce the original (reference sections 3 and 8)."""

    # Folds: LUNA16 subsets. One model per test subset (cross-validation, as the paper), or with `pooled` one
    # model for all of them together, trained on the other subsets and validated on val_subset.
    test_subsets: tuple = setting((0, 1, 2, 3, 4, 5, 6, 7, 8, 9), "test subsets: one model (fold) each")
    val_subset: int = setting(-1, "validation subset (-1: the one after each test subset, cyclically)")
    pooled: bool = setting(False, "one model for all test subsets together (a single train/val/test split)")
    seed: int = setting(0, "seed of sampling, augmentation and weights")
    # Candidates: "candidates" = the dataset's candidates_V2.csv (labelled); "unet" = stage-1 candidates
    # (labelled by the LUNA16 hit rule).
    train_sources: tuple = setting(("candidates",), "candidate lists trained on", ("candidates", "unet"))
    eval_source: str = setting("candidates", "candidate list scored at validation and test", ("candidates", "unet"))
    # Patches: 28x42x42 voxels at the scan's own spacing (the original), or resampled to patch_spacing_mm.
    hu_min: float = setting(-1000.0, "HU mapped to 0")
    hu_max: float = setting(400.0, "HU mapped to 1")
    spline_order: int = setting(3, "spline order of the scale zooms (scipy.ndimage.zoom, mode 'nearest')")
    patch_spacing_mm: tuple = setting((), "resample patches to this (z, y, x) spacing in mm (empty: native "
                                          "voxels, the original)")
    # Network.
    mode: str = setting("proposed", "network: the proposed MGI-CNN or an ablation", MODES)
    merge: str = setting("sum", "how the zoom-in and zoom-out streams merge", MERGES)
    filters: tuple = setting((64, 128, 192, 256, 512), "widths of GFE stages 1-3, after the pool, the head")
    dense_units: int = setting(1024, "units of the two dense layers")
    dropout: float = setting(0.5, "dropout before each dense layer")
    bn_momentum: float = setting(0.9, "batch-norm momentum")
    bn_epsilon: float = setting(1e-5, "batch-norm epsilon")
    leaky_slope: float = setting(0.2, "LeakyReLU slope")
    init_std: float = setting(0.001, "truncated-normal kernel initialiser std")
    logit_batchnorm: bool = setting(True, "pass the final logit through batch norm (the original)")
    # Training: sigmoid cross-entropy, Adam(lr, beta1, beta2), every positive x 4 rotations x 27 shifts.
    learning_rate: float = setting(3e-3, "Adam learning rate")
    beta1: float = setting(0.5, "Adam beta 1")
    beta2: float = setting(0.999, "Adam beta 2")
    batch_size: int = setting(64, "samples per batch (global: split across the devices)")
    devices: int = setting(0, "devices to train on, data-parallel (0: every visible one)")
    epochs: int = setting(50, "epochs")
    steps_per_epoch: int = setting(0, "batches per epoch (0: a full epoch over every real and augmented sample)")
    augment_positives: bool = setting(True, "every positive also as 4 rotations x 27 one-voxel shifts per epoch")
    negative_fraction: float = setting(1.0, "fraction of the training negatives drawn per epoch")
    eval_source_repeats: int = setting(1, "copies of each eval-source training candidate per epoch (> 1 "
                                          "oversamples stage 1's own false positives)")
    select_by: str = setting("cpm", "epoch selection on validation: stable CPM or loss", ("cpm", "loss"))
    operating_fps_per_scan: float = setting(1.0, "findings threshold: the validation FROC at this many FPs/scan")
    fusion_weights: tuple = setting((), "U-Net weights of the fused score tried on validation (empty: the "
                                        "MGI-CNN alone, the original)")
    operating_thresholds: tuple = setting((), "stage-1 operating point: U-Net thresholds tried on validation "
                                              "(empty: every stage-1 candidate)")
    operating_max_candidates: tuple = setting((), "stage-1 operating point: candidate caps per scan tried")
    predict_batch_size: int = setting(256, "samples per prediction batch")
    tta_flips: bool = setting(False, "average the probability over the 4 in-plane flips")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, got {self.merge!r}")
        if len(self.filters) != 5:
            raise ValueError(f"filters needs 5 widths (GFE 1-3, after pool, head), got {self.filters}")
        if self.select_by not in ("cpm", "loss"):
            raise ValueError(f"select_by must be 'cpm' or 'loss', got {self.select_by!r}")
        object.__setattr__(self, "fusion_weights", tuple(float(w) for w in self.fusion_weights))  # flags give str
        object.__setattr__(self, "patch_spacing_mm", tuple(float(v) for v in self.patch_spacing_mm))
        object.__setattr__(self, "operating_thresholds", tuple(float(v) for v in self.operating_thresholds))
        object.__setattr__(self, "operating_max_candidates", tuple(int(v) for v in self.operating_max_candidates))
        if self.patch_spacing_mm and (len(self.patch_spacing_mm) != 3 or min(self.patch_spacing_mm) <= 0):
            raise ValueError(f"patch_spacing_mm needs 3 positive spacings (z, y, x) mm, got {self.patch_spacing_mm}")
        if self.eval_source_repeats < 1:
            raise ValueError(f"eval_source_repeats must be >= 1, got {self.eval_source_repeats}")
        if self.fusion_weights and self.eval_source != "unet":
            raise ValueError("fusion_weights needs eval_source 'unet': only stage-1 candidates have a U-Net "
                             "probability")
        if any(not 0.0 <= float(w) <= 1.0 for w in self.fusion_weights):
            raise ValueError(f"fusion_weights must lie in [0, 1], got {self.fusion_weights}")

    def folds(self, available: list[int]) -> list[dict]:
        """The {"train", "val", "test"} splits of `available` subsets (see luna.fold_split): one per test subset,
        or with `pooled` one whose test subsets are all of `test_subsets`."""
        from ..luna import fold_split

        val = None if self.val_subset < 0 else self.val_subset
        if self.pooled:
            return [fold_split(available, test=self.test_subsets, val=val)]
        return [fold_split(available, test=t, val=val) for t in self.test_subsets]


PRESETS: dict[str, MgiConfig] = {
    "paper": MgiConfig(),
    # `lungnodule demo` on a 2-core CPU: one fold (test 4, validation 3) of the synthetic demo dataset,
    # trained on its candidates_V2.csv plus the U-Net's candidates (each of those 8 times per epoch: they
    # are the false positives it must learn to reject), scoring the U-Net's test candidates by the MGI-CNN
    # probability fused with the U-Net's. Patches are resampled to 2 x 1 x 1 mm (z, y, x), so a nodule looks
    # the same size at any voxel size (bench validation, same steps: AUC 0.918 -> 0.942, stable CPM of stage
    # 1's candidates 0.635 -> 0.685; bench/study_mgicnn.py). On validation: the epoch, the fusion weight (a
    # grid that stops at 0.9, so the second stage always keeps a say), the stage-1 operating point (U-Net
    # threshold and candidates per scan) and the findings threshold, all by the stable CPM.
    "demo": MgiConfig(
        test_subsets=(4,), val_subset=3, train_sources=("candidates", "unet"), eval_source="unet",
        patch_spacing_mm=(2.0, 1.0, 1.0),
        filters=(16, 32, 48, 64, 128), dense_units=128, batch_size=64, epochs=8, steps_per_epoch=60,
        eval_source_repeats=8, fusion_weights=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
        operating_thresholds=(0.005, 0.01, 0.02, 0.05, 0.1), operating_max_candidates=(20, 50, 100),
    ),
    # For tests: seconds.
    "tiny": MgiConfig(
        test_subsets=(2,), val_subset=1, filters=(4, 8, 8, 8, 8), dense_units=8, batch_size=16, epochs=2,
        steps_per_epoch=3, predict_batch_size=64, operating_thresholds=(0.0, 0.3), operating_max_candidates=(5, 20),
    ),
}
# The bench preset (`lungnodule demo --preset bench`): the demo's settings, four times the training (16 epochs
# of 120 steps): on the bench's validation subset AUC 0.942 -> 0.987, stable CPM of stage 1's candidates 0.685 ->
# 0.724, of the dataset's candidate list 0.601 -> 0.813 (bench/study_mgicnn.py, variants mm and mm_long).
PRESETS["bench"] = PRESETS["demo"].replace(epochs=16, steps_per_epoch=120)
