"""Stream-write one big JSON document without holding it in memory.

The official files are a single JSON value each (an object with one long list, or a bare list);
`JsonListWriter` writes the fixed head, then the list in chunks, then the tail, so a 1.5 GB
file needs only one chunk in memory. orjson serialises each chunk in one call.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import orjson


class JsonListWriter:
    """`{**head, key: [...items], **tail}` when key is given, else a bare `[...items]`."""

    def __init__(
        self,
        path: Path,
        *,
        key: str | None = None,
        head: dict[str, Any] | None = None,
        tail: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.key, self.tail = key, tail or {}
        self.count = 0
        self._f = self.path.open("wb", buffering=1 << 20)
        if key is None:
            self._f.write(b"[")
        else:
            opening = orjson.dumps(head or {})[:-1]  # `{...` without the closing brace
            self._f.write(opening + (b"," if head else b"") + orjson.dumps(key) + b":[")

    def extend(self, items: list[Any]) -> None:
        """Append items to the list (one orjson call for the whole chunk)."""
        if not items:
            return
        body = orjson.dumps(items)[1:-1]
        self._f.write(b"," + body if self.count else body)
        self.count += len(items)

    def close(self) -> None:
        if self._f.closed:
            return
        if self.key is None:
            self._f.write(b"]")
        else:
            self._f.write(b"]" + (b"," + orjson.dumps(self.tail)[1:] if self.tail else b"}"))
        self._f.close()

    def __enter__(self) -> JsonListWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
