#!/usr/bin/env bash
# GPU figures in one go (at most about 8 minutes): every network's training samples/s under JAX and PyTorch
# (demo and paper presets, random data, 1 device and all devices), U-Net candidate detection seconds per
# 512 x 512 x 300 scan (paper U-Net), MGI-CNN inference patches/s, and `lungnodule detect` seconds per
# 512-px `luna`-preset scan. Writes everything to one file: $1, else $OUT/gpu_figures.txt, else
# ./gpu_figures.txt.
#
# For a GPU machine with JAX and/or PyTorch built for CUDA but no TensorFlow. The project's other
# dependencies are installed from ./.whl/ when that folder exists (no network needed); prepare it here with
#   pip download -d .whl --only-binary=:all: --python-version 3.11 --platform manylinux2014_x86_64 \
#       keras scipy SimpleITK pydicom scikit-image scikit-learn pandas matplotlib Pillow opencv-python-headless tqdm
# (match the GPU machine's Python) and carry it along. Run from the repository root:
#   bash bench/gpu.sh
# Each step has its own time limit, so one that fails or hangs costs its limit and the rest still run.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-.}/gpu_figures.txt}"
mkdir -p "$(dirname "$out")"
: > "$out"
log() { echo "$*" | tee -a "$out"; }
step() {  # step SECONDS TITLE COMMAND...: run with a limit; its output goes to the console and the file
    local limit=$1 title=$2; shift 2
    log ""
    log "## $title (KERAS_BACKEND=${KERAS_BACKEND:-unset}, limit ${limit} s)"
    local t0=$SECONDS
    PYTHONUNBUFFERED=1 timeout "$limit" "$@" 2>&1 | grep -v -e "^WARNING: All log" -e "^I0000" | tee -a "$out"
    log "-> exit ${PIPESTATUS[0]}, $((SECONDS - t0)) s"
}

if [ -d .whl ]; then
    python -m pip install -q --no-index --find-links .whl keras scipy SimpleITK pydicom scikit-image scikit-learn \
        pandas matplotlib Pillow opencv-python-headless tqdm 2>&1 | tail -3
fi
python -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -3 || true

log "# bench/gpu.sh on $(hostname), $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
log "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
log "$(python -c 'import sys, platform; print("Python", sys.version.split()[0], platform.machine())')"
for m in jax torch keras numpy SimpleITK; do
    log "$(python -c "import $m; print('$m', getattr($m, '__version__', '?'))" 2>/dev/null || echo "$m: not installed")"
done

for backend in jax torch; do
    python -c "import $backend" 2>/dev/null || { log ""; log "## $backend: not installed, skipped"; continue; }
    export KERAS_BACKEND=$backend
    step 100 "training samples/s, demo networks, 1 device" \
        python bench/bench_scale.py --skip-workers --real-devices --devices 1 --preset demo --steps 20
    step 120 "training samples/s, paper networks, 1 device" \
        python bench/bench_scale.py --skip-workers --real-devices --devices 1 --preset paper --steps 10
    ndev=$(python -c "from lungnodule.devices import visible; print(len(visible()))" 2>/dev/null || echo 1)
    if [ "$ndev" -gt 1 ]; then
        step 120 "training samples/s, paper networks, $ndev devices" \
            python bench/bench_scale.py --skip-workers --real-devices --devices "$ndev" --preset paper --steps 10
    fi
    step 60 "U-Net candidates, seconds per 512 x 512 x 300 scan (paper U-Net)" \
        python bench/bench_unet_inference.py --repeats 3 --batch-size 32
    step 60 "MGI-CNN inference patches/s" python bench/bench_mgicnn.py --candidates 500
done

export KERAS_BACKEND=jax
step 120 "lungnodule detect, seconds per 512-px scan (2 luna-preset scans, 1 worker)" \
    python bench/bench_scale.py --skip-devices --scans 2 --workers 1
log ""
log "figures written to $out"
