"""Settings of the U-Net stage: the original system's values (the `paper` preset) and smaller presets.

Pixel-valued augmentation settings (elastic alpha and sigma, shift) are in pixels of the network input
(`image_size`), as in the original at 320x320. Subsets follow LUNA16's ten folds (paper: test 9,
validation 8); the synthetic demo dataset has five subsets (test 4, validation 3).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class UnetConfig:
    """All U-Net stage settings; defaults reproduce the original (reference section 2 and section 8)."""

    # Data and folds.
    test_subsets: tuple = (9,)
    val_subset: int = 8
    seed: int = 0
    # Preprocessing: axial slices windowed to [hu_min, hu_max] -> [0, 1], resized to image_size.
    image_size: int = 320
    hu_min: float = -1000.0
    hu_max: float = 400.0
    image_interpolation: str = "cubic"  # the original's cv2.INTER_CUBIC; masks are drawn at image_size
    negative_slices_per_scan: int = 8  # the original gives no number; sampled among lung-bearing slices
    mask_lungs: bool = False  # zero the image outside the (dilated) lung field, in training and inference
    min_lung_fraction: float = 0.01  # a slice is lung-bearing when this fraction of it is lung field
    context_slices: int = 0  # neighbouring slices on each side as extra input channels (2.5-D); 0: the original
    context_mm: float = 0.0  # those neighbours this many mm apart (interpolated); 0: adjacent slices
    mask_min_radius_px: float = 0.0  # draw each nodule's disc at least this radius (input pixels); 0: true size
    # Network (the original: 32 filters growing by 32).
    base_filters: int = 32
    growth_step: int = 32
    # Training: SGD-Nesterov, -Dice loss, batch 8, 80 epochs of 200 steps, 10 validation steps.
    optimizer: str = "sgd"  # or "adam" (learning_rate; momentum unused)
    dice_smooth: float = 100.0
    bce_weight: float = 0.0  # > 0 adds positive-weighted cross-entropy to -Dice (see losses.SegmentationLoss)
    positive_weight: float = 1.0  # weight of nodule pixels in that cross-entropy
    # > 0: each nodule's pixels in a training slice are weighted (its area)^-nodule_balance, scaled so a
    # batch's nodule pixels average 1; at 1 a 4 mm nodule weighs as much as a 20 mm one (0: per pixel).
    nodule_balance: float = 0.0
    # Share of training slices drawn from the nodule-bearing ones (0: every slice equally often, as the
    # original); the rest are the negative slices.
    positive_slice_fraction: float = 0.0
    batch_size: int = 8
    # Train on random crops of this many pixels (0: whole slices, the original). The network is fully
    # convolutional, so it still predicts whole slices; a crop of a slice with a nodule contains it.
    train_crop_size: int = 0
    learning_rate: float = 1e-3
    continue_learning_rate: float = 5e-4
    momentum: float = 0.9
    lr_schedule: str = "constant"  # the original; "cosine": to 0 along a cosine over epochs x steps_per_epoch
    epochs: int = 80
    steps_per_epoch: int = 200
    validation_steps: int = 10  # 0: the whole validation split
    # Augmentation, image and mask together (probabilities per sample).
    elastic_p: float = 0.5
    elastic_alpha: float = 128.0
    elastic_sigma: float = 15.0
    rotate_p: float = 0.8
    rotate_deg: float = 20.0
    flip_p: float = 0.5
    shift_p: float = 0.8
    shift_px: int = 30
    distort_range: float = 0.5  # brightness and contrast factors U(1-r, 1+r), image only (0 disables)
    # Inference: threshold on the probability, 3-D components, at most max_candidates per scan.
    threshold: float = 0.5
    # Tried on the validation subset; 2/255 is the original's fixed threshold (pixel >= 2 of 255).
    threshold_grid: tuple = (2 / 255, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
    tune_threshold: bool = True
    max_candidates: int = 100
    min_component_voxels: int = 1
    score: str = "max"  # component score: max or mean probability
    # "components" (thresholded 3-D components, the original) or "peaks" (local maxima of the probability
    # within peak_radius_mm, each scored by its peak; inference.extract_peaks).
    candidate_mode: str = "components"
    peak_radius_mm: float = 5.0
    predict_batch_size: int = 8

    def to_dict(self) -> dict:
        """The settings as a JSON-friendly dict."""
        d = asdict(self)
        d["threshold_grid"] = list(self.threshold_grid)
        return d

    @classmethod
    def from_dict(cls, values: dict) -> "UnetConfig":
        """A config from a dict, ignoring unknown keys (e.g. a script namespace's `preset`)."""
        names = {f.name for f in fields(cls)}
        kept = {k: v for k, v in values.items() if k in names}
        if "threshold_grid" in kept:
            kept["threshold_grid"] = tuple(kept["threshold_grid"])
        return cls(**kept)

    def replace(self, **changes) -> "UnetConfig":
        """A copy with some settings changed."""
        return replace(self, **changes)


PRESETS: dict[str, UnetConfig] = {
    "paper": UnetConfig(),
    # Sized for `lungnodule demo` on a 2-core CPU (about 9 min for the whole stage) on the synthetic demo
    # scans, whose native 256-px slices it keeps (small nodules vanish at 128 px). A thousand steps of the
    # original's SGD on -Dice predict background everywhere, so the demo uses Adam and adds a
    # positive-weighted cross-entropy in which every nodule weighs the same whatever its size; it trains
    # on 128-px crops (2.4x the steps per second), sees two slices on each side (vessels continue across
    # slices, nodules end) and four times the original's share of negative slices, half of each batch
    # being nodule slices (uniform sampling gives them 20%), each nodule drawn at least 2.5 px in radius
    # (a 4 mm nodule covers only 3 px at 1.35 mm per pixel). Augmentation distances are the original's
    # scaled by 256 / 320.
    "demo": UnetConfig(
        test_subsets=(4,), val_subset=3, image_size=256, base_filters=8, growth_step=8,
        image_interpolation="linear", negative_slices_per_scan=24, context_slices=2, mask_min_radius_px=2.5,
        optimizer="adam",
        bce_weight=1.0, positive_weight=50.0, nodule_balance=1.0, positive_slice_fraction=0.5, batch_size=8,
        train_crop_size=128,
        epochs=20, steps_per_epoch=120, validation_steps=0, lr_schedule="cosine",
        elastic_alpha=102.4, elastic_sigma=12.0, shift_px=24,
        threshold_grid=(0.003, 0.01, 0.03, 0.1, 0.3, 0.5), max_candidates=20, predict_batch_size=16,
    ),
    # For tests: seconds.
    "tiny": UnetConfig(
        test_subsets=(2,), val_subset=1, image_size=32, base_filters=4, growth_step=4,
        image_interpolation="linear", negative_slices_per_scan=2, batch_size=4, epochs=2, steps_per_epoch=3,
        validation_steps=1, elastic_alpha=12.8, elastic_sigma=1.5, shift_px=3, max_candidates=20,
        predict_batch_size=16,
    ),
}
# The bench preset (`lungnodule demo --preset bench`): the demo's settings on the larger bench dataset.
PRESETS["bench"] = PRESETS["demo"]
