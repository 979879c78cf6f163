#!/usr/bin/env python3
"""Print a JWT for the demo stack's consumer `bob`, signed with the DEMO Ed25519 key.

    .venv/bin/python examples/identity-and-budgets/mint_jwt.py            # bob, valid 1 hour
    .venv/bin/python examples/identity-and-budgets/mint_jwt.py --ttl 60   # valid 60 s
    .venv/bin/python examples/identity-and-budgets/mint_jwt.py --sub mallory   # 401: not a consumer

The gateway (envoy/demo.yaml, `auth.jwt`) verifies it with the matching public key, pinned to
EdDSA with kid `demo-ed25519`, and checks `exp`, `nbf`, `iss` and `aud` with 30 s of leeway.

DEMO KEY: demo_ed25519_private.pem next to this script is published in this repository. Anyone
can mint tokens with it, so never configure its public key anywhere but the local demo. In a
real deployment your identity provider holds the private key and the gateway gets only the
public key (or a JWKS document).

Needs the `cryptography` package (pinned in integration/requirements.txt, installed in .venv by
scripts/bootstrap.sh).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

HERE = Path(__file__).resolve().parent
DEMO_KEY = HERE / "demo_ed25519_private.pem"
# Must match envoy/demo.yaml: auth.jwt.keys[0].kid, auth.jwt.issuers and auth.jwt.audiences.
KID = "demo-ed25519"
ISSUER = "https://idp.demo.llm-gateway.invalid"
AUDIENCE = "llm-gateway-demo"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint(sub: str = "bob", ttl: int = 3600, key_path: Path = DEMO_KEY, now: int | None = None) -> str:
    """A compact JWS (header.payload.signature) with alg EdDSA."""
    key = load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit(f"{key_path}: not an Ed25519 private key")
    now = int(time.time()) if now is None else now
    header = {"alg": "EdDSA", "typ": "JWT", "kid": KID}
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "nbf": now, "exp": now + ttl}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    # Ed25519 signatures are the raw 64 bytes JWS wants (RFC 8037), no DER unwrapping needed.
    return f"{signing_input}.{b64url(key.sign(signing_input.encode('ascii')))}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sub", default="bob", help="the consumer the token names (claim sub; default bob)")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until exp (default 3600; negative: expired)")
    parser.add_argument("--key", type=Path, default=DEMO_KEY, help="Ed25519 private key in PEM (default: the demo key)")
    args = parser.parse_args()
    print(mint(args.sub, args.ttl, args.key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
