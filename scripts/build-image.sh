#!/usr/bin/env bash
# `make image`: build the Dockerfile, unchanged, on a machine that cannot reach a container
# registry (only a Debian mirror and a Python package index).
#
#   1. debootstrap a Debian bookworm root filesystem with Debian's python3.11 and venv,
#      with /usr/local/bin/python{,3} pointing at it as in the python:*-slim-bookworm image
#      the Dockerfile names;
#   2. copy this machine's CA certificates into it, so pip inside the build trusts a local
#      package mirror or an intercepting proxy;
#   3. import it into the local container storage as a base image (cached: a repeat build
#      reuses it while the package list and the CA certificates are the same);
#   4. `buildah bud --pull=never --build-arg BASE_IMAGE=<that base>`: the Dockerfile's own
#      digest-pinned default is what CI and release builds use.
#
# Needs root and `apt-get install buildah podman runc debootstrap`.
# Environment: IMAGE (the tag to build, default localhost/bandeja:dev), DEBIAN_MIRROR,
# BANDEJA_IMAGE_CACHE (where the base root filesystem tarball is kept), REFRESH_BASE=1
# (bootstrap the base again, e.g. for Debian security updates: the cache never expires).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/bandeja:dev}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${BANDEJA_IMAGE_CACHE:-/var/tmp/bandeja-image-cache}
# What the Dockerfile uses from its base: python + venv (ensurepip), groupadd/useradd
# (passwd, part of every Debian), CA certificates for pip.
# (python3-distutils provides python3.11-distutils, which python3.11-venv needs and
# debootstrap's resolver does not find by itself.)
PACKAGES=python3.11,python3.11-venv,python3-distutils,ca-certificates

for tool in buildah podman debootstrap; do
  command -v "$tool" >/dev/null || {
    echo "build-image: $tool is missing (apt-get install buildah podman runc debootstrap)" >&2
    exit 1
  }
done
if [ "$(id -u)" != 0 ]; then
  echo "build-image: debootstrap and the container storage need root" >&2
  exit 1
fi

local_certs() {  # the machine's extra CA certificates, in a stable order
  find /usr/local/share/ca-certificates -type f -name '*.crt' 2>/dev/null | sort
}

# The base is keyed on what goes into it: a new CA certificate or package list rebuilds it.
key=$( { echo "$PACKAGES $MIRROR v1"; local_certs | xargs -r cat; } | sha256sum | cut -c1-16)
BASE=localhost/bandeja-base:bookworm-$key

if [ "${REFRESH_BASE:-}" = 1 ]; then
  podman rmi --force "$BASE" >/dev/null 2>&1 || true
  rm -f "$CACHE/bookworm-$key.tar"
fi

if podman image exists "$BASE"; then
  echo "build-image: base $BASE (cached)"
else
  mkdir -p "$CACHE"
  tarball=$CACHE/bookworm-$key.tar
  if [ ! -s "$tarball" ]; then
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    echo "build-image: debootstrap bookworm ($PACKAGES) from $MIRROR"
    debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$MIRROR" \
      >"$CACHE/debootstrap.log" 2>&1 || {
      # The reason is in the log inside the root filesystem, removed on exit.
      cat "$rootfs/debootstrap/debootstrap.log" >>"$CACHE/debootstrap.log" 2>/dev/null || true
      tail -30 "$CACHE/debootstrap.log" >&2
      exit 1
    }
    # The python image's layout: the interpreter at /usr/local/bin/python.
    for name in python python3 python3.11; do
      ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/$name"
    done
    # Trust what this machine trusts (a local mirror's or proxy's CA), then pip uses the
    # system bundle rather than its own certifi copy.
    while read -r cert; do cp "$cert" "$rootfs/usr/local/share/ca-certificates/"; done \
      < <(local_certs)
    chroot "$rootfs" update-ca-certificates >/dev/null
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
    # A small base: no apt lists, no docs, no logs of the bootstrap.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/var/log/*
    tar -C "$rootfs" --numeric-owner -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    rm -rf "$rootfs"
    trap - EXIT
  fi
  podman import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$tarball" "$BASE" >/dev/null
  echo "build-image: imported base $BASE"
fi

# --network host: RUN steps reach the package index the way this machine does.
# The runtime's default limits (open files, processes) can exceed what this machine lets a
# container set (runc fails with "error setting rlimits"): pass explicit ones.
buildah bud --pull=never --network host --runtime runc \
  --ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit nproc=4096:4096 \
  --layers --build-arg BASE_IMAGE="$BASE" -t "$IMAGE" -f Dockerfile . >&2
echo "build-image: built $IMAGE from $BASE"
