"""`manifest.json`: what a batch run did with each input, rewritten atomically as items finish.

Schema: {"items": [{"input", "status", "outputs", "error", "frames", "seconds", "fingerprint"}, ...]}
with status "done" | "failed" | "skipped". Paths are absolute so a manifest on a shared filesystem means
the same thing on every machine. It is also the resume record: an item is finished when its status is
done or skipped AND every output file it lists exists (outputs are committed atomically, so an existing
file is a complete one). `fingerprint` (optional when reading) identifies the options and input version
the outputs were made from; the runner redoes an item whose fingerprint no longer matches.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rvmkit.errors import RvmkitError, describe_path
from rvmkit.fileio import write_atomically

MANIFEST_NAME = "manifest.json"
STATUSES = ("done", "failed", "skipped")
ITEM_KEYS = ("input", "status", "outputs", "error", "frames", "seconds")
OPTIONAL_KEYS = ("fingerprint",)


@dataclass
class Item:
    """One input's record. `outputs` maps output kind (composition, alpha, ...) to an absolute path."""

    input: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    frames: int | None = None
    seconds: float | None = None
    fingerprint: str | None = None

    def finished(self) -> bool:
        """Done earlier and every output still on disk: safe to skip."""
        return (self.status in ("done", "skipped") and bool(self.outputs)
                and all(Path(path).exists() for path in self.outputs.values()))


class Manifest:
    """Items in input order; `save()` replaces the file atomically (readers never see half a file)."""

    def __init__(self, path: Path, items: list[Item] | None = None) -> None:
        self.path = Path(path)
        self.items: list[Item] = list(items or [])

    @classmethod
    def load(cls, path: str | os.PathLike) -> Manifest:
        """The manifest at `path`, or an empty one when there is none yet."""
        path = Path(path)
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text())
            items = [Item(**{key: entry.get(key) for key in ITEM_KEYS + OPTIONAL_KEYS})
                     for entry in data["items"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RvmkitError(f"{describe_path(path)}: not an rvmkit batch manifest ({type(exc).__name__}); "
                              "move it away to start afresh") from None
        for item in items:
            item.outputs = dict(item.outputs or {})
        return cls(path, items)

    def get(self, input_path: str) -> Item | None:
        for item in self.items:
            if item.input == input_path:
                return item
        return None

    def record(self, item: Item) -> None:
        """Insert or replace the record for `item.input`, then save."""
        if item.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {item.status!r}")
        for index, existing in enumerate(self.items):
            if existing.input == item.input:
                self.items[index] = item
                break
        else:
            self.items.append(item)
        self.save()

    def to_dict(self) -> dict[str, Any]:
        return {"items": [asdict(item) for item in self.items]}

    def save(self) -> None:
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        write_atomically(self.path, lambda tmp: tmp.write_text(text))
