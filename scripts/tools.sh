#!/usr/bin/env bash
# Installs, only when missing, the tools `make test`, `make proto` and the
# packaging checks need. Safe to run any number of times.
set -euo pipefail
GOBIN=$(go env GOPATH)/bin
export PATH="$GOBIN:$PATH"

apt_pkgs=()
command -v protoc   >/dev/null || apt_pkgs+=(protobuf-compiler)
# protoc's well-known types (google/protobuf/timestamp.proto, imported by
# proto/sluice/ingest) come with libprotobuf-dev, only a recommendation of
# protobuf-compiler: without it `make proto` fails on a fresh machine.
[ -f /usr/include/google/protobuf/timestamp.proto ] || apt_pkgs+=(libprotobuf-dev)
command -v promtool >/dev/null || apt_pkgs+=(prometheus)
command -v kcat     >/dev/null || apt_pkgs+=(kcat)
# make release-snapshot and the image-run test (scripts/devstack) build and
# run OCI images with buildah: no Docker engine needed.
command -v buildah  >/dev/null || apt_pkgs+=(buildah)
if ((${#apt_pkgs[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "tools: apt-get install ${apt_pkgs[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
  else
    echo "tools: missing ${apt_pkgs[*]}; install them with your package manager" >&2
  fi
fi
# The prometheus package starts a server on :9090 (the gateway's gRPC port); stop it.
if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi
pkill -x prometheus >/dev/null 2>&1 || true

goinstall() { # binary module@version
  command -v "$1" >/dev/null || { echo "tools: go install $2"; go install "$2"; }
}
goinstall protoc-gen-go      google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
goinstall protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
goinstall helm               helm.sh/helm/v3/cmd/helm@v3.19.0   # deployments/checks: helm lint/template
