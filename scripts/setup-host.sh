#!/usr/bin/env bash
# Installs the Debian packages the local target needs, when missing.
# Idempotent; without root it only says what to run.
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v iptables-restore >/dev/null || need+=(iptables)
command -v tshark >/dev/null || need+=(tshark)
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v chromium >/dev/null || need+=(chromium)   # opens the Allure report in a test
command -v npm >/dev/null || need+=(npm)
command -v setpriv >/dev/null || need+=(util-linux)
[ -x /usr/bin/python3 ] || need+=(python3)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "meshproof: missing host packages: ${need[*]}" >&2
  echo "  run as root: apt-get update && apt-get install -y ${need[*]}" >&2
  echo "  (or run 'sudo make ...' so the Makefile installs them)" >&2
  exit 2
fi
echo "meshproof: installing host packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no, non-interactively.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
