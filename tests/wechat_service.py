#!/usr/bin/env python3
"""A WeChat mini-program server-API stand-in on loopback, for yizhan's tests:
one mini program (one appid/secret), speaking api.weixin.qq.com's protocol
at the same paths, with WeChat's errcode/errmsg bodies (always HTTP 200):

  GET  /sns/jscode2session?appid&secret&js_code&grant_type=authorization_code
         -> {"session_key", "openid"[, "unionid"]}       (code2Session, login)
  POST /cgi-bin/stable_token  {"grant_type": "client_credential", "appid",
         "secret", "force_refresh"?: bool} -> {"access_token", "expires_in"}
  GET  /cgi-bin/token?grant_type=client_credential&appid&secret
         -> {"access_token", "expires_in"}                (the classic token)
  POST /wxa/business/getuserphonenumber?access_token=T  {"code"}
         -> {"errcode": 0, "errmsg": "ok", "phone_info": {"phoneNumber",
            "purePhoneNumber", "countryCode", "watermark": {"timestamp", "appid"}}}
  POST /cgi-bin/message/subscribe/send?access_token=T  {"touser",
         "template_id", "page"?, "data": {"<key>": {"value": ...}},
         "miniprogram_state"?, "lang"?} -> {"errcode": 0, "errmsg": "ok", "msgid": N}

Proven by a second implementation, the wechatpy client library
(tests/wechat_sdk_check.py). Standard library only.

Start: `python3 tests/wechat_service.py [options]`; the first line on stdout
is {"port": N}. It stops when its standard input closes (the test ending), and
a watchdog ends it after --max-seconds in any case.
Options (or environment variables; defaults in brackets):
  --appid                      WECHAT_APPID                 [wxstandin0000001]
  --secret                     WECHAT_SECRET                [stand-in-wechat-secret]
  --daily-token-limit          WECHAT_DAILY_TOKEN_LIMIT     [10000]  stable_token
                               calls a "day" before 45009 (WeChat: 500000)
  --daily-classic-token-limit  WECHAT_DAILY_CLASSIC_TOKEN_LIMIT [2000] /cgi-bin/token
  --force-refresh-daily-limit  WECHAT_FORCE_REFRESH_DAILY_LIMIT [20]
  --force-refresh-interval     WECHAT_FORCE_REFRESH_INTERVAL    [30] seconds
  --token-ttl                  WECHAT_TOKEN_TTL             [7200] seconds
  --code-ttl                   WECHAT_CODE_TTL              [300] login/phone codes
  --old-token-grace            WECHAT_OLD_TOKEN_GRACE       [300] seconds a classic
                               token stays valid after /cgi-bin/token issues a new one
  --max-seconds                WECHAT_STANDIN_MAX_SECONDS   [3600] the watchdog

Control API (JSON, all under /control; 204 on success, 400 with {"error"}):
  PUT  /control/login_codes/<code> {"openid": "...", "unionid": "..."?}
        a wx.login code, issued now: it works once, for code_ttl seconds. The
        openid becomes known (for subscribe/send).
  PUT  /control/phone_codes/<code> {"phone": "13800138000", "country_code": "86"?,
        "phone_number": "..."?}  a getPhoneNumber code, issued now (once,
        code_ttl). phoneNumber is the phone for +86, else "+<cc><phone>",
        unless "phone_number" says otherwise.
  PUT  /control/templates/<template_id> {"fields": ["thing1", "time2", ...],
        "pages": ["pages/index/index", ...]?, "enums": {"const3": ["..."]}?}
        a subscribe-message template; each field's type is its key's prefix
        (thing, number, letter, symbol, character_string, time, date, amount,
        phone_number, car_number, name, phrase, const). With "pages", a send
        whose page (before "?", without a leading "/") is not listed is 41030.
  PUT  /control/consents/<openid>/<template_id> {"count": n}
        the one-time consents left (a successful send spends one); also makes
        the openid known.
  PUT  /control/cues/<name> {"answers": [errcode | {"errcode": n, "errmsg": "..."}, ...]}
        <name>: jscode2session | stable_token | token | getuserphonenumber |
        subscribe_send. The next requests to that endpoint that pass every
        check get these answers, in order, then normal answers again. A cued
        answer changes nothing: a login or phone code is not used up, a
        consent is not spent, no token is issued. 0 means a normal answer.
  POST /control/expire_token {"kind": "stable" | "classic" | "all"?}
        every token of that kind (default all) expires now: its next use is
        42001. Counts no fetch.
  PUT  /control/clock {"offset": seconds}  the stand-in's clock runs this far
        ahead of the real one (code and token lifetimes, expires_in)
  PUT  /control/config {"daily_token_limit": n, ...}  change any option above
        but --max-seconds (names with underscores: appid, secret,
        daily_token_limit, daily_classic_token_limit, force_refresh_daily_limit,
        force_refresh_interval, token_ttl, code_ttl, old_token_grace)
  POST /control/new_day  reset the daily quotas (as a new day, or WeChat's
        clear_quota, would)
  GET  /control/log -> {
        "requests": [{"path", "method", "query", "body", "errcode", "errmsg",
                      "cued", "at"}...]   every API request in order of arrival
                      (errcode 0 on success; "secret" values shown as "***"),
        "token_fetches": {"stable_token": n, "token": n, "force_refresh": n}
                      calls to each token endpoint, failed ones included
                      (force_refresh: stable_token calls with force_refresh true),
        "tokens_issued": {"stable_token": n, "token": n},
        "sent": [{"touser", "template_id", "page", "data", "miniprogram_state",
                  "lang", "msgid"}...]   successful subscribe sends,
        "consents": {"<openid>": {"<template_id>": n}},
        "phone_lookups": [{"code", "phone"}...]   successful phone lookups}
        The secret and session keys are never logged.

------------------------------------------------------------------------------
FACTS FOR THE RUST CLIENT (with where each comes from)
------------------------------------------------------------------------------
code2Session (developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/user-login/
code2Session.html and .../server/API/user-login/api_code2session.html):
  * GET https://api.weixin.qq.com/sns/jscode2session?appid=APPID&secret=SECRET
    &js_code=JSCODE&grant_type=authorization_code; all four required; query
    only (a POST with the parameters in the body is 41002 "appid missing").
  * Success: {"session_key", "openid"[, "unionid" when the mini program is
    bound to an Open Platform account]} -- WITHOUT errcode (a community thread,
    "code2Session这个接口在请求成功后，返回值没有errcode项"); parse errcode as
    optional.
  * Documented errors: 40029 "invalid code", 45011 "api minute-quota reach
    limit mustslower retry next minute", 40226 "code blocked" (high-risk
    user), -1 "system error". Seen in practice (developers.weixin.qq.com
    community threads quoting responses): 40163 "code been used, rid: ...",
    40029 "invalid code, rid: ...", 40013 "invalid appid, rid: ...",
    40125 "invalid appsecret, rid: ...", 41002 "appid missing", 41004
    "appsecret missing", 41008 "missing code". A code is good for 5 minutes
    and once (wx.login doc: "用户登录凭证（有效期五分钟）"; "code只能使用一次").
    Here: unknown or expired -> 40029, used -> 40163.
  * The answer's Content-Type is text/plain (a community thread shows the
    response headers: "Content-Type":["text/plain"]): parse the body as JSON
    whatever the Content-Type.
getStableAccessToken (.../miniprogram/dev/OpenApiDoc/mp-access-token/
getStableAccessToken.html; doc/service/api/base/api_getstableaccesstoken):
  * POST https://api.weixin.qq.com/cgi-bin/stable_token, JSON body
    {"grant_type": "client_credential", "appid", "secret", "force_refresh"?}
    ("该接口仅支持 POST JSON 形式的调用"). Answer {"access_token", "expires_in"}.
  * Normal mode: the same token while it is valid, expires_in counting down;
    "普通模式下平台会提前5分钟更新access_token": in its last 5 minutes a call
    gets a NEW token, and old and new both work until the old one expires, so
    expires_in >= 300 always.
  * force_refresh: true: the previous token is invalidated at once and a new
    one returned. "强制刷新模式每天限用20次且需间隔30秒" / "连续使用该模式时，
    请保证调用时间隔至少为30s，否则不会刷新": within 30 s of the last forced
    refresh it returns the current token unrefreshed (here too). Past 20 a day:
    45009 here (the code is NOT documented).
  * Limits: 10000 a minute, 500000 a day; over: 45009 "reach max api daily
    quota limit rid: ..." (community threads quote this exact errmsg for
    stable_token). Wrong secret 40125 "invalid appsecret", wrong appid 40013
    "invalid appid", bad grant_type 40002 "invalid grant_type", appid missing
    41002 "appid missing" (threads quoting stable_token responses).
  * Isolated from /cgi-bin/token: fetching one kind never invalidates the
    other ("与 getAccessToken 获取的调用凭证完全隔离，互不影响").
getAccessToken (.../mp-access-token/getAccessToken.html, minigame
auth.getAccessToken): GET /cgi-bin/token?grant_type=client_credential&appid&secret;
  each call issues a new token and "重复获取将导致上次获取的access_token失效",
  but "公众平台后台会保证在5分钟内，新老access_token都可用": here the previous
  token keeps working for old_token_grace (300 s) after a new one is issued,
  then answers 40001. 2000 calls a day, then 45009 "reach max api daily quota
  limit, could get access_token by getStableAccessToken, more details at
  https://mmbizurl.cn/s/JtxxFh33r" (threads quoting it). Wrong secret: 40125
  in practice (the old doc table says 40001).
Using a token (any API with ?access_token=): missing -> 41001 "access_token
  missing"; not issued, superseded or invalidated -> 40001 "invalid credential,
  access_token is invalid or not latest, could get access_token by
  getStableAccessToken, more details at https://mmbizurl.cn/s/JtxxFh33r";
  expired -> 42001 "access_token expired" (errmsgs from community threads).
  WeChat's cgi-bin answers are "application/json; encoding=utf-8" (WxJava's
  comment on it); errmsg ends " rid: xxxxxxxx-xxxxxxxx-xxxxxxxx".
getPhoneNumber (.../miniprogram/dev/server/API/user-info/phone-number/
api_getphonenumber): POST /wxa/business/getuserphonenumber?access_token=T with
  {"code"} (and an optional "openid"); a code works once, for 5 minutes.
  Success {"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber",
  "purePhoneNumber","countryCode","watermark":{"timestamp","appid"}}}.
  countryCode is a STRING ("86") in real answers quoted in public code
  (the doc's example shows the number 86; its table says string): accept
  both. Errors: 40029 "invalid code" (also for a reused code -- no 40163 was
  found for this API), 45011, 40013, -1.
subscribeMessage.send (.../server/API/mp-message-management/subscribe-message/
api_sendmessage; minigame subscribeMessage.send): POST /cgi-bin/message/
  subscribe/send?access_token=T, {"touser", "template_id", "page"?, "data":
  {"thing1": {"value": "..."}, ...}, "miniprogram_state"?: developer|trial|
  formal (default formal), "lang"?: zh_CN|en_US|zh_HK|zh_TW (default zh_CN)}.
  "data" must be an OBJECT (threads where it was sent as a JSON string got
  "argument invalid! data.thing1.value is empty").
  Success {"errcode":0,"errmsg":"ok","msgid":1988810812324364291}: msgid is a
  64-bit integer beyond 2^53 (threads quoting answers) -- parse it as
  i64/u64, never f64. This stand-in's msgids are also > 2^53.
  Errors: 40003 "invalid openid", 40037 "invalid template_id", 43101 "user
  refuse to accept the msg" (no consent left: "一次性订阅消息订阅1次可下发1次，
  43101一般是订阅次数用完了或者是用户取消订阅了" -- community staff answer),
  47003 "argument invalid! data.thing1.value invalid" or "... is empty"
  (the field named, errmsgs quoted in threads), 41030 "invalid page".
  Field rules ("订阅消息参数值内容限制说明", same doc), lengths in characters:
    thing ≤20 (汉字、数字、字母或符号); number ≤32 digits, may have a decimal
    part (a negative number is refused, a thread says); letter ≤32 letters;
    symbol ≤5 symbols; character_string ≤32 digits/letters/symbols; time
    "15:01" or "2019年10月1日 15:01", a range "A~B"; date "2019年10月1日" or
    with a time, a range "A~B"; amount one currency symbol + ≤10 digits, may
    have decimals, may end in 元; phone_number ≤17 digits and symbols
    ("+86-0766-66888866"); car_number ≤8, first and last may be Chinese, the
    rest letters or digits ("粤A8Z888挂"); name ≤10 Chinese or ≤20 letters
    (mixed counts as Chinese); phrase ≤5 Chinese characters; const (enum) only
    the template's enumerated values.
NOT VERIFIED (this stand-in's choices, kept lenient or plainly marked):
  * The order of the send checks (here: token, 40003, 40037, state/lang, page
    41030, data 47003 in template field order, consent 43101).
  * A bad miniprogram_state or lang: no errcode found; here 47003 "argument
    invalid! miniprogram_state invalid" (or "lang invalid").
  * Formats beyond the examples: here time/date accept YYYY年M月D日,
    YYYY-MM-DD and YYYY/MM/DD, a time HH:MM or HH:MM:SS (a "time" value needs
    the time part; "date" may omit it), ranges with "~". amount accepts a
    plain number without the currency symbol (threads suggest "16000" and
    "0.01" passed). A JSON number as a value is read as its decimal text;
    control characters (newlines) are refused in every type. Characters are
    code points (an emoji counts 1; WeChat may count UTF-16 units).
  * phoneNumber for a non-86 number ("+<cc><phone>" here), an invalid phone
    code given with an openid, a non-boolean force_refresh (47001 here).
  * grant_type missing on jscode2session (40002 here, it is documented as
    required).
"""

