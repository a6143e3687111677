#!/usr/bin/env python3
"""Proof of tests/wechat_service.py by a second implementation: the wechatpy
client library (PyPI wechatpy, WeChatClient), pointed at the stand-in on
loopback.

wechatpy is left as it is: its requests.Session gets a transport adapter that
sends what it addresses to https://api.weixin.qq.com to the stand-in instead
(its token URL is hard-coded in WeChatClient.fetch_access_token, so setting
API_BASE_URL would not be enough). Its own calls are used wherever it has
them: wxa.code_to_session (jscode2session), wxa.send_subscribe_message
(subscribe/send), fetch_access_token (/cgi-bin/token) and its automatic token
refresh and retry on 40001/40014/42001 (client/base.py `_handle_result`).
Where it has no wrapper (stable_token, getuserphonenumber, a send with
miniprogram_state), its generic WeChatClient.post, so errcodes still surface
as its WeChatClientException (APILimitedException for 45009).

Checks: a correct flow succeeds; rule-based and cued errors reach wechatpy as
WeChat's errcodes (40029, 40163, 40013, 40125, 41008, 40001, 42001, 43101,
47003, 40003, 40037, 41030, 45009, 45011, -1); wechatpy refreshes its token on
40001/42001 and the retry succeeds, counted through /control/log; a one-time
consent is spent by exactly one send; a thing value of 20 Chinese characters
passes and 21 is 47003; every subscribe field type accepts and refuses per
WeChat's table; stable_token repeats its token until forced, a forced refresh
invalidates the old token at once, the 30 s and last-5-minutes rules hold;
the classic token keeps the previous one alive for 5 minutes; the log never
holds the secret or a session key.

Run: `python3 tests/wechat_sdk_check.py` (needs: pip install wechatpy).
Prints PASS/FAIL per check and "N passed, M failed"; exit 0 only if every
check held. Loopback only; a watchdog ends it.
"""

import json
import os
import subprocess
import sys
import threading
import traceback
import urllib.error
import urllib.request

import requests
from requests.adapters import HTTPAdapter
from wechatpy import WeChatClient
from wechatpy.exceptions import APILimitedException, WeChatClientException

HERE = os.path.dirname(os.path.abspath(__file__))
WATCHDOG_SECONDS = 120
API = "https://api.weixin.qq.com"
APPID, SECRET = "wxcheck0000000001", "check-wechat-secret-0123456789"
O1, O2, O3 = "oCheckUser1_0000000000000001", "oCheckUser2_0000000000000002", "oCheckUser3_0000000000000003"

FAILURES = []
PASSES = []


def check(name, cond, detail=""):
    (PASSES if cond else FAILURES).append(name if cond else f"{name}: {detail}")
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else f": {detail}"), flush=True)


