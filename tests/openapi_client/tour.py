"""The tour, through the client generated from the served OpenAPI document.

Register and log in, create a project with a `crud` feature, read it with
`Backforge-Min-Position` (and again with `If-None-Match`), update it with `If-Match` (and see a
stale tag refused with a typed 412), read its history, request a generation, wait for it (bounded),
download the ZIP by generation and by project. Every call goes through the generated functions
and every body is one of the generated models; the client raises on any status the document
does not list for the operation.

Where the generator is limited: it knows JSON, text and octet-stream bodies only, so config.yaml
maps the downloads' application/zip to octet-stream (they come back as a typed `File`); and it
gives response headers no types, so ETag and Backforge-Position are read from `Response.headers`.
"""

import hashlib
import io
import time
import uuid
import zipfile
from http import HTTPStatus

import httpx

from backforge_client import AuthenticatedClient, Client
from backforge_client.api.auth import login, register
from backforge_client.api.generations import (
    download_generation,
    download_project,
    get_generation,
    request_generation,
)
from backforge_client.api.projects import create_project, get_project, history, update_project
from backforge_client.models import (
    CreateProjectRequest,
    DecimalField,
    DecimalFieldType,
    EnumField,
    EnumFieldType,
    FeatureFeatureType,
    FeatureInput,
    FeatureInputFeatureType,
    Generation,
    GenerationMode,
    GenerationRequest,
    GenerationRequestTarget,
    GenerationStatus,
    HistoryPage,
    LoggedIn,
    LoginRequest,
    Project,
    ReferenceField,
    ReferenceFieldType,
    Registered,
    RegisterRequest,
    SchemaDefinition,
    StringField,
    StringFieldType,
    UpdateProjectRequest,
    UpdateProjectResponse412,
    WriteAnswer,
)
from backforge_client.types import File

PASSWORD = "correct horse battery staple"


def say(message):
    print(f"openapi-client: tour: {message}", flush=True)


def expect(what, response, status, model):
    """The parsed body of `response`, which must have `status` and parse as `model`."""
    if response.status_code != status or not isinstance(response.parsed, model):
        raise AssertionError(
            f"{what} answered {int(response.status_code)} parsed as {type(response.parsed).__name__}, "
            f"not {int(status)} {model.__name__}: {response.content[:500]!r}"
        )
    return response.parsed


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def shop_features():
    order = SchemaDefinition(
        entity="order",
        fields=[
            StringField(name="title", type_=StringFieldType.STRING, required=True, max_length=120),
            DecimalField(name="total", type_=DecimalFieldType.DECIMAL, precision=12, scale=2, min_=0),
            EnumField(name="state", type_=EnumFieldType.ENUM, values=["new", "paid"], default="new"),
            ReferenceField(name="customer_id", type_=ReferenceFieldType.REFERENCE, references="customer", required=True),
        ],
    )
    customer = SchemaDefinition(
        entity="customer",
        fields=[StringField(name="name", type_=StringFieldType.STRING, required=True)],
    )
    return [
        FeatureInput(name="Customers", feature_type=FeatureInputFeatureType.CRUD, schema_definition=customer),
        FeatureInput(name="Orders", feature_type=FeatureInputFeatureType.CRUD, schema_definition=order),
    ]


