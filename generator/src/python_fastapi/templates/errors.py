"""The errors routes raise and the JSON each becomes.

Validation problems found against the database (a reference to a missing row) keep FastAPI's own
shape, `{"detail": [{"loc", "msg", "type"}]}`, so clients read them like any invalid field;
conflicts name the fields concerned.
"""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class NotFoundError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ConflictError(Exception):
    def __init__(self, message: str, fields: list[str]):
        super().__init__(message)
        self.message = message
        self.fields = fields


class FieldValidationError(Exception):
    """A 422 in FastAPI's validation-error shape; `loc` is e.g. ["body", "customer_id"]."""

    def __init__(self, loc: list[str], message: str, type_: str):
        super().__init__(message)
        self.loc = loc
        self.message = message
        self.type = type_


def install(app: FastAPI) -> None:
    @app.exception_handler(NotFoundError)
    async def _not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": exc.message})

    @app.exception_handler(ConflictError)
    async def _conflict(_request: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": exc.message, "fields": exc.fields})

    @app.exception_handler(FieldValidationError)
    async def _invalid(_request: Request, exc: FieldValidationError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"detail": [{"loc": exc.loc, "msg": exc.message, "type": exc.type}]},
        )
