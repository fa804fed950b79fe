#!/usr/bin/env bash
# Installs the build prerequisites of Tessera on Debian: the tools that build the vendored
# ISA-L (autoconf automake libtool nasm) and libclang for its bindings. Idempotent.
set -euo pipefail
need=()
for pkg in autoconf automake libtool nasm libclang-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
