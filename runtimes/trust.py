"""Which bundles the runtime layer may run: the site's signing key and the build verdict rule.

By default a bundle runs only when its manifest is bound to its model (always checked,
``maskgate.converters.binding``) and its build recorded that it passed every gate; a bundle that
failed its gates, or was never checked, is passed over with a logged reason unless the
user allows it. A site that signs its bundles names its key, and then nothing unsigned
runs. Settings come from the ``[trust]`` table of the MaskGate config file
(``MASKGATE_CONFIG`` or ./maskgate.toml), then from arguments:

    [trust]
    verify_key = "site.pub"          # relative to the config file; Ed25519 public key or HMAC secret
    allow_failed_builds = false      # true: run bundles below their gates too (not for production)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from maskgate.errors import InputError


@dataclass(frozen=True)
class TrustPolicy:
    key: object | None = None  # maskgate.converters.signing.BundleKey: signatures required when set
    allow_failed_builds: bool = False  # run bundles whose build failed its gates or recorded no verdict


def configured_trust(*, verify_key: str | Path | None = None, allow_failed_builds: bool | None = None) -> TrustPolicy:
    """The ``[trust]`` table of the config file, then these arguments (None: not given)."""
    from maskgate.config import read_config
    from maskgate.converters.signing import load_key

    path, config = read_config()
    table = config.get("trust", {})
    known = {"verify_key", "allow_failed_builds"}
    if not isinstance(table, dict) or not set(table) <= known:
        raise InputError(f"{path}: [trust] may set {', '.join(sorted(known))}; got {table!r}")
    allow, key = table.get("allow_failed_builds", False), table.get("verify_key", "")
    if not isinstance(allow, bool) or not isinstance(key, str):
        raise InputError(f"{path}: [trust] verify_key is a path (string) and allow_failed_builds true or false")
    key_path = None
    if key:
        key_path = Path(key) if Path(key).is_absolute() else Path(path).parent / key
    if verify_key is not None:
        key_path = Path(verify_key)
    if allow_failed_builds is not None:
        allow = bool(allow_failed_builds)
    return TrustPolicy(load_key(key_path) if key_path is not None else None, allow)
