#!/usr/bin/env bash
# The device install and its checks on an emulated aarch64 CPU (qemu-user, an arm64 Debian root,
# aarch64 wheels): scripts/arm64-check.sh BUILDS_DIR [--data ../shared/data] [--limit N] ...
# Needs: apt-get install qemu-user-static mmdebstrap; the project's venv (it runs the x86 side).
# The environment is cached under ~/.cache/maskgate/arm64 (--env DIR); see scripts/arm64_check.py.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
# The x86 side imports maskgate: MASKGATE_PYTHON, else the project's .venv, else any python3 on PATH
# (3.10 or newer) that has maskgate installed; the wheel is built in pip's own build environment
# where that interpreter's setuptools is too old for pyproject.toml.
python="${MASKGATE_PYTHON:-}"
if [ -z "$python" ]; then
    for candidate in "$here/.venv/bin/python" "$(command -v python3 || true)"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c "import maskgate" 2>/dev/null; then
            python="$candidate"; break
        fi
    done
fi
if [ -z "$python" ]; then
    echo "arm64-check: no Python with maskgate installed; make the project's environment (the README's first" \
         "line), or set MASKGATE_PYTHON to an interpreter that has it" >&2
    exit 2
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "arm64-check: $python is older than Python 3.10; set MASKGATE_PYTHON to a newer interpreter with maskgate" >&2
    exit 2
fi
exec "$python" "$here/scripts/arm64_check.py" "$@"
