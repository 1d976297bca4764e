#!/usr/bin/env bash
# First installation of biokiosk on a box (as root), from a release bundle (scripts/bundle.sh):
#
#   deploy/install.sh BUNDLE.tar.gz [--verifier]
#
# Creates the service's user (biokiosk, in tss, dialout, video and plugdev; with --verifier, biokiosk-verifier),
# installs the release under /opt/biokiosk/releases/<version> with /opt/biokiosk/current pointing at it (by
# biokiosk-update, which later updates go through too), the systemd unit, the udev rules, an example configuration
# in /etc/biokiosk (an existing one is never overwritten), and enables the service when systemd runs. Run it again
# with a newer bundle and it is an update; the state folder (/var/lib/biokiosk) is never touched.
set -euo pipefail
BUNDLE=${1:?usage: install.sh BUNDLE.tar.gz [--verifier]}
ROLE=kiosk
[ "${2:-}" = --verifier ] && ROLE=verifier
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
say() { printf 'install: %s\n' "$*" >&2; }

if [ "$ROLE" = kiosk ]; then
  USER_NAME=biokiosk
  GROUPS_WANTED="tss dialout video plugdev tty"
  UNIT=biokiosk-kiosk.service
else
  USER_NAME=biokiosk-verifier
  GROUPS_WANTED=""
  UNIT=biokiosk-verifier.service
fi
for g in $GROUPS_WANTED; do getent group "$g" >/dev/null || groupadd --system "$g"; done
if ! id -u "$USER_NAME" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "/var/lib/$USER_NAME" --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
  say "created user $USER_NAME"
fi
[ -z "$GROUPS_WANTED" ] || usermod -aG "$(echo "$GROUPS_WANTED" | tr ' ' ',')" "$USER_NAME"

install -d -m 0755 /opt/biokiosk /opt/biokiosk/bin
install -m 0755 "$HERE/biokiosk-update.sh" /opt/biokiosk/bin/biokiosk-update
/opt/biokiosk/bin/biokiosk-update install "$BUNDLE" --service "$UNIT" --no-restart
CUR=/opt/biokiosk/current

# The command for technicians, and the service's files from the release just installed.
cat > /usr/local/bin/biokiosk <<'EOF'
#!/bin/sh
exec /opt/biokiosk/current/node/bin/node /opt/biokiosk/current/bin/biokiosk.js "$@"
EOF
chmod 0755 /usr/local/bin/biokiosk
install -d -m 0750 -g "$USER_NAME" /etc/biokiosk
install -m 0644 "$CUR/deploy/systemd/$UNIT" "/etc/systemd/system/$UNIT"
if [ "$ROLE" = kiosk ]; then
  install -d /etc/udev/rules.d
  install -m 0644 "$CUR/deploy/udev/60-biokiosk.rules" /etc/udev/rules.d/60-biokiosk.rules
  [ -e /etc/biokiosk/kiosk.conf ] || install -m 0640 -g "$USER_NAME" "$CUR/deploy/kiosk.conf.example" /etc/biokiosk/kiosk.conf
else
  [ -e /etc/biokiosk/verifier.env ] || install -m 0640 -g "$USER_NAME" "$CUR/deploy/verifier.env.example" /etc/biokiosk/verifier.env
fi

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  command -v udevadm >/dev/null && udevadm control --reload && udevadm trigger || true
  systemctl enable "$UNIT"
  say "enabled $UNIT: edit /etc/biokiosk/, run \`biokiosk doctor\`, then systemctl start $UNIT"
else
  say "systemd is not running here: $UNIT installed, not enabled"
fi
