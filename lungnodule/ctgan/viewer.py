"""The state behind `CT-GAN/gui.py` (the original's interactive viewer), free of any display.

A :class:`TamperSession` holds a scan, the current slice, the tampering mode and an undo stack; a click
on voxel (y, x) of the current slice tampers there, `undo` restores the previous state, `save` writes
the tampered scan (DICOM series or `.mhd`) and `tamper_coordinates.csv` (the original's columns
filename, x, y, z, tamper_type; plus the voxel indices) beside it. The GUI only draws and forwards
events, so everything here is tested without a display.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import save_csv
from ..intensity import window_hu
from ..volume import Volume, read_volume
from .config import CTGANConfig, _mode
from .tampering import check_destination, tamper, write_tampered

CSV_NAME = "tamper_coordinates.csv"


@dataclass
class TamperSession:
    """An interactive tampering session on one scan (display-free).

    `models` maps "inject" / "remove" to a :class:`TamperModel` (either may be missing: that action is
    then refused). `source` is the scan's path (recorded in the CSV; never written to).
    """

    volume: Volume
    models: dict
    source: str | os.PathLike | None = None
    config: CTGANConfig = field(default_factory=CTGANConfig)
    mode: str = "inject"
    slice_index: int = 0
    equalize: bool = False
    history: list = field(default_factory=list)  # (volume before, record) per tampering
    stored_direction: np.ndarray | None = None  # how the source is stored; the saved scan is stored the same way

    @classmethod
    def open(cls, path: str | os.PathLike, models: dict, config: CTGANConfig | None = None) -> "TamperSession":
        """A session on the scan at `path` (`.mhd` or a DICOM folder), starting at the middle slice.

        The scan is shown and tampered in the canonical orientation the GANs were trained in
        (:meth:`~lungnodule.volume.Volume.canonical`) and saved in its own storage orientation."""
        stored = read_volume(path, canonical=False)
        volume = stored.canonical()
        return cls(volume, models, source=path, config=config or CTGANConfig(), slice_index=volume.shape[0] // 2,
                   stored_direction=stored.direction)

    @property
    def original(self) -> Volume:
        """The scan as loaded."""
        return self.history[0][0] if self.history else self.volume

    @property
    def records(self) -> list[dict]:
        """What was tampered where, in order."""
        return [r for _, r in self.history]

    def scroll(self, step: int) -> int:
        """Move `step` slices (clamped to the scan) and return the new slice index."""
        self.slice_index = int(np.clip(self.slice_index + step, 0, self.volume.shape[0] - 1))
        return self.slice_index

    def set_mode(self, mode: str) -> None:
        """Choose what a click does: "inject" or "remove"."""
        self.mode = _mode(mode)

    def image(self) -> np.ndarray:
        """The current slice for display in [0, 1]: lung window, or histogram-equalised when `equalize`."""
        hu = self.volume.array[self.slice_index].astype(np.float32)
        if not self.equalize:
            return window_hu(hu)
        ranks = np.argsort(np.argsort(hu, axis=None, kind="stable"), kind="stable").reshape(hu.shape)
        return ranks / max(hu.size - 1, 1)

    def click(self, y: float, x: float) -> dict:
        """Tamper (current mode) at voxel (current slice, y, x); returns the record added."""
        if self.mode not in self.models or self.models[self.mode] is None:
            raise RuntimeError(f"no {self.mode} model loaded (train it with `python CT-GAN/train.py --mode {self.mode}`)")
        voxel = np.array([self.slice_index, y, x], dtype=np.float64)
        if not self.volume.contains(voxel):
            raise ValueError(f"voxel {tuple(voxel)} lies outside the scan of shape {self.volume.shape}")
        tampered = tamper(self.volume, voxel, self.mode, self.models[self.mode], coords="vox", config=self.config)
        world = self.volume.voxel_to_world(voxel)
        record = {"filename": str(self.source) if self.source is not None else "", "x": world[0], "y": world[1],
                  "z": world[2], "tamper_type": self.mode, "voxel_z": voxel[0], "voxel_y": voxel[1], "voxel_x": voxel[2]}
        self.history.append((self.volume, record))
        self.volume = tampered
        return record

    def undo(self) -> bool:
        """Revert the last tampering; False when there is nothing to undo."""
        if not self.history:
            return False
        self.volume, _ = self.history.pop()
        return True

    def save(self, destination: str | os.PathLike, fmt: str = "dicom") -> tuple[Path, Path]:
        """Write the tampered scan (`fmt` "dicom": a series folder; "mhd": a file) and the CSV beside it.

        The series description says what was done (inserted, removed or both). Returns (scan path, CSV path).
        """
        if self.source is not None:
            check_destination(self.source, destination, fmt)
        used = {r["tamper_type"] for r in self.records} or {self.mode}
        mode = used.pop() if len(used) == 1 else "both"
        volume = self.volume if self.stored_direction is None else self.volume.reoriented(self.stored_direction)
        sites = [[r["x"], r["y"], r["z"]] for r in self.records]
        written = write_tampered(volume, destination, mode, fmt=fmt, source=self.source, sites_xyz=sites)
        csv = (written if fmt == "dicom" else written.parent) / CSV_NAME
        save_csv(csv, pd.DataFrame(self.records, columns=["filename", "x", "y", "z", "tamper_type", "voxel_z",
                                                          "voxel_y", "voxel_x"]))
        return written, csv
