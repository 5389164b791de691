#!/usr/bin/env python3
"""A tiny identity provider for trying JWT authentication locally and for the smoke test.

    dev-issuer.py serve --key-file F --port P    # serves /.well-known/jwks.json (EdDSA key)
    dev-issuer.py token --key-file F --issuer URL --audience A --sub S --tenant T --scope "…"

The key file is created (mode 0600) on first use. It is a development tool: a real deployment
points CONNECTOR__AUTH__JWKS_URL at its identity provider (Auth0, Clerk, Keycloak, …).
"""

import argparse
import base64
import http.server
import json
import os
import sys
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KID = "dev-1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_key(path: str) -> Ed25519PrivateKey:
    if not os.path.exists(path):
        key = Ed25519PrivateKey.generate()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.Raw,
                                      serialization.PrivateFormat.Raw,
                                      serialization.NoEncryption()))
    with open(path, "rb") as f:
        return Ed25519PrivateKey.from_private_bytes(f.read())


def jwks(key: Ed25519PrivateKey) -> dict:
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    return {"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                      "kid": KID, "x": b64url(public)}]}


def token(key: Ed25519PrivateKey, args) -> str:
    now = int(time.time())
    header = {"alg": "EdDSA", "typ": "JWT", "kid": KID}
    claims = {"iss": args.issuer, "aud": args.audience, "sub": args.sub,
              "tenant_id": args.tenant, "scope": args.scope,
              "iat": now, "nbf": now, "exp": now + args.ttl}
    signing_input = ".".join(b64url(json.dumps(p, separators=(",", ":")).encode())
                             for p in (header, claims))
    return signing_input + "." + b64url(key.sign(signing_input.encode()))


def serve(key: Ed25519PrivateKey, port: int) -> None:
    body = json.dumps(jwks(key)).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--key-file", required=True)
    s.add_argument("--port", type=int, default=8766)
    t = sub.add_parser("token")
    t.add_argument("--key-file", required=True)
    t.add_argument("--issuer", required=True)
    t.add_argument("--audience", required=True)
    t.add_argument("--sub", required=True)
    t.add_argument("--tenant", required=True)
    t.add_argument("--scope", default="connectors:read connectors:write messages:send")
    t.add_argument("--ttl", type=int, default=3600)
    args = parser.parse_args()
    key = load_key(args.key_file)
    if args.command == "serve":
        serve(key, args.port)
    else:
        print(token(key, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