import argparse
import base64
import datetime
import json
import os
import random
import re
import secrets
import sys
import threading
import time
import unicodedata
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

LOCK = threading.Lock()
CONFIG = {}
CLOCK = {"offset": 0.0}
LOGIN_CODES = {}  # code -> {"openid", "unionid", "issued", "used"}
PHONE_CODES = {}  # code -> {"phone", "country_code", "phone_number", "issued", "used"}
TEMPLATES = {}  # template_id -> {"fields": [...], "pages": [...] | None, "enums": {...}}
CONSENTS = {}  # openid -> {template_id: n}
OPENIDS = set()
SESSION_KEYS = {}  # openid -> session_key (never logged)
TOKENS = {}  # token -> {"kind": "stable" | "classic", "expires_at", "revoked_at"}
CURRENT = {"stable": None, "classic": None}
FETCHES = {"stable_token": 0, "token": 0, "force_refresh": 0}
ISSUED = {"stable_token": 0, "token": 0}
DAILY = {"stable_token": 0, "token": 0, "force_refresh": 0}
LAST_FORCE = {"at": None}
CUE_NAMES = ("jscode2session", "stable_token", "token", "getuserphonenumber", "subscribe_send")
CUES = {name: [] for name in CUE_NAMES}
CUED = {"hit": False}  # set when the request being answered got a cued answer
LOG = []
SENT = []
PHONE_LOOKUPS = []
MSGID = [random.randint(19 * 10**17, 29 * 10**17)]

