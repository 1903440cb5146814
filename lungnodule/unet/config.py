"""Settings of the U-Net stage: the original system's values (the `paper` preset) and smaller presets.

Pixel-valued augmentation settings (elastic alpha and sigma, shift) are in pixels of the network input
(`image_size`), as in the original at 320x320. Subsets follow LUNA16's ten folds (paper: test 9,
validation 8); the synthetic demo dataset has five subsets (test 4, validation 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import Settings, setting


@dataclass(frozen=True)
class UnetConfig(Settings):
    """All U-Net stage settings; defaults reproduce the original (reference section 2 and section 8)."""

    # Data and folds.
    test_subsets: tuple = setting((9,), "held-out test subsets (LUNA16 folds)")
    val_subset: int = setting(8, "validation subset: the epoch and the threshold are chosen on it")
    seed: int = setting(0, "seed of slice sampling, augmentation and weights")
    # Preprocessing: axial slices windowed to [hu_min, hu_max] -> [0, 1], resized to image_size.
    image_size: int = setting(320, "network input size (pixels; each slice is resized to it)")
    hu_min: float = setting(-1000.0, "HU mapped to 0")
    hu_max: float = setting(400.0, "HU mapped to 1")
    image_interpolation: str = setting("cubic", "slice resize interpolation (the original: cv2.INTER_CUBIC)",
                                       ("nearest", "linear", "cubic", "area"))
    negative_slices_per_scan: int = setting(8, "lung-bearing slices away from every finding, per scan")
    mask_lungs: bool = setting(False, "zero the image outside the dilated lung field")
    min_lung_fraction: float = setting(0.01, "a slice is lung-bearing when this fraction of it is lung field")
    context_slices: int = setting(0, "neighbouring slices on each side as extra input channels (0: the original)")
    context_mm: float = setting(0.0, "those neighbours this many mm apart, interpolated (0: adjacent slices)")
    mask_min_radius_px: float = setting(0.0, "draw each nodule's disc at least this radius in pixels (0: true size)")
    # Network (the original: 32 filters growing by 32).
    base_filters: int = setting(32, "filters of the first level")
    growth_step: int = setting(32, "filters added per level")
    # Training: SGD-Nesterov, -Dice loss, batch 8, 80 epochs of 200 steps, 10 validation steps.
    optimizer: str = setting("sgd", "SGD-Nesterov (the original) or Adam", ("sgd", "adam"))
    dice_smooth: float = setting(100.0, "smoothing of the -Dice loss")
    bce_weight: float = setting(0.0, "weight of a positive-weighted cross-entropy added to -Dice (0: none)")
    positive_weight: float = setting(1.0, "weight of nodule pixels in that cross-entropy")
    nodule_balance: float = setting(0.0, "each nodule's pixels weighted by its area^-p, so small nodules count "
                                         "as much as large ones at 1 (0: per pixel)")
    positive_slice_fraction: float = setting(0.0, "share of training slices drawn from nodule slices (0: "
                                                  "uniform, the original)")
    batch_size: int = setting(8, "slices per batch (global: split across the devices)")
    devices: int = setting(0, "devices to train on, data-parallel (0: every visible one)")
    train_crop_size: int = setting(0, "train on random crops of this many pixels, a multiple of 32 (0: whole "
                                      "slices)")
    learning_rate: float = setting(1e-3, "learning rate")
    continue_learning_rate: float = setting(5e-4, "learning rate when starting from initial weights")
    momentum: float = setting(0.9, "SGD momentum")
    lr_schedule: str = setting("constant", "constant (the original) or cosine decay to 0 over the run",
                               ("constant", "cosine"))
    epochs: int = setting(80, "epochs")
    steps_per_epoch: int = setting(200, "batches per epoch")
    validation_steps: int = setting(10, "validation batches per epoch (0: the whole validation split)")
    select_epoch: str = setting("dice", "the model kept: the epoch of best validation Dice, or the last one "
                                        "(with a decaying learning rate)", ("dice", "last"))
    # Augmentation, image and mask together (probabilities per sample).
    elastic_p: float = setting(0.5, "probability of an elastic deformation")
    elastic_alpha: float = setting(128.0, "elastic deformation strength (input pixels)")
    elastic_sigma: float = setting(15.0, "elastic deformation smoothness (input pixels)")
    rotate_p: float = setting(0.8, "probability of a rotation")
    rotate_deg: float = setting(20.0, "largest rotation (degrees)")
    flip_p: float = setting(0.5, "probability of each flip")
    shift_p: float = setting(0.8, "probability of a shift")
    shift_px: int = setting(30, "largest shift (input pixels)")
    distort_range: float = setting(0.5, "brightness and contrast factors U(1-r, 1+r), image only (0: none)")
    # Inference: threshold on the probability, 3-D components, at most max_candidates per scan.
    threshold: float = setting(0.5, "probability threshold when not tuned")
    threshold_grid: tuple = setting((2 / 255, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9),
                                    "thresholds tried on validation (2/255: the original's fixed one)")
    tune_threshold: bool = setting(True, "choose the threshold on validation")
    max_candidates: int = setting(100, "candidates kept per scan, best first")
    min_component_voxels: int = setting(1, "smallest component kept (voxels)")
    score: str = setting("max", "component score", ("max", "mean"))
    candidate_mode: str = setting("components", "thresholded 3-D components (the original) or local maxima",
                                  ("components", "peaks"))
    peak_radius_mm: float = setting(5.0, "peaks: the neighbourhood a peak is the maximum of (mm)")
    predict_batch_size: int = setting(8, "slices per prediction batch")
    tta_flips: bool = setting(False, "average the probability over the 4 in-plane flips of each slice")


PRESETS: dict[str, UnetConfig] = {
    "paper": UnetConfig(),
    # Sized for `lungnodule demo` on a 2-core CPU (about 9 min for the whole stage) on the synthetic demo
    # scans, whose native 256-px slices it keeps (small nodules vanish at 128 px). A thousand steps of the
    # original's SGD on -Dice predict background everywhere, so the demo uses Adam and adds a
    # positive-weighted cross-entropy in which every nodule weighs the same whatever its size; it trains
    # on 128-px crops (2.4x the steps per second), sees the slices 2.5 and 5 mm above and below (vessels
    # continue across slices, nodules end; in mm, so 1.25 mm and 2.5 mm reconstructions look alike) and
    # four times the original's share of negative slices, half of each batch being nodule slices (uniform
    # sampling gives them 20%), each nodule drawn at least 2.5 px in radius (a 4 mm nodule covers only 3 px
    # at 1.35 mm per pixel). The model of the last epoch is kept (the learning rate has decayed to 0; the
    # epoch of best validation Dice favours large nodules: it found 25 of 29 bench validation nodules at 100
    # candidates per scan, the last epoch 26), and up to 100 candidates per scan go to stage 2, whose
    # operating point is chosen on validation. Augmentation distances are the original's scaled by 256 / 320.
    "demo": UnetConfig(
        test_subsets=(4,), val_subset=3, image_size=256, base_filters=8, growth_step=8,
        image_interpolation="linear", negative_slices_per_scan=24, context_slices=2, context_mm=2.5,
        mask_min_radius_px=2.5, optimizer="adam",
        bce_weight=1.0, positive_weight=50.0, nodule_balance=1.0, positive_slice_fraction=0.5, batch_size=8,
        train_crop_size=128,
        epochs=20, steps_per_epoch=120, validation_steps=0, lr_schedule="cosine", select_epoch="last",
        elastic_alpha=102.4, elastic_sigma=12.0, shift_px=24,
        threshold_grid=(0.005, 0.01, 0.02, 0.03, 0.05, 0.1), max_candidates=100, predict_batch_size=16,
    ),
    # For tests: seconds.
    "tiny": UnetConfig(
        test_subsets=(2,), val_subset=1, image_size=32, base_filters=4, growth_step=4,
        image_interpolation="linear", negative_slices_per_scan=2, batch_size=4, epochs=2, steps_per_epoch=3,
        validation_steps=1, elastic_alpha=12.8, elastic_sigma=1.5, shift_px=3, max_candidates=20,
        predict_batch_size=16,
    ),
}
# The bench preset (`lungnodule demo --preset bench`): the demo's settings, trained 50 epochs instead of 20. The
# bench trains on 6 subsets (138 scans) where the demo trains on 3 (24 scans), so the same epochs would show
# each scan a sixth as often; and more training finds more of the validation nodules at 100 candidates per
# scan: 22 of 28 after 20 epochs (run of 4666a90, Results/bench at that commit), 26 of 29 after 60 epochs in
# an earlier trial. Alone on the 2-core CPU an epoch takes 17-24 s, so 50 cost about 10 minutes more than 20
# (the run of 4666a90 took 49.1 min in all; the 50-epoch run of d579949 55.3 min, and found 24 of the 28
# validation nodules at 58.7 candidates per scan).
PRESETS["bench"] = PRESETS["demo"].replace(epochs=50)
