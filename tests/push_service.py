#!/usr/bin/env python3
"""A Web Push service stand-in on loopback, for yizhan's tests.

It checks a push as a real push service does, with code independent of the
Rust under test (PyPI `cryptography` and `http_ece`):
  * the VAPID header `Authorization: vapid t=<JWT>, k=<key>` (RFC 8292): an
    ES256 JWT whose signature verifies against `k`, with `aud` = this
    service's origin, `exp` in the future and within 24 hours, and a `sub`;
  * the body, `Content-Encoding: aes128gcm` (RFC 8291), decrypted with the
    subscriber's private key and auth secret, which this service made.
It answers as the test cued it: 201, 429 with Retry-After, 500, 410, or
holds the request unanswered.

Start: `python3 tests/push_service.py`; the first line on stdout is
{"port": N}. It stops when its standard input closes (the test ending).

Control API (JSON):
  POST /subscribers {"name"}    -> {"endpoint", "keys": {"p256dh", "auth"}}
  PUT  /cues/<name> {"responses": [{"status": 429, "retry_after": "120"}, ...],
                     "then": 201 | "hold"}   (answers in order, then `then`)
  GET  /log                     -> every push seen, in order of arrival
  GET  /held                    -> {"held": n}  requests waiting unanswered
Push endpoint: POST /push/<name>
"""

import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
import os

LOCK = threading.Lock()
SUBSCRIBERS = {}  # name -> (private key, auth secret)
CUES = {}  # name -> {"responses": [...], "then": ...}
LOG = []
HELD = [0]
NEVER = threading.Event()  # held requests wait on this (never set)


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def check_vapid(header, origin):
    """Verify the VAPID header; return (claims, key) or raise ValueError."""
    if not header or not header.startswith("vapid "):
        raise ValueError("no vapid Authorization header")
    params = {}
    for part in header[len("vapid "):].split(","):
        k, _, v = part.strip().partition("=")
        params[k] = v
    token, key = params.get("t"), params.get("k")
    if not token or not key:
        raise ValueError("vapid header lacks t= or k=")
    head_b64, claims_b64, sig_b64 = token.split(".")
    head = json.loads(b64d(head_b64))
    if head.get("alg") != "ES256":
        raise ValueError(f"alg is {head.get('alg')}, not ES256")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(key))
    sig = b64d(sig_b64)
    if len(sig) != 64:
        raise ValueError(f"signature is {len(sig)} bytes, not 64 (r||s)")
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("the JWT's signature does not verify against k")
    claims = json.loads(b64d(claims_b64))
    now = time.time()
    if claims.get("aud") != origin:
        raise ValueError(f"aud is {claims.get('aud')!r}, not {origin!r}")
    if not (now < claims.get("exp", 0) <= now + 24 * 3600):
        raise ValueError(f"exp {claims.get('exp')} is not within the next 24 hours")
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        raise ValueError(f"sub {claims.get('sub')!r} is not a mailto: or https: URL")
    return claims, key


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, doc=None, headers=()):
        data = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with LOCK:
            if self.path == "/log":
                doc = list(LOG)
            elif self.path == "/held":
                doc = {"held": HELD[0]}
            else:
                doc = None
        self.reply(404 if doc is None else 200, doc)

    def do_PUT(self):
        doc = json.loads(self.body() or b"{}")
        if self.path.startswith("/cues/"):
            with LOCK:
                CUES[self.path[len("/cues/"):]] = {
                    "responses": list(doc.get("responses", [])),
                    "then": doc.get("then", 201),
                }
            return self.reply(204)
        self.reply(404)

    def do_POST(self):
        body = self.body()
        if self.path == "/subscribers":
            name = json.loads(body)["name"]
            key = ec.generate_private_key(ec.SECP256R1())
            auth = os.urandom(16)
            with LOCK:
                SUBSCRIBERS[name] = (key, auth)
            public = key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            host, port = self.server.server_address[:2]
            return self.reply(
                200,
                {
                    "endpoint": f"http://{host}:{port}/push/{name}",
                    "keys": {"p256dh": b64e(public), "auth": b64e(auth)},
                },
            )
        if self.path.startswith("/push/"):
            return self.push(self.path[len("/push/"):], body)
        self.reply(404)

    def push(self, name, body):
        host, port = self.server.server_address[:2]
        entry = {
            "name": name,
            "at": time.time(),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "payload": None,
            "k": None,
            "claims": None,
            "error": None,
        }
        try:
            sub = SUBSCRIBERS.get(name)
            if sub is None:
                raise ValueError(f"no subscriber {name}")
            if self.headers.get("Content-Encoding") != "aes128gcm":
                raise ValueError("Content-Encoding is not aes128gcm")
            if not self.headers.get("TTL", "").isdigit():
                raise ValueError("no TTL header")
            entry["claims"], entry["k"] = check_vapid(
                self.headers.get("Authorization"), f"http://{host}:{port}"
            )
            plain = http_ece.decrypt(body, private_key=sub[0], auth_secret=sub[1], version="aes128gcm")
            entry["payload"] = json.loads(plain)
        except Exception as e:  # noqa: BLE001 - every fault is the test's to see
            entry["error"] = f"{type(e).__name__}: {e}"
        with LOCK:
            cue = CUES.get(name, {"responses": [], "then": 201})
            answer = cue["responses"].pop(0) if cue["responses"] else {"status": cue["then"]}
            if entry["error"]:
                answer = {"status": 400}
            entry["status"] = answer["status"]
            LOG.append(entry)
            if answer["status"] == "hold":
                HELD[0] += 1
        if answer["status"] == "hold":
            # Never answered: the client gives up or is killed.
            NEVER.wait()
            return
        headers = [("Retry-After", str(answer["retry_after"]))] if "retry_after" in answer else []
        if answer["status"] == 201:
            headers.append(("Location", f"/messages/{len(LOG)}"))
        self.reply(answer["status"], None, headers)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    # Stop when the test closes our standard input (or dies).
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
