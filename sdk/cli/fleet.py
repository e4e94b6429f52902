"""``maskgate fleet status --broker URL``: one line per camera from the agents' retained statuses."""
from __future__ import annotations

import json

from .options import number


def add_parser(sub) -> None:
    p = sub.add_parser("fleet", help="what the fleet runs: each camera's release, models, checks and rollbacks, "
                       "from its agent's retained status on the site's broker")
    actions = p.add_subparsers(dest="fleet_action", required=True, metavar="ACTION")
    s = actions.add_parser("status", help="one line per camera and a summary")
    s.add_argument("--broker", required=True, metavar="URL", help="the site's broker: mqtt://host:port or mqtts://")
    s.add_argument("--site", default="+", help="only this site (default: every site on the broker)")
    s.add_argument("--wait", type=number(what="seconds", above=0),
                   default=3.0, metavar="S", help="read retained statuses for at most S "
                   "seconds (default 3)")
    s.add_argument("--json", action="store_true", help="print the statuses as JSON instead")
    s.set_defaults(func=status)


def mqtt_options():
    """[turnstile.publish.mqtt] of the config file (username, TLS, topic prefix), if it has one."""
    from ..config import active_config
    from ..config.publish import MqttOptions

    publish = active_config().turnstile.publish
    return publish.mqtt if publish is not None else MqttOptions()


def status(args) -> int:
    from ..fleet.status import broker_target, read_fleet, summary

    broker_target(args.broker, site=args.site)  # a wrong URL or site name fails before connecting
    cameras = read_fleet(args.broker, site=args.site, options=mqtt_options(), wait_s=args.wait)
    if args.json:
        print(json.dumps([{"site": c.site, "camera": c.camera, "state": c.state, **c.status} for c in cameras],
                         indent=1))
        return 0
    for camera in cameras:
        print(camera.line())
    print(summary(cameras))
    return 0