def attempt(name, fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - an unexpected fault is a failed check
        check(name, False, f"raised {type(e).__name__}: {e}\n{traceback.format_exc()}")


NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StandIn:
    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "wechat_service.py"), "--appid", APPID, "--secret", SECRET,
             "--max-seconds", str(WATCHDOG_SECONDS + 30)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = json.loads(self.proc.stdout.readline())["port"]
        self.base = f"http://127.0.0.1:{self.port}"
        self.offset = 0.0

    def call(self, method, path, doc=None):
        data = None if doc is None else json.dumps(doc, ensure_ascii=False).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with NO_PROXY.open(req, timeout=15) as r:
            text = r.read()
        return json.loads(text) if text else None

    def raw(self, method, path, body=None):
        """(status, Content-Type, JSON) of an API request sent by hand."""
        req = urllib.request.Request(self.base + path, data=body, method=method)
        try:
            with NO_PROXY.open(req, timeout=15) as r:
                return r.status, r.headers.get("Content-Type"), json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read()

    def log(self):
        return self.call("GET", "/control/log")

    def advance(self, seconds):
        """The stand-in's clock only ever moves forward."""
        self.offset += seconds
        self.call("PUT", "/control/clock", {"offset": self.offset})

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class ToStandIn(HTTPAdapter):
    """Sends what wechatpy addresses to api.weixin.qq.com to the stand-in."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def send(self, request, **kwargs):
        request.url = self.base + request.url[len(API):]
        return super().send(request, **kwargs)


def client(s, appid=APPID, secret=SECRET, access_token=None, auto_retry=True):
    c = WeChatClient(appid, secret, access_token=access_token, timeout=10, auto_retry=auto_retry)
    c._http.trust_env = False  # loopback: no proxy from the environment
    c._http.mount(API + "/", ToStandIn(s.base))
    return c


def err(fn):
    """(errcode, exception) if wechatpy raised WeChatClientException, else (None, result)."""
    try:
        return None, fn()
    except WeChatClientException as e:
        return e.errcode, e


def stable(c, force=None, appid=APPID, secret=SECRET, grant_type="client_credential"):
    doc = {"grant_type": grant_type, "appid": appid, "secret": secret}
    if force is not None:
        doc["force_refresh"] = force
    # params=None: wechatpy adds no access_token to this call.
    return c.post(API + "/cgi-bin/stable_token", params=None, data=doc)


def phone(c, code):
    return c.post(API + "/wxa/business/getuserphonenumber", data={"code": code})


def probe(s, token):
    """What WeChat says of this token: 40029 (an unknown phone code) means it was accepted."""
    code, _ = err(lambda: phone(client(s, access_token=token, auto_retry=False), "probe-no-such-code"))
    return code


def fetches(s):
    return s.log()["token_fetches"]


def sends_logged(s):
    return [r for r in s.log()["requests"] if r["path"] == "/cgi-bin/message/subscribe/send"]


# ---------------------------------------------------------------- login ----

def login_checks(s):
    def ok():
        s.call("PUT", "/control/login_codes/code-1", {"openid": O1, "unionid": "oUnion1"})
        c = client(s)
        r = c.wxa.code_to_session("code-1")
        check("code2Session: a registered code gives openid, unionid and a session_key",
              r.get("openid") == O1 and r.get("unionid") == "oUnion1" and len(r.get("session_key", "")) == 24
              and "errcode" not in r, r)
        log = s.log()
        req = [x for x in log["requests"] if x["path"] == "/sns/jscode2session"][-1]
        q = req["query"]
        check("code2Session: wechatpy sends appid, secret, js_code, grant_type=authorization_code in the query",
              q.get("appid") == APPID and q.get("js_code") == "code-1" and q.get("grant_type") == "authorization_code"
              and q.get("secret") == "***", q)
        check("code2Session: wechatpy fetched a classic token first (it adds access_token to every call)",
              log["token_fetches"]["token"] == 1 and "access_token" in q, log["token_fetches"])
        text = json.dumps(log, ensure_ascii=False)
        check("log: neither the secret nor the session_key is in /control/log",
              SECRET not in text and r["session_key"] not in text, "found in the log")
        code, e = err(lambda: c.wxa.code_to_session("code-1"))
        check("code2Session: the same code again is 40163 code been used",
              code == 40163 and e.errmsg.startswith("code been used, rid: "), (code, e))
        code, e = err(lambda: c.wxa.code_to_session("code-never-issued"))
        check("code2Session: an unknown code is 40029 invalid code",
              code == 40029 and e.errmsg.startswith("invalid code, rid: "), (code, e))
        code, e = err(lambda: c.wxa.code_to_session(""))
        check("code2Session: an empty js_code is 41008 missing code", code == 41008, (code, e))
        s.call("PUT", "/control/login_codes/code-late", {"openid": O1})
        s.call("PUT", "/control/login_codes/code-in-time", {"openid": O2})
        s.advance(299)
        r = c.wxa.code_to_session("code-in-time")
        check("code2Session: a code still works 299 s after wx.login", r.get("openid") == O2 and "unionid" not in r, r)
        s.advance(2)
        code, e = err(lambda: c.wxa.code_to_session("code-late"))
        check("code2Session: a code 301 s old is 40029 (5 minutes)", code == 40029, (code, e))
    attempt("login", ok)

    def wrong_credentials():
        s.call("PUT", "/control/login_codes/code-2", {"openid": O1})
        code, e = err(lambda: client(s, secret="not-the-secret", access_token="given").wxa.code_to_session("code-2"))
        check("code2Session: a wrong secret is 40125 invalid appsecret",
              code == 40125 and e.errmsg.startswith("invalid appsecret"), (code, e))
        code, e = err(lambda: client(s, appid="wxnotthisapp00001", access_token="given").wxa.code_to_session("code-2"))
        check("code2Session: a wrong appid is 40013 invalid appid", code == 40013, (code, e))
        r = client(s).wxa.code_to_session("code-2")
        check("code2Session: the refused attempts did not use the code up", r.get("openid") == O1, r)
        code, e = err(lambda: client(s, secret="not-the-secret").wxa.code_to_session("code-3"))
        check("token: wechatpy's own fetch with a wrong secret raises 40125 (before any jscode2session)",
              code == 40125, (code, e))
    attempt("login credentials", wrong_credentials)

    def cues():
        s.call("PUT", "/control/login_codes/code-cued", {"openid": O3})
        s.call("PUT", "/control/cues/jscode2session", {"answers": [-1, 45011, 40226]})
        c = client(s)
        got = [err(lambda: c.wxa.code_to_session("code-cued"))[0] for _ in range(3)]
        check("code2Session cues: -1, 45011, 40226 reach wechatpy in order", got == [-1, 45011, 40226], got)
        r = c.wxa.code_to_session("code-cued")
        check("code2Session cues: then a normal answer, and the code was not used up by them",
              r.get("openid") == O3, r)
        reqs = [x for x in s.log()["requests"] if x["path"] == "/sns/jscode2session"][-4:]
        check("log: cued answers are marked cued", [x["cued"] for x in reqs] == [True, True, True, False], reqs)
    attempt("login cues", cues)

    def raw():
        status, ctype, doc = s.raw("GET", f"/sns/jscode2session?appid={APPID}&secret={SECRET}&js_code=nope&grant_type=authorization_code")
        check("code2Session: errors are HTTP 200, Content-Type text/plain (as WeChat answers it)",
              status == 200 and ctype == "text/plain" and doc["errcode"] == 40029, (status, ctype, doc))
        status, ctype, doc = s.raw("GET", f"/sns/jscode2session?secret={SECRET}&js_code=nope&grant_type=authorization_code")
        check("code2Session: no appid is 41002", doc["errcode"] == 41002, doc)
        status, ctype, doc = s.raw("GET", f"/sns/jscode2session?appid={APPID}&js_code=nope&grant_type=authorization_code")
        check("code2Session: no secret is 41004", doc["errcode"] == 41004, doc)
    attempt("login raw", raw)


# --------------------------------------------------------------- tokens ----

def token_checks(s):
    c = client(s)

    def normal_and_forced():
        a = stable(c)
        b = stable(c)
        check("stable_token: without force_refresh the same token again, expires_in counting down (≤ 7200)",
              a["access_token"] == b["access_token"] and 300 <= b["expires_in"] <= a["expires_in"] <= 7200, (a, b))
        check("stable_token: the token is accepted by other APIs", probe(s, a["access_token"]) == 40029, "refused")
        before = fetches(s)
        f = stable(c, force=True)
        check("stable_token: force_refresh gives a new token", f["access_token"] != a["access_token"] and f["expires_in"] == 7200, f)
        check("stable_token: the old token is invalidated at once (40001)", probe(s, a["access_token"]) == 40001,
              probe(s, a["access_token"]))
        check("stable_token: the new token works", probe(s, f["access_token"]) == 40029, "refused")
        g = stable(c, force=True)
        check("stable_token: force_refresh again within 30 s does not refresh (the doc's rule)",
              g["access_token"] == f["access_token"], (f, g))
        after = fetches(s)
        check("log: token_fetches counts stable_token calls and force_refresh ones",
              after["stable_token"] == before["stable_token"] + 2 and after["force_refresh"] == before["force_refresh"] + 2,
              (before, after))
        s.advance(31)
        h = stable(c, force=True)
        check("stable_token: force_refresh 31 s later refreshes", h["access_token"] != g["access_token"], (g, h))
        old = h["access_token"]
        s.advance(h["expires_in"] - 200)
        n = stable(c)
        check("stable_token: in the token's last 5 minutes normal mode gives a new one (7200 s)",
              n["access_token"] != old and n["expires_in"] == 7200, n)
        check("stable_token: ... and the old one still works until it expires", probe(s, old) == 40029, probe(s, old))
        s.advance(201)
        check("stable_token: an expired token is 42001", probe(s, old) == 42001, probe(s, old))
        check("stable_token: the new one works", probe(s, n["access_token"]) == 40029, "refused")
        s.call("POST", "/control/expire_token", {"kind": "stable"})
        check("control: expire_token makes the token 42001", probe(s, n["access_token"]) == 42001, "not expired")
        m = stable(c)
        check("stable_token: after expiry normal mode gives a new token", m["access_token"] != n["access_token"]
              and probe(s, m["access_token"]) == 40029, m)
    attempt("stable_token", normal_and_forced)

    def stable_errors():
        cases = [("wrong secret", dict(secret="nope"), 40125, "invalid appsecret"),
                 ("wrong appid", dict(appid="wxnotthisapp00001"), 40013, "invalid appid"),
                 ("wrong grant_type", dict(grant_type="authorization_code"), 40002, "invalid grant_type"),
                 ("no appid", dict(appid=""), 41002, "appid missing"),
                 ("no secret", dict(secret=""), 41004, "appsecret missing")]
        for name, kw, want, msg in cases:
            code, e = err(lambda: stable(c, **kw))
            check(f"stable_token: {name} is {want} {msg}", code == want and e.errmsg.startswith(msg + " rid: "), (code, e))
        status, ctype, doc = s.raw("GET", "/cgi-bin/stable_token")
        check("stable_token: GET is 43002 require POST method, HTTP 200, application/json; encoding=utf-8",
              status == 200 and doc["errcode"] == 43002 and ctype == "application/json; encoding=utf-8", (status, ctype, doc))
        s.call("PUT", "/control/cues/stable_token", {"answers": [-1, {"errcode": 45011, "errmsg": "api minute-quota reach limit mustslower retry next minute"}]})
        got = [err(lambda: stable(c))[0] for _ in range(2)]
        check("stable_token cues: -1 then 45011", got == [-1, 45011], got)
        s.call("POST", "/control/new_day")
        s.call("PUT", "/control/config", {"daily_token_limit": 2})
        ok = [err(lambda: stable(c))[0] for _ in range(2)]
        try:
            stable(c)
            third = None
        except APILimitedException as e:
            third = e
        check("stable_token: past the daily cap, 45009 reach max api daily quota limit (wechatpy APILimitedException)",
              ok == [None, None] and third is not None and third.errcode == 45009
              and third.errmsg.startswith("reach max api daily quota limit rid: "), (ok, third))
        s.call("POST", "/control/new_day")
        check("stable_token: a new day lifts the cap", err(lambda: stable(c))[0] is None, "still capped")
        s.call("PUT", "/control/config", {"daily_token_limit": 10000, "force_refresh_daily_limit": 1})
        s.advance(31)
        first = err(lambda: stable(c, force=True))[0]
        s.advance(31)
        second = err(lambda: stable(c, force=True))[0]
        s.call("PUT", "/control/config", {"force_refresh_daily_limit": 20})
        check("stable_token: force refreshes past the daily limit are refused (45009 here; undocumented)",
              first is None and second == 45009, (first, second))
    attempt("stable_token errors", stable_errors)

    def classic():
        before = fetches(s)
        cc = client(s)
        t1 = cc.access_token
        cc.fetch_access_token()
        t2 = cc.access_token
        s1 = stable(c)["access_token"]
        check("token: each classic fetch issues a new token", t1 != t2 and fetches(s)["token"] == before["token"] + 2, (t1, t2))
        check("token: the previous classic token still works for 5 minutes", probe(s, t1) == 40029, probe(s, t1))
        s.advance(301)
        check("token: ... and then is 40001 (not latest)", probe(s, t1) == 40001, probe(s, t1))
        check("token: the current classic token works", probe(s, t2) == 40029, probe(s, t2))
        cc.fetch_access_token()
        check("token: classic fetches leave the stable token alone (isolated)", probe(s, s1) == 40029, probe(s, s1))
        stable(c, force=True)
        check("token: a forced stable refresh leaves the classic token alone", probe(s, cc.access_token) == 40029, "refused")
        status, ctype, doc = s.raw("GET", f"/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret=nope")
        check("token: a wrong secret is 40125", doc["errcode"] == 40125, doc)
        status, ctype, doc = s.raw("GET", f"/cgi-bin/token?grant_type=nope&appid={APPID}&secret={SECRET}")
        check("token: a wrong grant_type is 40002", doc["errcode"] == 40002, doc)
        s.call("POST", "/control/new_day")
        s.call("PUT", "/control/config", {"daily_classic_token_limit": 1})
        cc.fetch_access_token()
        code, e = err(cc.fetch_access_token)
        s.call("PUT", "/control/config", {"daily_classic_token_limit": 2000})
        check("token: past its daily cap, 45009 pointing at getStableAccessToken",
              code == 45009 and "could get access_token by getStableAccessToken" in e.errmsg, (code, e))
    attempt("classic token", classic)


# ---------------------------------------------------------------- phone ----

def phone_checks(s):
    c = client(s)

    def run():
        s.call("PUT", "/control/phone_codes/phone-1", {"phone": "13800138000", "country_code": "86"})
        r = phone(c, "phone-1")
        info = r.get("phone_info", {})
        check("getuserphonenumber: errcode 0, ok, phone_info as documented",
              r.get("errcode") == 0 and r.get("errmsg") == "ok" and info.get("phoneNumber") == "13800138000"
              and info.get("purePhoneNumber") == "13800138000" and info.get("countryCode") == "86"
              and info.get("watermark", {}).get("appid") == APPID and isinstance(info["watermark"].get("timestamp"), int), r)
        code, e = err(lambda: phone(c, "phone-1"))
        check("getuserphonenumber: a used code is 40029", code == 40029 and e.errmsg.startswith("invalid code rid: "), (code, e))
        code, e = err(lambda: phone(c, "phone-unknown"))
        check("getuserphonenumber: an unknown code is 40029", code == 40029, (code, e))
        s.call("PUT", "/control/phone_codes/phone-2", {"phone": "13900139000"})
        s.call("PUT", "/control/cues/getuserphonenumber", {"answers": [-1]})
        code, e = err(lambda: phone(c, "phone-2"))
        r = phone(c, "phone-2")
        check("getuserphonenumber cue: -1, then the same code still works",
              code == -1 and r["phone_info"]["purePhoneNumber"] == "13900139000", (code, r))
        s.call("PUT", "/control/phone_codes/phone-3", {"phone": "13700137000"})
        s.advance(301)
        code, e = err(lambda: phone(c, "phone-3"))
        check("getuserphonenumber: a code 301 s old is 40029", code == 40029, (code, e))
        code, e = err(lambda: c.post(API + "/wxa/business/getuserphonenumber", params={"access_token": ""}, data={"code": "x"}))
        check("getuserphonenumber: no access_token is 41001 access_token missing",
              code == 41001 and e.errmsg.startswith("access_token missing"), (code, e))
        lookups = s.log()["phone_lookups"]
        check("log: phone_lookups lists the successful lookups", [x["code"] for x in lookups] == ["phone-1", "phone-2"], lookups)
    attempt("phone", run)


# ------------------------------------------------------------ subscribe ----

ALL_FIELDS = ["thing1", "number2", "letter3", "symbol4", "character_string5", "time6", "date7", "amount8",
              "phone_number9", "car_number10", "name11", "phrase12", "const13"]
GOOD = {"thing1": "职工篮球赛 第3场", "number2": "339208499", "letter3": "ABCdef", "symbol4": "#@!",
        "character_string5": "KHDD1912310002", "time6": "2019年10月1日 15:01", "date7": "2019年10月1日",
        "amount8": "¥12.50", "phone_number9": "+86-0766-66888866", "car_number10": "粤A8Z888挂",
        "name11": "张三", "phrase12": "配送中", "const13": "已通过"}
CASES = [  # (field, value, accepted)
    ("thing1", "工" * 20, True), ("thing1", "工" * 21, False), ("thing1", "Union event 2024!", True),
    ("thing1", "第一行\n第二行", False),
    ("number2", "12.50", True), ("number2", "1" * 32, True), ("number2", "1" * 33, False),
    ("number2", "-1", False), ("number2", "1e5", False), ("number2", 3, True),
    ("letter3", "a" * 32, True), ("letter3", "abc1", False), ("letter3", "a" * 33, False),
    ("symbol4", "#####", True), ("symbol4", "######", False), ("symbol4", "a#", False),
    ("character_string5", "No.2024-001", True), ("character_string5", "a" * 32, True),
    ("character_string5", "a" * 33, False), ("character_string5", "订单1", False),
    ("time6", "15:01", True), ("time6", "2019-10-01 15:01:30", True),
    ("time6", "2019年10月1日 15:01~2019年10月1日 17:00", True), ("time6", "2019年10月1日", False),
    ("time6", "25:00", False), ("time6", "下午三点", False),
    ("date7", "2019年10月1日 15:01", True), ("date7", "2019-10-01", True), ("date7", "2019年10月1日~2019年10月3日", True),
    ("date7", "2019年2月30日", False), ("date7", "明天", False),
    ("amount8", "￥100元", True), ("amount8", "12.5", True), ("amount8", "¥12345678901", False), ("amount8", "十元", False),
    ("phone_number9", "13800138000", True), ("phone_number9", "1" * 17, True), ("phone_number9", "1" * 18, False),
    ("phone_number9", "138abc", False),
    ("car_number10", "京A12345", True), ("car_number10", "粤A12345678", False), ("car_number10", "粤A-12345", False),
    ("name11", "John Smith", True), ("name11", "欧阳" * 5, True), ("name11", "欧阳" * 5 + "子", False),
    ("name11", "A" * 20, True), ("name11", "A" * 21, False), ("name11", "张3", False),
    ("phrase12", "审核通过", True), ("phrase12", "配送中了吗吧", False), ("phrase12", "done", False),
    ("const13", "未通过", True), ("const13", "通过", False),
]


def data_of(values):
    return {k: {"value": v} for k, v in values.items()}


def subscribe_checks(s):
    c = client(s)
    s.call("PUT", "/control/templates/TPL-activity", {"fields": ["thing1", "time2", "thing3"]})
    s.call("PUT", "/control/templates/TPL-all", {"fields": ALL_FIELDS, "enums": {"const13": ["已通过", "未通过"]}})
    s.call("PUT", "/control/templates/TPL-page", {"fields": ["thing1"], "pages": ["pages/index/index"]})
    activity = data_of({"thing1": "工会读书会", "time2": "2024年12月5日 19:30", "thing3": "第一工人文化宫"})

    def consents():
        return s.log()["consents"]

    def one_time():
        s.call("PUT", f"/control/consents/{O1}/TPL-activity", {"count": 1})
        r = c.wxa.send_subscribe_message(O1, "TPL-activity", activity, page="pages/event/detail?id=7")
        check("send: a correct send is errcode 0, ok, with a msgid", r.get("errcode") == 0 and r.get("errmsg") == "ok"
              and isinstance(r.get("msgid"), int), r)
        check("send: the msgid is a 64-bit integer beyond 2^53 (as WeChat's are)", r["msgid"] > 2**53, r)
        sent = s.log()["sent"][-1]
        check("log: sent records touser, template_id, page, data, msgid",
              sent["touser"] == O1 and sent["template_id"] == "TPL-activity" and sent["page"] == "pages/event/detail?id=7"
              and sent["data"] == activity and sent["msgid"] == r["msgid"] and sent["miniprogram_state"] is None, sent)
        check("send: the one-time consent is spent", consents()[O1]["TPL-activity"] == 0, consents())
        code, e = err(lambda: c.wxa.send_subscribe_message(O1, "TPL-activity", activity))
        check("send: without consent left, 43101 user refuse to accept the msg",
              code == 43101 and e.errmsg.startswith("user refuse to accept the msg rid: "), (code, e))
        s.call("PUT", f"/control/consents/{O1}/TPL-activity", {"count": 2})
        a = err(lambda: c.wxa.send_subscribe_message(O1, "TPL-activity", activity))[0]
        b = err(lambda: c.wxa.send_subscribe_message(O1, "TPL-activity", activity))[0]
        z = err(lambda: c.wxa.send_subscribe_message(O1, "TPL-activity", activity))[0]
        check("send: two consents, two sends, then 43101", (a, b, z) == (None, None, 43101), (a, b, z))
    attempt("send one-time", one_time)

    def thing_length():
        s.call("PUT", f"/control/consents/{O2}/TPL-activity", {"count": 5})
        d20 = data_of({"thing1": "工" * 20, "time2": "15:01", "thing3": "x"})
        d21 = data_of({"thing1": "工" * 21, "time2": "15:01", "thing3": "x"})
        r = c.wxa.send_subscribe_message(O2, "TPL-activity", d20)
        check("send: thing with 20 Chinese characters passes", r.get("errcode") == 0, r)
        code, e = err(lambda: c.wxa.send_subscribe_message(O2, "TPL-activity", d21))
        check("send: thing with 21 Chinese characters is 47003 naming data.thing1.value",
              code == 47003 and e.errmsg.startswith("argument invalid! data.thing1.value invalid rid: "), (code, e))
        check("send: a refused send spends no consent", consents()[O2]["TPL-activity"] == 4, consents())
        missing = data_of({"thing1": "x", "thing3": "y"})
        code, e = err(lambda: c.wxa.send_subscribe_message(O2, "TPL-activity", missing))
        check("send: a template field left out is 47003 data.time2.value is empty",
              code == 47003 and e.errmsg.startswith("argument invalid! data.time2.value is empty"), (code, e))
        code, e = err(lambda: c.post(API + "/cgi-bin/message/subscribe/send", data={
            "touser": O2, "template_id": "TPL-activity", "data": json.dumps(activity)}))
        check("send: data sent as a JSON string (not an object) is 47003 data.thing1.value is empty",
              code == 47003 and "data.thing1.value is empty" in e.errmsg, (code, e))
    attempt("send thing length", thing_length)

    def types():
        s.call("PUT", f"/control/consents/{O3}/TPL-all", {"count": 1000})
        r = c.wxa.send_subscribe_message(O3, "TPL-all", data_of(GOOD))
        check("send: one value of every field type, all valid, passes", r.get("errcode") == 0, r)
        for field, value, accepted in CASES:
            values = dict(GOOD)
            values[field] = value
            code, e = err(lambda: c.wxa.send_subscribe_message(O3, "TPL-all", data_of(values)))
            shown = json.dumps(value, ensure_ascii=False)
            if accepted:
                check(f"send type {field.rstrip('0123456789')}: {shown} passes", code is None, (code, e))
            else:
                check(f"send type {field.rstrip('0123456789')}: {shown} is 47003 naming {field}",
                      code == 47003 and e.errmsg.startswith(f"argument invalid! data.{field}.value "), (code, e))
    attempt("send types", types)

    def addressing():
        s.call("PUT", f"/control/consents/{O1}/TPL-page", {"count": 10})
        one = data_of({"thing1": "x"})
        code, e = err(lambda: c.wxa.send_subscribe_message("oNobodyKnown0000000000000000", "TPL-activity", activity))
        check("send: an unknown openid is 40003 invalid openid", code == 40003 and e.errmsg.startswith("invalid openid rid: "), (code, e))
        code, e = err(lambda: c.wxa.send_subscribe_message(O1, "TPL-none", activity))
        check("send: an unknown template is 40037 invalid template_id",
              code == 40037 and e.errmsg.startswith("invalid template_id rid: "), (code, e))
        ok1 = err(lambda: c.wxa.send_subscribe_message(O1, "TPL-page", one, page="pages/index/index?from=notice"))[0]
        ok2 = err(lambda: c.wxa.send_subscribe_message(O1, "TPL-page", one, page="/pages/index/index"))[0]
        code, e = err(lambda: c.wxa.send_subscribe_message(O1, "TPL-page", one, page="pages/nowhere"))
        check("send: a page the template lists passes (with a query, with a leading /)", (ok1, ok2) == (None, None), (ok1, ok2))
        check("send: a page not in the mini program is 41030 invalid page", code == 41030 and e.errmsg.startswith("invalid page rid: "), (code, e))
        body = {"touser": O1, "template_id": "TPL-page", "data": one, "miniprogram_state": "developer", "lang": "en_US"}
        r = c.post(API + "/cgi-bin/message/subscribe/send", data=body)
        sent = s.log()["sent"][-1]
        check("send: miniprogram_state developer and lang en_US pass and are logged",
              r.get("errcode") == 0 and sent["miniprogram_state"] == "developer" and sent["lang"] == "en_US", (r, sent))
        code, e = err(lambda: c.post(API + "/cgi-bin/message/subscribe/send", data=dict(body, miniprogram_state="beta")))
        check("send: miniprogram_state beta is refused (47003 here; the code is undocumented)", code == 47003, (code, e))
        status, ctype, doc = s.raw("POST", "/cgi-bin/message/subscribe/send", json.dumps(body).encode())
        check("send: no access_token is 41001 (HTTP 200)", status == 200 and doc["errcode"] == 41001, (status, doc))
        status, ctype, doc = s.raw("POST", "/cgi-bin/message/subscribe/send?access_token=garbage", json.dumps(body).encode())
        check("send: a token never issued is 40001", doc["errcode"] == 40001
              and doc["errmsg"].startswith("invalid credential, access_token is invalid or not latest"), doc)
    attempt("send addressing", addressing)

    def retries():
        s.call("PUT", f"/control/consents/{O1}/TPL-activity", {"count": 3})
        for cue in (40001, 42001):
            before = fetches(s)["token"]
            s.call("PUT", "/control/cues/subscribe_send", {"answers": [cue]})
            r = c.wxa.send_subscribe_message(O1, "TPL-activity", activity)
            reqs = sends_logged(s)[-2:]
            check(f"wechatpy on a cued {cue}: fetches one new token and the retry succeeds",
                  r.get("errcode") == 0 and fetches(s)["token"] == before + 1
                  and [x["errcode"] for x in reqs] == [cue, 0]
                  and reqs[0]["query"]["access_token"] != reqs[1]["query"]["access_token"], (r, reqs))
        check("send: the two retried sends spent one consent each", consents()[O1]["TPL-activity"] == 1, consents())
        before = fetches(s)["token"]
        s.call("POST", "/control/expire_token", {})
        r = c.wxa.send_subscribe_message(O1, "TPL-activity", activity)
        reqs = sends_logged(s)[-2:]
        check("wechatpy on a real 42001 (token expired): refetches and the retry succeeds",
              r.get("errcode") == 0 and [x["errcode"] for x in reqs] == [42001, 0] and fetches(s)["token"] == before + 1,
              (r, reqs))
        s.call("PUT", f"/control/consents/{O1}/TPL-activity", {"count": 1})
        old = stable(c)["access_token"]
        s.advance(31)
        stable(c, force=True)  # the held stable token is now invalid
        holder = client(s, access_token=old)
        before = fetches(s)["token"]
        r = holder.wxa.send_subscribe_message(O1, "TPL-activity", activity)
        reqs = sends_logged(s)[-2:]
        check("wechatpy on a real 40001 (a token invalidated by force_refresh): refetches, the retry succeeds",
              r.get("errcode") == 0 and [x["errcode"] for x in reqs] == [40001, 0] and fetches(s)["token"] == before + 1,
              (r, reqs))
        check("send: a one-time consent is spent by exactly one send, retries included",
              consents()[O1]["TPL-activity"] == 0, consents())
    attempt("send retries", retries)

    def cues():
        s.call("PUT", f"/control/consents/{O2}/TPL-activity", {"count": 1})
        s.call("PUT", "/control/cues/subscribe_send", {"answers": [-1, 45011, 45009]})
        a = err(lambda: c.wxa.send_subscribe_message(O2, "TPL-activity", activity))
        b = err(lambda: c.wxa.send_subscribe_message(O2, "TPL-activity", activity))
        z = err(lambda: c.wxa.send_subscribe_message(O2, "TPL-activity", activity))
        check("send cues: -1 system error, 45011, then 45009 (wechatpy APILimitedException)",
              (a[0], b[0], z[0]) == (-1, 45011, 45009) and a[1].errmsg.startswith("system error rid: ")
              and isinstance(z[1], APILimitedException), (a, b, z))
        check("send cues: no consent spent by cued errors", consents()[O2]["TPL-activity"] == 1, consents())
        r = c.wxa.send_subscribe_message(O2, "TPL-activity", activity)
        check("send cues: then a normal answer", r.get("errcode") == 0 and consents()[O2]["TPL-activity"] == 0, r)
    attempt("send cues", cues)


def main():
    timer = threading.Timer(WATCHDOG_SECONDS, lambda: (print(f"FAIL watchdog: not done in {WATCHDOG_SECONDS}s", flush=True), os._exit(2)))
    timer.daemon = True
    timer.start()
    print(f"wechatpy {__import__('wechatpy').__version__}, requests {requests.__version__}", flush=True)
    s = StandIn()
    try:
        login_checks(s)
        token_checks(s)
        phone_checks(s)
        subscribe_checks(s)

        def final():
            log = s.log()
            text = json.dumps(log, ensure_ascii=False)
            check("log: after everything, the secret is nowhere in /control/log", SECRET not in text, "secret logged")
            check("log: every request is logged with its errcode",
                  len(log["requests"]) > 100 and all("errcode" in r for r in log["requests"]), len(log["requests"]))
        attempt("log", final)
    finally:
        s.stop()
    print(f"\n{len(PASSES)} passed, {len(FAILURES)} failed", flush=True)
    for f in FAILURES:
        print("  FAILED:", f.splitlines()[0])
    os._exit(0 if not FAILURES else 1)


if __name__ == "__main__":
    main()
