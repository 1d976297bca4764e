#!/usr/bin/env bash
# biokiosk-update: installs a release bundle (scripts/bundle.sh) beside the running one and switches to it
# atomically, with a way back. Installed as /opt/biokiosk/bin/biokiosk-update by deploy/install.sh.
#
#   biokiosk-update install BUNDLE.tar.gz [--no-restart]   unpack beside, check, switch, restart (rolls back if the
#                                                          service does not come up)
#   biokiosk-update rollback [--no-restart]                back to the previous release (and forth again)
#   biokiosk-update status                                 current, previous and installed releases
#   biokiosk-update prune [--keep N]                       remove releases other than current and previous
#   options: --prefix DIR (default /opt/biokiosk), --service UNIT (default biokiosk-kiosk.service),
#            --smoke-timeout S (default 120)
#
# Layout: PREFIX/releases/<version>/ (each a whole release: node, dist/, node_modules/), PREFIX/current and
# PREFIX/previous (symlinks into releases/). systemd starts PREFIX/current/..., so a switch is one rename(2) of a
# symlink: at every moment `current` is the old release or the new one, whole. Nothing is ever written to the state
# folder (/var/lib/biokiosk: outbox, seq, tree heads), so an update or a rollback keeps every queued attestation.
# A bundle that does not unpack completely, whose checksum or platform is wrong, or whose `biokiosk --version`
# does not answer its own version is never switched to; a release whose service does not come up is rolled back.
set -euo pipefail

PREFIX=/opt/biokiosk
SERVICE=biokiosk-kiosk.service
SMOKE_TIMEOUT=120
RESTART=1
KEEP=2
die() { printf 'biokiosk-update: %s\n' "$*" >&2; exit 1; }
say() { printf 'biokiosk-update: %s\n' "$*" >&2; }

CMD=${1:-}
[ $# -gt 0 ] && shift
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$2; shift 2 ;;
    --service) SERVICE=$2; shift 2 ;;
    --smoke-timeout) SMOKE_TIMEOUT=$2; shift 2 ;;
    --no-restart) RESTART=0; shift ;;
    --keep) KEEP=$2; shift 2 ;;
    -*) die "unknown option $1" ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
RELEASES=$PREFIX/releases

# The version a release points at ("" when the link is absent).
target() { [ -L "$PREFIX/$1" ] && basename "$(readlink "$PREFIX/$1")" || true; }

# Points PREFIX/NAME at releases/VERSION with one rename(2): a new link beside it, moved over the old one.
point() {
  local name=$1 version=$2 tmp
  tmp=$PREFIX/.$name.$$
  ln -sfn "releases/$version" "$tmp"
  mv -T "$tmp" "$PREFIX/$name"
}

platform() {
  case "$(uname -m)" in
    aarch64|arm64) echo linux-arm64 ;;
    x86_64|amd64) echo linux-x64 ;;
    *) echo "linux-$(uname -m)" ;;
  esac
}

# The release answers its own version within the time allowed (a missing library, a broken native module or a
# truncated file shows here, before any switch).
smoke() {
  local dir=$1 version=$2 out
  out=$(cd / && timeout "$SMOKE_TIMEOUT" "$dir/node/bin/node" "$dir/bin/biokiosk.js" --version 2>&1) || { say "the new release does not start: $out"; return 1; }
  [ "$(printf '%s' "$out" | tail -1)" = "$version" ] || { say "the new release says \"$(printf '%s' "$out" | tail -1)\", not $version"; return 1; }
}

have_service() { command -v systemctl >/dev/null 2>&1 && systemctl cat "$SERVICE" >/dev/null 2>&1; }

# Restarts the service on the current release; true when it is active (Type=notify: it said READY=1) in time.
restart() {
  [ "$RESTART" = 1 ] && have_service || return 0
  say "restarting $SERVICE"
  systemctl restart "$SERVICE" || true
  for _ in $(seq 1 60); do
    systemctl is-active --quiet "$SERVICE" && return 0
    systemctl is-failed --quiet "$SERVICE" && return 1
    sleep 1
  done
  return 1
}

