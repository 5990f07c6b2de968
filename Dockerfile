# One image: the gateway plus the opencode binary, both supervised by the gateway (the default,
# --spawn-opencode), or each alone in its own container (--no-spawn-opencode / opencode), as the
# Helm chart's pod runs them so that the agent sees none of the gateway's secrets.
#   docker build -t <registry>/opencode-mcp-gateway:latest .
# BASE_IMAGE must be Debian-based; it gets python3 from apt if it has none (e.g. a bare
# Debian made with debootstrap, as the image test here does).
# Behind a TLS-intercepting proxy, mount its CA bundle into the build and pass
# --build-arg npm_config_cafile=<path> --build-arg PIP_CERT=<path> (scripts/image-test.sh does).
# The versions are not written here: the gateway's is pyproject.toml's, OpenCode's is
# src/opencode_mcp_gateway/opencode/pins.py's (read during the build). Pass them as build args only
# to label the image (scripts/image-test.sh does); OPENCODE_VERSION also overrides the pin.
ARG BASE_IMAGE=python:3.11-slim-bookworm
ARG OPENCODE_VERSION=""
ARG GATEWAY_VERSION=""

# --- opencode: only the x64 binary out of the pinned npm package ------------------------
FROM ${BASE_IMAGE} AS opencode
ARG OPENCODE_VERSION
ARG npm_config_cafile
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY src/opencode_mcp_gateway/opencode/pins.py ./
RUN pinned=$(sed -n 's/^OPENCODE_VERSION = "\(.*\)"$/\1/p' pins.py) \
 && npm pack --silent "opencode-linux-x64@${OPENCODE_VERSION:-$pinned}" \
 && tar -xzf opencode-linux-x64-*.tgz package/bin/opencode \
 && install -m 0755 package/bin/opencode /opencode \
 && rm -rf /build/* ~/.npm

# --- the gateway, installed into a venv from a wheel built here ---------------------------
FROM ${BASE_IMAGE} AS gateway
ARG PIP_CERT
# hadolint ignore=DL3008
RUN command -v python3 >/dev/null || { apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*; }
WORKDIR /src
COPY requirements.lock ./
# Dependencies exactly as locked (hashes checked), then the gateway without resolving anything.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip wheel --no-cache-dir --no-deps -w /wheels . \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps /wheels/*.whl \
 && /opt/venv/bin/pip uninstall -y pip

# --- runtime ------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ARG OPENCODE_VERSION
ARG GATEWAY_VERSION
# git: OpenCode's snapshots and diffs; tini: PID 1 that reaps the tools OpenCode runs;
# bubblewrap: the `local` sandbox runtime (one OpenCode per caller; needs user namespaces).
# python3 only when the base has none (word splitting of that one optional name is wanted).
# hadolint ignore=DL3008,SC2046
RUN apt-get update \
 && apt-get install -y --no-install-recommends git tini bubblewrap ca-certificates \
    $(command -v python3 >/dev/null || echo python3) \
 && rm -rf /var/lib/apt/lists/*
COPY --from=opencode /opencode /usr/local/bin/opencode
COPY --from=gateway /opt/venv /opt/venv
# OpenShift runs an arbitrary UID in group 0: everything written must be group-0 writable.
RUN mkdir -p /workspace /var/lib/opencode-gateway/home \
 && chown -R 1001:0 /workspace /var/lib/opencode-gateway \
 && chmod -R g=u /workspace /var/lib/opencode-gateway \
 && git config --system --add safe.directory '*'

ENV PATH=/opt/venv/bin:$PATH \
    HOME=/var/lib/opencode-gateway/home \
    HOST=0.0.0.0 \
    PORT=8080 \
    SPAWN_OPENCODE=true \
    OPENCODE_BIN=/usr/local/bin/opencode \
    WORKSPACE_DIR=/workspace \
    OPENCODE_STATE_DIR=/var/lib/opencode-gateway \
    PYTHONUNBUFFERED=1

LABEL org.opencontainers.image.title="opencode-mcp-gateway" \
      org.opencontainers.image.description="MCP server (Streamable HTTP) that hands coding tasks to OpenCode" \
      org.opencontainers.image.version="${GATEWAY_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.opencode.version="${OPENCODE_VERSION}"

USER 1001:0
WORKDIR /workspace
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["tini", "--", "opencode-mcp-gateway"]
CMD ["--spawn-opencode"]