# errmsg as WeChat words it (before " rid: ..."); see the module notes.
ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest, could get access_token by getStableAccessToken, more details at https://mmbizurl.cn/s/JtxxFh33r",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40014: "invalid access_token",
    40029: "invalid code",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    40163: "code been used",
    40226: "code blocked",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    41030: "invalid page",
    42001: "access_token expired",
    43002: "require POST method",
    43101: "user refuse to accept the msg",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit mustslower retry next minute",
    47001: "data format error",
    47003: "argument invalid!",
}
CLASSIC_45009 = ("reach max api daily quota limit, could get access_token by getStableAccessToken, "
                 "more details at https://mmbizurl.cn/s/JtxxFh33r")


class Fault(Exception):
    def __init__(self, errcode, errmsg=None):
        super().__init__(errcode)
        self.errcode = int(errcode)
        self.errmsg = errmsg if errmsg is not None else ERRMSG.get(self.errcode, "error")


def now():
    return time.time() + CLOCK["offset"]


def rid():
    return "%08x-%08x-%08x" % (int(now()) & 0xFFFFFFFF, random.getrandbits(32), random.getrandbits(32))


def error_body(fault, sns=False):
    # /sns/ answers put a comma before rid ("invalid code, rid: ..."), cgi-bin ones do not.
    return {"errcode": fault.errcode, "errmsg": f"{fault.errmsg}{', ' if sns else ' '}rid: {rid()}"}


