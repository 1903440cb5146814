"""LUNA16 dataset access: the challenge's CSV files, its folder layout and its official folds.

A LUNA16 root holds ``subset0/`` ... ``subset9/`` with one ``<seriesuid>.mhd`` (+ ``.raw``) per scan, and
the CSVs ``annotations.csv``, ``annotations_excluded.csv``, ``candidates.csv`` or ``candidates_V2.csv``
and ``seriesuids.csv`` (no header), either at the root, in ``CSVFILES/`` (the download's layout) or in
``annotations/`` (the evaluation script's layout). Coordinates in every CSV are world (x, y, z) mm, the
``.mhd`` Offset convention; convert them with :class:`lungnodule.volume.Volume`. The ten subsets are the
challenge's ten cross-validation folds.

Every reader validates the file with vectorised pandas operations and raises :class:`DataError` naming
the file, the 1-based line (the header is line 1) and the problem.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .atomic import save_csv
from .errors import DataError
from .volume import Volume, read_volume, volume_files

ANNOTATION_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
CANDIDATE_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "class"]
RESULT_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "probability"]

# Where a LUNA16 root may keep its CSVs, searched in this order.
CSV_FOLDERS = (".", "CSVFILES", "annotations", "evaluationScript/annotations", "candidates_V2")
CSV_NAMES = {
    "annotations": ("annotations.csv",),
    "excluded": ("annotations_excluded.csv",),
    "candidates": ("candidates_V2.csv", "candidates.csv"),  # V2 (754,975 rows) supersedes V1
    "seriesuids": ("seriesuids.csv",),
}
_SUBSET = re.compile(r"subset(\d+)")
# A list of series UIDs, or the path of a seriesuids.csv to read them from.
UidList = Sequence[str] | str | os.PathLike | None


def package_annotation_dir() -> Path:
    """The folder of the real LUNA16 annotation CSVs shipped with the package (``lungnodule/data/luna16``)."""
    return Path(__file__).resolve().parent / "data" / "luna16"


def read_seriesuids(path: str | os.PathLike) -> list[str]:
    """Read a ``seriesuids.csv``: no header, the first comma-separated field of each non-blank line.

    Returns the UIDs in file order. Raises :class:`DataError` for a missing or empty file, an empty UID,
    a duplicate UID, or a header line (the LUNA16 file has none, and the evaluation would count it as a scan).
    """
    path = Path(path)
    text = _read_text(path)
    uids: list[str] = []
    first_line: dict[str, int] = {}
    # A few thousand lines at most: a plain pass is clearer than pandas and keeps exact line numbers.
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        uid = line.split(",", 1)[0].strip()
        if not uid:
            raise DataError(path, "empty series UID", line=n)
        if uid.lower() == "seriesuid":
            raise DataError(path, "header line 'seriesuid': seriesuids.csv has no header, one UID per line", line=n)
        if uid in first_line:
            raise DataError(path, f"duplicate series UID {uid} (first on line {first_line[uid]})", line=n)
        first_line[uid] = n
        uids.append(uid)
    if not uids:
        raise DataError(path, "empty file: no series UIDs")
    return uids


def read_annotations(path: str | os.PathLike, seriesuids: UidList = None) -> pd.DataFrame:
    """Read ``annotations.csv`` or ``annotations_excluded.csv``: nodule centres (x, y, z) mm and diameters in mm.

    Returns the columns of :data:`ANNOTATION_COLUMNS` (``seriesuid`` str, the rest float64; a negative
    ``diameter_mm`` marks an excluded finding of unknown size). With `seriesuids` (a list of UIDs or the path
    of a ``seriesuids.csv``), every row's UID must be in it.
    """
    return _read_table(path, ANNOTATION_COLUMNS, seriesuids)


def read_candidates(path: str | os.PathLike, seriesuids: UidList = None) -> pd.DataFrame:
    """Read ``candidates.csv`` / ``candidates_V2.csv``: candidate centres (x, y, z) mm with ``class`` 0 or 1.

    Returns the columns of :data:`CANDIDATE_COLUMNS` (``class`` int64). Validation as in :func:`read_annotations`,
    and every class must be 0 or 1.
    """
    return _read_table(path, CANDIDATE_COLUMNS, seriesuids, int_column="class")


def read_results(path: str | os.PathLike, seriesuids: UidList = None) -> pd.DataFrame:
    """Read a CAD results CSV (LUNA16 submission format): marks at (x, y, z) mm with a ``probability``.

    Returns the columns of :data:`RESULT_COLUMNS` first, then any extra columns of the file unchanged (the
    official evaluation looks columns up by name, so extra ones, e.g. a pandas index, are tolerated).
    """
    return _read_table(path, RESULT_COLUMNS, seriesuids, keep_extra=True)


def write_results(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Write CAD marks to `path` atomically as a LUNA16 results CSV (columns :data:`RESULT_COLUMNS`).

    Coordinates are world (x, y, z) mm. Values are written as float64 with pandas' shortest round-trip
    representation, so :func:`read_results` returns exactly the same numbers (probabilities that differ only
    in their last digits keep their order, which the FROC's threshold sweep depends on).
    """
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"results frame lacks column(s) {missing}; has {list(frame.columns)}")
    out = pd.DataFrame({"seriesuid": frame["seriesuid"].astype(str).to_numpy()})
    for col in RESULT_COLUMNS[1:]:
        values = pd.to_numeric(frame[col], errors="raise").to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            row = int(np.argmin(np.isfinite(values)))
            raise ValueError(f"results column {col} has NaN or infinite values (row {row})")
        out[col] = values
    save_csv(path, out, index=False)


