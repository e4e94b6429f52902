"""``maskgate spool PATH``: what a camera's event spool holds (events waiting for each target,
dead letters), and ``--replay ID|all`` to send dead letters again."""
from __future__ import annotations

import datetime
import json


def add_parser(sub) -> None:
    p = sub.add_parser("spool", help="list a turnstile's spooled and dead-letter events; replay dead letters",
                       description="Reads the event spool of a turnstile (its --spool folder) beside the running "
                       "app: the events each target has not acknowledged yet, and the dead letters (events a target "
                       "refused several times, kept so the events after them could go on). --replay queues dead "
                       "letters to be sent again by the running turnstile (or its next start).")
    p.add_argument("path", help="the spool folder (--spool / [turnstile.publish] spool), or its spool.sqlite3")
    p.add_argument("--replay", metavar="ID|all", help="queue this dead letter (its event id), or all of them, again")
    p.add_argument("--json", action="store_true", help="print the listing as one JSON object")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..publish.spool import Spool

    spool = Spool.inspect(args.path)
    try:
        if args.replay:
            known = {d.id for d in spool.dead() if d.state == "dead"}
            if args.replay != "all" and args.replay not in known:
                from ..errors import InputError

                raise InputError(f"{spool.path}: no dead letter with id {args.replay!r}; "
                                 f"'maskgate spool {args.path}' lists them")
            count = spool.replay(args.replay)
            print(f"queued {count} dead letter(s) to be sent again by the running turnstile (or its next start)")
            return 0
        stats, dead = spool.stats(), spool.dead()
        waiting = {target: [e.seq for e in spool.pending(target, limit=1_000_000)] for target in sorted(stats.pending)}
        if args.json:
            print(json.dumps({"spool": str(spool.path), **stats.to_dict(),
                              "dead_letters": [d.to_dict() for d in dead]}))
            return 0
        age = f", oldest {stats.oldest_age_s:.0f} s" if stats.oldest_age_s is not None else ""
        print(f"spool {spool.path}: {stats.depth} event(s) waiting{age}")
        for target, seqs in waiting.items():
            span = f" (seq {seqs[0]}-{seqs[-1]})" if seqs else ""
            print(f"  {target}: {len(seqs)} pending{span}")
        print(f"dead letters: {len(dead)}")
        for d in dead:
            when = datetime.datetime.fromtimestamp(d.dead_at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            queued = ", queued to be sent again" if d.state == "replay" else ""
            print(f"  seq {d.seq}  id {d.id}  {d.target}  refused {d.tries} time(s): {d.reason}  "
                  f"(since {when}{queued})")
        return 0
    finally:
        spool.close()
