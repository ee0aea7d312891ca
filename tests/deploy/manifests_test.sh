#!/usr/bin/env bash
# Renders every overlay of deploy/k8s with kustomize and checks the result
# (tests/deploy/check_manifests.mjs: Kubernetes schemas from kubernetes-models,
# policy, flags and environment against the binaries), then checks that the
# checker rejects tests/deploy/bad_manifests.yaml for each broken rule.
# Arguments: SOURCE_DIR BIN_DIR. Exit 77 (skipped) when the npm packages are
# missing (scripts/install_npm_refs.sh could not reach the registry).
set -euo pipefail
src=$1
bin=$2
here="$src/tests/deploy"
source "$here/common.sh"
need_npm_package kubernetes-models
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for overlay in "$src"/deploy/k8s/overlays/*/; do
  name=$(basename "$overlay")
  render "$overlay" > "$work/$name.yaml" 2> "$work/$name.err" ||
    { echo "FAIL: kustomize could not render $name:"; cat "$work/$name.err"; exit 1; }
  node "$here/check_manifests.mjs" --bin-dir "$bin" "$work/$name.yaml"
done
test -f "$work/local-cpu.yaml" && test -f "$work/gpu-cluster.yaml" && test -f "$work/gpu-cluster-mtls.yaml"

# The checker itself: each rule must catch its violation.
set +e
out=$(node "$here/check_manifests.mjs" --bin-dir "$bin" "$here/bad_manifests.yaml")
code=$?
set -e
test "$code" = 1 || { echo "FAIL: the checker accepted bad_manifests.yaml ($code)"; exit 1; }
for expected in \
  "no resources.requests.cpu" "no readinessProbe" "no livenessProbe" \
  "allowPrivilegeEscalation is not false" "capabilities do not drop ALL" \
  "uses latest" "pod does not set runAsNonRoot" "no label app.kubernetes.io/component" \
  "accepts no flag --no-such-flag" "points outside every volume mount" \
  "reads no environment variable VERIFIER_MODE" "does not restrict egress" \
  "allows some egress" "ports/0/port must be integer" "no metrics port" \
  "has 1 nvidia.com/gpu but rollout.device is cpu" \
  "learner.device is cuda but no nvidia.com/gpu limit" \
  "readinessProbe is a gRPC probe but the server requires TLS" \
  "comes from Secret hand-made-tls, which no Certificate issues" \
  "rlctl health accepts no flag --no-such-probe-flag" \
  "dials tls-rollout-0.tls-rollout but Certificate tls-rollout does not name it" \
  "dials tls-verifier with TLS but Deployment/tls-verifier serves plaintext"; do
  grep -qF -- "$expected" <<< "$out" || { echo "FAIL: checker missed: $expected"; echo "$out"; exit 1; }
done
echo "deploy manifests: OK"