def next_cue(name):
    """The next cued answer for this endpoint (consumed), or None. Call under LOCK."""
    if not CUES[name]:
        return None
    a = CUES[name].pop(0)
    code = int(a.get("errcode", 0)) if isinstance(a, dict) else int(a)
    if not code:
        return None
    CUED["hit"] = True
    return Fault(code, a.get("errmsg") if isinstance(a, dict) else None)


def redact(v):
    if isinstance(v, dict):
        return {k: ("***" if k == "secret" else redact(x)) for k, x in v.items()}
    if isinstance(v, list):
        return [redact(x) for x in v]
    return v


# ---------------------------------------------------------------- tokens ----

def issue_token(kind):
    token = "%d_%s" % (random.randint(60, 99), secrets.token_urlsafe(100))
    t = now()
    TOKENS[token] = {"kind": kind, "expires_at": t + CONFIG["token_ttl"], "revoked_at": None}
    CURRENT[kind] = token
    ISSUED["stable_token" if kind == "stable" else "token"] += 1
    return token


def token_alive(token, t):
    info = TOKENS.get(token)
    return bool(info) and info["expires_at"] > t and (info["revoked_at"] is None or info["revoked_at"] > t)


def check_token(query):
    token = query.get("access_token")
    if not token:
        raise Fault(41001)
    info = TOKENS.get(token)
    t = now()
    if info is None:
        raise Fault(40001)
    if info["expires_at"] <= t:
        raise Fault(42001)
    if info["revoked_at"] is not None and info["revoked_at"] <= t:
        raise Fault(40001)


