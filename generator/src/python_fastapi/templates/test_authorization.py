"""Generated authorization table: every route of every entity, for the owner of a row, another
account, an admin and an anonymous client, under the entity's rule (`owner_scoped` or
`shared_read`, from the auth feature's configuration).

owner_scoped: only the owner and admins see or change a row (others get 404, as if it did not
exist); shared_read: every account sees every row, only the owner and admins change it (others
get 403). Without a token every route is 401.
"""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests import data
from tests.support import Api, assert_problem

ACTORS = ("owner", "other", "admin", "anonymous")
ROUTES = ("list", "get", "create", "put", "patch", "delete")
# What each actor gets on a row the owner made, route by route (ROUTES): a status, and for lists
# whether the row is in.
_OWNER = ((200, True), 200, 201, 200, 200, 204)
_ADMIN = _OWNER
_ANONYMOUS = ((401, False), 401, 401, 401, 401, 401)
_RULES = {
    "owner_scoped": {
        "owner": _OWNER,
        "other": ((200, False), 404, 201, 404, 404, 404),
        "admin": _ADMIN,
        "anonymous": _ANONYMOUS,
    },
    "shared_read": {
        "owner": _OWNER,
        "other": ((200, True), 200, 201, 403, 403, 403),
        "admin": _ADMIN,
        "anonymous": _ANONYMOUS,
    },
}
EXPECTED: dict[str, dict[str, dict[str, Any]]] = {
    rule: {actor: dict(zip(ROUTES, row, strict=True)) for actor, row in rows.items()}
    for rule, rows in _RULES.items()
}
CASES = [
    pytest.param(entity, route, actor, id=f"{spec['access']}-{entity}-{route}-{actor}")
    for entity, spec in data.ENTITIES.items()
    for route in ROUTES
    for actor in ACTORS
]


@pytest.mark.parametrize("entity, route, actor", CASES)
def test_authorization(
    clients: dict[str, TestClient], used: dict[str, int], entity: str, route: str, actor: str
) -> None:
    spec = data.ENTITIES[entity]
    path = spec["path"]
    owner = Api(clients["owner"], used)
    row = owner.create(entity)
    # References in a body must name rows the acting account can read: its own parents.
    acting = Api(clients[actor], used) if actor != "anonymous" else Api(clients["owner"], used)
    client = clients[actor]
    expected = EXPECTED[str(spec["access"])][actor][route]
    if route == "list":
        status, listed = expected
        response = client.get(path, params={"limit": 200})
        assert response.status_code == status, response.text
        if status == 200:
            ids = [item["id"] for item in response.json()["items"]]
            assert (row["id"] in ids) == listed, ids
        return
    if route == "create":
        body = acting.payload(entity)
        response = client.post(path, json=body)
        assert response.status_code == expected, response.text
        if expected == 201:
            assert response.json()["owner_id"] != row["owner_id"] or actor == "owner"
        return
    target = f"{path}/{row['id']}"
    if route == "get":
        response = client.get(target)
    elif route == "put":
        response = client.put(target, json=acting.payload(entity) if expected != 401 else {})
    elif route == "patch":
        change = acting.payload(entity) if expected != 401 else {}
        response = client.patch(target, json=change or {"__none__": 1})
    else:
        response = client.delete(target)
    if expected >= 400:
        assert_problem(response, expected)
    else:
        assert response.status_code == expected, response.text
    if expected == 200:
        assert response.json()["owner_id"] == row["owner_id"], "a change kept the row's owner"
    still = clients["owner"].get(target)
    if route == "delete" and expected == 204:
        assert still.status_code == 404
    elif expected >= 400:
        assert still.json() == row, "a refused request changed the row"


@pytest.mark.parametrize("entity", list(data.ENTITIES))
def test_owner_id_is_not_writable(
    clients: dict[str, TestClient], used: dict[str, int], entity: str
) -> None:
    spec = data.ENTITIES[entity]
    api = Api(clients["other"], used)
    payload = dict(api.payload(entity), owner_id="00000000-0000-4000-8000-000000000000")
    response = clients["other"].post(spec["path"], json=payload)
    body = assert_problem(response, 422)
    assert any(e["field"] == "/owner_id" for e in body["errors"]), body


REFERENCES = [
    pytest.param(
        entity, field, target, id=f"{entity}.{field}->{data.ENTITIES[target]['access']}-{target}"
    )
    for entity, spec in data.ENTITIES.items()
    for field, target, _fresh in spec["required_references"]
] + [
    pytest.param(
        entity, field, target, id=f"{entity}.{field}->{data.ENTITIES[target]['access']}-{target}"
    )
    for entity, spec in data.ENTITIES.items()
    for field, target in spec["optional_references"]
]


@pytest.mark.parametrize("entity, field, target", REFERENCES)
def test_a_reference_to_a_row_the_caller_cannot_read_is_refused_as_missing(
    clients: dict[str, TestClient], used: dict[str, int], entity: str, field: str, target: str
) -> None:
    owners_parent = Api(clients["owner"], used).create(target)
    other = Api(clients["other"], used)
    payload = other.payload(entity, {field: owners_parent["id"]})
    response = clients["other"].post(data.ENTITIES[entity]["path"], json=payload)
    if data.ENTITIES[target]["access"] == "owner_scoped":
        body = assert_problem(response, 422)
        assert [e["field"] for e in body["errors"]] == [f"/{field}"], body
        assert body["errors"][0]["type"] == "missing_reference"
    else:
        assert response.status_code == 201, response.text
    # An admin may reference anybody's row.
    admin = Api(clients["admin"], used)
    admin_payload = admin.payload(entity, {field: owners_parent["id"]})
    response = clients["admin"].post(data.ENTITIES[entity]["path"], json=admin_payload)
    assert response.status_code == 201, response.text
