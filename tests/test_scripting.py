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


def test_an_edited_constant_wins_over_the_preset_and_is_reported(tmp_path, capsys):
    import json
    import runpy
    from pathlib import Path

    from lungnodule.scripting import stage_main
    from lungnodule.unet.config import PRESETS as UNET

    namespace = runpy.run_path(str(Path(__file__).resolve().parents[1] / "Unet" / "train.py"), run_name="not_main")
    namespace["EPOCHS"] = 5  # as a user edits the top of Unet/train.py
    namespace["WORK_DIR"] = str(tmp_path)
    config, args = stage_main(namespace, UNET, ["--preset", "demo", "--batch-size", "4"])
    assert config.epochs == 5 and config.batch_size == 4  # the edit and the flag win
    assert config.optimizer == UNET["demo"].optimizer  # the rest comes from the preset
    out = capsys.readouterr().out
    assert "epochs = 5  (constant EPOCHS edited in the script (the demo preset's 20 is not used))" in out
    assert "batch_size = 4  (flag --batch-size)" in out and "optimizer = 'adam'  (preset demo)" in out
    saved = json.loads((tmp_path / "train.config.json").read_text())
    assert saved["config"]["epochs"] == 5 and saved["sources"]["batch_size"] == "flag --batch-size"


def test_help_names_the_default_and_the_choices(capsys):
    import pytest as _pytest

    from lungnodule.scripting import script_args
    from lungnodule.unet.config import PRESETS as UNET

    with _pytest.raises(SystemExit):
        script_args("doc", {"OPTIMIZER": "sgd", "EPOCHS": 80}, UNET, ["--help"], reference=UNET["paper"])
    text = capsys.readouterr().out
    assert "{sgd,adam}" in text and "SGD-Nesterov (the original) or Adam (default: sgd)" in text
    assert "epochs (default: 80)" in text


def test_docs_preset_tables_match_the_settings():
    from pathlib import Path

    from lungnodule.preset_docs import update_docs

    docs = Path(__file__).resolve().parents[1] / "docs"
    assert update_docs(docs, check=True) == [], "run python -m lungnodule.preset_docs"
