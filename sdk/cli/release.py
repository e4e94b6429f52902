"""``maskgate release BUILDS --version V --out REPO --key FILE`` and ``maskgate rollout REPO V``:
signed releases in a static repository, and who in the fleet takes them (maskgate.fleet)."""
from __future__ import annotations

from pathlib import Path

from .options import number, whole

#: ``--percent``: the share of a channel's cameras admitted
PERCENT = number(what="a percentage of the cameras", at_least=0, at_most=100)


def add_parser(sub) -> None:
    p = sub.add_parser("release", help="publish verified bundles as a signed release in a repository (TUF metadata, "
                       "files stored once by hash) that cameras' agents fetch from",
                       description="Every bundle under BUILDS must verify and have passed its gates. The repository "
                       "(a folder served as is by nginx or any static HTTP server) gets each file once under its "
                       "sha256, the release's description and new signed metadata (targets, snapshot, timestamp). "
                       "A new release reaches no camera until 'maskgate rollout REPO V --percent P'.")
    p.add_argument("builds", type=Path, help="a builds folder from 'maskgate build --out'")
    p.add_argument("--version", dest="release_version", required=True, metavar="V", help="the release's name, e.g. "
                   "2026.12.1 (cameras take the newest release admitted to them, in the order released)")
    p.add_argument("--out", type=Path, required=True, metavar="REPO", help="the repository folder (made if new)")
    p.add_argument("--key", required=True, metavar="FILE", help="the site's Ed25519 private key ('maskgate keygen'); "
                   "cameras trust its .pub as [trust] verify_key")
    p.add_argument("--channel", choices=("stable", "canary"), default="stable",
                   help="the cameras that follow this channel ([agent] channel) may take it (default stable)")
    p.add_argument("--percent", type=PERCENT, help="admit this share of the channel's cameras at once (default 0)")
    p.add_argument("--group", action="append", default=[], metavar="NAME", help="admit the cameras of this group "
                   "([agent] groups); repeatable")
    p.add_argument("--notify", metavar="BROKER", help="then tell the site's agents to poll now (mqtt://host:port); "
                   "else they find it at their next poll")
    p.add_argument("--site", help="the site whose agents --notify tells (default [turnstile.publish] site)")
    p.add_argument("--swu", type=Path, metavar="FILE", help="also write the release as one SWUpdate image for a "
                   "deployment server (hawkBit, goosebit): upload it there; cameras run 'maskgate agent --hawkbit URL' "
                   "and verify it with the same site key (V must be a version the server parses, e.g. 2026.12.1)")
    p.set_defaults(func=release)
    r = sub.add_parser("rollout", help="widen, narrow or halt a release's rollout; --refresh re-signs the metadata's "
                       "expiry",
                       description="A camera is admitted when its place (a stable hash of the release and its "
                       "camera name, in [0, 100)) is below the percent, or it is in one of the release's groups. "
                       "Raising the percent keeps the cameras already admitted.")
    r.add_argument("repo", type=Path, help="the repository folder")
    r.add_argument("release_version", nargs="?", metavar="V", help="the release (not needed with --refresh)")
    r.add_argument("--key", required=True, metavar="FILE", help="the site's Ed25519 private key")
    r.add_argument("--percent", type=PERCENT, help="the share of the channel's cameras admitted (0-100)")
    r.add_argument("--group", action="append", metavar="NAME", help="also admit this group; repeatable")
    r.add_argument("--halt", action="store_true", help="stop it: no camera takes it from now on")
    r.add_argument("--resume", action="store_true", help="undo --halt")
    r.add_argument("--reason", default="", help="why it is halted (shown in fleet status)")
    r.add_argument("--max-failures", type=whole(at_least=0, what="cameras"),
                   metavar="N", help="cameras that may fail it before the fleet stops "
                   "taking it (default 2)")
    r.add_argument("--refresh", action="store_true", help="re-sign targets, snapshot and timestamp with fresh expiry "
                   "(run it more often than every 7 days, or cameras refuse the frozen metadata)")
    r.add_argument("--notify", metavar="BROKER", help="then tell the site's agents to poll now (mqtt://host:port); "
                   "else they find it at their next poll")
    r.add_argument("--site", help="the site whose agents --notify tells (default [turnstile.publish] site)")
    r.set_defaults(func=rollout)


