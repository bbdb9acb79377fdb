"""The export contract: which tables, which columns, which values.

``data/README.md`` is the human-readable form of this module; keep them in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ACCOUNT_TYPES",
    "EVENT_TYPES",
    "OPTIONAL_TABLES",
    "READ_EVENTS",
    "REQUIRED_TABLES",
    "TABLES",
    "TableSpec",
    "ExportError",
]

ACCOUNT_TYPES: tuple[str, ...] = ("customer", "merchant", "partner_staff")
EVENT_TYPES: tuple[str, ...] = (
    "login",
    "search",
    "view_item",
    "view_comments",
    "view_profile",
    "order",
    "coupon_claim",
)
#: Event types that return user data to the reader.
READ_EVENTS: tuple[str, ...] = ("search", "view_comments", "view_profile")
#: Suffixes a table file may carry, in the order they are looked for.
SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".parquet")


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract.

    ``required`` columns must be present (header names are matched
    case-insensitively after trimming); ``optional`` columns are read when
    present and treated as empty otherwise.
    """

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


TABLES: dict[str, TableSpec] = {
    "partners": TableSpec(
        "partners", required=("partner_id",), optional=("name", "partner_type", "onboarded_at")
    ),
    "accounts": TableSpec(
        "accounts",
        required=("account_id", "account_type", "created_at"),
        optional=("partner_id",),
    ),
    "events": TableSpec(
        "events",
        required=("ts", "account_id", "event_type"),
        optional=("device_id", "ip", "target_id", "records"),
    ),
    "relationships": TableSpec(
        "relationships",
        required=("merchant_id", "customer_id", "first_order_at"),
    ),
}
#: Tables an export must hold, in load order.
REQUIRED_TABLES: tuple[str, ...] = ("partners", "accounts", "events")
#: Tables an export may hold: merchant-customer pairs from the platform's full order
#: history, so ties from before the export window are visible.
OPTIONAL_TABLES: tuple[str, ...] = ("relationships",)


class ExportError(Exception):
    """The export cannot be used at all (exit code 2).

    The message is one line that names the file and the problem.
    """

    def __init__(self, path: Path | str | None, problem: str):
        self.path = str(path) if path is not None else None
        self.problem = " ".join(str(problem).split())
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{self.problem}")
