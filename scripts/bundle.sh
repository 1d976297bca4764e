#!/usr/bin/env bash
# A release bundle: what a kiosk installs (deploy/biokiosk-update.sh install BUNDLE). The package as `npm pack` makes
# it (dist/, the model files, the service files), its production node_modules for the target (native modules for
# that CPU: the npm prebuilds where the packages ship them, better-sqlite3 compiled here, cross-compiled for
# arm64), the Node.js runtime for the target from the npm registry (node-linux-<arch>), and NOTICES.md regenerated
# from that tree. A kiosk needs no registry, no compiler and no tsx.
#
#   scripts/bundle.sh [--arch arm64|x64] [--node VERSION] [--out DIR]
#
# Defaults: the machine's arch, this machine's Node version, .arm64/bundles/. Prints the bundle's path last.
# Needs: npm, tar, python3, make; for arm64, Debian's crossbuild-essential-arm64 (installed with apt-get as root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ARCH=$(node -p process.arch)
NODE_VERSION=$(node -p 'process.versions.node')
OUT=$ROOT/.arm64/bundles
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH=$2; shift 2 ;;
    --node) NODE_VERSION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "bundle: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$ARCH" in arm64|x64) ;; *) echo "bundle: --arch must be arm64 or x64, got $ARCH" >&2; exit 2 ;; esac
HOST_ARCH=$(node -p process.arch)
VERSION=$(node -p 'require("./package.json").version')
NAME=biokiosk-$VERSION-linux-$ARCH-node$NODE_VERSION
WORK=$ROOT/.arm64/work/$NAME
CACHE=$ROOT/.arm64/cache
STAGE=$WORK/biokiosk-$VERSION
log() { printf 'bundle: %s\n' "$*" >&2; }

rm -rf "$WORK" && mkdir -p "$WORK" "$OUT" "$CACHE"

# 1. The package (prepack runs the build).
log "npm pack (builds dist/)"
TARBALL=$(npm pack --silent --pack-destination "$WORK" | tail -1)
tar -xzf "$WORK/$TARBALL" -C "$WORK" && mv "$WORK/package" "$STAGE"

# 2. Production dependencies for the target, from the lockfile; no install scripts (decided below, per package).
log "npm ci --omit=dev for linux-$ARCH"
cp package-lock.json "$STAGE/"
(cd "$STAGE" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --cpu="$ARCH" --os=linux --libc=glibc --loglevel=error)

# 3. The Node.js runtime for the target; its headers build the native module below.
NODE_PKG=node-linux-$ARCH@$NODE_VERSION
if [ ! -x "$CACHE/$NODE_PKG/bin/node" ]; then
  log "fetching $NODE_PKG"
  rm -rf "$CACHE/$NODE_PKG" && mkdir -p "$CACHE/$NODE_PKG"
  NODE_TGZ=$(cd "$CACHE" && npm pack --silent "$NODE_PKG" | tail -1)
  tar -xzf "$CACHE/$NODE_TGZ" -C "$CACHE/$NODE_PKG" --strip-components=1 && rm "$CACHE/$NODE_TGZ"
fi
mkdir -p "$STAGE/node/bin"
cp "$CACHE/$NODE_PKG/bin/node" "$STAGE/node/bin/node"
cp "$CACHE/$NODE_PKG/LICENSE" "$CACHE/$NODE_PKG/package.json" "$STAGE/node/"

# 4. better-sqlite3: no prebuild can be fetched here, so compile it against the target Node's headers.
SQLITE=$STAGE/node_modules/better-sqlite3
GYP=$(npm config get node-gyp)
[ -f "$GYP" ] || GYP=$(dirname "$(command -v npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js
log "compiling better-sqlite3 for linux-$ARCH, Node $NODE_VERSION"
if [ "$ARCH" != "$HOST_ARCH" ]; then
  [ "$ARCH" = arm64 ] || { echo "bundle: cross-compiling to $ARCH is not set up" >&2; exit 1; }
  command -v aarch64-linux-gnu-g++ >/dev/null || { echo "bundle: aarch64-linux-gnu-g++ missing: apt-get install crossbuild-essential-arm64" >&2; exit 1; }
  export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar LINK=aarch64-linux-gnu-g++
  export CC_host=gcc CXX_host=g++ AR_host=ar LINK_host=g++
fi
(cd "$SQLITE" && node "$GYP" rebuild --release --jobs=2 --arch="$ARCH" --nodedir="$CACHE/$NODE_PKG" --loglevel=warn >&2)
# Keep the addon, drop the objects and the SQLite sources (tens of MB).
find "$SQLITE/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
find "$SQLITE/build/Release" -mindepth 1 ! -name better_sqlite3.node -exec rm -rf {} +
rm -rf "$SQLITE/deps" "$SQLITE/src"

# 5. Native files for other platforms are dead weight on a kiosk.
for d in "$STAGE"/node_modules/onnxruntime-node/bin/napi-v*/*; do [ "$(basename "$d")" = linux ] || rm -rf "$d"; done
for d in "$STAGE"/node_modules/onnxruntime-node/bin/napi-v*/linux/*; do [ "$(basename "$d")" = "$ARCH" ] || rm -rf "$d"; done
for d in "$STAGE"/node_modules/@serialport/bindings-cpp/prebuilds/*; do [ "$(basename "$d")" = "linux-$ARCH" ] || rm -rf "$d"; done
rm "$STAGE/package-lock.json"

# 6. Notices for exactly this tree, and what the bundle is.
node --import tsx scripts/notices.ts --root "$STAGE" --node "$STAGE/node" --out "$STAGE/NOTICES.md"
cat > "$STAGE/RELEASE.json" <<EOF
{ "name": "biokiosk", "version": "$VERSION", "platform": "linux-$ARCH", "node": "$NODE_VERSION", "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)" }
EOF

BUNDLE=$OUT/$NAME.tar.gz
tar -C "$WORK" -czf "$BUNDLE.tmp" "biokiosk-$VERSION" && mv "$BUNDLE.tmp" "$BUNDLE"
(cd "$OUT" && sha256sum "$NAME.tar.gz" > "$NAME.tar.gz.sha256")
log "$(du -h "$BUNDLE" | cut -f1) $BUNDLE"
echo "$BUNDLE"
