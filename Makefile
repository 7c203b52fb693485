# genlab: the two commands a user types on a fresh machine are `make demo` and `make test`.
# Each creates/refreshes .venv (torch pinned FIRST, so nothing pulls a CUDA build), then runs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.genlab-installed

.PHONY: venv test test-slow test-fast demo bench bench-deps clean

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

# CI runs `make test`: everything but the checks marked `slow` (every method keeps a fast analytic test here).
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider -m "not slow" --durations=15

# The long checks (convergence orders at many step counts, long training runs): run by hand, not by CI.
test-slow: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider -m slow --durations=15

test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -x -p no:cacheprovider -m "not slow"

demo: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m genlab demo --out out/demo

bench-deps: $(STAMP)
	$(PY) -m pip install -q -c constraints-bench.txt -e ".[bench]"
	$(PY) -m pip install -q --no-deps "k-diffusion==0.1.1.post1" "deepinv>=0.5,<0.6"
	$(PY) -m pip install -q --no-deps --target out/peer_site "torchvision==0.28.0"

bench: bench-deps
	OMP_NUM_THREADS=1 $(PY) -m genlab bench samplers --out experiments/results

clean:
	rm -rf $(VENV) out .pytest_cache
