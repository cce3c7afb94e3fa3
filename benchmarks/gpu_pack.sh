#!/usr/bin/env bash
# Packs what benchmarks/gpu_run.sh needs on a lent GPU machine into .gpu/ (git-ignored), here, where
# PyPI can be reached: that machine has PyTorch (python3 is 3.12 there) but neither pydantic nor
# jsonschema, cannot download, and receives only the repository. So: the missing packages as cp312
# wheels, pinned to the versions this checkout's .venv runs, and Fashion-MNIST gzipped (31 MB; the
# device tool carries 64 MiB a call).   Usage: make gpu-pack
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
raw="$("$PY" -c 'from benchmarks.common import data_dir; print(data_dir())')/FashionMNIST/raw"
[ -f "$raw/train-images-idx3-ubyte" ] || { echo "error: no Fashion-MNIST at $raw (set NETSPEC_DATA)" >&2; exit 2; }
pins=$("$PY" -m pip freeze | grep -iE '^(pydantic|pydantic[-_]core|annotated[-_]types|typing[-_]inspection|typing[-_]extensions|jsonschema|jsonschema[-_]specifications|referencing|rpds[-_]py)==')
work=$(mktemp -d .gpu.partial.XXXX)  # filled, then renamed: never half a pack under .gpu/
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/wheels" "$work/data"
# shellcheck disable=SC2086
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$work/wheels" $pins
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    gzip -c "$raw/$f" > "$work/data/$f.gz"
done
rm -rf .gpu && mv "$work" .gpu
echo "packed .gpu/: $(ls .gpu/wheels | wc -l) wheels, $(du -sh .gpu | cut -f1) in all"
