"""Tests for lungnodule.luna: the real LUNA16 CSVs, bad-input errors, the folder layouts, folds, results I/O."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pandas as pd
import pytest

from lungnodule import luna
from lungnodule.errors import DataError
from lungnodule.volume import Volume, write_volume

REAL = luna.package_annotation_dir()
HEADER_A = "seriesuid,coordX,coordY,coordZ,diameter_mm\n"
HEADER_C = "seriesuid,coordX,coordY,coordZ,class\n"
UIDS = ["1.2.826.0.1.3680043.8.498.101", "1.2.826.0.1.3680043.8.498.102", "1.2.826.0.1.3680043.8.498.103",
        "1.2.826.0.1.3680043.8.498.104"]


# --- the real LUNA16 files --------------------------------------------------------------------------


def test_real_files_read_with_expected_counts():
    uids = luna.read_seriesuids(REAL / "seriesuids.csv")
    ann = luna.read_annotations(REAL / "annotations.csv", seriesuids=uids)
    exc = luna.read_annotations(REAL / "annotations_excluded.csv", seriesuids=REAL / "seriesuids.csv")
    assert len(uids) == 888 and len(set(uids)) == 888
    assert len(ann) == 1186 and ann["seriesuid"].nunique() == 601
    assert len(exc) == 35192
    assert set(ann["seriesuid"]) <= set(uids)
    assert list(ann.columns) == luna.ANNOTATION_COLUMNS and list(exc.columns) == luna.ANNOTATION_COLUMNS
    assert isinstance(ann.index, pd.RangeIndex) and ann.index[0] == 0
    assert all(ann[c].dtype == np.float64 for c in luna.ANNOTATION_COLUMNS[1:])
    assert 3.0 < ann["diameter_mm"].min() and ann["diameter_mm"].max() < 33.0
    assert (exc["diameter_mm"] == -1).sum() == 30513


def test_real_values_parse_exactly():
    # Python's float() is correctly rounded; the reader must give the same float64 for every text value.
    with open(REAL / "annotations.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    ann = luna.read_annotations(REAL / "annotations.csv")
    assert ann["seriesuid"].tolist() == [r[0] for r in rows]
    expected = np.array([[float(v) for v in r[1:]] for r in rows])
    np.testing.assert_array_equal(ann[luna.ANNOTATION_COLUMNS[1:]].to_numpy(), expected)


# --- bad input ---------------------------------------------------------------------------------------

U = UIDS[0]
BAD_TABLES = [
    # (reader, text, line, words in the problem)
    ("annotations", "seriesuid,coordX,coordY,coordZ\n" f"{U},1,2,3\n", 1,
     ["missing column 'diameter_mm'", "columns: seriesuid"]),
    ("annotations", HEADER_A + f"{U},1,2,3,4\n{U},1,,3,4\n", 3, ["NaN in column coordY"]),
    ("annotations", HEADER_A + f"{U},1,2,3,4\n{U},1,2,NaN,4\n", 3, ["NaN in column coordZ"]),
    ("annotations", HEADER_A + f"{U},1,2,3,4\n\n{U},1,2,3,abc\n", 4, ["non-numeric value 'abc'", "diameter_mm"]),
    ("annotations", HEADER_A + f"{U},1,2,3,4\n1.2.3,1,2,3,4\n", 3, ["unknown series UID 1.2.3", "seriesuids.csv"]),
    ("annotations", HEADER_A + f"{U},inf,2,3,4\n", 2, ["non-finite", "coordX"]),
    ("annotations", HEADER_A + ",1,2,3,4\n", 2, ["empty seriesuid"]),
    ("annotations", HEADER_A + f"{U},1,2,3,4\n{U},1,2,3,4,5\n", 3, ["malformed CSV"]),
    ("candidates", HEADER_C + f"{U},1,2,3,0\n{U},1,2,3,1\n{U},1,2,3,2\n", 4, ["class 2 is not 0 or 1"]),
    ("candidates", HEADER_C + f"{U},1,2,3,0.5\n", 2, ["class 0.5 is not 0 or 1"]),
    ("results", "seriesuid,coordX,coordY,coordZ\n", 1, ["missing column 'probability'"]),
    ("results", "seriesuid,coordX,coordY,coordZ,probability\n" f"{U},1,2,3,x\n", 2, ["non-numeric value 'x'"]),
]


@pytest.mark.parametrize("kind,text,line,words", BAD_TABLES)
def test_bad_tables_name_file_and_line(tmp_path, kind, text, line, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    readers = {"annotations": luna.read_annotations, "candidates": luna.read_candidates, "results": luna.read_results}
    reader = readers[kind]
    with pytest.raises(DataError) as info:
        reader(path, seriesuids=UIDS)
    message = str(info.value)
    assert str(path) in message and f"line {line}:" in message
    assert info.value.line == line
    for w in words:
        assert w in message
    assert path.read_text() == text  # inputs are never modified


@pytest.mark.parametrize("reader", [luna.read_annotations, luna.read_candidates, luna.read_results])
def test_empty_and_missing_files(tmp_path, reader):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty file") as info:
        reader(empty)
    assert str(empty) in str(info.value)
    with pytest.raises(DataError, match="no such file"):
        reader(tmp_path / "absent.csv")


def test_header_only_file_is_an_empty_table(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(",".join(luna.RESULT_COLUMNS) + "\n")
    frame = luna.read_results(path)
    assert len(frame) == 0 and list(frame.columns) == luna.RESULT_COLUMNS


def test_blank_lines_and_extra_columns(tmp_path):
    path = tmp_path / "results.csv"
    # a pandas index column first, an extra column last, blank lines (also trailing)
    path.write_text(f",seriesuid,coordX,coordY,coordZ,probability,note\n\n0,{U},1,2,3,0.5,a\n\n1,{U},4,5,6,0.25,b\n\n")
    frame = luna.read_results(path, seriesuids=UIDS)
    assert list(frame.columns)[:5] == luna.RESULT_COLUMNS and "note" in frame.columns
    assert frame["probability"].tolist() == [0.5, 0.25] and frame["note"].tolist() == ["a", "b"]
    assert isinstance(frame.index, pd.RangeIndex) and list(frame.index) == [0, 1]
    cand = tmp_path / "cand.csv"
    cand.write_text(HEADER_C + f"{U},1,2,3,1.0\n{U},1,2,3,0\n")
    assert luna.read_candidates(cand)["class"].dtype == np.int64


def test_seriesuids_reader(tmp_path):
    path = tmp_path / "seriesuids.csv"
    path.write_text(f"{UIDS[0]}\n\n{UIDS[1]},extra\n")
    assert luna.read_seriesuids(path) == UIDS[:2]
    for text, line, words in [
        (f"seriesuid\n{UIDS[0]}\n", 1, "no header"),
        (f"{UIDS[0]}\n{UIDS[1]}\n{UIDS[0]}\n", 3, "duplicate series UID"),
        (f"{UIDS[0]}\n,x\n", 2, "empty series UID"),
    ]:
        path.write_text(text)
        with pytest.raises(DataError, match=words) as info:
            luna.read_seriesuids(path)
        assert f"{path}, line {line}:" in str(info.value)
    path.write_text("\n\n")
    with pytest.raises(DataError, match="empty file"):
        luna.read_seriesuids(path)


# --- a tiny LUNA16 layout -----------------------------------------------------------------------------


def _volume(i: int) -> Volume:
    rng = np.random.default_rng(i)
    direction = np.diag([-1.0, -1.0, 1.0]) if i % 2 else np.eye(3)
    return Volume(rng.integers(-1000, 400, size=(4, 6, 5)).astype(np.int16),
                  origin=np.array([-100.0 - i, 50.0, -300.5]), spacing=np.array([0.7, 0.7, 2.5]), direction=direction)


def _make_layout(root, csv_layout: str):
    """Scans UIDS[0..3] in subsets 0, 0, 1, 3; CSVs at the root ("flat") or as the download/evaluation zip ship them."""
    for i, (uid, subset) in enumerate(zip(UIDS, [0, 0, 1, 3])):
        write_volume(_volume(i), root / f"subset{subset}" / f"{uid}.mhd")
    (root / "subset7.zip").write_bytes(b"")  # a stray archive is not a subset folder
    ann = HEADER_A + f"{UIDS[0]},-101,49,-300,6.5\n{UIDS[2]},-98,47,-296,4.0\n"
    exc = HEADER_A + f"{UIDS[1]},-100,50,-299,-1\n"
    cand = HEADER_C + f"{UIDS[0]},-101,49,-300,1\n{UIDS[3]},-90,40,-290,0\n"
    files = {"annotations.csv": ann, "annotations_excluded.csv": exc, "candidates_V2.csv": cand,
             "candidates.csv": HEADER_C, "seriesuids.csv": "\n".join(UIDS) + "\n"}
    for name, text in files.items():
        if csv_layout == "flat":
            folder = root
        else:
            folder = root / ("annotations" if name in ("annotations_excluded.csv", "seriesuids.csv") else "CSVFILES")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return root


@pytest.mark.parametrize("csv_layout", ["flat", "download"])
def test_dataset_layouts(tmp_path, csv_layout):
    ds = luna.LunaDataset(_make_layout(tmp_path, csv_layout))
    assert ds.subsets == [0, 1, 3] and len(ds) == 4
    assert list(ds.scans.columns) == ["seriesuid", "subset", "path"]
    assert ds.scans.set_index("seriesuid")["subset"].to_dict() == dict(zip(UIDS, [0, 0, 1, 3]))
    assert ds.uids_in([0]) == sorted(UIDS[:2]) and ds.uids_in(3) == [UIDS[3]] and ds.uids_in([5]) == []
    assert ds.subset_of(UIDS[2]) == 1
    assert ds.seriesuids == UIDS
    assert set(ds.paths) == {"annotations", "excluded", "candidates", "seriesuids"}
    assert ds.paths["candidates"].name == "candidates_V2.csv"  # V2 preferred over V1
    if csv_layout == "download":
        assert ds.paths["seriesuids"].parent.name == "annotations" and ds.paths["annotations"].parent.name == "CSVFILES"
    assert len(ds.annotations) == 2 and len(ds.excluded) == 1 and ds.candidates["class"].tolist() == [1, 0]
    vol = ds.load(UIDS[1], canonical=False)
    ref = _volume(1)
    np.testing.assert_array_equal(vol.array, ref.array)
    np.testing.assert_allclose(vol.origin, ref.origin)
    np.testing.assert_allclose(vol.direction, ref.direction)
    # Every stage reads the canonical orientation: the flipped scan mirrored, identity direction, same world.
    canon = ds.load(UIDS[1])
    np.testing.assert_array_equal(canon.array, ref.array[:, ::-1, ::-1])
    np.testing.assert_allclose(canon.direction, np.eye(3))
    np.testing.assert_allclose(canon.voxel_to_world([1, 0, 0]), ref.voxel_to_world([1, 5, 4]))
    assert ds.scan_path(UIDS[3]).parent.name == "subset3"
    with pytest.raises(DataError, match="unknown series UID 9.9.9"):
        ds.scan_path("9.9.9")


def test_dataset_without_seriesuids_uses_scans_and_skips_uid_check(tmp_path):
    root = _make_layout(tmp_path, "flat")
    (root / "seriesuids.csv").unlink()
    (root / "annotations.csv").write_text(HEADER_A + "1.2.3.4,0,0,0,5\n")  # a scan not downloaded
    ds = luna.LunaDataset(root)
    assert ds.seriesuids == sorted(UIDS) and "seriesuids" not in ds.paths
    assert ds.annotations["seriesuid"].tolist() == ["1.2.3.4"]


def test_dataset_errors(tmp_path):
    root = _make_layout(tmp_path / "a", "flat")
    (root / "annotations.csv").write_text(HEADER_A + f"{UIDS[0]},1,2,3,4\n1.2.3,1,2,3,4\n")
    (root / "candidates_V2.csv").unlink()
    (root / "candidates.csv").unlink()
    (root / f"subset1/{UIDS[2]}.raw").unlink()
    ds = luna.LunaDataset(root)
    with pytest.raises(DataError, match=r"annotations.csv, line 3: unknown series UID 1.2.3"):
        ds.annotations
    with pytest.raises(DataError, match="no candidates_V2.csv or candidates.csv"):
        ds.candidates
    with pytest.raises(DataError, match=r"\.raw.*missing"):
        ds.load(UIDS[2])

    dup = _make_layout(tmp_path / "b", "flat")
    shutil.copy(dup / f"subset0/{UIDS[0]}.mhd", dup / f"subset1/{UIDS[0]}.mhd")
    with pytest.raises(DataError, match=f"duplicate series UID {UIDS[0]}"):
        luna.LunaDataset(dup)

    flat = tmp_path / "c"
    write_volume(_volume(0), flat / f"{UIDS[0]}.mhd")
    with pytest.raises(DataError, match=r"no subset folders \(found 1 \.mhd.*subset0 \.\.\. subset9/<seriesuid>\.mhd"):
        luna.LunaDataset(flat)
    with pytest.raises(DataError, match="no such folder"):
        luna.LunaDataset(tmp_path / "absent")


def test_nested_subset_folder(tmp_path):
    # subset2.zip unzipped into subset2/ gives subset2/subset2/*.mhd
    write_volume(_volume(0), tmp_path / "subset2" / "subset2" / f"{UIDS[0]}.mhd")
    ds = luna.LunaDataset(tmp_path)
    assert ds.subsets == [2] and ds.uids_in([2]) == [UIDS[0]]
    assert ds.load(UIDS[0]).shape == (4, 6, 5)


# --- folds ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("available", [list(range(10)), [0, 1, 3, 8], [2, 5, 7]])
def test_fold_split_never_leaks_the_test_subset(available):
    vals = []
    for test in available:
        split = luna.fold_split(available, test)
        assert split["test"] == [test]
        assert test not in split["train"] and test not in split["val"]
        assert split["val"][0] not in split["train"]
        assert sorted(split["train"] + split["val"] + split["test"]) == sorted(available)
        vals.append(split["val"][0])
    assert sorted(vals) == sorted(available)  # every subset validates exactly one run
    assert luna.fold_split(available, available[-1])["val"] == [available[0]]  # cyclic


def test_fold_split_explicit_val_and_errors():
    assert luna.fold_split(range(10), 4, val=0) == {"train": [1, 2, 3, 5, 6, 7, 8, 9], "val": [0], "test": [4]}
    assert luna.fold_split([0, 1, 3], 1)["val"] == [3]
    with pytest.raises(ValueError, match="must differ"):
        luna.fold_split(range(10), 4, val=4)
    with pytest.raises(ValueError, match="test subset 10"):
        luna.fold_split(range(10), 10)
    with pytest.raises(ValueError, match="validation subset 3"):
        luna.fold_split([0, 1, 2], 0, val=3)
    with pytest.raises(ValueError, match="no subset left for training"):
        luna.fold_split([0, 1], 0)


# --- results -------------------------------------------------------------------------------------------


def test_write_results_round_trips_exactly(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    # Probabilities tied to many decimals: neighbours one ulp apart must stay distinct and ordered.
    base = np.full(n, 0.123456789012345)
    ties = np.nextafter(base, 1.0)
    prob = np.concatenate([base[:50], ties[:50], rng.random(n - 102), [1 - 1e-16, 5e-324]])
    frame = pd.DataFrame({
        "probability": prob,
        "seriesuid": rng.choice(UIDS, n),
        "coordX": rng.normal(0, 100, n), "coordY": rng.normal(0, 100, n) / 3, "coordZ": rng.normal(-200, 80, n),
        "extra": 1,
    })
    path = tmp_path / "out" / "results.csv"
    luna.write_results(path, frame)
    assert path.read_text().splitlines()[0] == ",".join(luna.RESULT_COLUMNS)
    back = luna.read_results(path, seriesuids=UIDS)
    assert list(back.columns) == luna.RESULT_COLUMNS
    assert back["seriesuid"].tolist() == frame["seriesuid"].tolist()
    for col in luna.RESULT_COLUMNS[1:]:
        np.testing.assert_array_equal(back[col].to_numpy(), frame[col].to_numpy())
    assert (back["probability"][50:100].to_numpy() > back["probability"][:50].to_numpy()).all()
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.csv"]  # no temporary left


def test_write_results_float32_and_failure_leaves_old_file(tmp_path):
    path = tmp_path / "results.csv"
    frame = pd.DataFrame({"seriesuid": UIDS[:2], "coordX": np.float32([1.1, 2.2]), "coordY": [0.0, 1.0],
                          "coordZ": [3, 4], "probability": np.float32([0.1, 0.7])})
    luna.write_results(path, frame)
    back = luna.read_results(path)
    np.testing.assert_array_equal(back["probability"].to_numpy(), frame["probability"].to_numpy().astype(np.float64))
    before = path.read_bytes()
    bad = frame.assign(probability=[0.5, np.nan])
    with pytest.raises(ValueError, match="probability"):
        luna.write_results(path, bad)
    with pytest.raises(ValueError, match="lacks column"):
        luna.write_results(path, frame.drop(columns="coordZ"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_synthetic_dataset_reads(request):
    # The generator's output must pass every reader; skipped until lungnodule.synth exists.
    pytest.importorskip("lungnodule.synth")
    ds = luna.LunaDataset(request.getfixturevalue("tiny_dataset"))
    assert len(ds) == 6 and ds.subsets == [0, 1, 2]
    assert set(ds.paths) == {"annotations", "excluded", "candidates", "seriesuids"}
    assert sorted(ds.seriesuids) == sorted(ds.scans["seriesuid"])
    assert set(ds.annotations["seriesuid"]) <= set(ds.seriesuids)
    assert list(ds.excluded.columns) == luna.ANNOTATION_COLUMNS
    assert 0 in set(ds.candidates["class"]) and set(ds.candidates["class"]) <= {0, 1}
    split = luna.fold_split(ds.subsets, test=2)
    assert split == {"train": [1], "val": [0], "test": [2]}
    assert not set(ds.uids_in(split["test"])) & set(ds.uids_in(split["train"] + split["val"]))
    uid = ds.uids_in(split["test"])[0]
    assert ds.load(uid).array.ndim == 3
