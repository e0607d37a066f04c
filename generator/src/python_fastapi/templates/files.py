"""File storage on local disk.

POST /api/files (multipart, field `file`) -> 201 with the file's metadata; GET /api/files lists
them; GET /api/files/{id} is the metadata, GET /api/files/{id}/content the bytes (as an
attachment); DELETE /api/files/{id} -> 204. Uploads larger than FILE_MAX_BYTES answer 413 before
the body is read to the end (`UploadLimit`); the content type is sniffed from the bytes, and one
the bytes contradict, or one outside FILE_ALLOWED_TYPES, answers 415. Files are stored under
FILE_STORAGE_DIR by id, never by their client-given names.
__OWNER_DOC__
"""

import datetime as dt
import hashlib
import uuid
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import errors
__OWNER_IMPORT__
from app.database import get_session
from app.system_models import __SYSTEM_MODELS__

ROUTER = APIRouter(prefix="/api/files", tags=["files"])
# 401 too when every route needs a token.
_UNAUTHORIZED = __UNAUTHORIZED__


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return errors.responses(*_UNAUTHORIZED, *statuses)


_CHUNK = 1 << 20
# What multipart framing (boundaries, part headers, a long file name) may add to the file itself.
_MULTIPART_OVERHEAD = 64 * 1024
# Bytes read to sniff a type.
_SNIFF_BYTES = 512
# Signatures of binary types: (prefix, offset, type).
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
    (b"%PDF-", 0, "application/pdf"),
    (b"PK\x03\x04", 0, "application/zip"),
    (b"\x1f\x8b", 0, "application/gzip"),
)
# Declared types that text (UTF-8 without NUL or other control bytes) may carry.
_TEXT_TYPES = ("application/json", "application/xml", "image/svg+xml")


def sniff(head: bytes) -> str:
    """The type the first bytes show: a known binary signature, `text/plain` for text, else
    `application/octet-stream`."""
    for prefix, offset, media_type in _SIGNATURES:
        if head[offset : offset + len(prefix)] == prefix:
            if media_type != "image/webp" or head[:4] == b"RIFF":
                return media_type
    try:
        # The cut may split a character at the end: up to 3 bytes may be incomplete.
        text = head.decode("utf-8") if len(head) < _SNIFF_BYTES else _decode_prefix(head)
    except UnicodeDecodeError:
        return "application/octet-stream"
    if any(ord(c) < 32 and c not in "\t\n\r\f" for c in text):
        return "application/octet-stream"
    return "text/plain"


def _decode_prefix(head: bytes) -> str:
    for cut in range(4):
        try:
            return head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError("utf-8", head, 0, len(head), "not UTF-8")


def accepted_type(declared: str, head: bytes) -> str | None:
    """The type to store for an upload declared as `declared` whose first bytes are `head`, or
    None when the bytes contradict the declaration (a binary sent as `image/png`, a PNG sent as
    `text/plain`)."""
    sniffed = sniff(head)
    if sniffed == "text/plain":
        text_like = declared.startswith("text/") or declared in _TEXT_TYPES
        return declared if text_like else None
    return sniffed if declared == sniffed else None


