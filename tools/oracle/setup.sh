#!/bin/sh
# Creates tools/oracle/.venv (if missing) and installs the pinned packages of
# tools/oracle/requirements.txt. Idempotent: when every pin is already installed
# it only checks and exits. Needs PyPI access the first time.
# Usage: sh tools/oracle/setup.sh      (PYTHON=python3.11 to choose the interpreter)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv"
py=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    echo "oracle: creating $venv" >&2
    "$py" -m venv "$venv"
fi
if "$venv/bin/python" - "$here/requirements.txt" <<'PYEOF'
import sys
from importlib.metadata import version, PackageNotFoundError
ok = True
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have is None or have.split("+")[0] != want:
        ok = False
sys.exit(0 if ok else 1)
PYEOF
then
    exit 0
fi
echo "oracle: installing pinned packages into $venv" >&2
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$here/requirements.txt"
