#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the demo need, then
# the npm packages some tests use (scripts/install_npm_refs.sh).
# Idempotent: does nothing (and needs no network) when all are present.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  protobuf-compiler libprotobuf-dev protobuf-compiler-grpc libgrpc++-dev
  libabsl-dev libyaml-cpp-dev nlohmann-json3-dev zlib1g-dev
  libgtest-dev libgmock-dev
  libtorch-dev libgloo-dev
  libopenblas0-pthread
  libpcre2-dev libutf8proc-dev
  libginac-dev
  bubblewrap libseccomp-dev python3 openssl iproute2 nftables
)
# RLPOST_DEPS=build (the container images' build stage): only what building
# the binaries needs, without the test tools below.
BUILD_ONLY=0
if [ "${RLPOST_DEPS:-}" = "build" ]; then BUILD_ONLY=1; fi
# Node runs the independent tokenizers of tests/model/tokenizer_reference and
# the deploy checks; a node that is already installed (any source) is used.
if [ "$BUILD_ONLY" = 0 ] && { ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; }; then
  PACKAGES+=(nodejs npm)
fi
# kustomize renders deploy/k8s in the deploy test: kubectl carries it; a
# kubectl that is already installed (any source) is used as it is.
if [ "$BUILD_ONLY" = 0 ] && ! command -v kubectl >/dev/null 2>&1 && ! command -v kustomize >/dev/null 2>&1; then
  PACKAGES+=(kubernetes-client)
fi
NPM_REFS="$(dirname "$0")/install_npm_refs.sh"
if [ "$BUILD_ONLY" = 1 ]; then NPM_REFS=true; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PACKAGES[@]} packages present"
  "$NPM_REFS"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q "${missing[@]}"
"$NPM_REFS"
