#!/usr/bin/env python3
"""Backforge's typed-client check: the served OpenAPI document is valid and a client generated from it works.

Starts `backforge serve` on a private database, port and NATS prefix, fetches
`/api/v1/openapi.json`, validates it against the OpenAPI 3.1 meta-schema that
openapi-spec-validator bundles (offline), generates a Python package from it with
openapi-python-client (offline, from the local file), and runs the tour in tour.py with that
package's typed models and functions. A generator warning fails the run: a part of the document
the generator refuses or mangles is a defect of the document. Everything it made is removed
afterwards; the generated package stays under target/openapi-client/ to be read.

Run through `tests/openapi_client/run.sh`, which installs the pinned tools first.
"""

import argparse
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Nothing this run imports from the source tree may leave __pycache__ in it.
sys.dont_write_bytecode = True

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PACKAGE = "backforge_client"


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Starting, probing and cleaning up a private server is the schemathesis harness's; one copy.
harness = load("schemathesis_run", ROOT / "tests/schemathesis/run.py")


def validate(document):
    """Errors of `document` against the OpenAPI 3.1 meta-schema, as printable lines."""
    from openapi_spec_validator import OpenAPIV31SpecValidator

    if not str(document.get("openapi", "")).startswith("3.1."):
        return [f"the document says openapi {document.get('openapi')!r}, not 3.1.x"]
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in OpenAPIV31SpecValidator(document).iter_errors()
    ]


def generate(document_path, out):
    """Generates the client package into out/PACKAGE; returns the generator's complaints."""
    target = out / PACKAGE
    shutil.rmtree(target, ignore_errors=True)
    venv_bin = Path(sys.executable).parent
    run = subprocess.run(
        [
            str(venv_bin / "openapi-python-client"),
            "generate",
            "--path",
            str(document_path),
            "--config",
            str(HERE / "config.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(target),
        ],
        # The generator formats its output with ruff, installed beside it.
        env=dict(os.environ, PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    complaints = [
        line
        for line in run.stdout.splitlines()
        if line.startswith(("WARNING", "ERROR", "Unable", "Cannot", "Error"))
        or "not in PATH" in line
    ]
    if run.returncode != 0 or not (target / "__init__.py").exists():
        complaints.append(f"openapi-python-client exited with {run.returncode}")
    if complaints:
        print(run.stdout)
    return complaints


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=os.environ.get("BACKFORGE_BIN", str(ROOT / "target/debug/backforge")))
    parser.add_argument("--postgres", default=os.environ.get("SCHEMATHESIS_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--generation-timeout", type=float, default=120, help="seconds the tour waits for its generation")
    args = parser.parse_args()

    started = time.time()
    run_id = secrets.token_hex(6)
    database = f"bft_openapi_client_{run_id}"
    prefix = f"bft_oc_{run_id}"
    port = harness.free_port()
    out = ROOT / "target/openapi-client"
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"serve-{run_id}.log"
    env = dict(
        os.environ,
        DATABASE_URL=f"{args.postgres}/{database}",
        BACKFORGE_ADDR=f"127.0.0.1:{port}",
        BACKFORGE_NATS_PREFIX=prefix,
        NATS_URL=args.nats_url,
        JWT_SECRET=secrets.token_hex(32),
        BACKFORGE_ENV="development",
        RUST_LOG="info",
        NO_COLOR="1",
    )
    env.pop("BACKFORGE_METRICS_TOKEN", None)
    api = harness.Api(f"http://127.0.0.1:{port}")
    print(f"openapi-client: backforge serve on 127.0.0.1:{port}, database {database}, NATS prefix {prefix}")
    with open(log, "wb") as log_file:
        server = subprocess.Popen([args.bin, "serve"], env=env, stdout=log_file, stderr=subprocess.STDOUT)
    failure = None
    try:
        harness.wait_healthy(api, server, log)
        _, document, _ = api.call("GET", "/api/v1/openapi.json", expect=200)
        document_path = out / "openapi.json"
        document_path.write_text(json.dumps(document, indent=2))

        errors = validate(document)
        if errors:
            print(f"openapi-client: {len(errors)} errors against the OpenAPI 3.1 meta-schema:")
            print("\n".join(f"  {e}" for e in errors[:50]))
            raise SystemExit(f"the served document is not valid OpenAPI 3.1 ({document_path})")
        print(f"openapi-client: {document_path} is valid OpenAPI {document['openapi']} ({len(document['paths'])} paths)")

        complaints = generate(document_path, out)
        if complaints:
            print("openapi-client: the generator refused or mangled parts of the document:")
            print("\n".join(f"  {c}" for c in complaints))
            raise SystemExit("client generation reported problems")
        print(f"openapi-client: generated {out / PACKAGE}")

        sys.path.insert(0, str(out))
        tour = load("tour", HERE / "tour.py")
        tour.run(api.base, generation_timeout=args.generation_timeout)
        if server.poll() is not None:
            raise SystemExit(f"backforge serve died during the tour (exit {server.returncode})")
    except SystemExit as exit:
        failure = str(exit.code)
    except Exception as error:  # noqa: BLE001 - any failure of the tour is the run's failure
        import traceback

        traceback.print_exc()
        failure = f"{type(error).__name__}: {error}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        subprocess.run(
            ["psql", f"{args.postgres}/postgres", "-qAtc", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'],
            check=False,
        )
        try:
            harness.nats_delete_streams(args.nats_url, prefix)
        except (OSError, ValueError) as error:
            # `clean-nats` in .ci/run removes what is left (every stream starts with BFT_).
            print(f"openapi-client: could not delete the NATS streams of {prefix}: {error}")
    elapsed = time.time() - started
    if failure:
        print(f"openapi-client: FAILED in {elapsed:.0f} s: {failure}; server log {log}")
        return 1
    log.unlink(missing_ok=True)
    print(f"openapi-client: PASSED in {elapsed:.0f} s (valid OpenAPI 3.1; the generated client ran the tour)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
