# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch==2.13.0 is the CPU build this project is developed against; pinning it keeps pip from
# pulling a multi-GB CUDA build for the plain `torch` requirement of the export extra.
TORCH ?= torch==2.13.0

.PHONY: venv install demo test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

venv: $(PY)

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[export,test,batch,openvino,serve]"
	touch $@

demo: install
	$(VENV)/bin/rvmkit weights fetch
	$(PY) -m rvmkit.demo

test: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/rvmkit weights fetch >/dev/null
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) demo build *.egg-info src/*.egg-info
