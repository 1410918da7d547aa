#!/usr/bin/env bash
# shellcheck for the runbook script tests (tests/test_runbooks.py), from Debian's `shellcheck`
# package.
set -euo pipefail

if command -v shellcheck >/dev/null 2>&1; then
  echo "shellcheck present: $(shellcheck --version | sed -n 2p)" >&2
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "setup-shellcheck: shellcheck is missing and this is not root; install Debian's shellcheck package" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends shellcheck >&2

command -v shellcheck >/dev/null 2>&1 || { echo "setup-shellcheck: shellcheck still missing after install" >&2; exit 1; }
echo "shellcheck installed: $(shellcheck --version | sed -n 2p)" >&2
