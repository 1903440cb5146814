"""CT-GAN: interactive viewer to inject or remove nodules with the mouse (the original's GUI.py, rebuilt).

Opens SCAN (an .mhd file or a DICOM series folder) and the trained generators in WORK_DIR (from
CT-GAN/train.py). Scroll (mouse wheel or the Prev / Next buttons) through the axial slices; pick Inject
or Remove and click on the image to tamper at that voxel; Undo reverts the last change; HistEQ toggles a
histogram-equalised display; "Save DICOM" / "Save mhd" write the tampered scan to OUT_DIR (a new DICOM
series marked DERIVED, or an .mhd) with tamper_coordinates.csv (filename, x, y, z, tamper_type) beside it.
The input scan is never modified. All state lives in lungnodule.ctgan.viewer.TamperSession.

    python CT-GAN/gui.py data/synthetic/subset4/<uid>.mhd
"""

import argparse
from pathlib import Path

from lungnodule.ctgan.config import PRESETS
from lungnodule.errors import ModelMissingError
from lungnodule.scripting import run

WORK_DIR = "data/work/ctgan"
OUT_DIR = "data/tampered/gui"


def _models(work_dir: str) -> dict:
    from lungnodule.ctgan.tampering import load_tamper_model

    models = {}
    for mode in ("inject", "remove"):
        try:
            models[mode] = load_tamper_model(work_dir, mode)
        except ModelMissingError as exc:
            print(f"note: {exc}")
    return models


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scan", help=".mhd file or DICOM series folder")
    parser.add_argument("--work-dir", default=WORK_DIR, help="folder holding inject/ and remove/ models")
    parser.add_argument("--out-dir", default=OUT_DIR, help="where Save writes")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ log lines")
    args = parser.parse_args(argv)

    import matplotlib.pyplot as plt
    from matplotlib.widgets import Button, RadioButtons

    from lungnodule.ctgan.viewer import TamperSession  # after parsing: --help stays fast

    session = TamperSession.open(args.scan, _models(args.work_dir), PRESETS[args.preset])
    stem = Path(args.scan).name.removesuffix(".mhd")
    fig, ax = plt.subplots(figsize=(8, 8.6))
    fig.subplots_adjust(bottom=0.16)
    shown = ax.imshow(session.image(), cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()

    def redraw(message: str = "") -> None:
        shown.set_data(session.image())
        ax.set_title(f"slice {session.slice_index + 1}/{session.volume.shape[0]}   mode: {session.mode}   "
                     f"tampered: {len(session.records)}" + (f"\n{message}" if message else ""), fontsize=9)
        fig.canvas.draw_idle()

    def on_scroll(event):
        session.scroll(1 if event.button == "up" else -1)
        redraw()

    def on_click(event):
        if event.inaxes is not ax or event.xdata is None or fig.canvas.widgetlock.locked():
            return
        try:
            session.click(event.ydata, event.xdata)
            redraw(f"{session.mode} at voxel ({session.slice_index}, {event.ydata:.0f}, {event.xdata:.0f})")
        except (RuntimeError, ValueError) as exc:
            redraw(str(exc))

    def save(fmt: str):
        i = 0
        while (Path(args.out_dir) / f"{stem}_tampered{i}").exists():
            i += 1
        folder = Path(args.out_dir) / f"{stem}_tampered{i}"
        scan, csv = session.save(folder if fmt == "dicom" else folder / f"{stem}_tampered.mhd", fmt)
        redraw(f"saved {scan} and {csv.name}")

    def button(pos, label, callback):
        b = Button(fig.add_axes(pos), label)
        b.on_clicked(lambda _event: callback())
        return b

    radio = RadioButtons(fig.add_axes([0.02, 0.02, 0.12, 0.1]), ("inject", "remove"))
    radio.on_clicked(lambda label: (session.set_mode(label), redraw()))
    buttons = [
        button([0.16, 0.03, 0.1, 0.06], "Prev", lambda: (session.scroll(-1), redraw())),
        button([0.27, 0.03, 0.1, 0.06], "Next", lambda: (session.scroll(1), redraw())),
        button([0.38, 0.03, 0.1, 0.06], "Undo", lambda: redraw("undone" if session.undo() else "nothing to undo")),
        button([0.49, 0.03, 0.12, 0.06], "HistEQ", lambda: (setattr(session, "equalize", not session.equalize),
                                                             redraw())),
        button([0.62, 0.03, 0.17, 0.06], "Save DICOM", lambda: save("dicom")),
        button([0.80, 0.03, 0.17, 0.06], "Save mhd", lambda: save("mhd")),
    ]
    fig.canvas.mpl_connect("scroll_event", on_scroll)
    fig.canvas.mpl_connect("button_press_event", on_click)
    redraw()
    plt.show()
    return session, buttons, radio


if __name__ == "__main__":
    run(main)
