#!/usr/bin/env bash
# The local target creates network namespaces and iptables rules: it needs root.
if [ "$(id -u)" -ne 0 ]; then
  echo "meshproof: '$1' needs root (network namespaces, iptables in them)." >&2
  echo "  run: sudo $1" >&2
  exit 2
fi
