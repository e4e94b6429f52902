"""Site signatures on bundles: an Ed25519 key pair or an HMAC secret, set by the site.

The manifest digest stamped into each model (``maskgate.converters.binding``) catches edits made
by mistake; it is not a proof of origin, since whoever edits the manifest could rebuild.
A site that wants that proof signs its accepted bundles (``maskgate sign``, or
``maskgate build --sign-key``) and configures the key the cameras verify with:

    [trust]                                   # maskgate.toml, or the file MASKGATE_CONFIG names
    verify_key = "/etc/maskgate/site.pub"     # Ed25519 public key (PEM), or the HMAC secret file

With a key configured, the selector and ``maskgate check`` refuse a bundle that is not
signed by it. The signature (``signature.json``) covers the manifest's canonical JSON,
which holds the sha256 of every file and the build's gate verdict, so it covers the
whole bundle. Ed25519 needs the ``cryptography`` package; HMAC-SHA256 only the standard
library (every camera holding the secret can then also sign, which Ed25519 avoids).
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskgate.errors import BundleError, DependencyError, InputError, OutputError
from maskgate.files import MAX_JSON_BYTES, parse_bundle_json, read_bundle_file

from .binding import canonical_json

SIGNATURE = "signature.json"
_DOMAIN = b"maskgate-bundle-signature-v1\n"  # signatures of other things never verify as bundle signatures
MIN_HMAC_BYTES = 32


def _message(manifest: Mapping[str, Any]) -> bytes:
    return _DOMAIN + canonical_json(manifest)


def _crypto() -> tuple[Any, Any]:  # (serialization, ed25519) of cryptography
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ModuleNotFoundError as exc:
        raise DependencyError("cryptography", extra="sign", purpose="Ed25519 bundle signatures") from exc
    return serialization, ed25519


@dataclass(frozen=True)
class BundleKey:
    """A key read from a file: signs (Ed25519 private key, HMAC secret) and verifies."""

    algorithm: str  # "ed25519" | "hmac-sha256"
    key_id: str  # names the key in signature.json without revealing it
    path: str
    _private: Any = None  # Ed25519PrivateKey, or the HMAC secret (bytes)
    _public: Any = None  # Ed25519PublicKey

    @property
    def can_sign(self) -> bool:
        return self._private is not None

    def sign(self, message: bytes) -> bytes:
        if self._private is None:
            raise InputError(f"{self.path}: a public key cannot sign; give the Ed25519 private key")
        if self.algorithm == "hmac-sha256":
            return hmac.new(self._private, message, hashlib.sha256).digest()
        signature: bytes = self._private.sign(message)
        return signature

    def verify(self, message: bytes, signature: bytes) -> bool:
        if self.algorithm == "hmac-sha256":
            return hmac.compare_digest(self.sign(message), signature)
        from cryptography.exceptions import InvalidSignature

        try:
            self._public.verify(signature, message)
            return True
        except InvalidSignature:
            return False


def load_key(path: str | Path, *, signing: bool = False) -> BundleKey:
    """An Ed25519 private or public key (PEM), or else an HMAC secret (the file's bytes, >= 32);
    ``signing``: refuse a key that cannot sign (a public key) here, before any work."""
    key = _read_key(Path(path))
    if signing and not key.can_sign:
        raise InputError(f"{path}: a public key cannot sign; give the Ed25519 private key")
    return key


def _read_key(path: Path) -> BundleKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the key ({exc.strerror or exc}); give an Ed25519 PEM key or an HMAC "
                         "secret file (make one with 'maskgate keygen')") from exc
    if data.lstrip().startswith(b"-----BEGIN"):
        serialization, ed25519 = _crypto()
        try:
            if b"PRIVATE KEY" in data:
                private = serialization.load_pem_private_key(data, password=None)
                public = private.public_key()
            else:
                private, public = None, serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path}: not a readable PEM key ({exc})") from exc
        if not isinstance(public, ed25519.Ed25519PublicKey):
            raise InputError(f"{path}: a {type(public).__name__}; bundle signatures use Ed25519 keys "
                             "('maskgate keygen', or openssl genpkey -algorithm ed25519)")
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return BundleKey("ed25519", hashlib.sha256(raw).hexdigest()[:16], str(path), private, public)
    secret = data.strip()
    if len(secret) < MIN_HMAC_BYTES:
        raise InputError(f"{path}: an HMAC secret of {len(secret)} bytes; use at least {MIN_HMAC_BYTES} "
                         "('maskgate keygen --hmac FILE')")
    key_id = hashlib.sha256(b"maskgate-hmac-key-id\n" + secret).hexdigest()[:16]
    return BundleKey("hmac-sha256", key_id, str(path), secret)


def generate_key(path: str | Path, *, algorithm: str = "ed25519") -> list[Path]:
    """Write a new key: Ed25519 ``path`` (private, mode 0600) and ``path.pub``; or an HMAC secret."""
    path = Path(path)
    if path.exists():
        raise InputError(f"{path}: exists; keys are never overwritten, choose another path")
    if algorithm == "hmac-sha256":
        files = {path: base64.b64encode(os.urandom(48)) + b"\n"}
    elif algorithm == "ed25519":
        serialization, ed25519 = _crypto()
        private = ed25519.Ed25519PrivateKey.generate()
        files = {path: private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()),
                 path.with_name(path.name + ".pub"): private.public_key().public_bytes(
                     serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)}
    else:
        raise InputError(f"unknown key algorithm {algorithm!r}; choose ed25519 or hmac-sha256")
    taken = [str(f) for f in files if f.exists() or f.is_symlink()]
    if taken:  # checked for both before either is written: no private key left without its .pub
        raise InputError(f"{', '.join(taken)}: exists; keys are never overwritten, choose another path")
    if not path.parent.is_dir():
        raise OutputError(f"{path.parent}: no such folder for the key {path.name}; make it first, or choose a "
                          "path in a folder that exists")
    written: list[Path] = []
    try:
        for file, content in files.items():
            secret = file == path
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
            written.append(file)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
    except OSError as exc:
        for file in written:  # nothing half-made is left behind
            file.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write the key ({exc.strerror or exc}); choose a folder you can "
                          "write to") from exc
    return list(files)


def signature_record(manifest: Mapping[str, Any], key: BundleKey) -> dict[str, Any]:
    """The content of ``signature.json``: ``key``'s signature of this (verified) manifest."""
    return {"algorithm": key.algorithm, "key_id": key.key_id,
            "manifest_sha256": hashlib.sha256(canonical_json(manifest)).hexdigest(),
            "signed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "signature": base64.b64encode(key.sign(_message(manifest))).decode()}


def check_signature(bundle: Path, manifest: Mapping[str, Any], key: BundleKey) -> None:
    """Raise a BundleError unless ``signature.json`` is ``key``'s signature of this manifest."""
    path = Path(bundle) / SIGNATURE
    how = f"sign it with 'maskgate sign {bundle} --key PRIVATE_KEY'"
    if not path.exists() and not path.is_symlink():
        raise BundleError(f"{bundle}: not signed, and this site requires bundles signed with key {key.key_id} "
                          f"({key.path}); {how}")
    try:
        record = parse_bundle_json(read_bundle_file(path, bundle=Path(bundle), limit=MAX_JSON_BYTES), path=path)
    except BundleError as exc:
        raise BundleError(f"{exc}; {how}") from None
    if not isinstance(record, dict) or record.get("algorithm") != key.algorithm or record.get("key_id") != key.key_id:
        got = f"{record.get('algorithm')} key {record.get('key_id')}" if isinstance(record, dict) else "nothing usable"
        raise BundleError(f"{path}: signed with {got}, not with the configured {key.algorithm} key {key.key_id} "
                          f"({key.path}); {how}")
    try:
        signature = base64.b64decode(record.get("signature", ""), validate=True)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{path}: the signature is not base64 ({exc}); {how}") from exc
    if not key.verify(_message(manifest), signature):
        raise BundleError(f"{path}: the signature does not match the manifest: the bundle was changed after it was "
                          f"signed; rebuild it or, if the change is yours, {how}")
