"""Create, read, replace, update and delete for any entity: visibility, the list syntax, and the
checks a database cannot explain.

Visibility (with an auth feature): an `owner_scoped` entity's rows are seen and changed by their
owner and by admins only; a `shared_read` entity's rows are seen by every signed-in user and
changed by their owner and by admins. A row the caller cannot see answers 404; one it can see but
not change, 403. A reference to a row the caller cannot see is refused as if the row were missing.

Uniqueness and references are checked before writing, so the client learns which field is at
fault; a conflict names the fields, never the other row. The database constraints stay the last
word under concurrent writes and map to the same statuses on SQLite and PostgreSQL (409 for a
duplicate or a row still referenced, 422 for a missing reference).

Every write answers the row as stored: re-read after the commit, so values come back at the
column's scale and in UTC, exactly as a later GET shows them.
"""

import dataclasses
import functools
import uuid
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session
from starlette.datastructures import QueryParams

from app.database import utcnow
from app.errors import ConflictError, FieldValidationError, ForbiddenError, NotFoundError

OWNER_SCOPED = "owner_scoped"
SHARED_READ = "shared_read"
_OPERATORS = ("gt", "gte", "lt", "lte", "ne", "in", "contains", "is_null")
_RANGED = {"integer", "decimal", "float", "date", "datetime"}
_TEXT = {"string", "text"}
_LIMIT_MAX = 200
_BOOLEAN = TypeAdapter(bool)


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who is asking: a signed-in account, or nobody when the app has no auth feature."""

    id: uuid.UUID | None
    is_admin: bool = False


NOBODY = Actor(id=None)


@dataclasses.dataclass(frozen=True)
class Column:
    """A column lists filter and sort by: its name, field kind and Python type."""

    name: str
    kind: str
    type: Any

    def parse(self, text: str) -> Any:
        return _adapter(self.type).validate_python(text)


@functools.cache
def _adapter(type_: Any) -> TypeAdapter[Any]:
    return TypeAdapter(type_)


@dataclasses.dataclass(frozen=True)
class Reference:
    """`field` of this entity holds the id of a `target` row."""

    field: str
    target: type[Any]
    target_label: str
    target_access: str | None = None


@dataclasses.dataclass(frozen=True)
class Referrer:
    """`field` of `model` rows may hold the id of a row of this entity."""

    model: type[Any]
    field: str
    label: str


@dataclasses.dataclass(frozen=True)
class EntitySpec:
    model: type[Any]
    label: str
    # owner_scoped, shared_read, or None without an auth feature.
    access: str | None = None
    unique: tuple[tuple[str, ...], ...] = ()
    references: tuple[Reference, ...] = ()
    referrers: tuple[Referrer, ...] = ()
    columns: tuple[Column, ...] = ()

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def _visible(spec_access: str | None, model: type[Any], actor: Actor) -> Any:
    """The condition on rows of `model` the actor may see, or None for all rows."""
    if spec_access == OWNER_SCOPED and not actor.is_admin:
        return model.owner_id == actor.id
    return None


def _invalid_query(name: str, message: str, type_: str = "invalid_filter") -> FieldValidationError:
    return FieldValidationError(["query", name], message, type_)


def _condition(session: Session, spec: EntitySpec, key: str, values: list[str]) -> Any:
    name, _, operator = key.partition("__")
    column = spec.column(name)
    if column is None or (operator and operator not in _OPERATORS):
        raise _invalid_query(key, f"unknown filter `{key}`", "unknown_filter")
    if len(values) != 1:
        raise _invalid_query(key, f"`{key}` is given more than once")
    text = values[0]
    attribute = getattr(spec.model, name)

    def parsed(raw: str) -> Any:
        try:
            return column.parse(raw)
        except ValidationError:
            raise _invalid_query(key, f"`{raw}` is not a valid {column.kind} value") from None

    if operator == "is_null":
        try:
            wanted = _BOOLEAN.validate_python(text)
        except ValidationError:
            raise _invalid_query(key, "must be true or false") from None
        return attribute.is_(None) if wanted else attribute.is_not(None)
    if column.kind == "json":
        raise _invalid_query(key, f"`{name}` is json: only `{name}__is_null` filters it")
    if operator in ("", "ne"):
        value = parsed(text)
        return (
            attribute == value
            if operator == ""
            else sa.or_(attribute != value, attribute.is_(None))
        )
    if operator == "in":
        items = [parsed(item) for item in text.split(",")] if text else []
        if not items:
            raise _invalid_query(key, "give one value or more, separated by commas")
        return attribute.in_(items)
    if operator == "contains":
        if column.kind not in _TEXT:
            raise _invalid_query(
                key, f"`contains` filters text fields, and `{name}` is {column.kind}"
            )
        # Case-sensitive on both databases (SQLite's LIKE ignores ASCII case, PostgreSQL's
        # does not).
        find = sa.func.instr if session.get_bind().dialect.name == "sqlite" else sa.func.strpos
        return find(attribute, text) > 0
    if column.kind not in _RANGED:
        raise _invalid_query(
            key, f"`{operator}` compares numbers, dates and times, and `{name}` is {column.kind}"
        )
    value = parsed(text)
    return {
        "gt": attribute > value,
        "gte": attribute >= value,
        "lt": attribute < value,
        "lte": attribute <= value,
    }[operator]


def _order(session: Session, spec: EntitySpec, text: str) -> list[Any]:
    postgresql = session.get_bind().dialect.name == "postgresql"
    order: list[Any] = []
    for part in text.split(","):
        descending = part.startswith("-")
        name = part[1:] if descending else part
        column = spec.column(name)
        if column is None or column.kind == "json":
            raise _invalid_query("sort", f"cannot sort by `{name}`", "unknown_sort")
        attribute = getattr(spec.model, name)
        if postgresql and column.kind in (_TEXT | {"enum"}):
            # Byte order, as SQLite sorts, whatever the database's collation.
            attribute = attribute.collate("C")
        order.append(attribute.desc().nulls_last() if descending else attribute.asc().nulls_first())
    return order


def _integer(params: QueryParams, name: str, default: int, low: int, high: int | None) -> int:
    values = params.getlist(name)
    if not values:
        return default
    if len(values) > 1:
        raise _invalid_query(name, f"`{name}` is given more than once", "int_parsing")
    try:
        value = int(values[0])
    except ValueError:
        raise _invalid_query(name, "must be an integer", "int_parsing") from None
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise _invalid_query(name, f"must be {bound}", "out_of_range")
    return value


def list_rows(
    session: Session, spec: EntitySpec, params: QueryParams, actor: Actor
) -> dict[str, Any]:
    """A page of the rows the actor may see, filtered and sorted as the query asks."""
    limit = _integer(params, "limit", 50, 1, _LIMIT_MAX)
    offset = _integer(params, "offset", 0, 0, None)
    model = spec.model
    conditions: list[Any] = []
    order: list[Any] = []
    for key in dict.fromkeys(params.keys()):
        if key in ("limit", "offset"):
            continue
        if key == "sort":
            sorts = params.getlist("sort")
            if len(sorts) != 1 or not sorts[0]:
                raise _invalid_query("sort", "give one `sort`, e.g. `sort=-created_at,id`")
            order = _order(session, spec, sorts[0])
            continue
        conditions.append(_condition(session, spec, key, params.getlist(key)))
    visible = _visible(spec.access, model, actor)
    if visible is not None:
        conditions.append(visible)
    total = session.scalar(sa.select(sa.func.count()).select_from(model).where(*conditions))
    rows = session.scalars(
        sa.select(model)
        .where(*conditions)
        .order_by(*order, model.created_at, model.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return {"items": rows, "total": total, "limit": limit, "offset": offset}


def list_parameters(spec: EntitySpec) -> list[dict[str, Any]]:
    """The OpenAPI description of the list's query parameters."""
    parameters: list[dict[str, Any]] = [
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": _LIMIT_MAX, "default": 50},
        },
        {
            "name": "offset",
            "in": "query",
            "schema": {"type": "integer", "minimum": 0, "default": 0},
        },
        {
            "name": "sort",
            "in": "query",
            "description": (
                "Comma-separated fields, `-` for descending; created_at then id break ties."
            ),
            "schema": {"type": "string"},
        },
    ]
    for column in spec.columns:
        operators = ["is_null"]
        if column.kind != "json":
            operators = ["", "ne", "in", "is_null"]
            if column.kind in _RANGED:
                operators += ["gt", "gte", "lt", "lte"]
            if column.kind in _TEXT:
                operators.append("contains")
        for operator in operators:
            name = f"{column.name}__{operator}" if operator else column.name
            schema: dict[str, Any] = (
                {"type": "boolean"} if operator == "is_null" else {"type": "string"}
            )
            parameters.append({"name": name, "in": "query", "required": False, "schema": schema})
    return parameters


