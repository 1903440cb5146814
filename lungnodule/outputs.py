"""Output paths checked against a command's inputs before anything is written: nothing given is overwritten.

Every command that writes files resolves each output to the files it will really write (suffixes added, an
`.mhd`'s data file included) and checks them against every file of every input (an `.mhd`'s data file as its
header names it, a DICOM folder and what it holds). Two paths are the same when they resolve to the same
location, when they differ only in case (macOS and Windows file systems ignore case), or when the system says
they are the same file (hard links). A clash raises :class:`~lungnodule.errors.DataError` naming both paths;
the command line turns it into one line on stderr and exit status 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .errors import DataError
from .volume import volume_files


def _resolved(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve(strict=False)


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when `a` and `b` name the same file: equal resolved paths, equal up to case, or the same inode."""
    ra, rb = _resolved(a), _resolved(b)
    if ra == rb or str(ra).casefold() == str(rb).casefold():
        return True
    try:
        return ra.exists() and rb.exists() and os.path.samefile(ra, rb)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    """True when `path` lies in `folder` (at any depth), case-insensitively."""
    p, f = str(_resolved(path)).casefold(), str(_resolved(folder)).casefold().rstrip(os.sep)
    return p.startswith(f + os.sep)


def input_files(inputs: Iterable[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """(file, the input it belongs to) for every file the inputs consist of (see
    :func:`lungnodule.volume.volume_files`: an `.mhd` and the data file it names); folders stay folders."""
    return [(f, Path(item)) for item in inputs for f in volume_files(item)]


def check_outputs(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]) -> None:
    """DataError when writing any of `outputs` could overwrite, or write inside, any of `inputs`.

    `outputs` are the exact files (or folders) a command will write, already resolved by the caller (e.g.
    :func:`lungnodule.volume.planned_volume_files`); `inputs` are the paths it reads, expanded here to the
    files they consist of. An output folder may not hold an input, nor an output lie inside an input folder.
    The message names the output and the input (and which of the input's files would be hit).
    """
    files = input_files(inputs)
    for out in map(Path, outputs):
        for src, given in files:
            what = f"the input {given}" if src == given else f"{src}, the data file of the input {given}"
            if same_path(out, src):
                raise DataError(out, f"would overwrite {what}; choose another output path (inputs are never "
                                     "overwritten)")
            if src.is_dir() and _inside(out, src):
                raise DataError(out, f"lies inside the input folder {given}; choose an output outside it")
            if out.is_dir() and _inside(src, out):
                raise DataError(out, f"is a folder holding {what}; choose another output path")


def check_file_output(path: str | os.PathLike, what: str = "output file") -> Path:
    """`path` as a Path; DataError when it names an existing folder (a file name is needed)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(path, f"is a folder; give the {what}'s file name (e.g. {path / 'findings.csv'})")
    return path
