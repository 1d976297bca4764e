#!/usr/bin/env bash
# Development PKI for a fleet broker: a CA, the broker's server certificate, and one client certificate per device
# and per verifier node (EC P-256). For development and tests only: a fleet's real CA lives offline.
#
#   scripts/dev-pki.sh DIR [--san DNS:host|IP:addr]... [--device ID]... [--verifier ID]...
#
# Writes DIR/ca.pem (+ ca.key), DIR/server.pem (+ server.key; SANs: localhost, 127.0.0.1 and each --san),
# DIR/devices/ID.pem (+ .key; CN = the device id) and DIR/verifiers/ID.pem (+ .key; CN = verifier:ID, a name no
# device id can take, since device ids have no ':'). The broker uses the CN as the username and the client id
# (deploy/mosquitto/fleet.conf), so a certificate is one identity. Existing files are kept: run again to add
# identities. Private keys are mode 0600.
set -euo pipefail
umask 077
[ $# -ge 1 ] || { echo "usage: $0 DIR [--san SAN]... [--device ID]... [--verifier ID]..." >&2; exit 2; }
dir=$1; shift
sans=("DNS:localhost" "IP:127.0.0.1")
devices=(); verifiers=()
while [ $# -gt 0 ]; do
  case "$1" in
    --san) sans+=("$2"); shift 2 ;;
    --device) devices+=("$2"); shift 2 ;;
    --verifier) verifiers+=("$2"); shift 2 ;;
    *) echo "$0: unknown argument $1" >&2; exit 2 ;;
  esac
done
id_ok() { [[ "$1" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || { echo "$0: $2 id \"$1\" must be 1-64 characters of A-Z a-z 0-9 . _ -" >&2; exit 2; }; }
mkdir -p "$dir/devices" "$dir/verifiers"
command -v openssl >/dev/null || { echo "$0: openssl is not installed (apt-get install openssl)" >&2; exit 1; }

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }
serial() { echo "0x$(openssl rand -hex 16)"; }

# sign KEY CERT SUBJECT EXTENSIONS
sign() {
  local ext; ext=$(mktemp); printf '%b\n' "$4" > "$ext"
  openssl req -new -key "$1" -subj "$3" 2>/dev/null |
    openssl x509 -req -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -set_serial "$(serial)" -days 825 -sha256 -extfile "$ext" -out "$2" 2>/dev/null
  rm -f "$ext"
}

if [ ! -f "$dir/ca.pem" ]; then
  newkey "$dir/ca.key"
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 -subj "/CN=biokiosk development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.pem" 2>/dev/null
fi
if [ ! -f "$dir/server.pem" ]; then
  newkey "$dir/server.key"
  sign "$dir/server.key" "$dir/server.pem" "/CN=biokiosk broker" \
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=$(IFS=,; echo "${sans[*]}")"
fi
client() { # KIND ID CN
  local base="$dir/$1/$2"
  [ -f "$base.pem" ] && return 0
  newkey "$base.key"
  sign "$base.key" "$base.pem" "/CN=$3" "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth"
}
for d in "${devices[@]+"${devices[@]}"}"; do id_ok "$d" device; client devices "$d" "$d"; done
for v in "${verifiers[@]+"${verifiers[@]}"}"; do id_ok "$v" verifier; client verifiers "$v" "verifier:$v"; done
chmod 644 "$dir/ca.pem" "$dir/server.pem" "$dir"/devices/*.pem "$dir"/verifiers/*.pem 2>/dev/null || true
