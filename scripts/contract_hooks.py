"""schemathesis hooks for scripts/contract (SCHEMATHESIS_HOOKS=contract_hooks).

Valid generated requests should reach the success paths; invalid ones are
left exactly as generated, so what they test is unchanged. Two things stand
in the way that schemathesis.toml cannot mend (schemathesis 4.32.5):

- Body fields that must name real things: a site, a genuine check-in or join
  code, a push service and a browser's keys. A `body.*` parameter in
  schemathesis.toml is applied only in the fuzzing and stateful phases, is
  added beside a one-of body's other shape (`{code}` or `{union_id}` becomes
  both), and, fixing every field of a body, leaves nothing for invalid bodies
  to break (a failed health check). So CONTRACT_BODIES (JSON, written by
  scripts/contract-fixtures) names them per operation, and this hook sets
  them in every valid body of every phase; a one-of body keeps only them.
- Rules across fields that JSON Schema cannot state: `lat` and `lon` go
  together, `radius_m` needs them and finding unions needs them or an
  `adcode` (400 naming the missing one), and `draw_at`, `priority_groups`
  and `public_value` belong to a draw (`allocation: draw`, 422 otherwise).
  A valid request breaking one is mended: a lone `lat` or `lon` is dropped
  (and a `radius_m` without them; a union search gets Shandong's adcode),
  a first-come event loses a draw's fields and a draw gets a `draw_at`
  between its window's close and its start.
- WeChat's codes work once. A valid `POST /v1/auth/wechat` gets a fresh
  login code and phone code, issued by the WeChat stand-in's control API
  (CONTRACT_WECHAT) for the run's own WeChat user (CONTRACT_WECHAT_USER).
- Idempotency-Keys. Generated keys repeat ("0", "A"), and a key already
  used for another request is 422 (as it must be). A valid request's key is
  made its operation's own (a prefix), so that only requests of one
  operation share keys: a retry of the same request is then replayed.
- People a success uses up. Joining a union and transferring a membership
  succeed once per person. CONTRACT_ACTORS names, per operation, people
  (their tokens, and for a transfer their active membership): each valid
  request outside the stateful phase is made by the next of them.
- Resources a success uses up. Booking an event or applying to a draw
  succeeds once per person; afterwards it is 409. CONTRACT_POOLS names, per
  operation, a pool of such resources for a path parameter: each valid
  request outside the stateful phase takes the next one, so every phase books
  and applies for real. (The stateful phase follows its links to the events
  it created.)
"""

import itertools
import json
import os
import re
import urllib.request
import zlib

import schemathesis

BODIES = json.loads(os.environ.get("CONTRACT_BODIES", "{}"))
ACTORS = {
    operation: itertools.cycle(people)
    for operation, people in json.loads(os.environ.get("CONTRACT_ACTORS", "{}")).items()
}
POOLS = {
    operation: {name: itertools.cycle(values) for name, values in params.items()}
    for operation, params in json.loads(os.environ.get("CONTRACT_POOLS", "{}")).items()
}


@schemathesis.auth()
class Bearer:
    """The role's token (CONTRACT_TOKEN), sent as a bearer token, as
    `--header` would, but as part of the request, so that the hook below may
    give a request of CONTRACT_ACTORS another person's token."""

    def get(self, case, ctx):
        return os.environ["CONTRACT_TOKEN"]

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    meta = case.meta
    # Valid as a whole and in every part: a case can be generated valid with
    # one part made invalid, and schemathesis judges it by its parts once a
    # hook has edited it.
    if (
        meta is None
        or not meta.generation.mode.is_positive
        or not all(part.mode.is_positive for part in meta.components.values())
    ):
        return
    operation = case.operation
    label = f"{operation.method.upper()} {operation.path}"
    headers = case.headers if isinstance(case.headers, dict) else {}
    keys = [str(v) for k, v in headers.items() if k.lower() == "idempotency-key"]
    if not all(re.fullmatch("[!-~]{1,100}", key) for key in keys):
        # Generated as valid, but not of the header's form as schemathesis
        # judges it again once the token is set: left as it is.
        return
    for name, value in headers.items():
        # Keys of up to 91 characters: with the prefix, at most 100.
        if name.lower() == "idempotency-key" and re.fullmatch("[!-~]{1,91}", str(value)):
            headers[name] = f"{zlib.crc32(label.encode()):08x}-{value}"
    if meta.phase.name != "stateful":
        for name, values in POOLS.get(label, {}).items():
            case.path_parameters[name] = next(values)
        if label in ACTORS:
            actor = next(ACTORS[label])
            case.headers = {**headers, "Authorization": f"Bearer {actor['token']}"}
            if "id" in actor:
                case.path_parameters["id"] = actor["id"]
    if label == "GET /v1/unions" and not isinstance(case.query, dict):
        case.query = {}
    query = case.query if isinstance(case.query, dict) else {}
    if ("lat" in query) != ("lon" in query):
        query.pop("lat", None)
        query.pop("lon", None)
    if "lat" not in query:
        query.pop("radius_m", None)
        if label == "GET /v1/unions" and "adcode" not in query:
            # Unions are found near a point or under an adcode (400 naming
            # lat otherwise): Shandong's.
            query["adcode"] = "37"
    if label == "POST /v1/auth/wechat" and isinstance(case.body, dict):
        case.body = wechat_codes()
    fixed = BODIES.get(label)
    if fixed and isinstance(case.body, dict):
        if "oneOf" in operation.body[0].definition.get("schema", {}):
            case.body = {}
        case.body.update(fixed)
        if label == "POST /v1/events":
            draw_fields(case.body)


def draw_fields(body):
    """A draw has a draw_at after its window closes; nothing else has one."""
    if body.get("allocation") == "draw":
        body["draw_at"] = body["booking_closes_at"]
    else:
        for field in ("draw_at", "priority_groups", "public_value"):
            body.pop(field, None)


CODES = itertools.count()


def wechat_codes():
    """A login code and a phone code, issued now, each good once."""
    user = json.loads(os.environ["CONTRACT_WECHAT_USER"])
    n = next(CODES)
    body = {"login_code": f"generated-login-{n}", "phone_code": f"generated-phone-{n}"}
    for kind, code, value in (
        ("login_codes", body["login_code"], {"openid": user["openid"]}),
        ("phone_codes", body["phone_code"], {"phone": user["phone"]}),
    ):
        request = urllib.request.Request(
            f"{os.environ['CONTRACT_WECHAT']}/control/{kind}/{code}",
            data=json.dumps(value).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request).read()
    return body
