"""Settings of the MGI-CNN false-positive-reduction stage: the original's values (`paper`) and smaller presets.

Patch geometry is in voxels at the scan's native spacing, arrays (z, y, x): a 28x42x42 patch around each
candidate, windowed [hu_min, hu_max] -> [0, 1] (outside the volume = air = 0); three 6x20x20 scales from its
26x40x40 centre crop (reference section 3.2). Folds are LUNA16 subsets: each test subset gets its own model,
trained on the other subsets except the validation subset, on which the epoch and the operating threshold
are chosen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

MERGES = ("sum", "concat", "conv")  # multistream_mode 0, 1, 2
MODES = ("proposed", "ri", "lr", "zi", "zo")  # model_mode 0..4: proposed, RI, LR, zoom-in only, zoom-out only


@dataclass(frozen=True)
class MgiConfig:
    """All MGI-CNN stage settings; defaults reproduce the original (reference sections 3 and 8)."""

    # Folds: LUNA16 subsets. val_subset -1 = the subset after each test subset (cyclically). One model per
    # test subset (cross-validation, as the paper), or with `pooled` one model for all of them together,
    # trained on the other subsets and validated on val_subset (a single train / validation / test split).
    test_subsets: tuple = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
    val_subset: int = -1
    pooled: bool = False
    seed: int = 0
    # Candidates: which sources train, and which one is scored at validation / test. "candidates" = the
    # dataset's candidates_V2.csv (labelled); "unet" = stage-1 candidates (labelled by the LUNA16 hit rule).
    train_sources: tuple = ("candidates",)
    eval_source: str = "candidates"
    # Patches: 28x42x42 voxels at the scan's own spacing (the original), or resampled to patch_spacing_mm
    # (z, y, x) so that a nodule looks the same size whatever the scan's voxel size.
    hu_min: float = -1000.0
    hu_max: float = 400.0
    spline_order: int = 3  # scipy.ndimage.zoom default, boundary mode 'nearest', as the original
    patch_spacing_mm: tuple = ()
    # Network.
    mode: str = "proposed"
    merge: str = "sum"
    filters: tuple = (64, 128, 192, 256, 512)  # GFE stages 1-3, after the pool, head
    dense_units: int = 1024
    dropout: float = 0.5
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    leaky_slope: float = 0.2
    init_std: float = 0.001  # truncated-normal kernel initialiser
    logit_batchnorm: bool = True  # the original passes the final logit through BN
    # Training: sigmoid cross-entropy, Adam(lr, beta1, beta2), every positive x 4 rotations x 27 shifts.
    learning_rate: float = 3e-3
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 64
    epochs: int = 50
    steps_per_epoch: int = 0  # 0 = a full epoch (every real candidate + every augmented positive once)
    augment_positives: bool = True
    negative_fraction: float = 1.0  # fraction of the training negatives drawn per epoch
    # Copies of each eval-source training candidate in the epoch pool: > 1 oversamples stage 1's own
    # (hard) false positives among the far more numerous candidates_V2 ones.
    eval_source_repeats: int = 1
    # Selection on the validation subset: "cpm" (of the eval source's candidates) or "loss".
    select_by: str = "cpm"
    operating_fps_per_scan: float = 1.0  # threshold: the validation FROC's point at this many FPs per scan
    # Score fusion with the U-Net probability (eval_source "unet" only; mgicnn.fusion): the U-Net weights
    # tried on validation; () or (0,) = the MGI-CNN probability alone, as the original.
    fusion_weights: tuple = ()
    # The stage-1 operating point (eval_source "unet"; mgicnn.operating): the U-Net probability thresholds and
    # candidate caps per scan tried on validation for the final score's stable CPM; () = every candidate.
    operating_thresholds: tuple = ()
    operating_max_candidates: tuple = ()
    predict_batch_size: int = 256
    # Test-time augmentation: average the probability over the in-plane flips (4 views) at validation, test
    # and in `lungnodule detect`.
    tta_flips: bool = False

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

    def to_dict(self) -> dict:
        """The settings as a JSON-friendly dict."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, values: dict) -> "MgiConfig":
        """A config from a dict, ignoring unknown keys (e.g. a script namespace's `preset`)."""
        names = {f.name for f in fields(cls)}
        kept = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
        return cls(**kept)

    def replace(self, **changes) -> "MgiConfig":
        """A copy with some settings changed."""
        return replace(self, **changes)

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
    # probability fused with the U-Net's, the weight chosen on validation.
    "demo": MgiConfig(
        test_subsets=(4,), val_subset=3, train_sources=("candidates", "unet"), eval_source="unet",
        filters=(16, 32, 48, 64, 128), dense_units=128, batch_size=64, epochs=8, steps_per_epoch=60,
        eval_source_repeats=8, fusion_weights=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    ),
    # For tests: seconds.
    "tiny": MgiConfig(
        test_subsets=(2,), val_subset=1, filters=(4, 8, 8, 8, 8), dense_units=8, batch_size=16, epochs=2,
        steps_per_epoch=3, predict_batch_size=64,
    ),
}
# The bench preset (`lungnodule demo --preset bench`): the demo's settings on the larger bench dataset.
PRESETS["bench"] = PRESETS["demo"]
