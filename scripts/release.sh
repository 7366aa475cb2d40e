#!/usr/bin/env bash
# Release builds without a Docker engine (make release-snapshot, the
# image-run test in scripts/devstack, .github/workflows/release.yml):
#   scripts/release.sh binaries   CGO_ENABLED=0 binaries for every ARCHES into dist/bin/linux_<arch>/
#                                 (always under the repository: it is the image build context)
#   scripts/release.sh base       the scratch-based base image (deployments/base) as $LOCAL_BASE
#   scripts/release.sh images     one image per service from services/<svc>/Dockerfile's prebuilt
#                                 stage (BINARY_FROM=prebuilt: COPY of the binary built above, no
#                                 compiler in the image build), FROM $BASE_IMAGE; one OCI archive per
#                                 service holding every arch: $DIST/images/<svc>.oci.tar
#   scripts/release.sh chart      helm package into $DIST/chart/
# Environment: VERSION, REVISION (stamped into pkg/version), ARCHES
# ("amd64 arm64"), DIST (dist: images, chart, buildah storage), SERVICES, BASE_IMAGE (empty: build and use
# the local base), BUILDAH_FLAGS (storage options; default vfs under $DIST/.buildah).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
CREATED=${CREATED:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
ARCHES=${ARCHES:-amd64 arm64}
DIST=${DIST:-$ROOT/dist}
BINDIR=$ROOT/dist/bin
SERVICES=${SERVICES:-ingest-gateway schema-registry s3-sink search-sink kafka-exporter}
LOCAL_BASE=${LOCAL_BASE:-localhost/sluice-base:local}
BASE_IMAGE=${BASE_IMAGE:-}
BUILDAH_FLAGS=${BUILDAH_FLAGS:---storage-driver vfs --root $DIST/.buildah/root --runroot $DIST/.buildah/run}
IMAGE_REPO=${IMAGE_REPO:-ghcr.io/sluicehq}
LDFLAGS="-s -w -X github.com/sluicehq/sluice/pkg/version.Version=$VERSION -X github.com/sluicehq/sluice/pkg/version.Revision=$REVISION"
# shellcheck disable=SC2086
bh() { buildah $BUILDAH_FLAGS "$@"; }

binaries() {
  for arch in $ARCHES; do
    mkdir -p "$BINDIR/linux_$arch"
    for s in $SERVICES; do
      (cd "services/$s" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "$LDFLAGS" -o "$BINDIR/linux_$arch/$s" .)
    done
    echo "binaries: $BINDIR/linux_$arch ($SERVICES)"
  done
}

base() {
  local ctx; ctx=$(mktemp -d); trap 'rm -rf "$ctx"' RETURN
  local r=$ctx/rootfs
  mkdir -p "$r/etc/ssl/certs" "$r/tmp" "$r/home/nonroot" "$r/dev" "$r/proc" "$r/sys" "$r/run"
  chmod 1777 "$r/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$r/etc/group"
  cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
  # Mount points buildah (chroot isolation) binds over; they must exist
  # for a read-only root.
  touch "$r/etc/hosts" "$r/etc/resolv.conf" "$r/etc/hostname" "$r/run/.containerenv"
  chown -R 65532:65532 "$r/home/nonroot"
  cp deployments/base/Dockerfile "$ctx/Dockerfile"
  for arch in $ARCHES; do
    bh bud -q --isolation chroot --arch "$arch" -t "$LOCAL_BASE-$arch" "$ctx" >/dev/null
  done
  echo "base: $LOCAL_BASE-{${ARCHES// /,}}"
}

images() {
  mkdir -p "$DIST/images"
  for s in $SERVICES; do
    local list="$IMAGE_REPO/$s:$VERSION"
    bh manifest rm "$list" >/dev/null 2>&1 || true
    bh manifest create "$list" >/dev/null
    for arch in $ARCHES; do
      local from=${BASE_IMAGE:-$LOCAL_BASE-$arch}
      local pull=--pull-never; [ -n "$BASE_IMAGE" ] && pull=--pull
      bh bud -q --isolation chroot $pull --arch "$arch" -f "services/$s/Dockerfile" \
        --build-arg BINARY_FROM=prebuilt --build-arg BASE_IMAGE="$from" --build-arg TARGETARCH="$arch" \
        --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" --build-arg CREATED="$CREATED" \
        -t "$IMAGE_REPO/$s:$VERSION-$arch" . >/dev/null
      bh manifest add "$list" "$IMAGE_REPO/$s:$VERSION-$arch" >/dev/null
    done
    rm -f "$DIST/images/$s.oci.tar"
    bh manifest push -q --all "$list" "oci-archive:$DIST/images/$s.oci.tar:$VERSION" >/dev/null
    echo "image: $DIST/images/$s.oci.tar ($IMAGE_REPO/$s:$VERSION, linux/{${ARCHES// /,}})"
  done
}

chart() {
  mkdir -p "$DIST/chart"
  helm package helm/sluice --version "${VERSION#v}" --app-version "$VERSION" -d "$DIST/chart" >/dev/null 2>&1 ||
    helm package helm/sluice -d "$DIST/chart"
  ls "$DIST"/chart/*.tgz
}

for step in "$@"; do "$step"; done