def check_app(appid, secret):
    if appid != CONFIG["appid"]:
        raise Fault(40013)
    if secret != CONFIG["secret"]:
        raise Fault(40125)


def stable_token(query, body):
    FETCHES["stable_token"] += 1
    doc = parse_json(body)
    if isinstance(doc, dict) and doc.get("force_refresh") is True:
        FETCHES["force_refresh"] += 1
    if not isinstance(doc, dict):
        raise Fault(47001)
    if doc.get("grant_type") != "client_credential":
        raise Fault(40002)
    if not doc.get("appid"):
        raise Fault(41002)
    if not doc.get("secret"):
        raise Fault(41004)
    force = doc.get("force_refresh", False)
    if not isinstance(force, bool):
        raise Fault(47001)
    check_app(doc["appid"], doc["secret"])
    DAILY["stable_token"] += 1
    if DAILY["stable_token"] > CONFIG["daily_token_limit"]:
        raise Fault(45009)
    if force:
        DAILY["force_refresh"] += 1
        if DAILY["force_refresh"] > CONFIG["force_refresh_daily_limit"]:
            raise Fault(45009)
    cue = next_cue("stable_token")
    if cue:
        raise cue
    t = now()
    cur = CURRENT["stable"]
    alive = cur is not None and token_alive(cur, t)
    if force:
        recent = LAST_FORCE["at"] is not None and t - LAST_FORCE["at"] < CONFIG["force_refresh_interval"]
        if not (alive and recent):
            if cur is not None and alive:
                TOKENS[cur]["revoked_at"] = t  # invalidated at once
            cur = issue_token("stable")
            LAST_FORCE["at"] = t
    elif not alive or TOKENS[cur]["expires_at"] - t <= 300:
        cur = issue_token("stable")  # the old one keeps working until it expires
    return {"access_token": cur, "expires_in": int(TOKENS[cur]["expires_at"] - t)}


def classic_token(query, body):
    FETCHES["token"] += 1
    if query.get("grant_type") != "client_credential":
        raise Fault(40002)
    if not query.get("appid"):
        raise Fault(41002)
    if not query.get("secret"):
        raise Fault(41004)
    check_app(query["appid"], query["secret"])
    DAILY["token"] += 1
    if DAILY["token"] > CONFIG["daily_classic_token_limit"]:
        raise Fault(45009, CLASSIC_45009)
    cue = next_cue("token")
    if cue:
        raise cue
    t = now()
    for info in TOKENS.values():
        if info["kind"] == "classic" and info["expires_at"] > t:
            until = t + CONFIG["old_token_grace"]
            if info["revoked_at"] is None or info["revoked_at"] > until:
                info["revoked_at"] = until
    token = issue_token("classic")
    return {"access_token": token, "expires_in": int(CONFIG["token_ttl"])}


# ----------------------------------------------------------- login/phone ----

def jscode2session(query, body):
    if not query.get("appid"):
        raise Fault(41002)
    if not query.get("secret"):
        raise Fault(41004)
    if not query.get("js_code"):
        raise Fault(41008)
    if query.get("grant_type") != "authorization_code":
        raise Fault(40002)
    check_app(query["appid"], query["secret"])
    code = LOGIN_CODES.get(query["js_code"])
    if code is None or now() - code["issued"] > CONFIG["code_ttl"]:
        raise Fault(40029)
    if code["used"]:
        raise Fault(40163)
    cue = next_cue("jscode2session")
    if cue:
        raise cue
    code["used"] = True
    openid = code["openid"]
    key = SESSION_KEYS.get(openid)
    if key is None:
        key = SESSION_KEYS[openid] = base64.b64encode(secrets.token_bytes(16)).decode()
    out = {"session_key": key, "openid": openid}
    if code.get("unionid"):
        out["unionid"] = code["unionid"]
    return out


