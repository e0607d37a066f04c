"""Generated tests of file storage: upload, list, metadata, download and delete under /api/files."""

import hashlib
import uuid

import httpx2
from fastapi.testclient import TestClient

from tests import data

CONTENT = b"hello, files\n"


def _upload(
    client: TestClient,
    content: bytes = CONTENT,
    content_type: str = "text/plain",
    name: str = "hello.txt",
) -> httpx2.Response:
    return client.post("/api/files", files={"file": (name, content, content_type)})


def test_upload_answers_201_with_the_metadata(client: TestClient) -> None:
    response = _upload(client)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["filename"] == "hello.txt"
    assert body["content_type"] == "text/plain"
    assert body["size_bytes"] == len(CONTENT)
    assert body["sha256"] == hashlib.sha256(CONTENT).hexdigest()
    uuid.UUID(body["id"])


def test_download_answers_the_bytes_as_an_attachment(client: TestClient) -> None:
    file_id = _upload(client).json()["id"]
    response = client.get(f"/api/files/{file_id}/content")
    assert response.status_code == 200, response.text
    assert response.content == CONTENT
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["x-content-type-options"] == "nosniff"


def test_metadata_and_list_show_the_file(client: TestClient) -> None:
    uploaded = _upload(client).json()
    response = client.get(f"/api/files/{uploaded['id']}")
    assert response.status_code == 200, response.text
    assert response.json() == uploaded
    page = client.get("/api/files").json()
    assert page["total"] == 1 and [item["id"] for item in page["items"]] == [uploaded["id"]]
    assert client.get("/api/files", params={"limit": 0}).status_code == 422


def test_delete_answers_204_and_the_file_is_gone(client: TestClient) -> None:
    file_id = _upload(client).json()["id"]
    assert client.delete(f"/api/files/{file_id}").status_code == 204
    assert client.get(f"/api/files/{file_id}").status_code == 404
    assert client.get(f"/api/files/{file_id}/content").status_code == 404
    assert client.delete(f"/api/files/{file_id}").status_code == 404


def test_an_unknown_file_is_404(client: TestClient) -> None:
    assert client.get(f"/api/files/{uuid.uuid4()}").status_code == 404
    assert client.get(f"/api/files/{uuid.uuid4()}/content").status_code == 404


def test_a_file_of_exactly_the_limit_is_accepted_and_one_byte_more_is_413(
    client: TestClient,
) -> None:
    exact = _upload(client, b"x" * data.FILE_MAX_BYTES)
    assert exact.status_code == 201, exact.text
    response = _upload(client, b"x" * (data.FILE_MAX_BYTES + 1))
    assert response.status_code == 413, response.text
    assert client.get("/api/files").json()["total"] == 1


def test_a_content_type_outside_the_allowed_list_is_415(client: TestClient) -> None:
    response = _upload(client, b"<script></script>", "text/html", "page.html")
    assert response.status_code == 415, response.text


def test_a_content_type_the_bytes_contradict_is_415(client: TestClient) -> None:
    elf = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256))
    assert _upload(client, elf, "image/png", "cat.png").status_code == 415
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    assert _upload(client, png, "text/plain", "notes.txt").status_code == 415
    assert client.get("/api/files").json()["total"] == 0


def test_a_body_declared_far_over_the_limit_is_413_before_it_is_read(client: TestClient) -> None:
    body = b"x" * (data.FILE_MAX_BYTES + 128 * 1024)
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    response = client.post("/api/files", content=body, headers=headers)
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_a_path_in_the_filename_is_dropped(client: TestClient) -> None:
    response = _upload(client, name="../../etc/passwd")
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "passwd"


def test_an_upload_without_a_file_is_422(client: TestClient) -> None:
    response = client.post("/api/files", data={"other": "x"})
    assert response.status_code == 422, response.text
# auth:begin


def test_file_routes_need_a_token(anonymous: TestClient) -> None:
    assert _upload(anonymous).status_code == 401
    assert anonymous.get("/api/files").status_code == 401
    assert anonymous.get(f"/api/files/{uuid.uuid4()}").status_code == 401
    assert anonymous.get(f"/api/files/{uuid.uuid4()}/content").status_code == 401
    assert anonymous.delete(f"/api/files/{uuid.uuid4()}").status_code == 401


def test_another_account_cannot_see_a_file(client: TestClient, anonymous: TestClient) -> None:
    file_id = _upload(client).json()["id"]
    credentials = {
        "email": f"other-{uuid.uuid4().hex[:8]}@example.com",
        "password": "another long password",
    }
    assert anonymous.post("/api/auth/register", json=credentials).status_code == 201
    token = anonymous.post("/api/auth/login", json=credentials).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert anonymous.get(f"/api/files/{file_id}", headers=headers).status_code == 404
    assert anonymous.get(f"/api/files/{file_id}/content", headers=headers).status_code == 404
    assert anonymous.delete(f"/api/files/{file_id}", headers=headers).status_code == 404
# auth:end