def run(base_url, generation_timeout=120.0):
    timeout = httpx.Timeout(30.0)
    anonymous = Client(base_url=base_url, timeout=timeout, raise_on_unexpected_status=True)

    email = f"tour-{uuid.uuid4().hex[:12]}@example.com"
    response = register.sync_detailed(
        client=anonymous, body=RegisterRequest(email=email, password=PASSWORD, name="Tour Guide")
    )
    registered = expect("register", response, HTTPStatus.CREATED, Registered)
    check(registered.user.email == email, f"registered as {registered.user.email}, not {email}")
    check(response.headers.get("location"), "register sent no Location")
    say(f"registered {email} (user {registered.user.id})")

    response = login.sync_detailed(client=anonymous, body=LoginRequest(email=email, password=PASSWORD))
    logged_in = expect("login", response, HTTPStatus.OK, LoggedIn)
    say(f"logged in (token_type {logged_in.token_type}, expires in {logged_in.expires_in} s)")

    client = AuthenticatedClient(
        base_url=base_url, token=logged_in.access_token, timeout=timeout, raise_on_unexpected_status=True
    )

    response = create_project.sync_detailed(
        client=client,
        body=CreateProjectRequest(
            name="Tour shop",
            description="made by the generated client",
            generation_mode=GenerationMode.MANUAL,
            features=shop_features(),
        ),
        idempotency_key=f"tour-{uuid.uuid4().hex}",
    )
    created = expect("create project", response, HTTPStatus.CREATED, WriteAnswer)
    check(response.headers.get("etag") == f'"{created.version}"', f"create: ETag {response.headers.get('etag')}")
    check(response.headers.get("backforge-position") == created.position, "create: Backforge-Position differs")
    say(f"created project {created.id} at version {created.version}")

    response = get_project.sync_detailed(created.id, client=client, backforge_min_position=created.position)
    project = expect("read project", response, HTTPStatus.OK, Project)
    etag = response.headers.get("etag")
    check(etag == f'"{project.version}"', f"read: ETag {etag} for version {project.version}")
    check([f.name for f in project.features] == ["Customers", "Orders"], f"features {project.features}")
    orders = project.features[1]
    check(orders.feature_type == FeatureFeatureType.CRUD, f"feature type {orders.feature_type}")
    check(isinstance(orders.schema_definition, SchemaDefinition), "schema_definition did not parse as a model")
    kinds = [type(f) for f in orders.schema_definition.fields]
    check(kinds == [StringField, DecimalField, EnumField, ReferenceField], f"fields parsed as {kinds}")
    say(f"read it with Backforge-Min-Position: version {project.version}, fields {[k.__name__ for k in kinds]}")

    response = get_project.sync_detailed(created.id, client=client, if_none_match=etag)
    check(response.status_code == HTTPStatus.NOT_MODIFIED, f"If-None-Match answered {response.status_code}")

    response = update_project.sync_detailed(
        created.id,
        client=client,
        body=UpdateProjectRequest(description="updated by the generated client"),
        if_match=etag,
    )
    updated = expect("update project", response, HTTPStatus.OK, WriteAnswer)
    check(updated.version == project.version + 1, f"update: version {updated.version} after {project.version}")
    response = update_project.sync_detailed(
        created.id, client=client, body=UpdateProjectRequest(name="Stale shop"), if_match=etag
    )
    stale = expect("stale update", response, HTTPStatus.PRECONDITION_FAILED, UpdateProjectResponse412)
    say(f"updated with If-Match {etag} to version {updated.version}; the stale tag → 412 {stale.type_}")

    response = history.sync_detailed(created.id, client=client, backforge_min_position=updated.position)
    page = expect("history", response, HTTPStatus.OK, HistoryPage)
    versions = [event.version for event in page.items]
    check(versions == list(range(1, updated.version + 1)), f"history versions {versions}")
    check(page.items[0].type_ == "ProjectCreated", f"history starts with {page.items[0].type_}")
    say(f"history: {[event.type_ for event in page.items]}")

    response = request_generation.sync_detailed(
        created.id, client=client, body=GenerationRequest(target=GenerationRequestTarget.PYTHON_FASTAPI)
    )
    requested = expect("request generation", response, HTTPStatus.ACCEPTED, WriteAnswer)
    say(f"requested generation {requested.id}")

    deadline = time.monotonic() + generation_timeout
    while True:
        response = get_generation.sync_detailed(
            requested.id, client=client, backforge_min_position=requested.position
        )
        generation = expect("read generation", response, HTTPStatus.OK, Generation)
        if generation.status in (GenerationStatus.SUCCEEDED, GenerationStatus.FAILED):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"the generation is still {generation.status} after {generation_timeout:.0f} s")
        time.sleep(0.5)
    check(generation.status == GenerationStatus.SUCCEEDED, f"the generation failed: {generation.error}")
    say(f"generation succeeded: {generation.file_count} files, steps {[s.name for s in generation.steps]}")

    response = download_generation.sync_detailed(requested.id, client=client)
    archive = expect("download generation", response, HTTPStatus.OK, File).payload.read()
    digest = hashlib.sha256(archive).hexdigest()
    check(response.headers.get("etag") == f'"{digest}"', f"download: ETag {response.headers.get('etag')}")
    with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
        check(bundle.testzip() is None, "the ZIP is corrupt")
        names = bundle.namelist()
    said = generation.file_count
    check(not isinstance(said, int) or said == len(names), f"{len(names)} files in the ZIP, the generation says {said}")
    response = download_project.sync_detailed(created.id, client=client)
    latest = expect("download project", response, HTTPStatus.OK, File).payload.read()
    check(latest == archive, "the project's download is not the generation's ZIP")
    say(f"downloaded the ZIP: {len(archive)} bytes, {len(names)} files, sha256 {digest[:12]}…")
