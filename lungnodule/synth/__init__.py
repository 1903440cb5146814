"""Synthetic LUNA16-format CT dataset: the project's embedded default data.

`generate_dataset(out_dir, n_scans, seed, preset)` writes the exact LUNA16 layout (subset folders of
.mhd/.raw int16 HU scans and the five CSVs) plus `synth.json` and `preview.png`; `generate_scan(seed,
preset)` makes one scan in memory. Presets (`luna`, `demo`, `tiny`) are described in
:mod:`lungnodule.synth.presets`.
"""

from .dataset import GENERATOR_VERSION, generate_dataset
from .presets import PRESETS, get_preset
from .scan import SyntheticScan, generate_scan

__all__ = ["GENERATOR_VERSION", "PRESETS", "SyntheticScan", "generate_dataset", "generate_scan", "get_preset"]