class UploadLimit:
    """ASGI middleware: an upload (POST /api/files) larger than FILE_MAX_BYTES answers 413 before
    its body is read to the end: at once when its Content-Length says so, else as soon as the
    bytes received pass the limit (chunked bodies). The route checks the file's exact size."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != ROUTER.prefix:
            await self.app(scope, receive, send)
            return
        max_bytes: int = scope["app"].state.settings.file_max_bytes
        limit = max_bytes + _MULTIPART_OVERHEAD
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            request = Request(scope)
            response = errors.problem(request, 413, _too_large(max_bytes))
            # The body stays unread; the server closes the connection after answering.
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException, so FastAPI's body parsing passes it on as it is.
                    raise HTTPException(
                        status_code=413,
                        detail=_too_large(max_bytes),
                        # The rest of the body is never read: the connection ends here.
                        headers={"Connection": "close"},
                    )
            return message

        await self.app(scope, counted, send)


def _too_large(max_bytes: int) -> str:
    return f"the file is larger than {max_bytes} bytes"


class FileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    created_at: dt.datetime


class FilePage(BaseModel):
    items: list[FileOut]
    total: int
    limit: int
    offset: int

__OWNER_DEPENDENCY__

def _owned_by(owner: uuid.UUID | None) -> sa.ColumnElement[bool]:
    return StoredFile.owner_id.is_(None) if owner is None else StoredFile.owner_id == owner


def _find(session: Session, file_id: uuid.UUID, owner: uuid.UUID | None) -> StoredFile:
    query = sa.select(StoredFile).where(StoredFile.id == file_id, _owned_by(owner))
    row = session.scalar(query)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no file with id {file_id}")
    return row


def _clean_name(name: str | None) -> str:
    # Keep the last path segment only, without control characters, at most 255 characters.
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable()).strip()
    return base[:255] or "file"


def _path(request: Request, file_id: uuid.UUID) -> Path:
    return Path(request.app.state.settings.file_storage_dir) / file_id.hex


@ROUTER.post("", status_code=201, response_model=FileOut, responses=_errors(413, 415, 422))
def upload(
    request: Request,
    file: UploadFile,
    owner: Annotated[uuid.UUID | None, Depends(owner_id)],
    session: Session = Depends(get_session),
) -> StoredFile:
    settings = request.app.state.settings
    declared = (file.content_type or "application/octet-stream").split(";")[0]
    declared = declared.strip().lower()
    head = file.file.read(_SNIFF_BYTES)
    file.file.seek(0)
    content_type = accepted_type(declared, head)
    if content_type is None:
        raise HTTPException(
            status_code=415,
            detail=f"the content does not match its declared type {declared}",
        )
    if content_type not in settings.file_allowed_types:
        raise HTTPException(
            status_code=415,
            detail=f"content type {content_type} is not allowed; allowed: "
            + ", ".join(settings.file_allowed_types),
        )
    file_id = uuid.uuid4()
    target = _path(request, file_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    size = 0
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            while chunk := file.file.read(_CHUNK):
                size += len(chunk)
                if size > settings.file_max_bytes:
                    raise HTTPException(status_code=413, detail=_too_large(settings.file_max_bytes))
                digest.update(chunk)
                out.write(chunk)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    row = StoredFile(
        id=file_id,
        filename=_clean_name(file.filename),
        content_type=content_type,
        size_bytes=size,
        sha256=digest.hexdigest(),
        owner_id=owner,
    )
    session.add(row)
    try:
        session.commit()
    except Exception:
        session.rollback()
        target.unlink(missing_ok=True)
        raise
    return row


@ROUTER.get("", response_model=FilePage, responses=_errors(422))
def list_files(
    owner: Annotated[uuid.UUID | None, Depends(owner_id)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    condition = _owned_by(owner)
    total = session.scalar(sa.select(sa.func.count()).select_from(StoredFile).where(condition))
    rows = session.scalars(
        sa.select(StoredFile)
        .where(condition)
        .order_by(StoredFile.created_at, StoredFile.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return {"items": rows, "total": total, "limit": limit, "offset": offset}


@ROUTER.get("/{file_id}", response_model=FileOut, responses=_errors(404, 422))
def get_file(
    file_id: uuid.UUID,
    owner: Annotated[uuid.UUID | None, Depends(owner_id)],
    session: Session = Depends(get_session),
) -> StoredFile:
    return _find(session, file_id, owner)


@ROUTER.get("/{file_id}/content", responses=_errors(404, 422))
def download(
    file_id: uuid.UUID,
    request: Request,
    owner: Annotated[uuid.UUID | None, Depends(owner_id)],
    session: Session = Depends(get_session),
) -> FileResponse:
    row = _find(session, file_id, owner)
    path = _path(request, row.id)
    if not path.is_file():
        raise HTTPException(status_code=404, detail=f"the content of file {file_id} is missing")
    return FileResponse(
        path,
        media_type=row.content_type,
        filename=row.filename,
        headers={"X-Content-Type-Options": "nosniff"},
    )


@ROUTER.delete("/{file_id}", status_code=204, responses=_errors(404, 422))
def delete_file(
    file_id: uuid.UUID,
    request: Request,
    owner: Annotated[uuid.UUID | None, Depends(owner_id)],
    session: Session = Depends(get_session),
) -> Response:
    row = _find(session, file_id, owner)
    session.delete(row)
    session.commit()
    _path(request, file_id).unlink(missing_ok=True)
    return Response(status_code=204)
