# tfssl: `make demo` and `make test` work on a fresh machine (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA := data/fashion_mnist
# oneDNN measured 1.7x faster for a ResNet-18 step on our 2-core x86 CPU (docs/RESULTS.md).
export TF_ENABLE_ONEDNN_OPTS ?= 1
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install data test test-fast demo clean gpu-check

install: $(STAMP)

# Re-runs only when the metadata changes; the editable install picks up code changes by itself.
# TensorFlow comes from an extra (pyproject.toml): the CPU build without nvidia-smi, the CUDA one
# with it, none where a TensorFlow is importable already. No build isolation: the venv's
# setuptools builds it, without a second download. pip's and setuptools' own notices (every
# editable install prints setuptools' advisory block) go to $(VENV)/install.log, shown on failure.
$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing tfssl and its requirements into $(VENV) (log: $(VENV)/install.log)"
	@$(PY) -m pip install -q --upgrade pip setuptools wheel > $(VENV)/install.log 2>&1 \
	  || { cat $(VENV)/install.log; exit 1; }
	@if $(PY) -c "import tensorflow" 2>/dev/null; then extra=test; \
	elif command -v nvidia-smi >/dev/null 2>&1; then extra=test,gpu; else extra=test,cpu; fi; \
	$(PY) -m pip install -q --no-build-isolation -e ".[$$extra]" >> $(VENV)/install.log 2>&1 \
	  || { cat $(VENV)/install.log; exit 1; }
	touch $(STAMP)

# Fashion-MNIST as TFRecords: Debian's dataset-fashion-mnist, else tensorflow-datasets' download.
data: $(DATA)/dataset_info.json

$(DATA)/dataset_info.json: | $(STAMP)
	$(PY) -m tfssl.tools.fetch_fashion_mnist --output_dir=$(DATA)

# Two pytest-xdist workers: the suite is mostly single-threaded Python (tracing, start-up), so two
# processes keep both cores busy (docs/RESULTS.md, "The test suite"). Files that share a fixture
# run on one worker (tests/conftest.py).
PYTEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -ra -n $(PYTEST_WORKERS) --dist loadgroup

test: install data
	$(PYTEST) --durations=15 tests

# Without the tests marked slow (over ~10 s: end-to-end runs, full-size nets).
test-fast: install data
	$(PYTEST) -m "not slow" tests

demo: install data
	$(PY) -m tfssl.tools.demo --dataset_dir=$(DATA) --workdir=workdirs/demo

clean:
	rm -rf workdirs .pytest_cache

# On a machine with a GPU: ResNet-50 throughput (fp32, mixed float16/bfloat16 + XLA), SimCLR and
# SwAV on synthetic batches beside the real JPEG pipeline, kill-and-resume, peak memory.
gpu-check: install
	$(PY) benchmarks/gpu_check.py