def fold_split(subsets: Iterable[int], test: int | Iterable[int], val: int | None = None) -> dict[str, list[int]]:
    """Split LUNA16 subsets (the official folds) into train, validation and test subset indices.

    `subsets` are the subsets available; `test` (one index or several) is held out; `val` defaults to the
    next available subset after the last test subset (cyclically, skipping test subsets), so each of ten
    runs validates on a different fold; train is all the rest. Returns ``{"train": [...], "val": [val],
    "test": [...]}``, sorted. A test subset never appears in train or val. Raises ValueError when a test or
    the validation subset is not available, when they overlap, or when no subset is left for training.
    """
    available = sorted({int(s) for s in subsets})
    tests = sorted({int(test)} if isinstance(test, (int, np.integer)) else {int(t) for t in test})
    if not tests:
        raise ValueError("no test subset given")
    missing = [t for t in tests if t not in available]
    if missing:
        raise ValueError(f"test subset {missing[0]} is not among the available subsets {available}")
    if val is None:
        rest = [s for s in available if s not in tests]
        if not rest:
            raise ValueError(f"need a subset besides the test subsets {tests} to validate on; available: {available}")
        after = [s for s in available[available.index(tests[-1]) + 1:] + available if s not in tests]
        val = after[0]
    if val not in available:
        raise ValueError(f"validation subset {val} is not among the available subsets {available}")
    if val in tests:
        raise ValueError(f"validation subset {val} is also a test subset; they must differ")
    train = [s for s in available if s not in tests and s != val]
    if not train:
        raise ValueError(f"no subset left for training: available {available}, test {tests}, val {val}")
    return {"train": train, "val": [int(val)], "test": tests}


def default_folds(subsets: Iterable[int], n_test: int = 1) -> dict[str, list[int]]:
    """The folds a run takes when none are given: the last `n_test` subsets present are the test subsets,
    the one before them validates, the others train (on a LUNA16 download: test 9, validation 8)."""
    available = sorted({int(s) for s in subsets})
    if len(available) < n_test + 2:
        raise ValueError(f"{len(available)} subsets {available}: need {n_test} test subset(s), one validation "
                         "subset and at least one to train on")
    return fold_split(available, available[-n_test:], available[-n_test - 1])


