#!/bin/sh
# Builds the fleet broker's rate-limit plugin (deploy/mosquitto/rate-limit/) for the mosquitto installed here.
# Needs gcc and Debian's mosquitto-dev and libmosquitto-dev (the plugin headers). Output: the path given, or
# build/mosquitto/biokiosk_rate_limit.so; install it where deploy/mosquitto/fleet.conf's plugin line points.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$root/build/mosquitto/biokiosk_rate_limit.so"}
src="$root/deploy/mosquitto/rate-limit/biokiosk_rate_limit.c"
mkdir -p "$(dirname "$out")"
# Symbols come from the broker at load time, as for mosquitto's own plugins.
${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror -fPIC -shared -o "$out.tmp" "$src" -lm
mv "$out.tmp" "$out"
echo "$out"