cmd_install() {
  local bundle=${ARGS[0]:-}
  [ -n "$bundle" ] && [ -f "$bundle" ] || die "install needs a bundle file (biokiosk-VERSION-linux-ARCH-nodeN.tar.gz)"
  mkdir -p "$RELEASES"
  # Leftovers of an install that was cut off (power loss) are never a release.
  rm -rf "$RELEASES"/.incoming-* "$PREFIX"/.current.* "$PREFIX"/.previous.*
  if [ -f "$bundle.sha256" ]; then
    (cd "$(dirname "$bundle")" && sha256sum --check --status "$(basename "$bundle").sha256") || die "$bundle does not match $bundle.sha256: not installed"
  fi
  INCOMING=$(mktemp -d "$RELEASES/.incoming-XXXXXX")
  trap 'rm -rf "$INCOMING"' EXIT
  local incoming=$INCOMING
  tar -xzf "$bundle" -C "$incoming" || die "$bundle did not unpack completely: not installed (current release unchanged)"
  local top
  top=$(find "$incoming" -mindepth 1 -maxdepth 1 -type d | head -1)
  [ -n "$top" ] && [ -f "$top/RELEASE.json" ] && [ -f "$top/bin/biokiosk.js" ] && [ -x "$top/node/bin/node" ] || die "$bundle is not a biokiosk release bundle"
  local version plat
  version=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$top/RELEASE.json")
  plat=$(sed -n 's/.*"platform": *"\([^"]*\)".*/\1/p' "$top/RELEASE.json")
  [[ "$version" =~ ^[0-9A-Za-z.+-]+$ ]] || die "$bundle has no valid version in RELEASE.json"
  [ "$plat" = "$(platform)" ] || die "$bundle is for $plat, this box is $(platform)"
  [ "$version" != "$(target current)" ] || { say "$version is already the current release"; return 0; }
  smoke "$top" "$version" || die "$version not installed (current release unchanged)"
  sync -f "$top" 2>/dev/null || sync
  rm -rf "${RELEASES:?}/$version"
  mv -T "$top" "$RELEASES/$version"
  rm -rf "$incoming"
  trap - EXIT
  local old
  old=$(target current)
  [ -n "$old" ] && point previous "$old"
  point current "$version"
  say "current release: $version${old:+ (previous: $old)}"
  if ! restart; then
    [ -n "$old" ] || die "$version does not come up as $SERVICE, and there is no previous release to go back to"
    say "$SERVICE did not come up on $version: rolling back to $old"
    point current "$old"
    point previous "$version"
    restart || die "$SERVICE does not come up on $old either: see journalctl -u $SERVICE"
    die "$version rolled back (the service did not start on it); current release: $old"
  fi
}

cmd_rollback() {
  local cur prev
  cur=$(target current)
  prev=$(target previous)
  [ -n "$prev" ] && [ -d "$RELEASES/$prev" ] || die "there is no previous release to go back to"
  point current "$prev"
  [ -n "$cur" ] && point previous "$cur"
  say "current release: $prev (previous: ${cur:-none})"
  restart || die "$SERVICE does not come up on $prev: see journalctl -u $SERVICE"
}

cmd_status() {
  printf 'current: %s\nprevious: %s\nreleases:' "$(target current)" "$(target previous)"
  [ -d "$RELEASES" ] && find "$RELEASES" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf ' %f' | tr ' ' '\n' | sort -V | tr '\n' ' '
  printf '\n'
}

cmd_prune() {
  local cur prev n=0
  cur=$(target current)
  prev=$(target previous)
  for d in $(find "$RELEASES" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%f\n' | sort -rV); do
    [ "$d" = "$cur" ] || [ "$d" = "$prev" ] && continue
    n=$((n + 1))
    [ "$n" -le $((KEEP - 2)) ] && continue
    rm -rf "${RELEASES:?}/$d" && say "removed release $d"
  done
}

case "$CMD" in
  install) cmd_install ;;
  rollback) cmd_rollback ;;
  status) cmd_status ;;
  prune) cmd_prune ;;
  *) die "usage: biokiosk-update install BUNDLE | rollback | status | prune [--prefix DIR] [--service UNIT] [--no-restart]" ;;
esac