def getuserphonenumber(query, body):
    check_token(query)
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise Fault(47001)
    if not doc.get("code"):
        raise Fault(41008)
    code = PHONE_CODES.get(doc["code"]) if isinstance(doc["code"], str) else None
    if code is None or code["used"] or now() - code["issued"] > CONFIG["code_ttl"]:
        raise Fault(40029)
    cue = next_cue("getuserphonenumber")
    if cue:
        raise cue
    code["used"] = True
    cc = code["country_code"]
    number = code.get("phone_number") or (code["phone"] if cc == "86" else f"+{cc}{code['phone']}")
    PHONE_LOOKUPS.append({"code": doc["code"], "phone": code["phone"]})
    return {"errcode": 0, "errmsg": "ok", "phone_info": {
        "phoneNumber": number, "purePhoneNumber": code["phone"], "countryCode": cc,
        "watermark": {"timestamp": int(code["issued"]), "appid": CONFIG["appid"]}}}


# ------------------------------------------------------- subscribe/send ----

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
FIELD_TYPES = ("character_string", "phone_number", "car_number", "thing", "number", "letter",
               "symbol", "time", "date", "amount", "name", "phrase", "const")
DATE_RE = r"(?:(\d{4})年(\d{1,2})月(\d{1,2})日|(\d{4})-(\d{1,2})-(\d{1,2})|(\d{4})/(\d{1,2})/(\d{1,2}))"
TIME_RE = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?"
TIME_POINT = re.compile(rf"(?:{DATE_RE}\s*)?{TIME_RE}")
DATE_POINT = re.compile(rf"{DATE_RE}(?:\s*{TIME_RE})?")
CURRENCY = "¥￥$€£₩₽₹"


def field_type(key):
    m = re.fullmatch(r"([a-z_]+?)(\d+)", key)
    if not m or m.group(1) not in FIELD_TYPES:
        return None
    return m.group(1)


def is_cjk(c):
    return re.match(f"[{CJK}]", c) is not None


def is_symbol(c):
    return unicodedata.category(c)[0] in "PS"


def valid_points(value, pattern):
    parts = [p.strip() for p in value.split("~")]
    if len(parts) > 2:
        return False
    for p in parts:
        m = pattern.fullmatch(p)
        if not m:
            return False
        ymd = [g for g in m.groups() if g is not None]
        if ymd:
            try:
                datetime.date(int(ymd[0]), int(ymd[1]), int(ymd[2]))
            except ValueError:
                return False
    return True


def valid_value(kind, v, enum=None):
    """v: a non-empty str. True if WeChat's rule for this field type holds."""
    n = len(v)
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in v):
        return False
    if kind == "thing":
        return n <= 20
    if kind == "number":
        return n <= 32 and re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", v) is not None
    if kind == "letter":
        return n <= 32 and re.fullmatch(r"[A-Za-z]+", v) is not None
    if kind == "symbol":
        return n <= 5 and all(is_symbol(c) for c in v)
    if kind == "character_string":
        return n <= 32 and all((c.isascii() and c.isalnum()) or is_symbol(c) for c in v)
    if kind == "time":
        return valid_points(v, TIME_POINT)
    if kind == "date":
        return valid_points(v, DATE_POINT)
    if kind == "amount":
        m = re.fullmatch(rf"[{re.escape(CURRENCY)}]?([0-9]+(?:\.[0-9]+)?)元?", v)
        return m is not None and sum(c.isdigit() for c in m.group(1)) <= 10
    if kind == "phone_number":
        return n <= 17 and any(c.isdigit() for c in v) and all(c in "0123456789" or is_symbol(c) for c in v)
    if kind == "car_number":
        return n <= 8 and re.fullmatch(rf"[{CJK}A-Za-z0-9][A-Za-z0-9]*[{CJK}]?", v) is not None
    if kind == "name":
        if any(c.isdigit() for c in v):
            return False
        if not all(is_cjk(c) or c.isalpha() or is_symbol(c) or c == " " for c in v):
            return False
        return n <= 10 if any(is_cjk(c) for c in v) else n <= 20
    if kind == "phrase":
        return re.fullmatch(f"[{CJK}]{{1,5}}", v) is not None
    if kind == "const":
        return v in enum if enum is not None else n <= 20
    return False


