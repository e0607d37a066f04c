"""File storage on local disk.

POST /api/files (multipart, field `file`) -> 201 with the file's metadata; GET /api/files lists
them; GET /api/files/{id} is the metadata, GET /api/files/{id}/content the bytes (as an
attachment); DELETE /api/files/{id} -> 204. Uploads larger than FILE_MAX_BYTES answer 413, content
types outside FILE_ALLOWED_TYPES 415. Files are stored under FILE_STORAGE_DIR by id, never by
their client-given names.
__OWNER_DOC__
"""

import datetime as dt
import hashlib
import uuid
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from app import errors
from app.database import get_session
from app.system_models import StoredFile
__OWNER_IMPORT__

ROUTER = APIRouter(prefix="/api/files", tags=["files"])
# 401 too when every route needs a token.
_UNAUTHORIZED = __UNAUTHORIZED__


def _errors(*statuses: int):
    return errors.responses(*_UNAUTHORIZED, *statuses)


_CHUNK = 1 << 20


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

def _owned_by(owner: uuid.UUID | None):
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
):
    settings = request.app.state.settings
    content_type = (file.content_type or "application/octet-stream").split(";")[0]
    content_type = content_type.strip().lower()
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
                    raise HTTPException(
                        status_code=413,
                        detail=f"the file is larger than {settings.file_max_bytes} bytes",
                    )
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
):
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
):
    return _find(session, file_id, owner)


@ROUTER.get("/{file_id}/content", responses=_errors(404, 422))
def download(
    file_id: uuid.UUID,
    request: Request,
    owner: Annotated[uuid.UUID | None, Depends(owner_id)],
    session: Session = Depends(get_session),
):
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
):
    row = _find(session, file_id, owner)
    session.delete(row)
    session.commit()
    _path(request, file_id).unlink(missing_ok=True)
    return Response(status_code=204)
