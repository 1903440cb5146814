"""CT-GAN: inject or remove nodules in a CT scan with trained generators (the original's tamper.py CLI).

Reads the target scan (-t: an .mhd file or a DICOM series folder; DICOM is converted to HU) and the
generator of the chosen action from WORK_DIR/<action>/ (made by CT-GAN/train.py). Tampers at each
coordinate (-c, several allowed): voxel indices z,y,x with `-s vox` (default, as the original), or world
millimetres x,y,z (the LUNA16 CSV order) with `-s world`. Writes the result to the destination (-d): a new
DICOM series folder (`-f dicom`, new UIDs, ImageType DERIVED, SeriesDescription saying what was done) or an
.mhd file (`-f mhd`: `-d` itself when it ends in .mhd, `-d`/tampered.mhd for a folder, else `-d` + .mhd; marked
by CTGAN_* header fields). The input is never modified: a destination that would overwrite any file of the
input (its .raw included) is refused with exit status 2.

    python CT-GAN/tamper.py -t data/synthetic/subset4/<uid>.mhd -d out/tampered -a inject -c 60,128,140
"""

import argparse
import sys

from lungnodule.ctgan.config import PRESETS
from lungnodule.scripting import parse_points, protect_negative_points, run

WORK_DIR = "data/work/ctgan"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-t", "--target", required=True, help="scan to tamper: .mhd file or DICOM folder")
    parser.add_argument("-d", "--destination", required=True, help="output DICOM folder, or .mhd file")
    parser.add_argument("-a", "--action", choices=["inject", "remove"], required=True)
    parser.add_argument("-c", "--coord", nargs="+", required=True, metavar="A,B,C",
                        help="z,y,x voxel indices (-s vox) or x,y,z mm (-s world); several allowed")
    parser.add_argument("-s", "--system", choices=["vox", "world"], default="vox", help="coordinate system")
    parser.add_argument("-f", "--format", choices=["dicom", "mhd"], default="dicom", help="output format")
    parser.add_argument("--work-dir", default=WORK_DIR, help="folder holding inject/ and remove/ models")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                        help="touch-up settings (all presets share them unless changed)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's C++ log lines")
    args = parser.parse_args(protect_negative_points(sys.argv[1:] if argv is None else argv))
    config = PRESETS[args.preset]
    points = parse_points(args.coord)
    from lungnodule.ctgan.tampering import check_destination, load_tamper_model, tamper_file  # after parsing

    check_destination(args.target, args.destination, args.format)  # before the model is loaded
    model = load_tamper_model(args.work_dir, args.action)
    out, seconds = tamper_file(args.target, args.destination, args.action, points, model, coords=args.system,
                               fmt=args.format, config=config)
    print(f"{args.action}: {len(points)} site(s) in {seconds:.2f} s; written to {out}")
    return out


if __name__ == "__main__":
    run(main)
