#!/usr/bin/env bash
# The GPU check of issue 17 in one go (about 8 minutes on one GPU): install what is missing, run the
# CUDA tests (tests/test_triton_cuda.py: the Triton scans vs the torch scans, the compiled net on
# CUDA; the lean max pooling and spike-fed convolution on CUDA; tests/test_cuda_scans.py: every fused
# torch scan on CUDA vs the CPU), then benchmarks/gpu.py. Logs and the benchmark's JSON go to $OUT (default ./gpu-out).
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --prepare  # here, beforehand: pure-Python wheels into .whl/ for a
#                                           # machine that reaches no package index (carry .whl)
#
# It uses the machine's own python3 and torch (PY= to choose another); triton is installed with a
# constraints file pinning that torch when it is missing. snngraph runs from a copy of this tree laid
# out as its package (snngraph/, passes/ -> snngraph/passes, runtimes/ -> snngraph/runtimes).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PY=${PY:-python3}
OUT=${OUT:-$REPO/gpu-out}

if [ "${1:-}" = "--prepare" ]; then
    exclude=$(git rev-parse --git-path info/exclude)
    grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
    # the peers, and what the tests and benchmarks import beyond torch and numpy (a bare GPU image may
    # lack pytest, hypothesis or tqdm); pytest-xdist spreads the CUDA tests' kernel compiles over the cores
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d .whl snntorch==1.0.0 spikingjelly==2.0.0 loguru \
        celluloid tqdm hypothesis==6.155.7 sortedcontainers pytest pluggy iniconfig packaging pygments pytest-xdist \
        execnet  # (hypothesis: its newest pure-Python wheel; the later ones are built per Python version)
    ls -la .whl
    exit 0
fi

mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then  # carried wheels (see --prepare), one at a time: one that does not
    for wheel in .whl/*.whl; do          # fit this Python is reported and the rest still install
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-site \
            "$wheel" || echo "gpu_check: could not install $wheel"
    done
    export PYTHONPATH=/tmp/gpu-site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! "$PY" -c "import triton" 2>/dev/null; then
    "$PY" -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > /tmp/gpu-constraints.txt
    "$PY" -m pip install -q -c /tmp/gpu-constraints.txt triton || echo "triton could not be installed"
fi
"$PY" - <<'EOF' | tee "$OUT/env.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
print("device", torch.cuda.get_device_name() if torch.cuda.is_available() else None)
for name in ("triton", "snntorch", "spikingjelly", "cupy"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as e:  # noqa: BLE001
        print(name, "missing:", type(e).__name__)
EOF

SRC=/tmp/gpu-snngraph  # the package laid out as an install would
rm -rf "$SRC" && mkdir -p "$SRC"
cp -r snngraph "$SRC/snngraph" && cp -r passes "$SRC/snngraph/passes" && cp -r runtimes "$SRC/snngraph/runtimes"
export PYTHONPATH=$SRC${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
unset TRITON_INTERPRET

status=0
# eight test processes where pytest-xdist imports: the Triton and inductor compiles are CPU-bound
WORKERS=$("$PY" -c "import xdist; print('-n 8')" 2>/dev/null || true)
# -W default: a newer or older torch's deprecation warnings are shown, not turned into failures
(cd "$SRC" && timeout 240 "$PY" -m pytest -q -p no:cacheprovider -W default -rs $WORKERS --rootdir "$REPO" \
    "$REPO/tests/test_triton_cuda.py" "$REPO/tests/test_lean_max_pool.py" "$REPO/tests/test_spike_conv.py" 2>&1) \
    | tee "$OUT/cuda_tests.log" || status=1
# every fused torch scan on the GPU against the CPU, eager and compiled (the scans' custom ops)
(cd "$SRC" && timeout 240 "$PY" -m pytest -q -p no:cacheprovider -W default -rs $WORKERS --rootdir "$REPO" \
    "$REPO/tests/test_cuda_scans.py" 2>&1) | tee "$OUT/cuda_scans.log" || status=1
timeout 300 "$PY" benchmarks/gpu.py --repeats 10 --json "$OUT/gpu.json" 2>&1 | tee "$OUT/gpu_bench.log" || status=1
echo "gpu_check: status $status; logs in $OUT"
exit $status
