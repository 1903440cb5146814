import pytest

from lungnodule.scripting import script_args

CONSTANTS = {"EPOCHS": 40, "LEARNING_RATE": 1e-3, "INPUT_SHAPE": (320, 320), "AUGMENT": True,
             "DATA_ROOT": "data/synthetic", "WEIGHTS": None, "lowercase": 1}
PRESETS = {"demo": {"epochs": 3, "input_shape": [128, 128], "unrelated": 5}}


def test_defaults_are_the_constants():
    args = script_args("doc", CONSTANTS, PRESETS, [])
    assert (args.epochs, args.learning_rate, args.input_shape, args.augment) == (40, 1e-3, (320, 320), True)
    assert args.data_root == "data/synthetic" and args.weights is None and args.preset is None
    assert not hasattr(args, "lowercase") and not hasattr(args, "unrelated")


def test_preset_then_flags_win():
    args = script_args("doc", CONSTANTS, PRESETS, ["--preset", "demo", "--epochs", "7", "--no-augment"])
    assert args.epochs == 7 and args.input_shape == (128, 128) and args.augment is False
    assert args.learning_rate == 1e-3 and args.preset == "demo"


def test_types_follow_the_constants():
    args = script_args("doc", CONSTANTS, None, ["--input-shape", "64", "96", "--learning-rate", "0.5",
                                                "--weights", "w.keras"])
    assert args.input_shape == (64, 96) and args.learning_rate == 0.5 and args.weights == "w.keras"
    with pytest.raises(SystemExit):
        script_args("doc", CONSTANTS, None, ["--epochs", "many"])


def test_imported_preset_table_is_not_a_flag():
    constants = {**CONSTANTS, "PRESETS": PRESETS}
    args = script_args("doc", constants, PRESETS, [])
    assert not hasattr(args, "presets")
