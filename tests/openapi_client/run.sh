#!/usr/bin/env bash
# The typed-client check of .ci/run: installs the pinned tools of requirements.txt into a
# virtualenv under target/ (again only when that file changes), builds `backforge`, then runs
# tests/openapi_client/run.py, which starts a private `backforge serve`, validates its OpenAPI
# document against the OpenAPI 3.1 meta-schema, generates a Python client from it and runs the
# tour with that client. Everything offline but the install. Extra arguments go to run.py.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=target/openapi-client-venv
REQUIREMENTS=tests/openapi_client/requirements.txt
PYTHON=${PYTHON:-python3}

# The generated client uses typing.Self.
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  { echo "openapi-client: needs python >= 3.11, have $("$PYTHON" --version)" >&2; exit 1; }

stamp="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1) $("$PYTHON" --version)"
if [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  echo "$stamp" >"$VENV/.requirements"
fi

if [ -z "${BACKFORGE_BIN:-}" ]; then
  cargo build --quiet --locked -p backforge
fi
exec "$VENV/bin/python" tests/openapi_client/run.py "$@"