def check_data(template, data):
    for key in template["fields"]:
        item = data.get(key) if isinstance(data, dict) else None
        raw = item.get("value") if isinstance(item, dict) else None
        if isinstance(raw, bool) or isinstance(raw, (dict, list)):
            raise Fault(47003, f"argument invalid! data.{key}.value invalid")
        if isinstance(raw, (int, float)):
            raw = str(raw)
        if raw is None or raw == "":
            raise Fault(47003, f"argument invalid! data.{key}.value is empty")
        if not valid_value(field_type(key), raw, template["enums"].get(key)):
            raise Fault(47003, f"argument invalid! data.{key}.value invalid")


def subscribe_send(query, body):
    check_token(query)
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise Fault(47001)
    touser = doc.get("touser")
    if not isinstance(touser, str) or touser not in OPENIDS:
        raise Fault(40003)
    tid = doc.get("template_id")
    template = TEMPLATES.get(tid) if isinstance(tid, str) else None
    if template is None:
        raise Fault(40037)
    state = doc.get("miniprogram_state")
    if state is not None and state not in ("developer", "trial", "formal"):
        raise Fault(47003, "argument invalid! miniprogram_state invalid")
    lang = doc.get("lang")
    if lang is not None and lang not in ("zh_CN", "en_US", "zh_HK", "zh_TW"):
        raise Fault(47003, "argument invalid! lang invalid")
    page = doc.get("page")
    if page is not None:
        if not isinstance(page, str):
            raise Fault(41030)
        if template["pages"] is not None and page and page.split("?")[0].lstrip("/") not in template["pages"]:
            raise Fault(41030)
    check_data(template, doc.get("data"))
    left = CONSENTS.get(touser, {}).get(tid, 0)
    if left <= 0:
        raise Fault(43101)
    cue = next_cue("subscribe_send")
    if cue:
        raise cue
    CONSENTS[touser][tid] = left - 1
    MSGID[0] += random.randint(1, 10**6)
    SENT.append({"touser": touser, "template_id": tid, "page": page, "data": doc.get("data"),
                 "miniprogram_state": state, "lang": lang, "msgid": MSGID[0]})
    return {"errcode": 0, "errmsg": "ok", "msgid": MSGID[0]}


def parse_json(body):
    try:
        return json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        return None


# path -> (handler, POST only)
ENDPOINTS = {
    "/sns/jscode2session": (jscode2session, False),
    "/cgi-bin/stable_token": (stable_token, True),
    "/cgi-bin/token": (classic_token, False),
    "/wxa/business/getuserphonenumber": (getuserphonenumber, True),
    "/cgi-bin/message/subscribe/send": (subscribe_send, True),
}


# --------------------------------------------------------------- control ----

def control_put(path, doc):
    m = re.fullmatch(r"/control/login_codes/(.+)", path)
    if m:
        openid = doc.get("openid")
        if not isinstance(openid, str) or not openid:
            raise ValueError("openid (a string) is required")
        LOGIN_CODES[unquote(m.group(1))] = {"openid": openid, "unionid": doc.get("unionid"),
                                            "issued": now(), "used": False}
        OPENIDS.add(openid)
        return
    m = re.fullmatch(r"/control/phone_codes/(.+)", path)
    if m:
        phone = doc.get("phone")
        if not isinstance(phone, str) or not phone:
            raise ValueError("phone (a string) is required")
        PHONE_CODES[unquote(m.group(1))] = {
            "phone": phone, "country_code": str(doc.get("country_code", "86")),
            "phone_number": doc.get("phone_number"), "issued": now(), "used": False}
        return
    m = re.fullmatch(r"/control/templates/(.+)", path)
    if m:
        fields = doc.get("fields")
        if not isinstance(fields, list) or not fields:
            raise ValueError("fields (a list of keys such as thing1) is required")
        bad = [f for f in fields if not isinstance(f, str) or field_type(f) is None]
        if bad:
            raise ValueError(f"unknown field types {bad}: a key is one of {list(FIELD_TYPES)} followed by digits")
        pages = doc.get("pages")
        TEMPLATES[unquote(m.group(1))] = {
            "fields": fields, "pages": [p.lstrip("/") for p in pages] if pages is not None else None,
            "enums": dict(doc.get("enums") or {})}
        return
    m = re.fullmatch(r"/control/consents/([^/]+)/(.+)", path)
    if m:
        openid, tid = unquote(m.group(1)), unquote(m.group(2))
        CONSENTS.setdefault(openid, {})[tid] = int(doc.get("count", 0))
        OPENIDS.add(openid)
        return
    m = re.fullmatch(r"/control/cues/(.+)", path)
    if m:
        name = unquote(m.group(1))
        if name not in CUES:
            raise ValueError(f"no endpoint {name!r}: one of {list(CUE_NAMES)}")
        CUES[name] = list(doc.get("answers", []))
        return
    if path == "/control/clock":
        CLOCK["offset"] = float(doc.get("offset", 0))
        return
    if path == "/control/config":
        unknown = set(doc) - set(CONFIG)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        for k, v in doc.items():
            CONFIG[k] = type(CONFIG[k])(v)
        return
    raise LookupError(path)