def _find(session: Session, spec: EntitySpec, row_id: uuid.UUID, actor: Actor) -> Any:
    row = session.get(spec.model, row_id)
    if row is None or (
        _visible(spec.access, spec.model, actor) is not None and row.owner_id != actor.id
    ):
        raise NotFoundError(f"no {spec.label} with id {row_id}")
    return row


def get_row(session: Session, spec: EntitySpec, row_id: uuid.UUID, actor: Actor) -> Any:
    return _find(session, spec, row_id, actor)


def _writable(spec: EntitySpec, row: Any, actor: Actor) -> None:
    if spec.access is not None and not actor.is_admin and row.owner_id != actor.id:
        raise ForbiddenError(
            f"this {spec.label} belongs to another account; it can be read, not changed"
        )


def create_row(session: Session, spec: EntitySpec, values: dict[str, Any], actor: Actor) -> Any:
    _check_references(session, spec, values, actor)
    _check_unique(session, spec, values, exclude=None, changed=None)
    if spec.access is not None:
        values = dict(values, owner_id=actor.id)
    row = spec.model(**values)
    session.add(row)
    commit(session, spec, deleting=False)
    session.refresh(row)
    return row


def update_row(
    session: Session,
    spec: EntitySpec,
    row_id: uuid.UUID,
    changes: dict[str, Any],
    actor: Actor,
    replace: bool,
) -> Any:
    """PUT (`replace`: every field takes the body's value or its default) or PATCH (only the
    given fields change)."""
    if not changes and not replace:
        raise FieldValidationError(["body"], "give at least one field to change", "empty_update")
    row = _find(session, spec, row_id, actor)
    _writable(spec, row, actor)
    _check_references(session, spec, changes, actor)
    merged = {name: getattr(row, name) for group in spec.unique for name in group}
    merged.update(changes)
    _check_unique(session, spec, merged, exclude=row.id, changed=set(changes))
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    commit(session, spec, deleting=False)
    session.refresh(row)
    return row


