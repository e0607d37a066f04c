"""GET /health: 200 while the application can reach its database, 503 otherwise."""

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.database import get_session

ROUTER = APIRouter(tags=["health"])


@ROUTER.get("/health")
def health(session: Session = Depends(get_session)) -> JSONResponse:
    try:
        session.execute(sa.text("SELECT 1"))
    except SQLAlchemyError:
        return JSONResponse(status_code=503, content={"status": "unavailable"})
    return JSONResponse(content={"status": "ok"})
