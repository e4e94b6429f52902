"""Two slots and one pointer: the set a camera runs is switched in one rename.

    STATE/slots/a/ STATE/slots/b/    bundle folders, and slot.json once a set is complete
    STATE/current -> slots/a         the turnstile's --builds; replaced atomically (rename of a link)

A set is fetched and checked in the slot that is not current; ``slot.json`` is written
last, so a slot without it (an agent killed mid-download) is emptied and filled again.
The current slot is never written to while it is current.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_write
from ..turnstile.follow import SLOT_FILE as MARKER

SLOTS = ("a", "b")
POINTER = "current"


@dataclass(frozen=True)
class SlotInfo:
    name: str
    path: Path
    release: str | None  # the complete set it holds, or None
    content_key: str | None = None


class Slots:
    def __init__(self, state: str | Path):
        self.state = Path(state)
        self.pointer = self.state / POINTER

    def path(self, name: str) -> Path:
        return self.state / "slots" / name

    def current_name(self) -> str | None:
        try:
            target = os.readlink(self.pointer)
        except OSError:
            return None
        name = Path(target).name
        return name if name in SLOTS else None

    def info(self, name: str) -> SlotInfo:
        path = self.path(name)
        try:
            data = json.loads((path / MARKER).read_text())
            return SlotInfo(name, path, data.get("release"), data.get("content_key"))
        except (OSError, ValueError, AttributeError):
            return SlotInfo(name, path, None)

    def current(self) -> SlotInfo | None:
        name = self.current_name()
        return self.info(name) if name else None

    def other(self) -> str:
        return "b" if self.current_name() == "a" else "a"

    def prepare(self, name: str) -> Path:
        """Empty slot ``name`` for a new set (never the current one)."""
        if name == self.current_name():
            raise RuntimeError(f"slot {name} is current; a set is never written into the slot that runs")
        path = self.path(name)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def complete(self, name: str, *, release: str, content_key: str) -> None:
        atomic_write(self.path(name) / MARKER, json.dumps({"release": release, "content_key": content_key}) + "\n")

    def switch(self, name: str) -> None:
        """Make slot ``name`` current: a new link renamed over the pointer (atomic)."""
        if self.info(name).release is None:
            raise RuntimeError(f"slot {name} holds no complete set")
        self.state.mkdir(parents=True, exist_ok=True)
        fresh = self.state / f".{POINTER}.new"
        fresh.unlink(missing_ok=True)
        os.symlink(Path("slots") / name, fresh)
        os.replace(fresh, self.pointer)
        fd = os.open(self.state, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename survives a power cut
        finally:
            os.close(fd)
