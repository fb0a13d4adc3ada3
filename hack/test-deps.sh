#!/usr/bin/env bash
# Installs what the sink tests need besides Rust: the openssl CLI (Debian package) and a real SMTP
# server (aiosmtpd from PyPI) in a virtualenv under .cache/, reused on the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
# The email test makes its CA and server certificate with the openssl CLI.
if ! command -v openssl >/dev/null; then
  if [[ $(id -u) == 0 ]]; then
    apt-get update -qq >&2 && apt-get install -y -qq openssl >&2
  else
    echo "test-deps: the openssl command is required (apt-get install openssl)" >&2
    exit 1
  fi
fi
venv=.cache/venv
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'aiosmtpd>=1.4,<2'
fi
echo "$PWD/$venv/bin/python"
