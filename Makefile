# The two commands a new user runs: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_LISTEN ?= 127.0.0.1:9464
PYTEST_ARGS ?=

.PHONY: demo test install components bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m clusterwatch demo --listen $(DEMO_LISTEN)

# Real servers for the integration tests (Prometheus, Alertmanager, Slurm, Chromium...).
components:
	bash tests/install-components.sh

# pytest exits 5 when it collected no test: that must fail, never pass silently.
test: install components
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: install
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
