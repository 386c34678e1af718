# paystream — two commands for newcomers: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

.PHONY: run test test-faults check bench-ingress bench-streams bench-sink bench-e2e sbom docs clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "paystream needs Python 3.11+")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -c constraints.txt -e '.[dev,sink]'
	touch $(STAMP)

run: $(STAMP)  ## the whole pipeline on embedded defaults
	$(VENV)/bin/paystream dev

test: $(STAMP)  ## the whole test suite
	@scripts/ensure_browser.sh
	$(VENV)/bin/pytest

test-faults: $(STAMP)  ## the full-size fault-injection suite
	PAYSTREAM_FAULTS_SCALE=full $(VENV)/bin/pytest -m slow tests/reliability

check: $(STAMP)  ## lint and types
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench-ingress: $(STAMP)
	$(PY) bench/ingress.py

bench-streams: $(STAMP)
	$(PY) bench/streams.py

bench-sink: $(STAMP)
	$(PY) bench/sink.py

bench-e2e: $(STAMP)
	$(PY) bench/e2e.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache data
