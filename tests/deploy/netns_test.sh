#!/usr/bin/env bash
# A cluster on one machine: renders each overlay of deploy/k8s and runs it
# with tests/deploy/netns_cluster.mjs (a network namespace per pod, the
# manifests' commands, args, environment, DNS names, users and read-only root
# filesystems), submitting one RL step through rlctl. Arguments: SOURCE_DIR
# BIN_DIR. Exit 77 (skipped) without root or without the npm packages.
set -euo pipefail
src=$1
bin=$2
here="$src/tests/deploy"
if [ "$(id -u)" != 0 ]; then echo "SKIP: needs root (ip netns)"; exit 77; fi
source "$here/common.sh"
need_npm_package yaml
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for overlay in local-cpu gpu-cluster gpu-cluster-mtls; do
  render "$src/deploy/k8s/overlays/$overlay" > "$work/$overlay.yaml" 2> "$work/$overlay.err" ||
    { echo "FAIL: kustomize could not render $overlay:"; cat "$work/$overlay.err"; exit 1; }
  echo "== $overlay"
  code=0
  node "$here/netns_cluster.mjs" --bin-dir "$bin" --source-dir "$src" "$work/$overlay.yaml" || code=$?
  if [ "$code" != 0 ]; then exit "$code"; fi
done
