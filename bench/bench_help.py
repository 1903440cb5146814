"""How long each stage script takes to answer `--help` (target: under 2 s): TensorFlow is imported only after
the arguments are parsed. Prints the median of `--repeats` runs per script, each a fresh interpreter.

    python bench/bench_help.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ["Unet/preprocess.py", "Unet/train.py", "Unet/test.py", "3DCNN/preprocess.py", "3DCNN/train.py",
           "3DCNN/test.py", "CT-GAN/preprocess.py", "CT-GAN/train.py", "CT-GAN/test.py", "CT-GAN/tamper.py",
           "CT-GAN/gui.py", "CT-GAN/augment.py"]


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    out = {}
    for script in [*SCRIPTS, "lungnodule"]:
        cmd = [sys.executable, "-m", "lungnodule.cli", "demo", "--help"] if script == "lungnodule" else \
            [sys.executable, str(ROOT / script), "--help"]
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        out[script] = statistics.median(times)
        print(f"{script if script != 'lungnodule' else 'lungnodule demo':24s} --help  median {out[script]:.2f} s "
              f"({args.repeats} runs)", flush=True)
    print(f"slowest: {max(out.values()):.2f} s (target < 2 s)")
    return out


if __name__ == "__main__":
    main()
