"""``maskgate agent``: the camera takes the release meant for it, checks it, runs it, keeps it or rolls back.

Each poll: the repository's signed metadata is refreshed (refusals are one line; a server
that cannot be reached is retried with backoff while the current set keeps running), the
rollout plan says which release is this camera's (``rollout.py``), and a release it does
not run yet is fetched into the spare slot, checked there on the camera's own backends,
and switched to (``slots.py``). Then it is on probation (``probation.py``): it is kept when
the app has run it well for the window, else the previous slot is switched back, the release
is marked bad for this camera (never taken again) and the reason reported.

Every state change is written to ``STATE/agent.json`` before the next step, so an agent killed
at any point starts again where it was: a slot without its marker is filled again, a switch
whose record was lost is read back from the pointer, a probation goes on.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config.agent import AgentSettings
from ..errors import MaskGateError, ReleaseError
from ..files import atomic_write
from ..turnstile.heartbeat import read_heartbeat
from .probation import ProbationWatch
from .slots import Slots

log = logging.getLogger(__name__)
STATE_FILE = "agent.json"


@dataclass(frozen=True)
class Identity:
    camera: str
    site: str
    channel: str
    groups: tuple[str, ...]
    soc: str | None


class Agent:
    def __init__(self, settings: AgentSettings, *, repo: str, identity: Identity, verify_key_path: Path | None,
                 verify_key, heartbeat: Path | None, config_path: Path | None = None, link=None,
                 say: Callable[[str], None] = print):
        """``link``: a started ``maskgate.fleet.link.FleetLink`` (the site's broker), or None."""
        from .client import RepositoryClient

        self.settings = settings
        self.identity = identity
        self.state_dir = Path(settings.state)
        self.slots = Slots(self.state_dir)
        self.client = RepositoryClient(repo, self.state_dir / "tuf", verify_key=verify_key)
        self.verify_key_path = verify_key_path
        self.heartbeat = heartbeat
        self.config_path = config_path
        self.link = link
        self._spoke = False  # whether this poll said its outcome already (else run() logs the line)

        def spoken(message: str) -> None:
            self._spoke = True
            say(message)

        self._say = spoken
        self._stop = threading.Event()
        self._wake = threading.Event()  # a poll notice, or stop
        self.state = self._load()
        self.failures = 0  # repository errors in a row (the backoff)

    # -- the record -----------------------------------------------------------------------------
    def _load(self) -> dict:
        try:
            state = json.loads((self.state_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            state = {}
        return {"bad": {}, "active": None, "previous": None, "probation": None, "last_check": None,
                "last_error": None, "rollback": None, "slot_models": {}, "halted_by_fleet": {}, **state}

    def _save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.state_dir / STATE_FILE, json.dumps(self.state, indent=1) + "\n")

    def reconcile(self) -> None:
        """Make the record agree with the pointer (the one truth about what runs)."""
        current = self.slots.current()
        running = None if current is None or current.release is None else {"release": current.release,
                                                                            "slot": current.name}
        if running != self.state["active"]:
            if current is not None and running is not None and self.state["probation"] is None \
                    and self.state["active"] is not None:
                # killed between the switch and its record: the switch stands, on probation from now
                self.state["previous"] = self.state["active"]
                self._start_probation(running["release"], current.path)
            self.state["active"] = running
            self._save()

    # -- one poll ---------------------------------------------------------------------------------
    def step(self) -> str:
        """One poll; what happened, in a line."""
        self.reconcile()
        if self.state["probation"] is not None:
            return self._watch()
        try:
            self.client.refresh()
            plan = self.client.rollout()
        except ReleaseError as exc:
            self.failures += 1
            return self._problem(str(exc))
        self.failures = 0
        self.state["last_error"] = None  # the repository answered; what this poll finds wrong says so again
        chosen = plan.chosen_for(self.identity.camera, channel=self.identity.channel, groups=self.identity.groups,
                                 refused=frozenset(self.state["bad"]) | self._halted_by_fleet(plan))
        active = (self.state["active"] or {}).get("release")
        if chosen is None or chosen.version == active:
            self._publish()
            return f"up to date ({active or 'no release'})"
        return self._update(chosen.version)

    def _halted_by_fleet(self, plan) -> frozenset[str]:
        """Releases more cameras than their plan's max_failures found bad (their retained statuses)."""
        if self.link is None:
            return frozenset()
        halted = {}
        for release in plan.releases:
            failures = self.link.failures(release.version)
            if len(failures) > release.max_failures:
                halted[release.version] = len(failures)
                if release.version not in self.state["halted_by_fleet"]:
                    self._say(f"maskgate agent: release {release.version} halted for the fleet: {len(failures)} "
                              f"cameras found it bad (more than its max_failures {release.max_failures}): "
                              + "; ".join(f"{c}: {why}" for c, why in sorted(failures.items())[:3]))
        if halted != self.state["halted_by_fleet"]:
            self.state["halted_by_fleet"] = halted
            self._save()
        return frozenset(halted)

    def _problem(self, message: str) -> str:
        self.state["last_error"] = message
        self._save()
        self._publish()
        self._say(f"maskgate agent: {message}")
        return message

    def spare_in_use(self) -> str | None:
        """Why the spare slot cannot be written now (the app still runs it), or None."""
        heartbeat = read_heartbeat(self.heartbeat) if self.heartbeat else None
        spare = self.slots.path(self.slots.other())
        if heartbeat is not None and heartbeat.get("builds") == str(spare.resolve()):
            return f"the app still runs {spare}; waiting before writing a new set there"
        return None

    def _update(self, version: str) -> str:
        from .update import UnrunnableRelease, check_slot, fetch_into_spare

        busy = self.spare_in_use()
        if busy:
            return self._problem(busy)
        try:
            release = self.client.release(version)
            self._say(f"maskgate agent: release {version}: fetching for {self.identity.camera}")
            fetched = fetch_into_spare(self.client, release, self.slots, soc=self.identity.soc)
        except UnrunnableRelease as exc:
            return self._mark_bad(version, str(exc))
        except ReleaseError as exc:
            self.failures += 1
            return self._problem(str(exc))
        folder = self.slots.path(fetched.slot)
        check = check_slot(folder, runs=self.settings.check_runs, verify_key=self.verify_key_path,
                           config=self.config_path)
        self.state["slot_models"][fetched.slot] = check["bundles"]
        self.state["last_check"] = {"release": version, "passed": check["passed"], "summary": check["summary"],
                                    "failed": check["failed"], "at_unix": round(time.time(), 3),
                                    "downloaded_bytes": fetched.downloaded_bytes,
                                    "reused_bytes": fetched.reused_bytes, "left": fetched.left}
        if not check["passed"]:
            failed = "; ".join(f"{k}: {v}" for k, v in check["failed"].items()) or check["summary"]
            return self._mark_bad(version, f"failed its check on this camera: {failed}")
        self.slots.complete(fetched.slot, release=version, content_key=release.content_key())
        self.state["previous"] = self.state["active"]
        self.slots.switch(fetched.slot)
        self.state["active"] = {"release": version, "slot": fetched.slot}
        self._start_probation(version, folder)
        self._save()
        self._publish()
        message = (f"release {version} active in slot {fetched.slot} ({fetched.downloaded_bytes} bytes downloaded, "
                   f"{fetched.reused_bytes} reused); on probation")
        self._say(f"maskgate agent: {message}")
        self._outcome(version, "active", message)
        return message

    def _start_probation(self, version: str, folder: Path) -> None:
        beat = read_heartbeat(self.heartbeat) if self.heartbeat else None
        watch = ProbationWatch(release=version, slot_path=str(Path(folder).resolve()), since_unix=time.time(),
                               settings=self.settings.probation, baseline=beat)
        self.state["probation"] = watch.to_dict()

    def _watch(self) -> str:
        data = self.state["probation"]
        watch = ProbationWatch.from_dict(data, self.settings.probation)
        if self.heartbeat is None:
            verdict, why = "pass", "no heartbeat configured: kept without probation"
        else:
            verdict, why = watch.verdict(read_heartbeat(self.heartbeat))
        if verdict == "wait":
            self.state["probation"] = watch.to_dict()
            self._save()
            return why
        self.state["probation"] = None
        if verdict == "pass":
            self.state["rollback"] = None
            self._save()
            self._publish()
            self._say(f"maskgate agent: release {watch.release} kept: {why}")
            self._outcome(watch.release, "kept", why)
            return f"release {watch.release} kept: {why}"
        return self._roll_back(watch.release, why)

    def _roll_back(self, version: str, why: str) -> str:
        previous = self.state["previous"]
        self.state["bad"][version] = why
        self.state["rollback"] = {"release": version, "reason": why, "at_unix": round(time.time(), 3)}
        if previous is not None and self.slots.info(previous["slot"]).release == previous["release"]:
            self.slots.switch(previous["slot"])
            self.state["active"], self.state["previous"] = previous, None
            done = f"rolled back to {previous['release']} (slot {previous['slot']})"
        else:
            done = "no previous set to roll back to: the app keeps the set it has"
        self._save()
        self._publish()
        self._say(f"maskgate agent: release {version} failed probation ({why}); {done}")
        self._outcome(version, "rolled_back", f"failed probation ({why}); {done}")
        return f"release {version} rolled back: {why}"

    def _mark_bad(self, version: str, why: str) -> str:
        self.state["bad"][version] = why
        self._save()
        self._publish()
        self._say(f"maskgate agent: release {version} refused: {why}")
        self._outcome(version, "refused", why)
        return f"release {version} refused: {why}"

    def _outcome(self, version: str, event: str, why: str) -> None:
        """A release became active, was kept, rolled back or refused: what a deployment server is
        told (``ddi_agent.py``); the repository's agent tells the site through its status only."""

    # -- what the site sees ---------------------------------------------------------------------
    def status(self) -> dict:
        beat = read_heartbeat(self.heartbeat) if self.heartbeat else None
        active = self.state["active"] or {}
        return {"camera": self.identity.camera, "site": self.identity.site, "channel": self.identity.channel,
                "groups": list(self.identity.groups), "soc": self.identity.soc,
                "release": active.get("release"), "slot": active.get("slot"),
                "models": self.state["slot_models"].get(active.get("slot")) or {},
                "halted_by_fleet": self.state["halted_by_fleet"],
                "probation": None if self.state["probation"] is None else self.state["probation"]["release"],
                "last_check": self.state["last_check"], "rollback": self.state["rollback"],
                "bad": self.state["bad"], "error": self.state["last_error"],
                "app": None if beat is None else {k: beat.get(k) for k in ("release", "status", "fps", "errors")},
                "at_unix": round(time.time(), 3)}

    def _publish(self) -> None:
        status = self.status()
        atomic_write(self.state_dir / "status.json", json.dumps(status, indent=1) + "\n")
        if self.link is not None:
            self.link.report(status)

    # -- the loop ---------------------------------------------------------------------------------
    def wait_s(self) -> float:
        """The next poll: sooner on probation, later after repository errors (5 s doubling, jittered)."""
        if self.state["probation"] is not None:
            return min(1.0, self.settings.poll_s)
        if self.failures:
            backoff = min(self.settings.max_backoff_s, 5.0 * 2 ** (self.failures - 1))
            return backoff * random.uniform(0.8, 1.2)
        return self.settings.poll_s

    def poll_now(self) -> None:
        """Poll at once (a notice from the site), not at the next poll_s."""
        self._wake.set()

    def run(self, *, once: bool = False) -> int:
        if self.link is not None:  # the others' retained statuses come right after the subscription
            self.link.connected.wait(timeout=5)
            self._stop.wait(0.5)
        while not self._stop.is_set():
            self._spoke = False
            try:
                line = self.step()
            except MaskGateError as exc:
                line = self._problem(str(exc))
            if not self._spoke:
                log.info("%s", line)
            if once:
                return 0 if self.state["last_error"] is None else 1
            self._wake.wait(self.wait_s())
            self._wake.clear()
        return 0

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