def control_post(path, doc):
    if path == "/control/expire_token":
        kind = doc.get("kind", "all")
        t = now()
        for info in TOKENS.values():
            if (kind == "all" or info["kind"] == kind) and info["expires_at"] > t:
                info["expires_at"] = t
        return
    if path == "/control/new_day":
        for k in DAILY:
            DAILY[k] = 0
        return
    raise LookupError(path)


def control_log():
    return {
        "requests": list(LOG),
        "token_fetches": dict(FETCHES),
        "tokens_issued": dict(ISSUED),
        "sent": list(SENT),
        "consents": {o: dict(t) for o, t in CONSENTS.items()},
        "phone_lookups": list(PHONE_LOOKUPS),
    }


# ---------------------------------------------------------------- server ----

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, doc=None, ctype="application/json; encoding=utf-8"):
        data = b"" if doc is None else json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        self.send_response(status)
        if doc is not None:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("PUT")

    def route(self, method):
        parts = urlsplit(self.path)
        path = parts.path
        body = self.body()
        if path.startswith("/control/"):
            return self.control(method, path, body)
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            return self.reply(404, {"errcode": 404, "errmsg": "stand-in: no such WeChat API here"})
        fn, post_only = endpoint
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        sns = path.startswith("/sns/")
        with LOCK:
            CUED["hit"] = False
            try:
                if post_only and method != "POST":
                    raise Fault(43002)
                doc = fn(query, body)
                code, msg = doc.get("errcode", 0), doc.get("errmsg")
            except Fault as f:
                doc = error_body(f, sns)
                code, msg = f.errcode, doc["errmsg"]
            parsed = parse_json(body)
            LOG.append({
                "path": path, "method": method, "query": redact(query),
                "body": redact(parsed) if parsed is not None else (body.decode("utf-8", "replace") if body else None),
                "errcode": code, "errmsg": msg, "cued": CUED["hit"], "at": now(),
            })
        # jscode2session answers text/plain (seen in a captured response); cgi-bin JSON.
        self.reply(200, doc, "text/plain" if sns else "application/json; encoding=utf-8")

    def control(self, method, path, body):
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return self.reply(400, {"error": "not JSON"})
        if not isinstance(doc, dict):
            return self.reply(400, {"error": "a JSON object is expected"})
        try:
            with LOCK:
                if method == "GET" and path == "/control/log":
                    return self.reply(200, control_log())
                if method == "PUT":
                    control_put(path, doc)
                elif method == "POST":
                    control_post(path, doc)
                else:
                    raise LookupError(path)
        except LookupError:
            return self.reply(404, {"error": f"no control {method} {path}"})
        except (ValueError, TypeError) as e:
            return self.reply(400, {"error": str(e)})
        self.reply(204)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = {
        "appid": "wxstandin0000001",
        "secret": "stand-in-wechat-secret",
        "daily_token_limit": 10000,
        "daily_classic_token_limit": 2000,
        "force_refresh_daily_limit": 20,
        "force_refresh_interval": 30.0,
        "token_ttl": 7200.0,
        "code_ttl": 300.0,
        "old_token_grace": 300.0,
        "max_seconds": 3600.0,
    }
    for k, v in defaults.items():
        env = ("WECHAT_STANDIN_" if k == "max_seconds" else "WECHAT_") + k.upper()
        ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=type(v)(os.environ.get(env, v)))
    CONFIG.update(vars(ap.parse_args()))
    max_seconds = CONFIG.pop("max_seconds")
    watchdog = threading.Timer(max_seconds, lambda: os._exit(3))
    watchdog.daemon = True
    watchdog.start()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    # Stop when the test closes our standard input (or dies).
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
