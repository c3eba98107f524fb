# Quick start: `make demo` and `make test` (each sets up .venv when missing; `make test` also
# installs the lab extra, so that `make lab` is tested too).
# `make test-fast` is the inner loop (< 2 min): everything but the slow and browser tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
LAB_STAMP := $(VENV)/.lab-stamp
DEMO_DIR ?= demo_data

.PHONY: setup demo lab test test-fast bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

$(LAB_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --quiet --disable-pip-version-check -e '.[test,lab]'
	touch $(LAB_STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m gmoswidgets.dashboard --data $(DEMO_DIR)

lab: $(LAB_STAMP)
	$(PY) -m gmoswidgets.dashboard.lab --data $(DEMO_DIR)

# Extra pytest arguments for both: `make test-fast PYTEST_ARGS="--durations=20 -x"`.
PYTEST_ARGS ?=
# test-fast runs its files on FAST_JOBS processes (pytest-xdist; a file's tests stay together in
# one process, in order); FAST_JOBS=0 runs them all in this process, as `make test` does.
FAST_JOBS ?= 2

test: $(LAB_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not browser" -n $(FAST_JOBS) --dist loadfile $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
