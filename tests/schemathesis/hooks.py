"""Schemathesis hooks for Backforge's hostile-input run (loaded through SCHEMATHESIS_HOOKS).

Two identities: every case is sent as one of two registered users, chosen from the case itself so
a run is reproducible; path ids are sometimes replaced by resources those users own (one is a
viewer of the other's project), so the fuzzer reaches real projects, features, members and
generations and crosses between callers, not only random ids that answer 404.

`run.py` passes the fixtures as JSON in BACKFORGE_ST_FIXTURES.
"""

import hashlib
import json
import os

import schemathesis

FIXTURES = json.loads(os.environ["BACKFORGE_ST_FIXTURES"])


def _pick(seed, choices):
    """A choice that depends only on `seed`: Hypothesis replays and shrinks deterministically."""
    digest = hashlib.sha256(repr(seed).encode("utf-8", "surrogatepass")).digest()
    return choices[digest[0] % len(choices)]


@schemathesis.auth()
class TwoIdentities:
    def get(self, case, ctx):
        return FIXTURES["tokens"]

    def set(self, case, data, ctx):
        seed = (case.operation.label, repr(case.path_parameters), repr(case.body), repr(case.query))
        token = _pick(seed, data)
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {token}"


@schemathesis.hook
def map_path_parameters(context, path_parameters):
    operation = context.operation
    if operation is None or not path_parameters:
        return path_parameters
    # Deletes get resources of their own, so the other operations keep live ones to work on.
    deleting = operation.method.upper() == "DELETE"
    pools = {
        "id": FIXTURES["doomed_projects"] if deleting else FIXTURES["projects"],
        "feature_id": FIXTURES["doomed_features"] if deleting else FIXTURES["features"],
        "user_id": FIXTURES["users"],
    }
    if operation.path.startswith("/api/v1/generations/"):
        pools["id"] = FIXTURES["generations"]
    mapped = dict(path_parameters)
    for name, value in path_parameters.items():
        pool = pools.get(name)
        if pool:
            # One time in (len(pool) + 1) the generated value stays, hostile or not.
            mapped[name] = _pick((operation.label, name, repr(value)), [value, *pool])
    return mapped


HUGE = 300 * 1024


def _inflate(value, path=()):
    """The body with one string (the first found depth-first) replaced by HUGE characters."""
    if isinstance(value, str):
        return "\u00e9" * (HUGE // 2) + value, True
    if isinstance(value, dict):
        for key, item in value.items():
            new, done = _inflate(item)
            if done:
                return dict(value, **{key: new}), True
    if isinstance(value, list):
        for i, item in enumerate(value):
            new, done = _inflate(item)
            if done:
                return value[:i] + [new] + value[i + 1 :], True
    return value, False


@schemathesis.hook
def map_body(context, body):
    operation = context.operation
    # Hypothesis keeps strings short; one body in eight gets a string of HUGE bytes (two-byte
    # characters), so every writer also sees large text below the 1 MiB body limit.
    if operation is not None and _pick((operation.label, "huge", repr(body)), range(8)) == 0:
        body, _ = _inflate(body)
    # Verifying a generation runs its suite in a virtualenv: minutes per case. The worker's
    # verification has tests of its own; here generations only render.
    if (
        operation is not None
        and operation.path.endswith("/generations")
        and operation.method.upper() == "POST"
        and isinstance(body, dict)
        and body.get("verify") is True
    ):
        body = dict(body, verify=False)
    return body
