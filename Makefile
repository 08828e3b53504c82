# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Every install goes through constraints.txt, which pins torch==2.13.0 (CPU) and every
# other package exactly: without the pin pip resolves a multi-GB CUDA torch.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# --no-cache-dir: nothing is kept twice on disk (the venv alone is about 2.3 GB)
PIP := $(PY) -m pip install --quiet --disable-pip-version-check --no-cache-dir -c constraints.txt
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast browser bench bench-heldout bench-grid lint clean-venv

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[all,dev]'
	@if $(PY) -m pip list 2>/dev/null | grep -qi '^nvidia'; then \
		echo "CUDA packages were installed: check constraints.txt" >&2; exit 1; fi
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/winnow demo --out demo

# the page tests drive Debian's chromium (pip playwright, nothing downloaded): installed
# through apt when missing, or make test stops and says how
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi; \
		echo "installing Debian's chromium for the page tests"; \
		{ $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		  $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || { \
		echo "make test needs chromium for the page tests: run 'sudo apt-get install chromium'," \
		     "or 'make test-fast' to leave them out" >&2; exit 1; }; }

test: $(STAMP) browser
	$(VENV)/bin/ruff check src tests benchmarks
	WINNOW_REQUIRE_BROWSER=1 $(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/run.py

# the training comparison on the held-out folder (build_subcategories.py): run it after a
# change of the recipe is chosen on the project benchmark, never to choose one
bench-heldout: $(STAMP)
	$(PY) benchmarks/bench_train.py --data subcategories

# the model grid (every registered model, 2 min each) on the run `make bench` prepared
bench-grid: $(STAMP)
	$(VENV)/bin/winnow experiment benchmarks/grid.yaml

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check .

clean-venv:
	rm -rf $(VENV)
