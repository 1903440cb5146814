"""`preview.png` of a synthetic dataset: a few slices of a few scans with the annotated nodules ringed.

Top row: the axial slice through one nodule of each shown scan, in the lung window (-1000..400 HU),
in one orientation (scans are read canonically: those stored flipped look like the rest), with every
annotated nodule of that slice ringed; bottom row: a 64 mm close-up of the same nodule, where the vessel cross-sections
that make detection hard can be compared with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle

from ..atomic import save_figure
from ..volume import read_geometry, read_volume

WINDOW = (-1000, 400)


def render_preview(root, annotations: pd.DataFrame, subsets: dict[str, int], path, n_show: int = 4) -> Path:
    """Draw the preview of the dataset under `root` into `path` (PNG, written atomically).

    `annotations` has seriesuid, coordX/Y/Z (world mm) and diameter_mm; `subsets` maps each series UID (in
    dataset order) to its subset. Scans with nodules are shown first (the largest nodule of each).
    """
    root = Path(root)
    uids = list(subsets)
    with_nod = [u for u in uids if u in set(annotations["seriesuid"])]
    shown = (with_nod + [u for u in uids if u not in with_nod])[:n_show]
    fig = Figure(figsize=(3.6 * len(shown), 7.6))
    axes = fig.subplots(2, len(shown), squeeze=False)
    for col, uid in enumerate(shown):
        k = uids.index(uid)
        path_k = root / f"subset{subsets[uid]}" / f"{uid}.mhd"
        vol = read_volume(path_k)  # canonical: the same orientation whatever the storage
        stored_flipped = read_geometry(path_k)["direction"][0, 0] < 0
        ann = annotations[annotations["seriesuid"] == uid]
        if len(ann):
            best = ann.sort_values("diameter_mm", ascending=False).iloc[0]
            z = int(np.rint(vol.world_to_voxel(best[["coordX", "coordY", "coordZ"]].to_numpy(float))[0]))
        else:
            best, z = None, vol.shape[0] // 2
        img = vol.array[z].astype(np.float32)
        idx = vol.world_to_voxel(ann[["coordX", "coordY", "coordZ"]].to_numpy(float)) if len(ann) else np.zeros((0, 3))
        sxy = float(vol.spacing[0])
        top, bottom = axes[0, col], axes[1, col]
        top.imshow(img, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], interpolation="nearest")
        n_here = 0
        for (zz, yy, xx), d in zip(idx, ann["diameter_mm"].to_numpy(float)):
            if abs(zz - z) * vol.spacing[2] <= d / 2:
                n_here += 1
                for ax in (top, bottom):
                    ax.add_patch(Circle((xx, yy), d / 2 / sxy * 1.6 + 3, fill=False, color="red", lw=1.2))
        note = " (stored flipped)" if stored_flipped else ""
        top.set_title(f"scan {k}, slice {z}/{vol.shape[0]}{note}\n{n_here} nodule(s) ringed, "
                      f"{vol.spacing[0]:.2f}x{vol.spacing[2]:.2f} mm", fontsize=8)
        if best is not None:
            _, cy, cx = idx[int(np.argmax(ann["diameter_mm"].to_numpy(float)))]
            half = 32.0 / sxy
            top.add_patch(Rectangle((cx - half, cy - half), 2 * half, 2 * half, fill=False, color="yellow", lw=0.8))
            bottom.imshow(img, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], interpolation="nearest")
            bottom.set_xlim(cx - half, cx + half)
            bottom.set_ylim(cy + half, cy - half)
            bottom.set_title(f"64 mm close-up: nodule {best['diameter_mm']:.1f} mm (red)\n"
                             "bright dots/lines around it are vessels", fontsize=8)
        else:
            bottom.text(0.5, 0.5, "scan without nodules", ha="center", va="center", transform=bottom.transAxes)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Synthetic LUNA16-format scans (lung window -1000..400 HU): annotated nodules in red", fontsize=10)
    save_figure(path, fig, dpi=110)
    return Path(path)
