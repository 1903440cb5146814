"""What a run ran on, and the seeding that makes it repeatable.

Every training run and every summary records :func:`run_info`: the commit, Python, NumPy, Keras, the Keras
backend and its version, the platform and the seed. :func:`seed_everything` seeds Python, NumPy and the Keras
backend and turns on TensorFlow's op determinism, so the same commit, lock file, seed and machine give the
same figures to the last digit.
"""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the checkout this package runs from, with "+dirty" when files differ from it; "unknown"
    outside a git checkout (an installed wheel)."""
    try:
        head = subprocess.run(["git", "-C", str(_REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def backend_version() -> tuple[str, str]:
    """(Keras backend name, version of the library behind it)."""
    import keras

    name = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy"}.get(name, name)
    try:
        version = __import__(module).__version__
    except ImportError:
        version = "unknown"
    return name, version


def cpu_description() -> str:
    """The processor model and the widest x86 vector extension it offers ("AMD EPYC, AVX-512"), read from
    /proc/cpuinfo; the processor name alone elsewhere. TensorFlow's oneDNN kernels pick code paths by vector
    extension, so two runs are comparable to the last digit only on the same one."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    # The first processor's entry: "key<tab>: value" lines, the same for every core.
    fields = dict(line.split(":", 1) for line in text.split("\n\n")[0].splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    model = fields.get("model name") or platform.processor() or "unknown"
    flags = set(fields.get("flags", "").split())
    isa = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX")) if flag in flags),
               None)
    return f"{model}, {isa}" if isa else model


def run_info(seed: int | None = None) -> dict:
    """The versions and machine a run ran on, and its seed: commit, python, numpy, keras, backend,
    backend_version, platform, cpu (model and vector extension), cpus, seed."""
    import keras
    import numpy as np

    name, version = backend_version()
    return {"commit": git_commit(), "python": platform.python_version(), "numpy": np.__version__,
            "keras": keras.__version__, "backend": name, "backend_version": version,
            "platform": f"{platform.machine()}, {platform.system()}", "cpu": cpu_description(),
            "cpus": os.cpu_count(), "seed": None if seed is None else int(seed)}


def describe(info: dict) -> str:
    """`run_info` as one line for a summary."""
    return (f"commit {info['commit']}; Python {info['python']}, NumPy {info['numpy']}, Keras {info['keras']} on "
            f"{info['backend']} {info['backend_version']}; {info['platform']}, "
            f"{info.get('cpu', 'cpu not recorded')}, {info['cpus']} CPUs; seed {info['seed']}")


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy and the Keras backend (``keras.utils.set_random_seed``) and, under
    TensorFlow, make its ops deterministic (``tf.config.experimental.enable_op_determinism``)."""
    import keras

    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
