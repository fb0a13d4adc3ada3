#!/usr/bin/env bash
# Installs what the sink tests need besides Rust: a real SMTP server (aiosmtpd from PyPI) in a
# virtualenv under .cache/, reused on the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/venv
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'aiosmtpd>=1.4,<2'
fi
echo "$PWD/$venv/bin/python"
