#!/usr/bin/env python3
"""Proof of tests/sms_service.py by a second implementation: the providers'
official Python SDK clients, pointed at the stand-in on loopback.

  * alibabacloud_dysmsapi20170525.client.Client (ACS3-HMAC-SHA256, and the
    RPC HMAC-SHA1 signature with Config.signature_algorithm="v2");
  * tencentcloud.sms.v20210111.sms_client.SmsClient (TC3-HMAC-SHA256).

A correct request must pass every check and succeed (with Chinese text and
`+ * ~` and space in a variable); a wrong secret must be rejected with the
signature error; cued errors must reach the SDK as those codes; a replayed
request (same nonce / same Authorization) must be rejected; stale timestamps
must be rejected; receipts must reach a callback in the documented shape.

Run: `python3 tests/sms_sdk_check.py` (needs alibabacloud-dysmsapi20170525,
tencentcloud-sdk-python-sms, alibabacloud-openapi-util). Exit 0 only if every
check held. Loopback only; it stops by itself (a watchdog ends it).
"""

import datetime
import hashlib
import hmac
import http.client
import json
import os
import time
import urllib.parse
import uuid
import subprocess
import sys
import threading
import traceback
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alibabacloud_dysmsapi20170525 import models as ali_models
from alibabacloud_dysmsapi20170525.client import Client as AliClient
from alibabacloud_tea_openapi.models import Config as AliConfig
from darabonba.runtime import RuntimeOptions
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models as tc_models
from tencentcloud.sms.v20210111.sms_client import SmsClient

HERE = os.path.dirname(os.path.abspath(__file__))
WATCHDOG_SECONDS = 90

ALI_ID, ALI_SECRET, ALI_SIGN = "LTAI5tCheckKeyId", "check-aliyun-secret", "某某市总工会"
TC_ID, TC_KEY, TC_APP, TC_SIGN = "AKIDCheckSecretId", "check-tencent-key", "1400123456", "某某市总工会"
TRICKY = "工会 活动+*~ 测试/&=%"  # Chinese, space, + * ~ and other reserved characters
PHONE = "13800138000"

FAILURES = []
PASSES = []


def check(name, cond, detail=""):
    (PASSES if cond else FAILURES).append(name if cond else f"{name}: {detail}")
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else f" -- {detail}"), flush=True)


def attempt(name, fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - an unexpected fault is a failed check
        check(name, False, f"raised {type(e).__name__}: {e}\n{traceback.format_exc()}")


class StandIn:
    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "sms_service.py"),
             "--aliyun-access-key-id", ALI_ID, "--aliyun-access-key-secret", ALI_SECRET,
             "--aliyun-sign-name", ALI_SIGN, "--tencent-secret-id", TC_ID,
             "--tencent-secret-key", TC_KEY, "--tencent-sdk-app-id", TC_APP,
             "--tencent-sign-name", TC_SIGN],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = json.loads(self.proc.stdout.readline())["port"]
        self.base = f"http://127.0.0.1:{self.port}"

    def call(self, method, path, doc=None):
        data = None if doc is None else json.dumps(doc).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=15) as r:
            text = r.read()
        return json.loads(text) if text else None

    def log(self):
        return self.call("GET", "/control/log")

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def ali_client(port, secret=ALI_SECRET, key_id=ALI_ID, v2=False, read_timeout=10000):
    cfg = AliConfig(access_key_id=key_id, access_key_secret=secret, endpoint=f"127.0.0.1:{port}",
                    protocol="http", read_timeout=read_timeout, connect_timeout=3000)
    if v2:
        cfg.signature_algorithm = "v2"
    return AliClient(cfg)


def ali_send(client, template="SMS_100001", params=None, phone=PHONE, sign=ALI_SIGN, out_id="delivery-1"):
    req = ali_models.SendSmsRequest(
        phone_numbers=phone, sign_name=sign, template_code=template,
        template_param=json.dumps(params if params is not None else {"code": "123456"}, ensure_ascii=False),
        out_id=out_id)
    return client.send_sms_with_options(req, RuntimeOptions()).body


def ali_error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return getattr(e, "code", None), getattr(e, "status_code", None), e
    return None, None, None


