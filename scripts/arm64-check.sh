#!/usr/bin/env bash
# The device install and its checks on an emulated aarch64 CPU (qemu-user, an arm64 Debian root,
# aarch64 wheels): scripts/arm64-check.sh BUILDS_DIR [--data ../shared/data] [--limit N] ...
# Needs: apt-get install qemu-user-static mmdebstrap; the project's venv (it runs the x86 side).
# The environment is cached under ~/.cache/maskgate/arm64 (--env DIR); see scripts/arm64_check.py.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${MASKGATE_PYTHON:-$here/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
exec "$python" "$here/scripts/arm64_check.py" "$@"
