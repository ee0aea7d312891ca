# Sourced by the deploy tests: the npm packages check and the kustomize
# renderer. Expects $here (this folder).

# Exits 77 (skipped) when the npm package $1 is not installed.
need_npm_package() {
  if [ ! -d "$here/node_modules/$1" ]; then
    echo "SKIP: $here/node_modules is missing (make deps installs it from npm)"
    exit 77
  fi
}

# render DIR: the overlay's objects on stdout (kustomize, else kubectl's).
if command -v kustomize > /dev/null; then
  render() { kustomize build "$1"; }
elif command -v kubectl > /dev/null; then
  render() { kubectl kustomize "$1"; }
else
  render() {
    echo "FAIL: neither kustomize nor kubectl is installed (make deps installs kubernetes-client)" >&2
    return 1
  }
fi
