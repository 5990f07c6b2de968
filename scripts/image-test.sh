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

# The mode of / in the base becomes the mode of / in the image: a base whose root is not
# world-traversable (mktemp -d makes 0700) runs as root but not as UID 1001 or OpenShift's
# arbitrary UID. A cached base made that way is made again.
base_root_mode() { $P run --rm $LIMITS --network host "$BASE" stat -c %a / 2>/dev/null || echo missing; }
if [[ "$BASE" == localhost/debian:* ]] && $P image exists "$BASE" && [ "$(base_root_mode)" != 755 ]; then
  echo "== $BASE has / with mode $(base_root_mode), not 755: making it again"
  $P rmi -f "$BASE" >/dev/null
fi
if [[ "$BASE" == localhost/debian:* ]] && ! $P image exists "$BASE"; then
  echo "== making $BASE with debootstrap"
  rootfs=$(mktemp -d /var/tmp/rootfs.XXXXXX)
  chmod 0755 "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  tar -C "$rootfs" -c . | $P import - "$BASE" >/dev/null
  rm -rf "$rootfs"
fi

echo "== hadolint"
.venv/bin/hadolint Dockerfile

# The README names two kinds of base: python:3.11-slim-bookworm (Python in the base) and a
# bare Debian (the Dockerfile installs Debian's python3). No registry is reachable here, so
# the first is stood in for by the Debian base with python3 and python3-venv added: it takes
# the Dockerfile's "base has Python" path. IMAGE_BASES=bare skips the stand-in.
PYBASE=localhost/debian-python:bookworm
if [[ "${IMAGE_BASES:-bare python}" == *python* ]] && ! $P image exists "$PYBASE"; then
  echo "== making $PYBASE (stand-in for python:3.11-slim-bookworm)"
  printf 'FROM %s\nRUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*\n' "$BASE" \
    | $P build --network host $LIMITS -t "$PYBASE" -f - . >/tmp/image-pybase.log 2>&1 \
    || { tail -40 /tmp/image-pybase.log; exit 1; }
fi

# The host's CA bundle goes in as a build-time mount: registries are reached through a
# TLS-intercepting proxy here. It never lands in a layer.
ca=/etc/ssl/certs/ca-certificates.crt
build_and_test() {  # base image, image tag
  local base=$1 image=$2 start size
  echo "== building $image on $base"
  start=$(date +%s)
  $P build --format docker --network host $LIMITS \
    -v "$ca:/run/build-ca.crt:ro" --build-arg npm_config_cafile=/run/build-ca.crt --build-arg PIP_CERT=/run/build-ca.crt \
    --build-arg BASE_IMAGE="$base" -t "$image" -f Dockerfile \
    --build-arg GATEWAY_VERSION="$(.venv/bin/python -c 'import opencode_mcp_gateway as g; print(g.__version__)')" \
    --build-arg OPENCODE_VERSION="$(.venv/bin/python -c 'from opencode_mcp_gateway.opencode.pins import OPENCODE_VERSION as v; print(v)')" \
    . >/tmp/image-build.log 2>&1 \
    || { tail -40 /tmp/image-build.log; exit 1; }
  size=$($P image inspect --format '{{.Size}}' "$image")
  echo "built in $(( $(date +%s) - start ))s, size $(( size / 1024 / 1024 )) MiB"
  echo "== testing $image (base $base)"
  IMAGE="$image" BASE_IMAGE="$base" PODMAN="$P" .venv/bin/pytest tests/image -v -p no:cacheprovider
}

build_and_test "$BASE" "$IMAGE"
if [[ "${IMAGE_BASES:-bare python}" == *python* ]]; then
  build_and_test "$PYBASE" "${IMAGE%:*}:test-python-base"
  $P rmi -f "${IMAGE%:*}:test-python-base" >/dev/null || true
fi

$P image prune -f >/dev/null || true
