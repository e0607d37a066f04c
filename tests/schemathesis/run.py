#!/usr/bin/env python3
"""Backforge's hostile-input run: schemathesis over the served OpenAPI document.

Starts `backforge serve` on a private database, port and NATS prefix, registers two users with
projects, features, a membership and a finished generation for them to reach, then runs
schemathesis (NUL bytes and any UTF-8 allowed, positive and negative data) with both identities,
failing on any 5xx and on any answer the document does not describe (status, content type,
headers, body schema) or a wrong 405. Everything it made is removed afterwards.

Run through `tests/schemathesis/run.sh`, which installs the pinned schemathesis first.
"""

import argparse
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
    "allow_header_conformance",
]
PASSWORD = "correct horse battery staple"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, body=None, token=None, headers=None, expect=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            request.add_header(k, v)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw, answer_headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, answer_headers = error.code, error.read(), error.headers
        if expect is not None and status != expect:
            raise SystemExit(f"setup: {method} {path} answered {status}, not {expect}: {raw[:500]!r}")
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return status, parsed, answer_headers


def wait_healthy(api, process, log, deadline=60):
    until = time.time() + deadline
    while time.time() < until:
        if process.poll() is not None:
            raise SystemExit(f"backforge serve exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if api.call("GET", "/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"backforge serve did not answer /health in {deadline} s:\n{log.read_text()[-4000:]}")


def crud_feature(entity):
    return {
        "name": f"{entity.title()}s",
        "feature_type": "crud",
        "schema_definition": {
            "entity": entity,
            "fields": [
                {"name": "title", "type": "string", "required": True, "max_length": 80},
                {"name": "total", "type": "decimal", "precision": 10, "scale": 2, "min": 0},
                {"name": "state", "type": "enum", "values": ["new", "paid"], "default": "new"},
            ],
        },
    }


def fixtures(api):
    """Two users, what they own and share, and a finished generation."""
    users, tokens = [], []
    for name in ("Alice", "Bob"):
        email = f"st-{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
        _, body, _ = api.call(
            "POST", "/api/v1/auth/register", {"email": email, "password": PASSWORD, "name": name}, expect=201
        )
        users.append(body["user"]["id"])
        tokens.append(body["access_token"])
    alice, bob = tokens
    projects, features, doomed_projects, doomed_features = [], [], [], []
    position = None
    for owner, label in ((alice, "alice"), (bob, "bob")):
        _, body, _ = api.call(
            "POST",
            "/api/v1/projects",
            {"name": f"{label} shop", "description": "fixture", "features": [crud_feature("order")]},
            token=owner,
            expect=201,
        )
        projects.append(body["id"])
        _, body, _ = api.call(
            "POST", f"/api/v1/projects/{body['id']}/features", crud_feature("customer"), token=owner, expect=201
        )
        features.append(body["id"])
        _, body, _ = api.call(
            "POST", "/api/v1/projects", {"name": f"{label} doomed", "features": []}, token=owner, expect=201
        )
        doomed_projects.append(body["id"])
        _, body, _ = api.call(
            "POST", f"/api/v1/projects/{projects[-1]}/features", crud_feature("invoice"), token=owner, expect=201
        )
        doomed_features.append(body["id"])
        position = body["position"]
    # Bob may read Alice's shop, not write it.
    api.call("PUT", f"/api/v1/projects/{projects[0]}/members/{users[1]}", {"role": "viewer"}, token=alice, expect=200)
    _, body, _ = api.call("POST", f"/api/v1/projects/{projects[0]}/generations", {}, token=alice, expect=202)
    generation = body["id"]
    headers = {"Backforge-Min-Position": body["position"]}
    until = time.time() + 120
    while True:
        _, state, _ = api.call("GET", f"/api/v1/generations/{generation}", token=alice, headers=headers, expect=200)
        if state["status"] in ("succeeded", "failed"):
            break
        if time.time() > until:
            raise SystemExit(f"setup: the fixture generation did not finish: {state}")
        time.sleep(0.5)
    # The projects' reads must see the last fixture write before fuzzing starts.
    api.call("GET", "/api/v1/projects", token=alice, headers={"Backforge-Min-Position": position}, expect=200)
    return {
        "tokens": tokens,
        "users": users,
        "projects": projects,
        "features": features,
        "doomed_projects": doomed_projects,
        "doomed_features": doomed_features,
        "generations": [generation],
    }


