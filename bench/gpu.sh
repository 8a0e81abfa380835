#!/usr/bin/env bash
# The GPU run of bench/gpu.py (its docstring says why and how), in steps:
#   bench/gpu.sh prepare   here: fill the git-ignored .gpu-stage/ (Keras wheels, the SSIM-AE, NanoTWICE), print sizes
#   bench/gpu.sh slim      here: leave models/ figures/ notebooks/ tests/notebooks/ out of the work tree (sparse
#                          checkout), print what would travel
#   bench/gpu.sh unslim    here: put them back
#   bench/gpu.sh run       on the GPU machine (carry .gpu-stage): install the wheels, run bench/gpu.py into $OUT
set -euo pipefail
cd "$(dirname "$0")/.."
stage=.gpu-stage

travel_size() {  # what the device tool would send: tracked files in the work tree, untracked ones, the stage
    local tracked untracked staged
    tracked="$({ git ls-files -z | xargs -0 -r du -cb 2>/dev/null || true; } | tail -n 1 | cut -f1)"  # present ones
    untracked="$(git ls-files -z --others --exclude-standard | xargs -0 -r du -cb | tail -n 1 | cut -f1)"
    staged="$(du -sb "$stage" 2>/dev/null | cut -f1)"
    echo "would travel: $(( (${tracked:-0} + ${untracked:-0} + ${staged:-0}) >> 20 )) MiB with $stage (limit 64 MiB)"
}
case "${1:-}" in
prepare)
    data="${SSIMLIB_DATA:-../shared/data}/nanotwice"
    rm -rf "$stage" && mkdir -p "$stage/wheels" "$stage/models/nanotwice" "$stage/data"
    # Keras as tested here; namex and optree are the dependencies the machine lacks (absl-py, h5py, ml-dtypes,
    # numpy, packaging, rich are there). Python 3.12 wheels for x86-64 Linux.
    keras_version="$(python -c 'import importlib.metadata as m; print(m.version("keras"))')"
    python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$stage/wheels" "keras==$keras_version" namex optree
    cp models/nanotwice/ssim_ae.json models/nanotwice/ssim_ae.weights.h5 "$stage/models/nanotwice/"
    cp -r "$data" "$stage/data/nanotwice"
    du -sh "$stage"/*
    travel_size
    ;;
slim)
    git sparse-checkout set --no-cone '/*' '!/models/' '!/figures/' '!/notebooks/' '!/tests/notebooks/'
    travel_size
    ;;
unslim)
    git sparse-checkout disable
    ;;
run)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$stage"/wheels/*.whl
    export PYTHONPATH="/tmp/site:$PWD" SSIMLIB_DATA="$PWD/$stage/data" PYTHONUNBUFFERED=1
    export KERAS_BACKEND="${KERAS_BACKEND:-jax}" SSIMLIB_CACHE=/tmp/ssimlib-cache
    out="${OUT:?set OUT to the results folder}"
    { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
      python3 bench/gpu.py --out "$out" --models-root "$stage/models" --budget-seconds "${GPU_BUDGET:-480}"
    } 2>&1 | tee "$out/gpu.log"
    ;;
*)
    echo "usage: bench/gpu.sh prepare|slim|unslim|run" >&2
    exit 2
    ;;
esac
