"""Events that leave the camera: a durable spool, MQTT and webhook targets, a retained health
message, at-least-once delivery in order (``maskgate turnstile --publish``, ``maskgate check
--publish``). paho-mqtt is imported only when an MQTT target is used."""
from __future__ import annotations

from ..config.publish import MqttOptions, PublishConfig, Target, WebhookOptions, parse_target, publish_config
from .publisher import Publisher, wall_time
from .spool import Spool, SpooledEvent, SpoolStats
from .webhook import verify_signature

__all__ = ["MqttOptions", "PublishConfig", "Publisher", "Spool", "SpoolStats", "SpooledEvent", "Target",
           "WebhookOptions", "parse_target", "publish_config", "verify_signature", "wall_time"]
