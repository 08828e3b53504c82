# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Every install goes through constraints.txt, which pins torch==2.13.0 (CPU) and every
# other package exactly: without the pin pip resolves a multi-GB CUDA torch.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench bench-grid lint clean-venv

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[all,dev]'
	@if $(PY) -m pip list 2>/dev/null | grep -qi '^nvidia'; then \
		echo "CUDA packages were installed: check constraints.txt" >&2; exit 1; fi
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/winnow demo --out demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/run.py

# the experiment grid (16 runs × 1.5 min) on the run `make bench` prepared
bench-grid: $(STAMP)
	$(VENV)/bin/winnow experiment benchmarks/grid.yaml

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check .

clean-venv:
	rm -rf $(VENV)
