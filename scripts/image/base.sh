#!/usr/bin/env bash
# Builds the Dockerfile's base image, node:20-bookworm-slim, on a machine that cannot pull from
# a container registry: Debian bookworm from the apt mirror (debootstrap, minbase variant) plus
# the official Node.js binary from the npm package node-linux-<arch> and npm from the npm
# registry, laid out like the official image (node under /usr/local, user `node` uid/gid 1000,
# docker-entrypoint.sh, CMD node). Imported under the official name so `FROM node:20-bookworm-slim`
# resolves with `--pull=never`. Skipped when an image of that name carries this recipe's hash.
# Needs root, debootstrap, podman and npm. Environment: FALCON_DEBIAN_MIRROR (default: the
# Debian mirror apt uses here), FALCON_BASE_REBUILD=1 to rebuild regardless.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

NODE_VERSION=20.20.2
# The npm release bundled with Node 20.20 (the official image keeps the bundled one).
NPM_VERSION=10.8.2
SUITE=bookworm
IMAGE=docker.io/library/node:20-bookworm-slim

case "$(uname -m)" in
  x86_64) node_arch=x64 ;;
  aarch64) node_arch=arm64 ;;
  *) echo "no node-linux package for $(uname -m)" >&2; exit 1 ;;
esac

# One build at a time per machine (the test and a developer may both ask for it).
cache="${XDG_CACHE_HOME:-$HOME/.cache}/falcon/base"
mkdir -p "$cache/debs"
exec 9>"$cache/lock"
flock 9

recipe="$( { cat "$0" "$here/docker-entrypoint.sh"; echo "$NODE_VERSION $NPM_VERSION $SUITE $node_arch"; } | sha256sum | cut -c1-16)"
current="$(podman image inspect --format '{{ index .Labels "falcon.base.recipe" }}' "$IMAGE" 2>/dev/null || true)"
if [ "$current" = "$recipe" ] && [ "${FALCON_BASE_REBUILD:-0}" != 1 ]; then
  echo "base image $IMAGE is up to date (recipe $recipe)"
  exit 0
fi

# The mirror apt already uses (deb822 .sources or one-line sources.list), not the security one.
mirror="${FALCON_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ { print $2 }' | grep -E '/debian/?$' | head -n 1 || true)"
fi
if [ -z "$mirror" ]; then
  mirror="$(cat /etc/apt/sources.list 2>/dev/null | awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2 }' | head -n 1 || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"

work="$(mktemp -d)"
rootfs="$work/rootfs"
cleanup() {
  # debootstrap mounts /proc and /sys in the target; never delete through a live mount.
  for m in $(findmnt -R -n -o TARGET "$rootfs" 2>/dev/null | sort -r); do umount -l "$m" || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

started=$(date +%s)
echo "== debootstrap --variant=minbase $SUITE from $mirror"
debootstrap --variant=minbase --cache-dir="$cache/debs" "$SUITE" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

# Slim like debian:bookworm-slim: no docs, man pages or translations now or from later installs
# (copyright files stay), no package lists or caches.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda}/* "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* "$rootfs"/dev/* "$rootfs"/tmp/*
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
# The runtime provides these; the builder's own must not leak into the image.
rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"

echo "== node $NODE_VERSION ($node_arch) and npm $NPM_VERSION from the npm registry"
(cd "$cache" && for pkg in "node-linux-$node_arch@$NODE_VERSION" "npm@$NPM_VERSION"; do
  name="${pkg%@*}"; file="$name-${pkg##*@}.tgz"
  [ -f "$file" ] || npm pack --silent "$pkg" >/dev/null
done)
mkdir -p "$work/node" "$rootfs/usr/local/lib/node_modules/npm"
tar -xzf "$cache/node-linux-$node_arch-$NODE_VERSION.tgz" -C "$work/node"
install -m 0755 "$work/node/package/bin/node" "$rootfs/usr/local/bin/node"
cp -r "$work/node/package/include" "$work/node/package/share" "$rootfs/usr/local/"
tar -xzf "$cache/npm-$NPM_VERSION.tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
install -m 0755 "$here/docker-entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"

in_rootfs() { env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root chroot "$rootfs" "$@"; }
in_rootfs groupadd --gid 1000 node
in_rootfs useradd --uid 1000 --gid node --shell /bin/bash --create-home node
in_rootfs node --version >/dev/null
in_rootfs npm --version >/dev/null
rm -rf "$rootfs/root/.npm"

echo "== import as $IMAGE"
tar --numeric-owner --xattrs -C "$rootfs" -c . | podman import --quiet \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=$NODE_VERSION" \
  --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  --change 'CMD ["node"]' \
  --change "LABEL falcon.base.recipe=$recipe" \
  --message "debootstrap $SUITE minbase + node $NODE_VERSION + npm $NPM_VERSION" \
  - "$IMAGE" >/dev/null
echo "base image $IMAGE built in $(( $(date +%s) - started )) s, $(podman image inspect --format '{{ .Size }}' "$IMAGE" | awk '{ printf "%.0f MiB", $1 / 1048576 }')"
