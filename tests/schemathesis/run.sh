#!/usr/bin/env bash
# The hostile-input run of .ci/run: installs the pinned schemathesis into a virtualenv under
# target/ (once per version), builds `backforge`, then runs tests/schemathesis/run.py, which
# starts a private `backforge serve` and fuzzes its OpenAPI document. Extra arguments go to
# run.py (e.g. --max-examples 10 --seed 1).
set -euo pipefail
cd "$(dirname "$0")/../.."

SCHEMATHESIS_VERSION=4.32.5
VENV=target/schemathesis-venv
PYTHON=${PYTHON:-python3}

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
"$VENV/bin/st" --version

if [ -z "${BACKFORGE_BIN:-}" ]; then
  cargo build --quiet --locked -p backforge
fi
exec "$VENV/bin/python" tests/schemathesis/run.py "$@"
