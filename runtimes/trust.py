"""Which bundles the runtime layer may run: the site's signing key and the build verdict rule.

By default a bundle runs only when its manifest is bound to its model (always checked,
``maskgate.converters.binding``) and its build recorded that it passed every gate; a bundle that
failed its gates, or was never checked, is passed over with a logged reason unless the
user allows it. A site that signs its bundles names its key, and then nothing unsigned
runs. Settings come from the ``[trust]`` table of the MaskGate config file
(``--config``, ``MASKGATE_CONFIG`` or ./maskgate.toml), then from arguments:

    [trust]
    verify_key = "site.pub"          # relative to the config file; Ed25519 public key or HMAC secret
    allow_failed_builds = false      # true: run bundles below their gates too (not for production)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maskgate.converters.signing import BundleKey


@dataclass(frozen=True)
class TrustPolicy:
    key: BundleKey | None = None  # signatures required when set
    allow_failed_builds: bool = False  # run bundles whose build failed its gates or recorded no verdict


def configured_trust(*, verify_key: str | Path | None = None, allow_failed_builds: bool | None = None) -> TrustPolicy:
    """The ``[trust]`` table of the process's config (``maskgate.config.active_config``), then
    these arguments (None: not given)."""
    from maskgate.config import active_config
    from maskgate.converters.signing import load_key

    settings = active_config().trust
    key_path = Path(verify_key) if verify_key is not None else settings.verify_key
    allow = settings.allow_failed_builds if allow_failed_builds is None else bool(allow_failed_builds)
    return TrustPolicy(load_key(key_path) if key_path is not None else None, allow)