def still_projecting(api, token):
    """After the run: a new write is readable through the read models and every consumer is
    healthy, so no accepted input stopped the projector or a relay (answers alone cannot show it).
    """
    _, body, _ = api.call("POST", "/api/v1/projects", {"name": "after the storm"}, token=token, expect=201)
    until = time.time() + 20
    while True:
        status, _, _ = api.call(
            "GET", f"/api/v1/projects/{body['id']}", token=token, headers={"Backforge-Min-Position": body["position"]}
        )
        if status == 200:
            break
        if time.time() > until:
            print(f"schemathesis: a write made after the run is not projected within 20 s (last answer {status})")
            return False
        time.sleep(0.5)
    status, ready, _ = api.call("GET", "/health/ready")
    if status != 200 or (ready or {}).get("status") != "ready":
        print(f"schemathesis: after the run /health/ready answers {status}: {ready}")
        return False
    return True


def nats_delete_streams(url, prefix):
    """Deletes the JetStream streams named after `prefix`, over NATS's text protocol."""
    host, _, port = url.removeprefix("nats://").partition(":")
    try:
        sock = socket.create_connection((host, int(port or 4222)), timeout=5)
    except OSError:
        return 0
    with sock:
        sock.recv(4096)  # INFO
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        sids = iter(range(1, 1000))

        def request(subject, payload=b""):
            sid = next(sids)
            inbox = f"_INBOX.{uuid.uuid4().hex}"
            sock.sendall(
                f"SUB {inbox} {sid}\r\nPUB {subject} {inbox} {len(payload)}\r\n".encode() + payload + b"\r\n"
            )
            buffer = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                buffer += chunk
                match = re.search(rb"MSG \S+ %d (\d+)\r\n" % sid, buffer)
                if match:
                    size = int(match.group(1))
                    start = match.end()
                    while len(buffer) < start + size + 2:
                        buffer += sock.recv(65536)
                    sock.sendall(f"UNSUB {sid}\r\n".encode())
                    return json.loads(buffer[start : start + size])
                if b"PING\r\n" in buffer:
                    sock.sendall(b"PONG\r\n")
                    buffer = buffer.replace(b"PING\r\n", b"")

        names = (request("$JS.API.STREAM.NAMES", b"{}") or {}).get("streams") or []
        doomed = [n for n in names if n.startswith(prefix.upper() + "_")]
        for name in doomed:
            request(f"$JS.API.STREAM.DELETE.{name}")
        return len(doomed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--st", default=str(ROOT / "target/schemathesis-venv/bin/st"))
    parser.add_argument("--bin", default=os.environ.get("BACKFORGE_BIN", str(ROOT / "target/debug/backforge")))
    parser.add_argument("--postgres", default=os.environ.get("SCHEMATHESIS_POSTGRES", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--max-examples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("extra", nargs="*", help="more schemathesis arguments")
    args = parser.parse_args()

    run_id = uuid.uuid4().hex[:12]
    database = f"bft_schemathesis_{run_id}"
    prefix = f"bft_st_{run_id}"
    port = free_port()
    out = ROOT / "target/schemathesis"
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
        # Schemathesis registers and logs in from one address, far past the human limits.
        BACKFORGE_REGISTER_PER_IP_PER_MINUTE="1000000",
        BACKFORGE_LOGIN_PER_IP_PER_MINUTE="1000000",
        BACKFORGE_LOGIN_PER_ACCOUNT_PER_MINUTE="1000000",
        # A fuzzed Backforge-Min-Position that parses waits for a position that never comes.
        BACKFORGE_MIN_POSITION_WAIT_MS="500",
        # A default AI model, so the AI request routes admit fuzzed requests instead of answering
        # 503 ai-not-configured (the e2e suite covers that answer). Nothing listens on its port:
        # each admitted request's job fails on a refused connection, recorded like any other.
        BACKFORGE_AI_PROVIDER="openai",
        BACKFORGE_AI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
        BACKFORGE_AI_MODEL="schemathesis",
        RUST_LOG="info",
        NO_COLOR="1",
    )
    env.pop("BACKFORGE_METRICS_TOKEN", None)
    api = Api(f"http://127.0.0.1:{port}")
    print(f"schemathesis: backforge serve on 127.0.0.1:{port}, database {database}, NATS prefix {prefix}")
    with open(log, "wb") as log_file:
        server = subprocess.Popen([args.bin, "serve"], env=env, stdout=log_file, stderr=subprocess.STDOUT)
    status = 1
    try:
        wait_healthy(api, server, log)
        _, document, _ = api.call("GET", "/api/v1/openapi.json", expect=200)
        (out / "openapi.json").write_text(json.dumps(document, indent=2))
        st_env = dict(os.environ, SCHEMATHESIS_HOOKS=str(Path(__file__).with_name("hooks.py")))
        st_env["BACKFORGE_ST_FIXTURES"] = json.dumps(fixtures(api))
        command = [
            args.st,
            "run",
            f"{api.base}/api/v1/openapi.json",
            "--url",
            api.base,
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            str(args.max_examples),
            "--mode",
            "all",
            "--generation-allow-x00",
            "true",
            "--generation-codec",
            "utf-8",
            "--generation-with-security-parameters",
            "false",
            "--generation-database",
            "none",
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--continue-on-failure",
            "--no-color",
            "--report",
            "junit",
            "--report-junit-path",
            str(out / f"junit-{run_id}.xml"),
            *(["--seed", str(args.seed)] if args.seed is not None else []),
            *args.extra,
        ]
        started = time.time()
        for attempt in (1, 2):
            run = subprocess.run(command, env=st_env, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            print(run.stdout)
            # schemathesis (through hypothesis and CPython's ast) sometimes crashes on its own while
            # generating ("Runtime Error", e.g. "AST constructor recursion depth mismatch") with every
            # case it did send passing. That says nothing about the server: run once more then, and
            # only then. A failing case is never retried.
            tool_crash = (
                run.returncode != 0
                and "Runtime Error" in run.stdout
                and re.search(r"(\d+) generated, \1 passed", run.stdout) is not None
                and "Failures:" not in run.stdout
            )
            if not (tool_crash and attempt == 1):
                break
            print("schemathesis: the tool crashed on its own with every sent case passing; running once more")
        status = run.returncode
        cases = re.findall(r"(\d+) (?:generated|test cases)", run.stdout)
        print(
            f"schemathesis: exit {status} in {time.time() - started:.0f} s; "
            f"cases: {' / '.join(cases) if cases else 'see the summary above'}; server log {log}"
        )
        if server.poll() is not None:
            print(f"schemathesis: backforge serve died during the run (exit {server.returncode})")
            status = status or 1
        elif not still_projecting(api, json.loads(st_env["BACKFORGE_ST_FIXTURES"])["tokens"][0]):
            status = status or 1
        # actix logs a request it cannot parse (a NUL in a header) as an error, and answers 400.
        errors = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if " ERROR " in line and "request parse error" not in line
        ]
        if errors:
            print(f"schemathesis: the server logged {len(errors)} errors, the first:\n" + "\n".join(errors[:5]))
            status = status or 1
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
            nats_delete_streams(args.nats_url, prefix)
        except (OSError, ValueError) as error:
            # `clean-nats` in .ci/run removes what is left (every stream starts with BFT_).
            print(f"schemathesis: could not delete the NATS streams of {prefix}: {error}")
    if status == 0:
        log.unlink(missing_ok=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
