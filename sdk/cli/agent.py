"""``maskgate agent``: the camera's release agent (maskgate.fleet.agent)."""
from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any


def add_parser(sub) -> None:
    p = sub.add_parser("agent", help="the camera's release agent: fetch the release meant for this camera, check it "
                       "on its own backends, switch slots, keep it after probation or roll back",
                       description="Settings come from [agent] (and [agent.probation]) of the config file; the "
                       "camera's name from [turnstile.publish] camera; the key it trusts from [trust] verify_key. "
                       "Point the turnstile's --builds at STATE/current, and its --heartbeat at the file [agent] "
                       "heartbeat names. With an mqtt:// target in [turnstile.publish] the agent keeps its status "
                       "retained there (maskgate fleet status), stops taking a release the fleet found bad, and "
                       "polls at once on 'maskgate rollout --notify'.")
    p.add_argument("--repo", metavar="URL", help="the release repository (default [agent] repo)")
    p.add_argument("--hawkbit", metavar="URL", help="take releases from an Eclipse hawkBit / goosebit server instead "
                   "(its DDI API; default [agent] hawkbit): it decides who takes what, the camera still verifies, "
                   "checks and keeps or rolls back, and reports success only after probation")
    p.add_argument("--state", type=Path, metavar="DIR", help="slots, pointer and trusted metadata (default [agent] "
                   "state)")
    p.add_argument("--camera", help="this camera's name (default [turnstile.publish] camera)")
    p.add_argument("--heartbeat", type=Path, metavar="FILE", help="the app's heartbeat file (default [agent] "
                   "heartbeat, else [turnstile] heartbeat)")
    p.add_argument("--once", action="store_true", help="one poll, then exit (0: nothing wrong)")
    p.set_defaults(func=main)


def _check_url(url: str, *, schemes: tuple[str, ...], where: str) -> None:
    """A release source's URL, before any poll: 'notaurl' was a ValueError traceback."""
    import urllib.parse

    from ..errors import InputError

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in schemes or (parts.scheme != "file" and not parts.netloc):
        raise InputError(f"{where}: {url!r} is not a URL the agent can poll; give "
                         + " or ".join(f"{s}://{'/PATH' if s == 'file' else 'HOST/PATH'}" for s in schemes))


def main(args) -> int:
    import dataclasses
    import logging

    from maskgate.converters.signing import load_key

    from ..config import active_config
    from ..errors import InputError
    from ..fleet.agent import Agent, Identity
    from ..fleet.choose import detected_soc
    from ..fleet.link import FleetLink, mqtt_target

    config = active_config()
    settings = config.agent
    if args.state is not None:
        settings = dataclasses.replace(settings, state=args.state)
    hawkbit = args.hawkbit or (None if args.repo else settings.hawkbit)
    repo = None if hawkbit else args.repo or settings.repo
    if not repo and not hawkbit:
        raise InputError(f"no release source: give --repo URL (or [agent] repo) or --hawkbit URL (or [agent] hawkbit) "
                         f"in {config.where}")
    if hawkbit:
        _check_url(hawkbit, schemes=("http", "https"), where="--hawkbit" if args.hawkbit else
                   f"[agent] hawkbit in {config.where}")
    else:
        assert repo  # refused above when neither is given
        _check_url(repo, schemes=("http", "https", "file"), where="--repo" if args.repo else
                   f"[agent] repo in {config.where}")
    publish = config.turnstile.publish
    camera = args.camera or (publish.camera if publish is not None else None)
    if not camera or camera == "camera":
        raise InputError(f"this camera has no name of its own: set [turnstile.publish] camera in {config.where} (or "
                         "--camera): the rollout places each camera by its name")
    key_path = config.trust.verify_key
    if key_path is None:
        raise InputError(f"the agent trusts releases signed by the site key: set [trust] verify_key in {config.where}")
    from ..files import writable_folder

    writable_folder(settings.state, what="the agent's slots and trusted metadata",
                    flag="--state" if args.state is not None else f"[agent] state in {config.where}")
    identity = Identity(camera=camera, site=publish.site if publish is not None else "site",
                        channel=settings.channel, groups=settings.groups, soc=settings.soc or detected_soc())
    heartbeat = args.heartbeat or settings.heartbeat or config.turnstile.heartbeat
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    link = None
    # the site's broker: status retained, the fleet's failures, poll notices
    if publish is not None and mqtt_target(publish) is not None:
        link = FleetLink(dataclasses.replace(publish, camera=camera))
    common: dict[str, Any] = dict(identity=identity, verify_key_path=key_path, verify_key=load_key(key_path),
                                  heartbeat=heartbeat, config_path=config.path, link=link,
                                  say=lambda m: print(m, file=sys.stderr, flush=True))
    agent: Agent
    if hawkbit:
        from ..config.publish import env_secret
        from ..fleet.ddi import DdiClient
        from ..fleet.ddi_agent import DdiAgent

        token = env_secret(settings.hawkbit_token_env, what="hawkBit target token", key="hawkbit_token_env",
                           table="[agent]")
        agent = DdiAgent(settings, ddi=DdiClient(hawkbit, camera, tenant=settings.hawkbit_tenant, token=token),
                         **common)
        repo = f"{hawkbit} (hawkBit DDI, tenant {settings.hawkbit_tenant})"
    else:
        assert repo  # refused above when neither is given
        agent = Agent(settings, repo=repo, **common)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: agent.stop())
    print(f"maskgate agent: camera {camera} ({identity.channel}, soc {identity.soc or 'none'}) on {repo}; "
          f"runs {Path(settings.state) / 'current'}"
          + (f"; status on {link.target.url} {link.topic}" if link else ""), file=sys.stderr, flush=True)
    if link is not None:
        link.on_poll = agent.poll_now
        link.start()
    try:
        return agent.run(once=args.once)
    finally:
        if link is not None:
            link.close()
