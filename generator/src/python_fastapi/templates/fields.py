"""Field types the request schemas share."""

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, JsonValue


def _text_only(value: Any) -> Any:
    # Pydantic would also read numbers as Unix timestamps; the API takes ISO 8601 text only.
    if isinstance(value, (str, dt.date)):
        return value
    raise ValueError("must be ISO 8601 text")


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be null")
    return value


IsoDate = Annotated[dt.date, BeforeValidator(_text_only)]
"""A calendar date written YYYY-MM-DD."""

IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_text_only)]
"""A date-time with an offset (RFC 3339), such as 2025-01-31T12:00:00Z."""

Json = JsonValue
"""Any JSON value."""

JsonNotNull = Annotated[JsonValue, AfterValidator(_not_null)]
"""Any JSON value but null (for required json fields)."""

ABSENT: Any = None
"""The default of a PATCH body's field that refuses null: an absent field is None (and left
unchanged), while the field keeps its own type, which null does not satisfy."""