def tc_client(port, key=TC_KEY, sid=TC_ID, timeout=10):
    hp = HttpProfile(endpoint=f"127.0.0.1:{port}", protocol="http", reqTimeout=timeout)
    return SmsClient(credential.Credential(sid, key), "ap-guangzhou", ClientProfile(httpProfile=hp))


SEQ = [0]


def tc_send(client, template="2000001", params=None, phone="+86" + PHONE, app=TC_APP, sign=TC_SIGN, ctx=None):
    # A distinct SessionContext per call: TC3 has no nonce, so two identical
    # sends within one second would carry the same Authorization (a replay).
    SEQ[0] += 1
    ctx = ctx or f"delivery-t{SEQ[0]}"
    req = tc_models.SendSmsRequest()
    req.PhoneNumberSet = [phone]
    req.SmsSdkAppId = app
    req.SignName = sign
    req.TemplateId = template
    req.TemplateParamSet = params if params is not None else ["123456"]
    req.SessionContext = ctx
    return json.loads(client.SendSms(req).to_json_string())


def tc_error(fn):
    try:
        fn()
    except TencentCloudSDKException as e:
        return e.get_code(), e
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}", e
    return None, None


def replay(port, entry):
    """Send a logged request again, byte for byte, with a raw HTTP client."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    path = entry["path"] + (("?" + entry["raw_query"]) if entry.get("raw_query") else "")
    body = entry["body"].encode("utf-8")
    headers = {k: v for k, v in entry["headers"].items() if k not in ("content-length", "connection")}
    conn.putrequest(entry["method"], path, skip_host=True, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    r = conn.getresponse()
    status, doc = r.status, json.loads(r.read() or b"null")
    conn.close()
    return status, doc


def raw_post(port, path_and_query, headers, body=b""):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", path_and_query, body=body, headers=headers)
    r = conn.getresponse()
    status, ctype, doc = r.status, r.getheader("Content-Type"), json.loads(r.read() or b"null")
    conn.close()
    return status, ctype, doc


def rfc3986(v):
    return urllib.parse.quote(v, safe="-_.~")


def acs3_by_hand(port, params, secret=ALI_SECRET, signed=None, tamper=None, body=b"", ctype=None):
    """Sign as a from-scratch client would (the way the Rust client is expected
    to): only host and the x-acs-* headers signed, the query sent on the wire
    in the same RFC 3986 form it is signed in."""
    host = f"127.0.0.1:{port}"
    query = "&".join(f"{rfc3986(k)}={rfc3986(v)}" for k, v in sorted(params.items()))
    headers = {
        "host": host, "x-acs-action": "SendSms", "x-acs-version": "2017-05-25",
        "x-acs-date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    if ctype:
        headers["content-type"] = ctype
    names = signed or sorted(headers)
    canonical = "\n".join(["POST", "/", query, "".join(f"{n}:{headers[n].strip()}\n" for n in names), ";".join(names), headers["x-acs-content-sha256"]])
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    sig = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = f"ACS3-HMAC-SHA256 Credential={ALI_ID},SignedHeaders={';'.join(names)},Signature={sig}"
    if tamper:
        query = query.replace(*tamper)
    return raw_post(port, "/?" + query, headers, body)


def tc3_by_hand(port, doc, ctype="application/json; charset=utf-8", tamper=None, key=TC_KEY):
    host = f"127.0.0.1:{port}"
    body = json.dumps(doc, ensure_ascii=False).encode()
    ts = int(time.time())
    date = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d")
    canonical = f"POST\n/\n\ncontent-type:{ctype.lower()}\nhost:{host}\n\ncontent-type;host\n{hashlib.sha256(body).hexdigest()}"
    to_sign = f"TC3-HMAC-SHA256\n{ts}\n{date}/sms/tc3_request\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    k = hmac.new(("TC3" + key).encode(), date.encode(), hashlib.sha256).digest()
    k = hmac.new(k, b"sms", hashlib.sha256).digest()
    k = hmac.new(k, b"tc3_request", hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers = {
        "Host": host, "Content-Type": ctype, "X-TC-Action": "SendSms", "X-TC-Version": "2021-01-11",
        "X-TC-Timestamp": str(ts), "X-TC-Region": "ap-guangzhou",
        "Authorization": f"TC3-HMAC-SHA256 Credential={TC_ID}/{date}/sms/tc3_request, SignedHeaders=content-type;host, Signature={sig}",
    }
    if tamper:
        body = body.replace(*tamper)
    return raw_post(port, "/", headers, body)


def by_hand_checks(s):
    """A third implementation: signing written from the documentation alone."""
    port = s.port
    params = {"PhoneNumbers": PHONE, "SignName": ALI_SIGN, "TemplateCode": "SMS_100002", "OutId": "d-hand-1",
              "TemplateParam": json.dumps({"event": TRICKY, "site": "文化宫", "time": "12月05日19:30"}, ensure_ascii=False)}

    def aliyun():
        status, ctype, doc = acs3_by_hand(port, params)
        e = s.log()[-1]
        check("by hand acs3: minimal SignedHeaders, RFC 3986 query on the wire: OK",
              status == 200 and doc.get("Code") == "OK" and e["verified"] and e["params"]["event"] == TRICKY, (status, doc, e.get("auth_error")))
        check("by hand acs3: the answer is application/json;charset=utf-8", ctype == "application/json;charset=utf-8", ctype)
        status, _, doc = acs3_by_hand(port, params, tamper=("d-hand-1", "d-hand-2"))
        check("by hand acs3: a query changed after signing is SignatureDoesNotMatch", status == 400 and doc.get("Code") == "SignatureDoesNotMatch", (status, doc))
        status, _, doc = acs3_by_hand(port, params, signed=["host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-version"])
        check("by hand acs3: the nonce left out of SignedHeaders is IncompleteSignature", status == 400 and doc.get("Code") == "IncompleteSignature", (status, doc))
        form = urllib.parse.urlencode(params).encode()
        status, _, doc = acs3_by_hand(port, {}, body=form, ctype="application/x-www-form-urlencoded")
        check("by hand acs3: the parameters in a signed form body: OK", status == 200 and doc.get("Code") == "OK" and s.log()[-1]["params"]["event"] == TRICKY, (status, doc))
        status, _, doc = acs3_by_hand(port, {}, body=form, ctype="application/x-www-form-urlencoded",
                                     signed=["host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce", "x-acs-version"])
        check("by hand acs3: content-type present but not signed is IncompleteSignature", status == 400 and doc.get("Code") == "IncompleteSignature", (status, doc))
    attempt("by hand aliyun", aliyun)

    def tencent():
        doc = {"PhoneNumberSet": ["+86" + PHONE], "SmsSdkAppId": TC_APP, "SignName": TC_SIGN, "TemplateId": "2000002",
               "TemplateParamSet": [TRICKY, "文化宫", "12月05日19:30"], "SessionContext": "d-hand-t1"}
        status, ctype, resp = tc3_by_hand(port, doc)
        e = s.log()[-1]
        check("by hand tc3: UTF-8 JSON body, content-type with charset: Ok",
              status == 200 and resp["Response"]["SendStatusSet"][0]["Code"] == "Ok" and e["verified"] and e["params"][0] == TRICKY, (status, resp, e.get("auth_error")))
        check("by hand tc3: the answer is exactly application/json", ctype == "application/json", ctype)
        doc["SessionContext"] = "d-hand-t2"
        status, _, resp = tc3_by_hand(port, doc, tamper=("d-hand-t2".encode(), "d-hand-t3".encode()))
        check("by hand tc3: a body changed after signing is AuthFailure.SignatureFailure",
              resp["Response"].get("Error", {}).get("Code") == "AuthFailure.SignatureFailure", resp)
    attempt("by hand tencent", tencent)


class Callback(BaseHTTPRequestHandler):
    received = []
    answer = {}

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        Callback.received.append((self.path, self.headers.get("Content-Type"), json.loads(self.rfile.read(n))))
        data = json.dumps(Callback.answer[self.path], ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def aliyun_checks(s):
    port = s.port
    s.call("PUT", "/control/templates/aliyun/SMS_100001", {"params": ["code"]})
    s.call("PUT", "/control/templates/aliyun/SMS_100002", {"params": ["event", "site", "time"]})
    good = ali_client(port)

    def ok_acs3():
        body = ali_send(good, "SMS_100002", {"event": TRICKY, "site": "第一工人文化宫", "time": "12月05日19:30"}, out_id="d-ali-1")
        check("aliyun acs3: a correct SendSms answers Code OK", body.code == "OK" and body.message == "OK", body.to_map())
        check("aliyun acs3: BizId and RequestId come back", bool(body.biz_id) and bool(body.request_id), body.to_map())
        e = s.log()[-1]
        check("aliyun acs3: the stand-in verified the signature", e["verified"] and e["auth"] == "acs3", e.get("auth_error"))
        check("aliyun acs3: Chinese and `+ * ~` and space survive", e["params"] == {"event": TRICKY, "site": "第一工人文化宫", "time": "12月05日19:30"}, e["params"])
        check("aliyun acs3: OutId, SignName, phone, template logged", (e["out_id"], e["sign_name"], e["phones"], e["template"]) == ("d-ali-1", ALI_SIGN, [PHONE], "SMS_100002"), e)
        h = e["headers"]
        check("aliyun acs3: headers as documented",
              h.get("x-acs-action") == "SendSms" and h.get("x-acs-version") == "2017-05-25"
              and h["authorization"].startswith("ACS3-HMAC-SHA256 Credential=" + ALI_ID + ",SignedHeaders=")
              and h.get("x-acs-content-sha256") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
              and e["method"] == "POST" and e["path"] == "/" and e["body"] == "", h)
        print("  captured Aliyun ACS3 request:", json.dumps({k: e[k] for k in ("method", "path", "raw_query", "headers", "body", "canonical_request")}, ensure_ascii=False, indent=1), flush=True)
        status, doc = replay(port, e)
        check("aliyun acs3: the same request again is SignatureNonceUsed (HTTP 400)",
              status == 400 and doc.get("Code") == "SignatureNonceUsed" and doc.get("Message") == "Specified signature nonce was used already."
              and doc.get("HostId") == "dysmsapi.aliyuncs.com" and doc.get("RequestId") and "Recommend" in doc, (status, doc))
    attempt("aliyun acs3 success + replay", ok_acs3)

    def ok_rpc():
        body = ali_send(ali_client(port, v2=True), "SMS_100002", {"event": TRICKY, "site": "文化宫", "time": "12月05日19:30"}, out_id="d-ali-rpc")
        e = s.log()[-1]
        check("aliyun rpc (HMAC-SHA1 v1.0): a correct SendSms answers Code OK", body.code == "OK" and e["verified"] and e["auth"] == "rpc", (body.to_map(), e.get("auth_error")))
        check("aliyun rpc: params survive", e["params"]["event"] == TRICKY, e["params"])
        status, doc = replay(port, e)
        check("aliyun rpc: replayed SignatureNonce is SignatureNonceUsed", status == 400 and doc.get("Code") == "SignatureNonceUsed", (status, doc))
    attempt("aliyun rpc", ok_rpc)

    def wrong_secret():
        code, status, e = ali_error(lambda: ali_send(ali_client(port, secret="not-the-secret")))
        check("aliyun: a wrong secret is SignatureDoesNotMatch (HTTP 400, SDK ClientException)", code == "SignatureDoesNotMatch" and status == 400, (code, status, e))
        check("aliyun: the failed request is logged unverified", s.log()[-1]["verified"] is False, s.log()[-1].get("auth_error"))
        code, status, e = ali_error(lambda: ali_send(ali_client(port, secret="not-the-secret", v2=True)))
        check("aliyun rpc: a wrong secret is SignatureDoesNotMatch", code == "SignatureDoesNotMatch" and status == 400, (code, status, e))
        code, status, e = ali_error(lambda: ali_send(ali_client(port, key_id="LTAIunknown")))
        check("aliyun: an unknown key id is InvalidAccessKeyId.NotFound (404)", code == "InvalidAccessKeyId.NotFound" and status == 404, (code, status, e))
    attempt("aliyun wrong secret", wrong_secret)

    def stale():
        s.call("PUT", "/control/clock", {"offset": 16 * 60})
        code, status, e = ali_error(lambda: ali_send(good))
        s.call("PUT", "/control/clock", {"offset": 14 * 60})
        body = ali_send(good)
        s.call("PUT", "/control/clock", {"offset": 0})
        check("aliyun: 16 minutes off is InvalidTimeStamp.Expired (400)", code == "InvalidTimeStamp.Expired" and status == 400, (code, status, e))
        check("aliyun: 14 minutes off still passes", body.code == "OK", body.to_map())
    attempt("aliyun stale", stale)

    def params():
        cases = [
            ("unknown template", dict(template="SMS_999"), "isv.SMS_TEMPLATE_ILLEGAL"),
            ("wrong sign name", dict(sign="别的签名"), "isv.SMS_SIGNATURE_ILLEGAL"),
            ("missing variable", dict(template="SMS_100002", params={"event": "x", "site": "y"}), "isv.TEMPLATE_MISSING_PARAMETERS"),
            ("extra variable", dict(params={"code": "1", "name": "x"}), "isv.TEMPLATE_PARAMS_ILLEGAL"),
            ("non-string value", dict(params={"code": 123456}), "isv.INVALID_JSON_PARAM"),
            ("bad phone", dict(phone="1234"), "isv.MOBILE_NUMBER_ILLEGAL"),
        ]
        for name, kw, want in cases:
            body = ali_send(good, **kw)
            check(f"aliyun: {name} is {want} (HTTP 200, Code)", body.code == want and body.biz_id is None, body.to_map())
    attempt("aliyun params", params)

    def cues():
        s.call("PUT", f"/control/cues/+86{PHONE}", {"answers": ["isv.BUSINESS_LIMIT_CONTROL", "Throttling.User", "isv.AMOUNT_NOT_ENOUGH"], "then": "ok"})
        body = ali_send(good)
        check("aliyun cue: isv.BUSINESS_LIMIT_CONTROL comes back as the Code, 触发分钟级流控Permits:1",
              body.code == "isv.BUSINESS_LIMIT_CONTROL" and body.message == "触发分钟级流控Permits:1", body.to_map())
        code, status, e = ali_error(lambda: ali_send(good))
        check("aliyun cue: Throttling.User raises in the SDK (HTTP 400)", code == "Throttling.User" and status == 400, (code, status, e))
        body = ali_send(good)
        check("aliyun cue: isv.AMOUNT_NOT_ENOUGH", body.code == "isv.AMOUNT_NOT_ENOUGH", body.to_map())
        body = ali_send(good)
        check("aliyun cue: then OK", body.code == "OK", body.to_map())
        s.call("PUT", f"/control/cues/{PHONE}", {"answers": ["hold"], "then": "ok"})
        code, status, e = ali_error(lambda: ali_send(ali_client(port, read_timeout=1500)))
        held = s.call("GET", "/control/held")["held"]
        check("aliyun cue: hold leaves the SDK to time out, /control/held counts it", e is not None and held == 1, (code, e, held))
        s.call("PUT", f"/control/cues/{PHONE}", {"answers": [], "then": "ok"})
    attempt("aliyun cues", cues)


def tencent_checks(s):
    port = s.port
    s.call("PUT", "/control/templates/tencent/2000001", {"params": 1, "kind": "code"})
    s.call("PUT", "/control/templates/tencent/2000002", {"params": ["event", "site", "time"]})
    good = tc_client(port)

    def ok_tc3():
        resp = tc_send(good, "2000002", [TRICKY, "第一工人文化宫", "12月05日19:30"], ctx="d-tc-1")
        st = resp["SendStatusSet"][0]
        check("tencent: a correct SendSms answers SendStatusSet[0].Code Ok",
              st["Code"] == "Ok" and st["Message"] == "send success" and st["PhoneNumber"] == "+86" + PHONE
              and st["SessionContext"] == "d-tc-1" and st["Fee"] == 1 and st["IsoCode"] == "CN" and st["SerialNo"], resp)
        e = s.log()[-1]
        check("tencent: the stand-in verified the TC3 signature", e["verified"] and e["auth"] == "tc3", e.get("auth_error"))
        check("tencent: Chinese and `+ * ~` and space survive", e["params"] == [TRICKY, "第一工人文化宫", "12月05日19:30"], e["params"])
        h = e["headers"]
        check("tencent: headers as documented",
              h.get("x-tc-action") == "SendSms" and h.get("x-tc-version") == "2021-01-11" and h.get("x-tc-region") == "ap-guangzhou"
              and h.get("content-type") == "application/json" and h["authorization"].startswith(f"TC3-HMAC-SHA256 Credential={TC_ID}/")
              and "/sms/tc3_request, SignedHeaders=content-type;host, Signature=" in h["authorization"], h)
        print("  captured Tencent TC3 request:", json.dumps({k: e[k] for k in ("method", "path", "headers", "body", "canonical_request")}, ensure_ascii=False, indent=1), flush=True)
        status, doc = replay(port, e)
        err = doc.get("Response", {}).get("Error", {})
        check("tencent: the same request again (replay) is AuthFailure.SignatureFailure, HTTP 200",
              status == 200 and err.get("Code") == "AuthFailure.SignatureFailure" and doc["Response"].get("RequestId"), (status, doc))
    attempt("tencent success + replay", ok_tc3)

    def wrong():
        code, e = tc_error(lambda: tc_send(tc_client(port, key="not-the-key")))
        check("tencent: a wrong key is AuthFailure.SignatureFailure", code == "AuthFailure.SignatureFailure", (code, e))
        code, e = tc_error(lambda: tc_send(tc_client(port, sid="AKIDunknown")))
        check("tencent: an unknown SecretId is AuthFailure.SecretIdNotFound", code == "AuthFailure.SecretIdNotFound", (code, e))
        s.call("PUT", "/control/clock", {"offset": 6 * 60})
        code, e = tc_error(lambda: tc_send(good))
        s.call("PUT", "/control/clock", {"offset": 4 * 60})
        resp = tc_send(good)
        s.call("PUT", "/control/clock", {"offset": 0})
        check("tencent: 6 minutes off is AuthFailure.SignatureExpire", code == "AuthFailure.SignatureExpire", (code, e))
        check("tencent: 4 minutes off still passes", resp["SendStatusSet"][0]["Code"] == "Ok", resp)
    attempt("tencent auth", wrong)

    def params():
        cases = [
            ("unknown template", dict(template="999"), "FailedOperation.TemplateIncorrectOrUnapproved"),
            ("wrong sign name", dict(sign="别的签名"), "FailedOperation.SignatureIncorrectOrUnapproved"),
            ("wrong SmsSdkAppId", dict(app="1400999999"), "UnauthorizedOperation.SmsSdkAppIdVerifyFail"),
            ("too few values", dict(template="2000002", params=["a", "b"]), "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"),
            ("a code that is not 0-6 digits", dict(params=["12345a"]), "InvalidParameterValue.TemplateParameterFormatError"),
        ]
        for name, kw, want in cases:
            code, e = tc_error(lambda: tc_send(good, **kw))
            check(f"tencent: {name} is {want}", code == want, (code, e))
        resp = tc_send(good, phone=PHONE)
        check("tencent: a number not in E.164 is InvalidParameterValue.IncorrectPhoneNumber in SendStatusSet",
              resp["SendStatusSet"][0]["Code"] == "InvalidParameterValue.IncorrectPhoneNumber", resp)
    attempt("tencent params", params)

    def cues():
        s.call("PUT", f"/control/cues/{PHONE}", {"answers": [
            "LimitExceeded.PhoneNumberThirtySecondLimit", "FailedOperation.PhoneNumberInBlacklist",
            "InternalError.Timeout", "RequestLimitExceeded", "hold"], "then": "ok"})
        resp = tc_send(good)
        st = resp["SendStatusSet"][0]
        check("tencent cue: LimitExceeded.PhoneNumberThirtySecondLimit per number", st["Code"] == "LimitExceeded.PhoneNumberThirtySecondLimit" and st["SerialNo"] == "" and st["Fee"] == 0, resp)
        resp = tc_send(good)
        check("tencent cue: FailedOperation.PhoneNumberInBlacklist per number", resp["SendStatusSet"][0]["Code"] == "FailedOperation.PhoneNumberInBlacklist", resp)
        code, e = tc_error(lambda: tc_send(good))
        check("tencent cue: InternalError.Timeout raises in the SDK", code == "InternalError.Timeout", (code, e))
        code, e = tc_error(lambda: tc_send(good))
        check("tencent cue: RequestLimitExceeded raises in the SDK", code == "RequestLimitExceeded", (code, e))
        code, e = tc_error(lambda: tc_send(tc_client(port, timeout=2)))
        held = s.call("GET", "/control/held")["held"]
        check("tencent cue: hold leaves the SDK to time out", e is not None and held == 2, (code, e, held))
        resp = tc_send(good, ctx="d-tc-ok")
        check("tencent cue: then Ok", resp["SendStatusSet"][0]["Code"] == "Ok", resp)
        same = dict(ctx="d-tc-same")
        first = tc_send(good, **same)
        code, e = tc_error(lambda: tc_send(good, **same))
        s.call("PUT", "/control/replay-guard", {"tencent": False})
        again = [tc_send(good, **same) for _ in range(2)]
        s.call("PUT", "/control/replay-guard", {"tencent": True})
        check("tencent: an identical SDK send within the same second is a replay unless the guard is off",
              first["SendStatusSet"][0]["Code"] == "Ok" and code in ("AuthFailure.SignatureFailure", None)
              and all(a["SendStatusSet"][0]["Code"] == "Ok" for a in again), (first, code, e, again))
    attempt("tencent cues", cues)


def receipt_checks(s):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cb = f"http://127.0.0.1:{server.server_address[1]}"
    Callback.answer = {"/aliyun": {"code": 0, "msg": "接收成功"}, "/tencent": {"result": 0, "errmsg": "OK"}}

    def run():
        biz = next(e for e in s.log() if e.get("out_id") == "d-ali-1")["biz_id"]
        r = s.call("POST", "/control/receipt", {"provider": "aliyun", "url": cb + "/aliyun", "out_id": "d-ali-1", "success": True})
        path, ctype, got = Callback.received[-1]
        item = got[0]
        check("receipt aliyun: a JSON array in the documented shape reaches the callback",
              path == "/aliyun" and ctype == "application/json" and isinstance(got, list)
              and set(item) == {"phone_number", "send_time", "report_time", "success", "err_code", "err_msg", "sms_size", "biz_id", "out_id"}
              and item["biz_id"] == biz and item["out_id"] == "d-ali-1" and item["success"] is True
              and item["err_code"] == "DELIVERED" and item["phone_number"] == PHONE, got)
        check("receipt aliyun: the callee's answer comes back", r["status"] == 200 and r["body"] == {"code": 0, "msg": "接收成功"}, r)
        serial = next(e for e in s.log() if e.get("session_context") == "d-tc-1" and e.get("code") == "Ok")["serial_nos"][0]
        r = s.call("POST", "/control/receipt", {"provider": "tencent", "url": cb + "/tencent", "session_context": "d-tc-1", "success": False, "err_code": "MK:0001", "err_msg": "空号"})
        path, ctype, got = Callback.received[-1]
        item = got[0]
        check("receipt tencent: a JSON array in the documented shape reaches the callback",
              path == "/tencent" and set(item) == {"user_receive_time", "nationcode", "mobile", "report_status", "errmsg", "description", "sid"}
              and item["sid"] == serial and item["report_status"] == "FAIL" and item["nationcode"] == "86"
              and item["mobile"] == PHONE and item["errmsg"] == "MK:0001", got)
        check("receipt tencent: the callee's answer comes back", r["body"] == {"result": 0, "errmsg": "OK"}, r)
    attempt("receipts", run)
    server.shutdown()


def main():
    timer = threading.Timer(WATCHDOG_SECONDS, lambda: (print(f"FAIL watchdog: not done in {WATCHDOG_SECONDS}s", flush=True), os._exit(2)))
    timer.daemon = True
    timer.start()
    s = StandIn()
    try:
        aliyun_checks(s)
        tencent_checks(s)
        by_hand_checks(s)
        receipt_checks(s)
        log = s.log()
        check("log: every SendSms is logged with its answer", len(log) > 30 and all("answer" in e for e in log), len(log))
    finally:
        s.stop()
    print(f"\n{len(PASSES)} checks passed, {len(FAILURES)} failed", flush=True)
    for f in FAILURES:
        print("  FAILED:", f.splitlines()[0])
    os._exit(0 if not FAILURES else 1)


if __name__ == "__main__":
    main()
