"""Atomic file output: write beside the destination, then rename, so no partial file is ever left."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

# Prefix of the temporary folders of atomic_dir: hidden, so dataset discovery never enters them.
TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the destination's folder; on success rename it onto `path`.

    The parent folder is created. On an exception the temporary file is removed and `path` is left
    as it was (absent, or its previous content).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the output the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success its files are moved into `path`.

    Used for outputs made of several files (an `.mhd` with its `.raw`, a DICOM series): every file
    is complete before any of them appears under its final name.
    """
    path = Path(path)
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=path))
    ok = False
    try:
        yield tmp
        # Data files first, headers last: a reader never finds a header whose data is missing.
        names = sorted(os.listdir(tmp), key=lambda n: n.endswith((".mhd", ".nhdr")))
        for name in names:
            os.replace(tmp / name, path / name)
        ok = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok and created:
            with contextlib.suppress(OSError):
                path.rmdir()  # only if still empty: a failed run leaves no folder it made


def remove_stale_tmp(folder: str | os.PathLike) -> int:
    """Remove the temporary folders an interrupted :func:`atomic_dir` left in `folder` (and its subfolders);
    returns how many. Only names starting with the atomic prefix are touched."""
    count = 0
    for tmp in sorted(Path(folder).rglob(TMP_PREFIX + "*")):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            count += 1
    return count


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save `array` to `path` (`.npy`) atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_csv(path: str | os.PathLike, frame, **kwargs) -> None:
    """Write a pandas DataFrame to CSV atomically (`index=False` unless given)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)


def save_figure(path: str | os.PathLike, fig, **kwargs) -> None:
    """Save a matplotlib figure atomically; the format follows `path`'s suffix."""
    kwargs.setdefault("dpi", 120)
    kwargs.setdefault("bbox_inches", "tight")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
