#!/usr/bin/env bash
# Runs on a lent GPU machine, over a copy of the repository with .gpu/ (from `make gpu-pack`) carried.
# With the device tool, one call:  run(command="bash benchmarks/gpu_run.sh", carry=[".gpu"], timeout_s=540)
# Installs the packed wheels beside the machine's own PyTorch, unpacks Fashion-MNIST, checks the zoo,
# then runs `python -m benchmarks.run gpu` (about 4-5 minutes on an H200, estimated); its log and raw
# numbers land in $OUT. `--check` stops after the zoo check (no GPU needed: it tests the pack).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/netspec-gpu}
mkdir -p "$OUT"
[ -d .gpu/wheels ] || { echo "error: no .gpu/ here: run 'make gpu-pack' first, and carry .gpu" >&2; exit 2; }
site=$(mktemp -d /tmp/netspec-site.XXXX)
"$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$site" .gpu/wheels/*.whl
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1 NETSPEC_DATA=/tmp/netspec-data
mkdir -p "$NETSPEC_DATA/FashionMNIST/raw"
for f in .gpu/data/*.gz; do gunzip -c "$f" > "$NETSPEC_DATA/FashionMNIST/raw/$(basename "$f" .gz)"; done
"$PYTHON" -m netspec check specs/*.yaml specs/torchvision/*.yaml 2>&1 | tee "$OUT/check.log"
if [ "${1:-}" = "--check" ]; then exit 0; fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
} 2>&1 | tee "$OUT/machine.log"
"$PYTHON" -m benchmarks.run gpu 2>&1 | tee "$OUT/gpu.log"
cp benchmarks/results/e2e-gpu.json benchmarks/results/machine-gpu.json "$OUT/"
