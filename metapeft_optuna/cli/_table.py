"""What the commands share: printing a table."""

from __future__ import annotations

from collections.abc import Sequence


def print_table(rows: list[dict[str, object]], columns: Sequence[str]) -> None:
    if not rows:
        print("(nothing to show)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))
