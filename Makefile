# paystream — two commands for newcomers: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

.PHONY: run test test-faults check fuzz bench-ingress bench-streams bench-sink bench-e2e bench-embedded-fetch bench-recovery bench-table-api sbom docs image clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "paystream needs Python 3.11+")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -c constraints.txt -e '.[dev,sink]'
	touch $(STAMP)

run: $(STAMP)  ## the whole pipeline on embedded defaults
	$(VENV)/bin/paystream dev

test: $(STAMP)  ## the whole test suite, with line+branch coverage of the packages (children included)
	@scripts/ensure_browser.sh
	@scripts/ensure_postgres.sh
	@scripts/ensure_tools.sh
	@scripts/kafka.sh fetch >/dev/null  # Apache Kafka jars for the [apache-kafka] runs (Maven, cached in .cache/)
	$(VENV)/bin/pytest -n 2 --dist loadgroup --cov --cov-report=term-missing:skip-covered --cov-fail-under=90 --durations=25

test-faults: $(STAMP)  ## the full-size fault-injection suite; report in bench/reports/faults.md
	PAYSTREAM_FAULTS_SCALE=full $(VENV)/bin/pytest -s tests/reliability
	$(PY) bench/faults_report.py

check: $(STAMP)  ## lint, types, security (bandit; pip-audit where its advisory source answers)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	VENV=$(VENV) scripts/security_check.sh

fuzz: $(STAMP)  ## coverage-guided fuzzing of the parsers and normalizers (FUZZ_SECONDS, default 300)
	$(PY) tests/security/fuzz_atheris.py -max_total_time=$(or $(FUZZ_SECONDS),300)

bench-ingress: $(STAMP)
	$(PY) bench/ingress.py

bench-streams: $(STAMP)
	$(PY) bench/streams.py
	$(PY) bench/reconcile_cost.py

bench-sink: $(STAMP)
	$(PY) bench/sink.py

bench-e2e: $(STAMP)
	$(PY) bench/e2e.py

bench-embedded-fetch: $(STAMP)  ## why e2e latency grows on one long-running embedded broker
	$(PY) bench/embedded_fetch.py

bench-table-api: $(STAMP)  ## Faust's public table API against batched writes -> bench/reports/table_api.md
	$(PY) bench/table_api.py

bench-recovery: $(STAMP)  ## table recovery time for 1M keys -> bench/reports/recovery.md
	$(PY) bench/recovery.py --report

sbom: $(STAMP)  ## CycloneDX SBOM of the installed (locked) environment -> build/sbom.cdx.json
	$(PY) scripts/sbom.py --output build/sbom.cdx.json

docs: $(STAMP)  ## export docs/openapi.json from the ingress app
	$(PY) scripts/export_openapi.py

image:  ## the container image (needs a Docker engine)
	docker build -f deploy/Dockerfile -t paystream:0.1.0 .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache data
