#!/usr/bin/env bash
# Lints deploy/docker/Dockerfile* (tests/deploy/check_dockerfiles.mjs:
# dockerfile-utils' validator plus pinning, non-root and apt rules) and checks
# that the linter rejects tests/deploy/bad.Dockerfile for each broken rule. No
# container engine is needed (none is available on the build machines).
# Argument: SOURCE_DIR. Exit 77 (skipped) when the npm packages are missing.
set -euo pipefail
src=$1
here="$src/tests/deploy"
source "$here/common.sh"
need_npm_package dockerfile-utils
node "$here/check_dockerfiles.mjs" "$src"/deploy/docker/Dockerfile*
set +e
out=$(node "$here/check_dockerfiles.mjs" "$here/bad.Dockerfile")
code=$?
set -e
test "$code" = 1 || { echo "FAIL: the linter accepted bad.Dockerfile ($code)"; exit 1; }
for expected in "uses latest" "is not pinned to a tag" "apt-get upgrade" \
  "without --no-install-recommends" "without removing /var/lib/apt/lists" "ADD of a URL" \
  "runs as root" "error:"; do
  grep -qF -- "$expected" <<< "$out" || { echo "FAIL: linter missed: $expected"; echo "$out"; exit 1; }
done
echo "Dockerfiles: OK"
