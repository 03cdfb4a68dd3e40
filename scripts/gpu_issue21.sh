#!/bin/bash
# Issue 21's GPU measurements, run on a lent GPU machine from the repository root (results under $OUT):
#   bash scripts/gpu_issue21.sh tests|scan|engine|profile ...
# Needs the mamba-ssm and causal-conv1d wheels in .gpuwheels/ (git-ignored; see ../shared/wheels/README.md).
set -o pipefail
export PYTHONUNBUFFERED=1 OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-deps --no-index --target /tmp/gpusite .gpuwheels/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/gpusite
{ nvidia-smi -L; python3 -c "import torch, triton, mamba_ssm; print('torch', torch.__version__, 'triton',
  triton.__version__, 'mamba_ssm', mamba_ssm.__version__)"; } | tee -a "$OUT/device.txt"
for step in "$@"; do
  case $step in
    tests) timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_scan_triton.py tests/test_gpu_engine.py \
             tests/test_fast_paths.py 2>&1 | tee "$OUT/gpu_tests.txt" ;;
    scan) timeout 300 python3 scripts/bench_scan.py --out "$OUT" 2>&1 | tee "$OUT/bench_scan.log" ;;
    engine) timeout 420 python3 scripts/bench_engine.py --out "$OUT" --rows 1024 2>&1 | tee "$OUT/bench_engine.log" ;;
    profile) timeout 500 python3 run_eval.py profile --device cuda --output-dir "$OUT/profile" 2>&1 \
               | tee "$OUT/profile.log" ;;
  esac
done
