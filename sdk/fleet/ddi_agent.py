"""The agent for a site that rolls out through Eclipse hawkBit (or goosebit): the server decides
which camera takes which release, and when; the camera decides whether it keeps it.

Each poll asks the server (its Direct Device Integration API, ``ddi.py``); a deployment's
artifact is a MaskGate ``.swu`` (``maskgate release --swu``), downloaded and checked against
the hashes the server gives, then unpacked into a local mirror of the release repository and
verified exactly as a served repository is (the site key's signatures, expiry, versions,
every file's sha256: the server moves bytes, it does not vouch for them). From there the
update is the repository agent's own: the camera's bundles into the spare slot, ``maskgate
check`` on its own backends, the switch, probation.

What the server is told, in order (``progress`` counts these five steps):

    proceeding 1/5  downloading ARTIFACT
    proceeding 2/5  downloaded; verifying the site's signatures
    proceeding 3/5  verified release V; checking it on this camera's backends
    proceeding 4/5  active in slot S; on probation
    closed success 5/5  kept after probation           (never earlier: not at download, not at the switch)
    closed failure      refused, failed its check, failed probation (rolled back), with the reason

A final result that cannot be sent (the server down) is kept in ``agent.json`` and sent at the
next poll that reaches it. A deployment offered again after its result went through is a new
decision of the server's (goosebit reuses its action ids): a release this camera found bad is
refused again with the reason, the running one is confirmed, an older one is a replay and
refused by its metadata. While a release is on probation the camera keeps polling at the
server's pace (so it shows as online) but starts nothing new.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from ..errors import ReleaseError
from .agent import Agent
from .ddi import DdiClient, DdiUnreachable
from .swu import unpack_swu

STEPS = 5


class DdiAgent(Agent):
    def __init__(self, settings, *, ddi: DdiClient, **kwargs):
        self.ddi_dir = Path(settings.state) / "ddi"
        super().__init__(settings, repo=(self.ddi_dir / "mirror").resolve().as_uri(), **kwargs)
        self.ddi = ddi
        self.server_sleep_s: float | None = None
        self._polled = 0.0  # time.monotonic() of the last poll that reached the server
        self._deploying = False  # inside _update: its problems become this action's one failure line
        self.state.setdefault("ddi", {"action": None, "pending": [], "attributes": None})

    # -- feedback ----------------------------------------------------------------------------------
    def _send(self, action: str, *, execution: str, finished: str = "none", step: int | None = None,
              details: str = "", final: bool = False) -> None:
        """Tell the server; a final result that cannot go now is kept and sent at the next poll."""
        entry = {"action": action, "execution": execution, "finished": finished, "step": step, "details": details}
        if final:
            self.state["ddi"]["pending"].append(entry)
            if self.state["ddi"]["action"] == action:
                self.state["ddi"]["action"] = None
            self._save()
            self._flush()
            return
        try:
            self._post(entry)
        except ReleaseError as exc:  # progress is a courtesy; the outcome is what must arrive
            self._say(f"maskgate agent: could not report progress to {self.ddi.base}: {exc}")

    def _post(self, entry: dict) -> None:
        self.ddi.feedback(entry["action"], execution=entry["execution"], finished=entry["finished"],
                          progress=None if entry["step"] is None else (entry["step"], STEPS),
                          details=[f"maskgate agent ({self.identity.camera}): {entry['details']}"])

    def _flush(self) -> None:
        pending = self.state["ddi"]["pending"]
        while pending:
            try:
                self._post(pending[0])
            except ReleaseError as exc:
                self._say(f"maskgate agent: the result of action {pending[0]['action']} waits for the server: {exc}")
                return
            pending.pop(0)
            self._save()

    def _outcome(self, version: str, event: str, why: str) -> None:
        action = self.state["ddi"]["action"]
        if action is None:
            return
        if event == "active":
            minutes = self.settings.probation.minutes if self.heartbeat else 0
            self._send(action, execution="proceeding", step=4, details=f"{why} for {minutes:g} min; the result "
                       "follows the probation")
        elif event == "kept":
            self._send(action, execution="closed", finished="success", step=STEPS,
                       details=f"release {version} kept after probation: {why}", final=True)
        else:  # refused, rolled_back
            self._send(action, execution="closed", finished="failure",
                       details=f"release {version} {event.replace('_', ' ')}: {why}", final=True)

    # -- one poll ---------------------------------------------------------------------------------
    def step(self) -> str:
        self.reconcile()
        if self.state["probation"] is not None:
            line = self._watch()
            if self.state["probation"] is not None and \
                    time.monotonic() - self._polled >= (self.server_sleep_s or self.settings.poll_s):
                try:  # seen online; nothing new is started on probation
                    self._poll()
                except ReleaseError:
                    pass
            elif self.state["ddi"]["pending"]:
                self._flush()
            return line
        try:
            poll = self._poll()
        except ReleaseError as exc:
            self.failures += 1
            return self._problem(str(exc))
        self.failures = 0
        self.state["last_error"] = None
        active = (self.state["active"] or {}).get("release")
        if poll.deployment is None:
            self._publish()
            return f"up to date ({active or 'no release'})"
        try:
            deployment = self.ddi.deployment(poll.deployment)
        except ReleaseError as exc:
            self.failures += isinstance(exc, DdiUnreachable)
            return self._problem(str(exc))
        return self._deploy(deployment)

    def _poll(self):
        poll = self.ddi.poll()
        self._polled = time.monotonic()
        self.server_sleep_s = poll.sleep_s
        self._flush()
        self._attributes(force=poll.config_data is not None)
        return poll

    def _problem(self, message: str) -> str:
        if not self._deploying:
            return super()._problem(message)
        self.state["last_error"] = message  # said once, as the action's failure (_deploy)
        self._save()
        return message

    def _attributes(self, *, force: bool) -> None:
        """The camera's attributes on the server. ``sw_version`` (what goosebit shows and compares) is
        the release this camera has kept: on probation, the one before, so that nothing on the
        server says the new one has proved itself before its result does."""
        active = (self.state["active"] or {}).get("release")
        kept = (self.state["previous"] or {}).get("release") if self.state["probation"] is not None else active
        attributes = {"camera": self.identity.camera, "site": self.identity.site, "channel": self.identity.channel,
                      "groups": ",".join(self.identity.groups), "soc": self.identity.soc or "none",
                      "sw_version": kept or "",
                      "maskgate_release": f"{active} (on probation)" if active != kept else (active or "none")}
        if force or attributes != self.state["ddi"]["attributes"]:
            self.ddi.put_config(attributes)
            self.state["ddi"]["attributes"] = attributes
            self._save()

    def _fail(self, action: str, why: str) -> str:
        """A deployment this camera will not run: closed with failure, nothing activated."""
        self.failures = 0  # the release, not the link: no backoff
        self._say(f"maskgate agent: action {action} refused: {why}")
        self._send(action, execution="closed", finished="failure", details=why, final=True)
        self._publish()
        return f"action {action} refused: {why}"

    def _deploy(self, deployment) -> str:
        action = deployment.action
        swus = [a for a in deployment.artifacts if a.filename.endswith(".swu")] or list(deployment.artifacts)
        if len(swus) != 1:
            return self._fail(action, f"expected one MaskGate .swu artifact, the deployment has "
                              f"{', '.join(a.filename for a in deployment.artifacts)}")
        artifact = swus[0]
        self.state["ddi"]["action"] = action
        self._save()
        self._send(action, execution="proceeding", step=1, details=f"downloading {artifact.filename} "
                   f"({artifact.size} bytes)")
        image = self.ddi_dir / "image.swu"
        try:
            size = self.ddi.download(artifact, image)
        except DdiUnreachable as exc:  # the link, not the release: tried again at the next poll
            self.failures += 1
            return self._problem(str(exc))
        except ReleaseError as exc:
            return self._fail(action, str(exc))
        self._send(action, execution="proceeding", step=2, details=f"downloaded {size} bytes; verifying the site's "
                   "signatures")
        try:
            version = self._unpack(image)
            self.client.refresh()
            self.client.release(version)
        except ReleaseError as exc:
            return self._fail(action, str(exc))
        finally:
            image.unlink(missing_ok=True)
        active = (self.state["active"] or {}).get("release")
        if version == active:
            self._send(action, execution="closed", finished="success", step=STEPS,
                       details=f"release {version} is running already", final=True)
            return f"release {version} is running already"
        if version in self.state["bad"]:
            return self._fail(action, f"release {version} was found bad on this camera before: "
                              f"{self.state['bad'][version]}")
        self._send(action, execution="proceeding", step=3, details=f"verified release {version}; checking it on "
                   "this camera's backends")
        busy = self.spare_in_use()
        if busy:  # the app is between sets: the action stays open, tried again at the next poll
            return self._problem(busy)
        self._deploying = True
        try:
            line = self._update(version)
        finally:
            self._deploying = False
        if self.state["ddi"]["action"] == action and (self.state["active"] or {}).get("release") != version:
            return self._fail(action, self.state["last_error"] or line)  # the mirror's files did not verify
        return line

    def _unpack(self, image: Path) -> str:
        """The image's mirror in place of the last one (never half of each); its release."""
        mirror = self.ddi_dir / "mirror"
        fresh = self.ddi_dir / "mirror.partial"
        shutil.rmtree(fresh, ignore_errors=True)
        version, _ = unpack_swu(image, fresh)
        old = self.ddi_dir / "mirror.old"
        shutil.rmtree(old, ignore_errors=True)
        if mirror.exists():
            mirror.rename(old)
        fresh.rename(mirror)
        shutil.rmtree(old, ignore_errors=True)
        self.client._updater = None  # the next refresh reads the new mirror
        return version

    def wait_s(self) -> float:
        if self.state["probation"] is None and not self.failures and self.server_sleep_s:
            return self.server_sleep_s  # the server paces its devices
        return super().wait_s()
