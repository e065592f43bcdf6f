#!/usr/bin/env bash
# GPU benchmark on one NVIDIA H200, JAX backend, beside the PyTorch reference loop.
#
#   bash benchmarks/gpu.sh --out gpu_results        # on the GPU machine, <= 8 min
#   bash benchmarks/gpu.sh --smoke --out /tmp/gpu   # on CPU, the same code paths, < 2 min
#   bash benchmarks/gpu.sh --download-wheels        # on a machine with network (see below)
#
# The GPU machine has JAX (CUDA), PyTorch and Triton but no TensorFlow and no
# Keras. Normal mode therefore installs Keras and what it needs beyond that
# machine's packages from wheels in $RDML_WHEELS (default benchmarks/wheels/,
# git-ignored) into a private folder put on PYTHONPATH (the machine's own
# environment is left alone), then runs benchmarks/gpu.py on the JAX backend.
# Keras 3.15.1 needs absl-py, h5py, ml-dtypes, namex, numpy, optree, packaging
# and rich; that machine (Python 3.12) lacks only namex and optree, so the
# folder holds keras, namex and optree. Prepare it where pip can reach PyPI:
#
#   bash benchmarks/gpu.sh --download-wheels    # = pip download --no-deps keras==3.15.1
#                                               #   namex==0.1.0 optree==0.20.0 for cp312
#
# and bring it along (it is git-ignored: name benchmarks/wheels in `carry`).
# Already-installed Keras is used as is when no wheel folder exists.
#
# Everything lands in --out (default gpu_results/): gpu_tables.md (the report,
# also printed), results.json (every number), workers.log (each part's
# output), console.log (this script's output) and nvidia-smi.txt.
# --smoke runs on CPU with the packages already installed (ResNet-8, a few
# steps; see gpu.py). Exit status: non-zero when a part failed or a check did
# not pass.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=gpu_results
SMOKE=0
BUDGET=""
WHEELS="${RDML_WHEELS:-benchmarks/wheels}"
PYTHON="${PYTHON:-python3}"
KERAS_WHEELS=(keras==3.15.1 namex==0.1.0 optree==0.20.0)

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --smoke) SMOKE=1; shift ;;
    --budget) BUDGET="$2"; shift 2 ;;
    --download-wheels)
      mkdir -p "$WHEELS"
      # cp312 manylinux x86-64: the GPU machine's Python (see the header).
      "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$WHEELS" "${KERAS_WHEELS[@]}"
      ls -l "$WHEELS"
      exit 0 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

mkdir -p "$OUT"
exec > >(tee "$OUT/console.log") 2>&1
start=$(date +%s)
echo "# gpu.sh $(date -u +%FT%TZ) in $(pwd): out=$OUT smoke=$SMOKE"

if [ "$SMOKE" = 1 ]; then
  ARGS=(--smoke)
  BUDGET="${BUDGET:-110}"
else
  ARGS=()
  # 8 minutes in all: the install and this script's own work fit in the rest.
  BUDGET="${BUDGET:-420}"
  if compgen -G "$WHEELS/*.whl" > /dev/null; then
    SITE="$(mktemp -d)/site"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --target "$SITE" "$WHEELS"/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    echo "# installed $(ls "$WHEELS" | tr '\n' ' ')into $SITE"
  else
    echo "# no wheels in $WHEELS: using the installed Keras"
  fi
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "# nvidia-smi failed" >&2
fi
status=0
KERAS_BACKEND=jax PYTHONUNBUFFERED=1 "$PYTHON" benchmarks/gpu.py --out "$OUT" \
  --budget "$BUDGET" "${ARGS[@]}" || status=$?
echo "# gpu.sh: exit $status after $(( $(date +%s) - start )) s"
exit "$status"
