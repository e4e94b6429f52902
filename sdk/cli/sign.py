"""``maskgate sign PATH --key FILE`` and ``maskgate keygen FILE``: site signatures on bundles
(see maskgate.converters.signing; cameras verify with ``[trust] verify_key`` or ``--verify-key``)."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("sign", help="sign verified bundles with the site's key (Ed25519 private key or HMAC secret)",
                       description="Verifies each bundle (checksums, the manifest's digest stamped in the model) and "
                       "writes signature.json beside its manifest. Cameras configured with the matching key "
                       "([trust] verify_key in maskgate.toml, or --verify-key) run only bundles signed by it.")
    p.add_argument("path", help="a bundle folder, or a builds folder from 'maskgate build --out'")
    p.add_argument("--key", required=True, metavar="FILE", help="Ed25519 private key (PEM) or HMAC secret file "
                   "('maskgate keygen')")
    p.set_defaults(func=sign)
    k = sub.add_parser("keygen", help="make a signing key: Ed25519 FILE (private, 0600) and FILE.pub, or an HMAC "
                       "secret",
                       description="Ed25519 (the default) signs on the build machine with FILE and verifies on the "
                       "cameras with FILE.pub, which cannot sign. An HMAC secret (--hmac) signs and verifies with the "
                       "same file, so every camera holding it could also sign. Existing files are never overwritten.")
    k.add_argument("file", type=Path, help="where to write the key")
    k.add_argument("--hmac", action="store_true", help="an HMAC-SHA256 secret instead of an Ed25519 key pair")
    k.set_defaults(func=keygen)


def sign(args) -> int:
    from maskgate.converters.bundle import sign_bundle
    from maskgate.converters.signing import load_key
    from maskgate.runtimes.select import bundles_at

    from ..errors import BundleError

    key = load_key(args.key, signing=True)
    folders = bundles_at(Path(args.path))
    if not folders:
        raise BundleError(f"{args.path}: no bundle here (a bundle is a folder with manifest.json)")
    for folder in folders:
        sign_bundle(folder, key)
        print(f"signed {folder} ({key.algorithm} key {key.key_id})")
    return 0


def keygen(args) -> int:
    from maskgate.converters.signing import generate_key, load_key

    written = generate_key(args.file, algorithm="hmac-sha256" if args.hmac else "ed25519")
    key = load_key(written[0])
    print(f"{key.algorithm} key {key.key_id}: " + ", ".join(str(p) for p in written)
          + ("" if args.hmac else f" (sign with {written[0]}; cameras verify with {written[1]})"))
    return 0
