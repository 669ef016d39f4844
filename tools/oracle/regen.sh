#!/bin/sh
# One command to rebuild every oracle fixture under tests/fixtures/:
#   sh tools/oracle/regen.sh [--only v4-flash-tiny ...]
# 1. installs/validates the pinned venv (setup.sh), 2. regenerates the fixtures
# (make_fixtures.py, fixed seeds, CPU, float32; V4.1 by make_fixtures_v41.py),
# 3. re-verifies them from the files alone (verify_fixtures.py, make_fixtures_v41.py verify);
# 4. rebuilds the demo model oracle tests/data/demo/reference_logits.safetensors
# (make_demo_reference.py). Runs single-threaded; takes about a minute.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
sh tools/oracle/setup.sh
tools/oracle/.venv/bin/python tools/oracle/make_fixtures.py "$@"
tools/oracle/.venv/bin/python tools/oracle/verify_fixtures.py
tools/oracle/.venv/bin/python tools/oracle/make_fixtures_v41.py build
tools/oracle/.venv/bin/python tools/oracle/make_fixtures_v41.py verify
tools/oracle/.venv/bin/python tools/oracle/make_demo_reference.py
