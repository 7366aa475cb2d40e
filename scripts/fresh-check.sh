#!/usr/bin/env bash
# make test as a newcomer gets it: this tree (committed, changed and new
# files, nothing git ignores: no bin/, no .devstack/) copied to a new
# folder, run with an empty Go module cache, build cache and GOPATH (so the
# Go-installed tools are installed again too). Debian packages that
# scripts/tools.sh installs are system-wide and stay installed.
#
# FRESH_KEEP=1 keeps the folder for a post-mortem; extra arguments go to
# `make test` (e.g. TEST_FLAGS=...).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-fresh.XXXXXX")
cleanup() {
  if [ "${FRESH_KEEP:-0}" = 1 ]; then
    echo "fresh-check: kept $tmp"
  else
    chmod -R u+w "$tmp" 2>/dev/null || true # the module cache is read-only
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

git clone -q --no-local "$root" "$tmp/src"
patch=$(cd "$root" && git diff HEAD --binary)
if [ -n "$patch" ]; then
  printf '%s\n' "$patch" | (cd "$tmp/src" && git apply --whitespace=nowarn)
fi
(cd "$root" && git ls-files --others --exclude-standard -z | xargs -0 -r cp --parents -t "$tmp/src")

# Tools from the usual GOPATH must not be found: drop it from PATH.
oldbin=$(go env GOPATH)/bin
PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$oldbin" | paste -sd: -)
export PATH GOPATH="$tmp/gopath" GOMODCACHE="$tmp/gopath/pkg/mod" GOCACHE="$tmp/gocache"
unset GOBIN
start=$(date +%s)
echo "fresh-check: $tmp/src with GOPATH=$GOPATH GOCACHE=$GOCACHE"
make -C "$tmp/src" test "$@"
echo "fresh-check: make test passed from empty caches in $(( $(date +%s) - start )) s"
