"""U-Net stage scripts: top-of-file constants are the paper preset, flags and presets override them."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from lungnodule.scripting import script_args
from lungnodule.unet.config import PRESETS, UnetConfig

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["preprocess.py", "train.py", "test.py"]


def _constants(name: str) -> dict:
    namespace = runpy.run_path(str(ROOT / "Unet" / name), run_name="not_main")
    return {k: v for k, v in namespace.items() if k.isupper()}


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_constants_are_the_paper_preset(name):
    constants = _constants(name)
    paper = PRESETS["paper"]
    shared = [k for k in constants if k.lower() in UnetConfig.__dataclass_fields__]
    assert len(shared) >= 3
    for k in shared:
        assert constants[k] == getattr(paper, k.lower()), k


@pytest.mark.parametrize("name", SCRIPTS)
def test_demo_preset_and_flags_override(name):
    constants = _constants(name)
    args = script_args(None, constants, PRESETS, ["--preset", "demo", "--seed", "7"])
    demo = PRESETS["demo"]
    assert args.seed == 7
    assert args.test_subsets == demo.test_subsets if "TEST_SUBSETS" in constants else True
    assert args.work_dir == "data/work/unet"
