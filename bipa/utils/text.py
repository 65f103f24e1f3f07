"""Short listings for error messages."""
from typing import Iterable


def examples(items: Iterable, limit: int = 5) -> str:
    """The first ``limit`` items, comma-separated, and how many more there are."""
    items = list(items)
    more = f' (and {len(items) - limit} more)' if len(items) > limit else ''
    return ', '.join(str(i) for i in items[:limit]) + more
