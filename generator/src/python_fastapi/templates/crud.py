"""Create, read, update and delete for any entity, with the checks a database cannot explain.

Uniqueness and references are checked before writing, so the client learns which field is at
fault. The database constraints stay the last word under concurrent writes; their errors map to
the same statuses (409 for a duplicate or a referenced row, 422 for a missing reference).
"""

import dataclasses
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from app.database import utcnow
from app.errors import ConflictError, FieldValidationError, NotFoundError


@dataclasses.dataclass(frozen=True)
class Reference:
    """`field` of this entity holds the id of a `target` row."""

    field: str
    target: type
    target_label: str


@dataclasses.dataclass(frozen=True)
class Referrer:
    """`field` of `model` rows may hold the id of a row of this entity."""

    model: type
    field: str
    label: str


@dataclasses.dataclass(frozen=True)
class EntitySpec:
    model: type
    label: str
    unique: tuple[tuple[str, ...], ...] = ()
    references: tuple[Reference, ...] = ()
    referrers: tuple[Referrer, ...] = ()


def list_rows(
    session: Session, spec: EntitySpec, filters: dict[str, Any], limit: int, offset: int
) -> dict[str, Any]:
    """A page of rows, oldest first, where every given filter equals its field."""
    model = spec.model
    conditions = [
        getattr(model, name) == value for name, value in filters.items() if value is not None
    ]
    total = session.scalar(sa.select(sa.func.count()).select_from(model).where(*conditions))
    rows = session.scalars(
        sa.select(model)
        .where(*conditions)
        .order_by(model.created_at, model.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return {"items": rows, "total": total, "limit": limit, "offset": offset}


def get_row(session: Session, spec: EntitySpec, row_id: uuid.UUID):
    row = session.get(spec.model, row_id)
    if row is None:
        raise NotFoundError(f"no {spec.label} with id {row_id}")
    return row


def create_row(session: Session, spec: EntitySpec, values: dict[str, Any]):
    _check_references(session, spec, values)
    _check_unique(session, spec, values, exclude=None, changed=None)
    row = spec.model(**values)
    session.add(row)
    _commit(session, spec, deleting=False)
    return row


def update_row(session: Session, spec: EntitySpec, row_id: uuid.UUID, changes: dict[str, Any]):
    if not changes:
        raise FieldValidationError(["body"], "give at least one field to change", "empty_update")
    row = get_row(session, spec, row_id)
    _check_references(session, spec, changes)
    merged = {name: getattr(row, name) for group in spec.unique for name in group}
    merged.update(changes)
    _check_unique(session, spec, merged, exclude=row.id, changed=set(changes))
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    _commit(session, spec, deleting=False)
    return row


def delete_row(session: Session, spec: EntitySpec, row_id: uuid.UUID) -> None:
    row = get_row(session, spec, row_id)
    for referrer in spec.referrers:
        column = getattr(referrer.model, referrer.field)
        found = session.scalar(sa.select(referrer.model.id).where(column == row.id).limit(1))
        if found is not None:
            raise ConflictError(
                f"this {spec.label} is still referenced by {referrer.label} {found} "
                f"(field {referrer.field}); delete or change that row first",
                [],
            )
    session.delete(row)
    _commit(session, spec, deleting=True)


def _check_references(session: Session, spec: EntitySpec, values: dict[str, Any]) -> None:
    for reference in spec.references:
        value = values.get(reference.field)
        if value is not None and session.get(reference.target, value) is None:
            raise FieldValidationError(
                ["body", reference.field],
                f"no {reference.target_label} with id {value}",
                "missing_reference",
            )


def _check_unique(
    session: Session,
    spec: EntitySpec,
    values: dict[str, Any],
    exclude: uuid.UUID | None,
    changed: set[str] | None,
) -> None:
    model = spec.model
    for group in spec.unique:
        if changed is not None and not changed.intersection(group):
            continue
        group_values = [values.get(name) for name in group]
        # SQL treats NULLs as distinct, so a null never conflicts.
        if any(value is None for value in group_values):
            continue
        query = sa.select(model.id).where(
            *[getattr(model, name) == value for name, value in zip(group, group_values)]
        )
        if exclude is not None:
            query = query.where(model.id != exclude)
        if session.scalar(query.limit(1)) is not None:
            raise ConflictError(
                f"another {spec.label} has the same {', '.join(group)}", list(group)
            )


_SQLSTATES = {"23505": "unique", "23503": "foreign_key", "23514": "check", "23502": "not_null"}
_SQLITE_ERRORS = {
    "SQLITE_CONSTRAINT_UNIQUE": "unique",
    "SQLITE_CONSTRAINT_PRIMARYKEY": "unique",
    "SQLITE_CONSTRAINT_FOREIGNKEY": "foreign_key",
    "SQLITE_CONSTRAINT_CHECK": "check",
    "SQLITE_CONSTRAINT_NOTNULL": "not_null",
}


def _violation(exc: IntegrityError) -> str:
    original = exc.orig
    state = getattr(original, "sqlstate", None)  # psycopg 3
    if state:
        return _SQLSTATES.get(state, "other")
    return _SQLITE_ERRORS.get(getattr(original, "sqlite_errorname", ""), "other")


def _commit(session: Session, spec: EntitySpec, deleting: bool) -> None:
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        kind = _violation(exc)
        if kind == "unique":
            raise ConflictError(f"the {spec.label} conflicts with an existing one", []) from exc
        if kind == "foreign_key" and deleting:
            raise ConflictError(f"this {spec.label} is still referenced", []) from exc
        if kind == "foreign_key":
            raise FieldValidationError(
                ["body"], "a referenced row does not exist", "missing_reference"
            ) from exc
        raise FieldValidationError(
            ["body"], "the row breaks a constraint of the database", "constraint_violation"
        ) from exc
    except DataError as exc:
        session.rollback()
        raise FieldValidationError(
            ["body"], "a value does not fit its column", "data_error"
        ) from exc
