# The two commands a new user runs: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_LISTEN ?= 127.0.0.1:9464
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one per core by default. Each test file runs whole in one process, so
# a module's servers start once; most tests wait on real servers, so two processes on two cores take
# the suite from about 15 minutes to under 9. TEST_WORKERS=0 runs it in one process (pdb, -x).
TEST_WORKERS ?= auto
XDIST = -n $(TEST_WORKERS) --dist loadfile

LOCK := requirements.lock
LATEST := .venv-latest

.PHONY: demo test test-fast test-latest install components bench clean

# Installs what was tested: the exact versions in requirements.lock (lower bounds in pyproject.toml).
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(LOCK) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m clusterwatch demo --listen $(DEMO_LISTEN)

# Real servers for the integration tests (Prometheus, Alertmanager, Slurm, Chromium...).
components:
	bash tests/install-components.sh

# pytest exits 5 when it collected no test: that must fail, never pass silently.
test: install components
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The inner loop (about two minutes): the unit tests, without the real components (not installed here) and
# the long simulated runs; `make test` runs those too (markers in pyproject.toml).
test-fast: install
	$(PY) -m pytest $(XDIST) -m "not real_component and not slow" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-fast: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The whole suite on the newest releases allowed by pyproject.toml, in its own venv: an upgrade is a
# deliberate step (when this passes, regenerate requirements.lock from $(LATEST), see docs/operations.md).
test-latest: components
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST)/bin/python -m pip install --quiet --upgrade -e '.[test]'
	$(LATEST)/bin/python -m pip freeze --exclude-editable
	$(LATEST)/bin/python -m pytest $(XDIST) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-latest: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: install
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(LATEST) .pytest_cache build *.egg-info