def _repository(path: Path, key_file: str):
    """The repository at ``path`` signed with ``key_file`` (nothing is written until it changes)."""
    from maskgate.converters.signing import load_key

    from ..fleet.repository import ReleaseRepository

    return ReleaseRepository(path, load_key(key_file, signing=True))


def _check_notify(args) -> None:
    """--notify's broker and --site, before anything is written."""
    from ..errors import InputError
    from ..fleet.status import broker_target

    if args.notify:
        broker_target(args.notify, flag="--notify", site=args.site)
    elif args.site:
        raise InputError("--site names the site whose agents --notify tells: give --notify BROKER too")


def release(args) -> int:
    from maskgate.runtimes.select import readable_bundles

    from ..files import writable_file, writable_folder
    from ..fleet.release import check_version, describe

    repo = _repository(args.out, args.key)
    # Everything else before the repository folder is made: a refused release leaves none behind.
    check_version(args.release_version)
    readable_bundles(args.builds)
    _check_notify(args)
    if args.swu is not None:
        writable_file(args.swu, what="the SWUpdate image", flag="--swu")
    writable_folder(args.out, what="the release repository", flag="--out")
    described, sources = describe(args.builds, version=args.release_version, channel=args.channel, key=repo.key)
    stored = repo.add(described, sources, percent=args.percent, groups=tuple(args.group))
    plan = repo.rollout().get(described.version)
    print(f"release {described.version} ({described.channel}): {len(described.bundles)} bundles of "
          f"{', '.join(described.models)}; stored {stored.new_files} new file(s), {stored.new_bytes} bytes; "
          f"{stored.kept_files} file(s), {stored.kept_bytes} bytes already there")
    print(f"admitted: {plan.percent:g} % of the {plan.channel} cameras"
          + (f", groups {', '.join(plan.groups)}" if plan.groups else "")
          + ("" if plan.percent or plan.groups else f"; widen it with 'maskgate rollout {args.out} "
             f"{described.version} --percent 10 --key {args.key}'"))
    if args.swu is not None:
        from ..fleet.swu import write_swu

        image = write_swu(repo, described.version, args.swu)
        print(f"{image.path}: SWUpdate image of release {image.version}, {image.files} files, {image.size_bytes} "
              "bytes; upload it to the deployment server")
    _notify(args)
    return 0


def rollout(args) -> int:
    from ..errors import InputError

    _check_notify(args)
    if args.halt and args.resume:
        raise InputError("--halt and --resume: choose one")
    if args.reason and not args.halt:
        raise InputError("--reason says why a release is halted: give --halt too")
    repo = _repository(args.repo, args.key)
    if not repo.exists():  # a new repository is made by 'release' only (rollout wrote metadata into any folder)
        raise InputError(f"{args.repo}: no release repository here (no metadata/timestamp.json); make one with "
                         f"'maskgate release BUILDS --version V --out {args.repo} --key {args.key}'")
    if args.refresh:
        repo.refresh()
        print(f"{args.repo}: metadata re-signed with fresh expiry")
        if not args.release_version:
            return 0
    if not args.release_version:
        raise InputError("give the release V (or --refresh alone)")
    halt = True if args.halt else False if args.resume else None
    plan = repo.set_rollout(args.release_version, percent=args.percent, groups=tuple(args.group) if args.group
                            else None, halt=halt, reason=args.reason, max_failures=args.max_failures)
    entry = plan.get(args.release_version)
    state = f"HALTED ({entry.halt_reason or 'no reason given'})" if entry.halted else \
        f"{entry.percent:g} % of the {entry.channel} cameras" + (f", groups {', '.join(entry.groups)}"
                                                               if entry.groups else "")
    print(f"release {entry.version}: {state}")
    _notify(args)
    return 0


def _notify(args) -> None:
    if not args.notify:
        return
    from ..config import active_config
    from ..fleet.status import notify
    from .fleet import mqtt_options

    publish = active_config().turnstile.publish
    site = args.site or (publish.site if publish is not None else "site")
    notify(args.notify, site=site, options=mqtt_options())
    print(f"told the agents of site {site} on {args.notify} to poll now")
