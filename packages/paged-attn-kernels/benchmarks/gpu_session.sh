#!/usr/bin/env bash
# Everything the kernels' GPU documents need, in one run on a CUDA machine, from the
# repository root:
#
#   OUT=gpu-out bash packages/paged-attn-kernels/benchmarks/gpu_session.sh
#
# 1. versions and device -> $OUT/env.txt
# 2. the whole test suite: with CUDA present the gpu-marked tests run and the Triton,
#    cache-kernel and validation tests run compiled on the GPU -> $OUT/tests.log
# 3. the decode benchmark, both methods and its target check -> $OUT/decode.json (+ .md)
# 4. the varlen benchmark and its target check -> $OUT/unified.json, $OUT/unified.log
#
# QUICK=1 times the target shapes only; TEST_LIMIT / BENCH_LIMIT (seconds) move the
# limits. Each step has its own time limit and a failing step does not stop the next, so one run
# returns as much evidence as the machine gives. Without pytest / hypothesis / xdist on
# the machine, put their wheels in .whl/ (pip download --no-deps ... -d .whl) and they
# are installed into a private folder first. The whole run fits in about 9 minutes on
# an H100 (limits below: 4 + 2.5 + 2.5 minutes at most).
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
ROOT=$(pwd)
export PYTHONUNBUFFERED=1
export PYTHONPATH="$ROOT/packages/paged-attn-kernels/src:$ROOT/packages/block-allocator/src${PYTHONPATH:+:$PYTHONPATH}"
if ! python3 -c "import pytest, hypothesis, xdist" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/kernels-site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/kernels-site"
fi
cd "$ROOT/packages/paged-attn-kernels" || exit 2

python3 - > "$OUT/env.txt" 2>&1 <<'EOF'
import datetime, platform
import torch, triton
print("date", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
print("python", platform.python_version(), "torch", torch.__version__, "triton", triton.__version__)
print("cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0),
      "sms", torch.cuda.get_device_properties(0).multi_processor_count)
EOF
cat "$OUT/env.txt"

# the package runs from its sources here (PYTHONPATH), so it has no installed metadata
timeout ${TEST_LIMIT:-240} python3 -m pytest -q -n 8 -p no:cacheprovider -rfE tests \
    --deselect tests/test_backends.py::test_version_comes_from_the_package_metadata \
    > "$OUT/tests.log" 2>&1
echo "gpu tests: exit $?" | tee -a "$OUT/tests.log"
tail -n 25 "$OUT/tests.log"

timeout ${BENCH_LIMIT:-150} python3 benchmarks/bench_gpu.py ${QUICK:+--quick} --out "$OUT/decode.json" \
    > "$OUT/decode.log" 2>&1
echo "decode benchmark: exit $?" | tee -a "$OUT/decode.log"
tail -n 40 "$OUT/decode.log"

timeout ${BENCH_LIMIT:-150} python3 benchmarks/bench_gpu_unified.py ${QUICK:+--quick} --out "$OUT/unified.json" \
    > "$OUT/unified.log" 2>&1
echo "varlen benchmark: exit $?" | tee -a "$OUT/unified.log"
tail -n 40 "$OUT/unified.log"