def delete_row(session: Session, spec: EntitySpec, row_id: uuid.UUID, actor: Actor) -> None:
    row = _find(session, spec, row_id, actor)
    _writable(spec, row, actor)
    for referrer in spec.referrers:
        column = getattr(referrer.model, referrer.field)
        found = session.scalar(sa.select(referrer.model.id).where(column == row.id).limit(1))
        if found is not None:
            raise ConflictError(
                f"this {spec.label} is still referenced by a row of {referrer.label} (field "
                f"{referrer.field}); delete or change that row first",
                [],
            )
    session.delete(row)
    commit(session, spec, deleting=True)


def _check_references(
    session: Session, spec: EntitySpec, values: dict[str, Any], actor: Actor
) -> None:
    for reference in spec.references:
        value = values.get(reference.field)
        if value is None:
            continue
        target = session.get(reference.target, value)
        hidden = (
            target is not None
            and _visible(reference.target_access, reference.target, actor) is not None
            and target.owner_id != actor.id
        )
        if target is None or hidden:
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
        # Uniqueness is global (over every account's rows); the answer names the fields only.
        query = sa.select(model.id).where(
            *[
                getattr(model, name) == value
                for name, value in zip(group, group_values, strict=True)
            ]
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


def violation(exc: IntegrityError) -> str:
    """The kind of constraint a database error broke, the same words on both databases."""
    original = exc.orig
    state = getattr(original, "sqlstate", None)  # psycopg 3
    if state:
        return _SQLSTATES.get(state, "other")
    name = getattr(original, "sqlite_errorname", "")
    if name in _SQLITE_ERRORS:
        return _SQLITE_ERRORS[name]
    # Older SQLite drivers carry only the message.
    message = str(original)
    for marker, kind in (
        ("UNIQUE", "unique"),
        ("FOREIGN KEY", "foreign_key"),
        ("CHECK", "check"),
        ("NOT NULL", "not_null"),
    ):
        if marker in message:
            return kind
    return "other"


def commit(session: Session, spec: EntitySpec, deleting: bool) -> None:
    """Commits, mapping a constraint the database enforced to the API's answer."""
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        kind = violation(exc)
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


def anyone() -> Actor:
    """The caller of an entity route when the app has no accounts."""
    return NOBODY
