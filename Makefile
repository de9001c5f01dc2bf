# One entry point for developers and CI. `make test` installs everything into .venv/ and runs
# every tier: static checks, unit, integration (real vLLM on CPU), e2e (real Docker, when possible).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: test venv lint unit integration e2e chart tiny-model demo bench docs clean

# lint runs beside the tests (single-threaded; the first tier spends minutes building images);
# its output follows the tests', and either failing fails `make test`.
test: venv
	@mkdir -p test-logs
	@$(MAKE) --no-print-directory lint > test-logs/lint.log 2>&1 & lint=$$!; \
	$(PY) -m pytest tests; tests=$$?; \
	wait $$lint; linted=$$?; \
	echo "--- make lint (ran beside the tests) ---"; cat test-logs/lint.log; \
	if [ $$linted -ne 0 ]; then echo "make test: lint failed"; fi; \
	exit $$(( tests != 0 || linted != 0 ))

venv:
	bash scripts/bootstrap_venv.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy common model_server microservice fp8_quant launcher harness bench scripts/gen_config_docs.py scripts/install_helm.py
	$(VENV)/bin/lint-imports
	$(VENV)/bin/shellcheck run_vllm.sh scripts/*.sh .ci/run

unit: venv
	$(PY) -m pytest tests/unit

integration: venv
	$(PY) -m pytest tests/integration

e2e: venv
	$(PY) -m pytest tests/e2e

# The Helm chart with the real helm: lint, render, strict validation, assertions (seconds).
chart: venv
	$(PY) -m pytest tests/helm

# Real vLLM CPU, the microservice per connector and the reference passthrough, measured
# side by side, then the RAG routing phase (two more replicas, the microservice per policy),
# RUNS times (about 12 minutes each); every goal judged on the median of the runs.
# Writes bench/results/results.md, results.json (every run whole), chart.png.
RUNS ?= 3
bench: venv
	$(PY) -m pip install --quiet --progress-bar off -e '.[bench]'
	$(PY) -m bench --runs $(RUNS) $(BENCH_ARGS)

tiny-model: venv
	$(PY) -m model_server.tiny_model /tmp/tiny-model

# The whole stack (vLLM + microservice) on the built-in tiny model, no model hub needed; creates
# .venv/ itself on a fresh clone. Prints the requests to try once it answers; Ctrl-C stops it.
demo:
	./run_vllm.sh --native --demo

# docs/configuration.md, generated from the settings classes' field descriptions.
docs: venv
	$(PY) scripts/gen_config_docs.py

clean:
	rm -rf $(VENV) test-logs .pytest_cache .mypy_cache .ruff_cache .hypothesis
