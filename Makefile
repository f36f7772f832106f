# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch==2.13.0 is the CPU build this project is developed against; pinning it keeps pip from
# pulling a multi-GB CUDA build for the plain `torch` requirement of the export extra.
TORCH ?= torch==2.13.0

# onnxruntime-web (pinned in package.json / package-lock.json) for `rvmkit export-web`: its browser files
# are copied into the package, so an install (editable or wheel) carries them.
ORT_DIR := src/rvmkit/web/static/ort
ORT_FILES := ort.min.mjs ort-wasm-simd-threaded.jsep.mjs ort-wasm-simd-threaded.jsep.wasm
ORT_STAMP := $(ORT_DIR)/ort-wasm-simd-threaded.jsep.wasm

.PHONY: venv install web demo test test-fast lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

venv: $(PY)

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(ORT_STAMP) | $(PY)
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[export,test,batch,openvino,serve]"
	touch $@

web: $(ORT_STAMP)

$(ORT_STAMP): package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "error: npm not found: install Node.js with npm (rvmkit export-web ships onnxruntime-web from npm), then run make again" >&2; exit 1; }
	npm ci --silent --ignore-scripts --no-audit --no-fund
	mkdir -p $(ORT_DIR)
	cp $(addprefix node_modules/onnxruntime-web/dist/,$(ORT_FILES)) $(ORT_DIR)/

demo: install
	$(VENV)/bin/rvmkit weights fetch
	$(PY) -m rvmkit.demo

test: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports
	$(VENV)/bin/rvmkit weights fetch >/dev/null
	$(PY) -m pytest -q

# the quick part while developing (about a minute on 2 cores): the tests not marked `slow`
test-fast: install
	$(VENV)/bin/rvmkit weights fetch >/dev/null
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) demo build *.egg-info src/*.egg-info node_modules $(ORT_DIR)
