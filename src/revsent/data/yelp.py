"""Yelp's business.json: which businesses are in a category (the tutorial's "only restaurants")."""
from __future__ import annotations

from ..errors import DataError
from .sources import BadRow, iter_rows, open_source


def categories_of(value) -> list[str]:
    """Categories as a list: current releases use one comma-separated string, older ones a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(part).strip() for part in value]
    return []


def businesses_in_category(path: str, category: str) -> set[str]:
    """The ``business_id`` s of every business whose categories include ``category`` (any case)."""
    source = open_source(path, "auto", kind="business")
    wanted = category.strip().casefold()
    found: set[str] = set()
    seen = 0
    for line, row in iter_rows(source):
        if isinstance(row, BadRow):
            raise DataError(source.name, row.problem, line=line, reason=row.reason)
        if "business_id" not in row:
            raise DataError(source.name, f"no 'business_id' field; is this Yelp's business.json? fields are: {', '.join(row)}", line=line)
        seen += 1
        if any(name.casefold() == wanted for name in categories_of(row.get("categories"))):
            found.add(row["business_id"])
    if not found:
        raise DataError(source.name, f"none of its {seen} businesses is in the category {category!r}")
    return found