class LunaDataset:
    """A LUNA16-layout folder: scans in ``<root>/subset<k>/<seriesuid>.mhd`` and the challenge CSVs.

    `scans` lists every ``.mhd`` found (columns ``seriesuid``, ``subset`` int, ``path`` str; the subset index
    comes from the folder name). CSVs are looked for at the root, then in ``CSVFILES/`` and ``annotations/``
    (see :data:`CSV_FOLDERS`); `paths` holds those found. `annotations`, `excluded` and `candidates` are read
    on first use and validated against ``seriesuids.csv`` when the root has one. `seriesuids` is that file's
    list, or the scans found when it is absent.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "no such folder (expected a LUNA16 root holding subset0/ ... subset9/)")
        self.scans = self._find_scans()
        self.subsets: list[int] = sorted(self.scans["subset"].unique().tolist())
        self._paths_by_uid = dict(zip(self.scans["seriesuid"], self.scans["path"]))
        self.paths: dict[str, Path] = {}
        for key, names in CSV_NAMES.items():
            found = self._find_csv(names)
            if found is not None:
                self.paths[key] = found
        if "seriesuids" in self.paths:
            self.seriesuids: list[str] = read_seriesuids(self.paths["seriesuids"])
            unlisted = self.scans[~self.scans["seriesuid"].isin(set(self.seriesuids))]
            if len(unlisted):
                # Every stage would take such a scan for a nodule-free one; the evaluation would ignore it.
                raise DataError(unlisted["path"].iloc[0], f"scan not listed in {self.paths['seriesuids']} "
                                f"({len(unlisted)} of the {len(self.scans)} scans on disk are not): remove the "
                                "scans that do not belong to this dataset, or add their UIDs to the list")
        else:
            self.seriesuids = sorted(self.scans["seriesuid"])

    def __repr__(self) -> str:
        return f"LunaDataset({str(self.root)!r}: {len(self.scans)} scans in subsets {self.subsets})"

    def __len__(self) -> int:
        return len(self.scans)

    def _find_scans(self) -> pd.DataFrame:
        folders = []
        for d in self.root.iterdir():
            m = _SUBSET.fullmatch(d.name)
            if m and d.is_dir():
                folders.append((int(m.group(1)), d))
        if not folders:
            loose = len(list(self.root.glob("*.mhd")))
            hint = f" (found {loose} .mhd files directly in it: move them into subset folders)" if loose else ""
            raise DataError(
                self.root,
                "no subset folders" + hint + "; expected the LUNA16 layout <root>/subset0 ... subset9/<seriesuid>.mhd"
                " (+ .raw), with annotations.csv, annotations_excluded.csv, candidates_V2.csv and seriesuids.csv in"
                " <root>, <root>/CSVFILES or <root>/annotations",
            )
        rows = []
        seen: dict[str, Path] = {}
        for subset, folder in sorted(folders):
            # rglob: an unzipped subsetN.zip sometimes nests as subsetN/subsetN/*.mhd.
            for mhd in sorted(folder.rglob("*.mhd")):
                if any(part.startswith(".") for part in mhd.relative_to(folder).parts):
                    continue  # hidden folders: an interrupted atomic write's temporary copies, never scans
                uid = mhd.stem
                if uid in seen:
                    raise DataError(mhd, f"duplicate series UID {uid}: also at {seen[uid]} (a scan is in one subset)")
                seen[uid] = mhd
                rows.append((uid, subset, str(mhd)))
        scans = pd.DataFrame(rows, columns=["seriesuid", "subset", "path"])
        scans["subset"] = scans["subset"].astype(np.int64)
        return scans

    def _find_csv(self, names: Sequence[str]) -> Path | None:
        for name in names:
            for folder in CSV_FOLDERS:
                p = self.root / folder / name
                if p.is_file():
                    return p
        return None

    def _require(self, key: str) -> Path:
        if key not in self.paths:
            names = " or ".join(CSV_NAMES[key])
            raise DataError(self.root, f"no {names} in {', '.join('<root>/' + f for f in CSV_FOLDERS)}")
        return self.paths[key]

    def _uid_check(self) -> list[str] | None:
        # Only a seriesuids.csv defines the scan set: with a partial download (a few subsets) the CSVs
        # legitimately name scans that are not on disk.
        return self.seriesuids if "seriesuids" in self.paths else None

    @functools.cached_property
    def annotations(self) -> pd.DataFrame:
        """``annotations.csv``: the reference nodules (see :func:`read_annotations`)."""
        return read_annotations(self._require("annotations"), self._uid_check())

    @functools.cached_property
    def excluded(self) -> pd.DataFrame:
        """``annotations_excluded.csv``: irrelevant findings the evaluation ignores (see :func:`read_annotations`);
        an empty frame with the same columns when the root has no such file."""
        if "excluded" not in self.paths:
            return pd.DataFrame({c: pd.Series(dtype=str if c == "seriesuid" else np.float64)
                                 for c in ANNOTATION_COLUMNS})
        return read_annotations(self.paths["excluded"], self._uid_check())

    @functools.cached_property
    def candidates(self) -> pd.DataFrame:
        """``candidates_V2.csv`` (else ``candidates.csv``): labelled candidates (see :func:`read_candidates`)."""
        return read_candidates(self._require("candidates"), self._uid_check())

    def scan_path(self, uid: str) -> Path:
        """Path of the ``.mhd`` of series `uid`; :class:`DataError` if no such scan is on disk."""
        try:
            return Path(self._paths_by_uid[uid])
        except KeyError:
            raise DataError(self.root, f"unknown series UID {uid}: no {uid}.mhd in any subset folder") from None

    def subset_of(self, uid: str) -> int:
        """The subset (fold) index that holds series `uid`."""
        self.scan_path(uid)
        return int(self.scans.loc[self.scans["seriesuid"] == uid, "subset"].iloc[0])

    def load(self, uid: str, canonical: bool = True) -> Volume:
        """Read the scan of series `uid`: HU array (z, y, x) with its geometry, in the canonical orientation
        every stage uses unless `canonical` is False (see :func:`lungnodule.volume.read_volume`); a missing or
        bad ``.raw`` is a DataError."""
        return read_volume(self.scan_path(uid), canonical=canonical)

    def scan_key(self, uid: str) -> str:
        """A fingerprint of what a per-scan cache entry of series `uid` is made from: the resolved path, size and
        modification time of each of its files (header and data file) and its rows of `annotations.csv` and
        `annotations_excluded.csv`. It changes when the scan is replaced, the data root points elsewhere, or an
        annotation of the scan is edited; stages key their caches on it (with their own settings)."""
        h = hashlib.sha1()
        for f in volume_files(self.scan_path(uid)):
            st = f.stat()
            h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        for key in ("annotations", "excluded"):
            if key in self.paths:
                frame = getattr(self, key)
                rows = frame[frame["seriesuid"] == uid]
                h.update(rows.to_csv(index=False).encode())
        return h.hexdigest()[:16]

    def uids_in(self, subsets: int | Iterable[int]) -> list[str]:
        """Sorted series UIDs of the scans in `subsets` (one index or several)."""
        wanted = [int(subsets)] if isinstance(subsets, (int, np.integer)) else [int(s) for s in subsets]
        return sorted(self.scans.loc[self.scans["subset"].isin(wanted), "seriesuid"])


# --- CSV validation ---------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DataError(path, "no such file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(path, "not a text CSV file (cannot decode as UTF-8)") from None


def _as_uid_list(seriesuids) -> tuple[set[str], str]:
    if isinstance(seriesuids, (str, os.PathLike)):
        return set(read_seriesuids(seriesuids)), Path(seriesuids).name
    return set(map(str, seriesuids)), "seriesuids.csv"


def _read_table(
    path, columns: list[str], seriesuids: UidList, int_column: str | None = None, keep_extra: bool = False
) -> pd.DataFrame:
    """Read a LUNA16 CSV with header; validate `columns` (``seriesuid`` str, the rest numeric) vectorised."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such file")
    try:
        # Blank lines are kept as all-NaN rows so that row i is file line i + 2 (header = line 1); they
        # (and lines of only commas) carry no data and are dropped below, keeping their line numbers.
        frame = pd.read_csv(path, dtype={"seriesuid": str}, skip_blank_lines=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError(path, f"empty file (expected header {','.join(columns)})") from None
    except pd.errors.ParserError as exc:
        m = re.search(r"in line (\d+)", str(exc))
        raise DataError(path, f"malformed CSV: {str(exc).strip()}", line=int(m.group(1)) if m else None) from None
    except UnicodeDecodeError:
        raise DataError(path, "not a text CSV file (cannot decode as UTF-8)") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing column '{missing[0]}' (columns: {', '.join(frame.columns)})", line=1)

    lines = np.arange(len(frame)) + 2
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        frame, lines = frame.loc[~blank], lines[~blank]

    def fail(mask: np.ndarray, problem) -> None:
        if mask.any():
            i = int(np.argmax(mask))
            raise DataError(path, problem(i) if callable(problem) else problem, line=int(lines[i]))

    out = {}
    uid = frame["seriesuid"].str.strip()
    fail(uid.isna().to_numpy() | (uid == "").to_numpy(), "empty seriesuid")
    out["seriesuid"] = uid.astype(str).to_numpy()
    for col in columns[1:]:
        raw = frame[col]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        isnan = np.isnan(values)
        given = raw.notna().to_numpy()
        fail(isnan & given, lambda i: f"non-numeric value {str(raw.iloc[i]).strip()!r} in column {col}")
        fail(isnan, f"NaN in column {col} (empty cell or NaN)")
        fail(np.isinf(values), lambda i: f"non-finite value {values[i]} in column {col}")
        out[col] = values
    if int_column is not None:
        values = out[int_column]
        fail((values != 0) & (values != 1), lambda i: f"{int_column} {values[i]:g} is not 0 or 1")
        out[int_column] = values.astype(np.int64)
    if seriesuids is not None:
        known, source = _as_uid_list(seriesuids)
        unknown = ~pd.Series(out["seriesuid"]).isin(known).to_numpy()
        fail(unknown, lambda i: f"unknown series UID {out['seriesuid'][i]} (not in {source})")

    result = pd.DataFrame(out)
    if keep_extra:
        for col in frame.columns:
            if col not in columns:
                result[col] = frame[col].to_numpy()
    return result
