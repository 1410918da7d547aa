#!/usr/bin/env bash
# promtool for the SLO rule tests (`promtool check rules`, `promtool test rules`), from Debian's
# `prometheus` package. Only the binary is used: the prometheus service is never left running.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  echo "promtool present: $(promtool --version 2>&1 | head -n1)" >&2
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "setup-promtool: promtool is missing and this is not root; install Debian's prometheus package" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 tells invoke-rc.d not to start services that packages install.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

apt-get update -q >&2
apt-get install -y -q --no-install-recommends prometheus >&2

# Should the package have started the daemon anyway (systemd hosts ignore policy-rc.d), stop it.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl stop prometheus >/dev/null 2>&1 || true
  systemctl disable prometheus >/dev/null 2>&1 || true
fi
if command -v service >/dev/null 2>&1; then
  service prometheus stop >/dev/null 2>&1 || true
fi

command -v promtool >/dev/null 2>&1 || { echo "setup-promtool: promtool still missing after install" >&2; exit 1; }
echo "promtool installed: $(promtool --version 2>&1 | head -n1)" >&2
