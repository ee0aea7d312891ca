#!/usr/bin/env bash
# Installs rlpost's SDK component into a temporary prefix, builds the example
# plugin out of tree with find_package(rlpost), and loads the result with
# rlpost-reward-host --check. Arguments: BUILD_DIR EXAMPLE_SOURCE HOST_BINARY.
set -euo pipefail
build_dir=$1
source_dir=$2
host=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --component sdk --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/include/rlpost/reward_plugin.h"
test -f "$work/prefix/include/rlpost/reward_plugin.hpp"
generator=()
if command -v ninja > /dev/null; then generator=(-G Ninja); fi
cmake -S "$source_dir" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log" ||
  { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" > "$work/build.log" || { cat "$work/build.log"; exit 1; }
plugin="$work/build/librlpost_example_reward.so"
test -f "$plugin"
# Only the entry symbol is exported.
if command -v nm > /dev/null; then
  exported=$(nm -D --defined-only "$plugin" | awk '$2 == "T" {print $3}')
  test "$exported" = "rlpost_reward_plugin_entry" ||
    { echo "unexpected exports: $exported"; exit 1; }
fi
out=$("$host" --check --plugin "$plugin" --function digit_match)
echo "$out"
grep -q "plugin example 1.0.0 (ABI 1.0)" <<< "$out"
grep -q "functions: digit_match banned_phrases" <<< "$out"
# A config the plugin refuses: exit 2 with its message.
set +e
err=$(printf 'scale=abc' > "$work/bad.cfg"; "$host" --check --plugin "$plugin" \
  --function digit_match --config-file "$work/bad.cfg" 2>&1)
code=$?
set -e
test "$code" = 2 || { echo "expected exit 2, got $code: $err"; exit 1; }
grep -q "scale must be a number" <<< "$err" || { echo "unexpected error: $err"; exit 1; }
echo "out-of-tree build of the example plugin: OK"
