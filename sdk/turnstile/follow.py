"""The set of models the app runs follows its builds pointer (the release agent's switch).

``--builds`` may be a symbolic link (``STATE/current -> slots/b``, ``maskgate.fleet.slots``).
The app opens the folder the link names, never the link itself (a switch while models
are opened must not mix two sets). A watcher thread reads the link every 0.2 s; when it
names another folder, the new pipeline is opened on that thread while frames go on through
the old one, then swapped in between two frames (the app holds a lock around each frame's
inference): no frame is dropped and the passage under way goes on (the gate's state is
the app's, not the pipeline's), with frames or without (a camera with nobody in view).
A set that fails to open is said once; the app keeps the one it runs.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..pipeline import Pipeline

CHECK_EVERY_S = 0.2  # a switch is seen within this long (a readlink, cheap)
SLOT_FILE = "slot.json"  # what a complete slot holds (maskgate.fleet.slots writes it)


def resolved(builds: Path) -> Path:
    return Path(os.path.realpath(builds))


def slot_release(folder: Path) -> str | None:
    """The release a slot holds (its slot.json, written by the agent), or None."""
    try:
        return str(json.loads((Path(folder) / SLOT_FILE).read_text())["release"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class BuildsFollower:
    def __init__(self, builds: Path, running: Path, *, open_pipeline: Callable[[Path], Pipeline],
                 swap: Callable[[Path, Pipeline], None], say: Callable[[str], None]):
        """``open_pipeline(folder)``: a new pipeline; ``swap(folder, pipeline)``: put it in
        place of the running one (the app does it between frames)."""
        self.builds = Path(builds)
        self.running = running  # the folder the app's pipeline came from
        self._open = open_pipeline
        self._swap = swap
        self._say = say
        self._failed: set[Path] = set()  # folders that did not open: not tried again until the link moves
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.problem: str | None = None

    def start(self) -> BuildsFollower:
        if self.builds.is_symlink():
            self._thread = threading.Thread(target=self._watch, name="maskgate-follow", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _watch(self) -> None:
        while not self._stop.wait(CHECK_EVERY_S):
            target = resolved(self.builds)
            if target == self.running:
                self._failed.clear()
                self.problem = None
                continue
            if target in self._failed:
                continue
            try:
                pipeline = self._open(target)
            except Exception as exc:  # any failure of the new set leaves the running one in place
                self._failed.add(target)
                self.problem = f"the models in {target} did not open, still running {self.running}: {exc}"
                self._say(self.problem)
                continue
            if self._stop.is_set():
                pipeline.close()
                return
            self._swap(target, pipeline)
            self.running, self.problem = target, None
