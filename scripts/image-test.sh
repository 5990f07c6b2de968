#!/usr/bin/env bash
# Build the container image with podman and test it: a real task through /mcp, a clean
# SIGTERM, and an arbitrary UID. No registry is reachable here, so the base image is a
# Debian made locally with debootstrap (kept in podman's storage between runs).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/opencode-mcp-gateway:test}
BASE=${BASE_IMAGE:-localhost/debian:bookworm}
P="podman --storage-driver vfs --runtime runc"
LIMITS="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"   # crun and default ulimits fail here

if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq podman buildah runc debootstrap uidmap >/dev/null
fi

if ! $P image exists "$BASE"; then
  echo "== making $BASE with debootstrap"
  rootfs=$(mktemp -d /var/tmp/rootfs.XXXXXX)
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  tar -C "$rootfs" -c . | $P import - "$BASE" >/dev/null
  rm -rf "$rootfs"
fi

echo "== hadolint"
.venv/bin/hadolint Dockerfile

echo "== building $IMAGE"
start=$(date +%s)
# The host's CA bundle goes in as a build-time mount: registries are reached through a
# TLS-intercepting proxy here. It never lands in a layer.
ca=/etc/ssl/certs/ca-certificates.crt
$P build --format docker --network host $LIMITS \
  -v "$ca:/run/build-ca.crt:ro" --build-arg npm_config_cafile=/run/build-ca.crt --build-arg PIP_CERT=/run/build-ca.crt \
  --build-arg BASE_IMAGE="$BASE" -t "$IMAGE" -f Dockerfile \
  --build-arg GATEWAY_VERSION="$(.venv/bin/python -c 'import opencode_mcp_gateway as g; print(g.__version__)')" \
  --build-arg OPENCODE_VERSION="$(.venv/bin/python -c 'from opencode_mcp_gateway.pins import OPENCODE_VERSION as v; print(v)')" \
  . >/tmp/image-build.log 2>&1 \
  || { tail -40 /tmp/image-build.log; exit 1; }
size=$($P image inspect --format '{{.Size}}' "$IMAGE")
echo "built in $(( $(date +%s) - start ))s, size $(( size / 1024 / 1024 )) MiB"

echo "== testing $IMAGE"
IMAGE="$IMAGE" PODMAN="$P" .venv/bin/pytest tests/image -v -p no:cacheprovider

$P image prune -f >/dev/null || true
