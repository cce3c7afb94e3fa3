# Two entry points on a fresh machine: `make demo` and `make test`.
# netspec's front end is pure Python. On these machines `python3` is pyenv's CPython, built without
# PGO or LTO; Debian's CPython 3.11 runs netspec's load about 1.4x faster (benchmarks/RESULTS.md,
# "The interpreter"), so the venv is made from it where it exists. PYTHON=... chooses another.
PYTHON ?= $(or $(wildcard /usr/bin/python3.11),python3)
VENV := .venv
PY := $(VENV)/bin/python
SPECS := $(wildcard specs/*.yaml) $(wildcard specs/torchvision/*.yaml)

.PHONY: demo test setup zoo bench gpu-pack schema clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); python3 -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# The main job: compile the whole zoo, then train LeNet-BN for one epoch on Fashion-MNIST.
# Data: $$NETSPEC_DATA if set, else ../shared/data beside the repository.
NETSPEC_DATA ?= $(abspath ../shared/data)
export NETSPEC_DATA

demo: setup zoo
	$(PY) -m netspec train specs/lenet_bn.yaml --epochs 1

zoo: setup
	@for spec in $(SPECS); do $(PY) -m netspec compile $$spec --depth 1 || exit 1; done

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) -m benchmarks.run

# For a lent GPU machine: wheels and data into .gpu/, for benchmarks/gpu_run.sh there.
gpu-pack: setup
	bash benchmarks/gpu_pack.sh

schema: setup
	$(PY) -m netspec schema -o schema/netspec.schema.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
