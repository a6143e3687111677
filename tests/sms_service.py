#!/usr/bin/env python3
"""An SMS provider stand-in on loopback, for yizhan's tests: Aliyun SMS
(dysmsapi SendSms, API 2017-05-25) and Tencent Cloud SMS (SendSms, API
2021-01-11) in one HTTP server, both at `POST /`.

It checks each request as the provider does, with the providers' own
published signing code (not the Rust under test):
  * Aliyun ACS3-HMAC-SHA256 ("V3" signature): the Authorization header is
    recomputed by `alibabacloud_openapi_util.client.Client.get_authorization`
    (PyPI alibabacloud-openapi-util) from what arrived, compared in constant
    time; the RPC signature (HMAC-SHA1, SignatureVersion 1.0) by
    `Client.get_rpcsignature` of the same package.
  * Tencent TC3-HMAC-SHA256: the canonical request and string to sign are
    rebuilt as tencentcloud/common/abstract_client.py `_get_tc3_signature`
    builds them, and signed by `tencentcloud.common.sign.Sign.sign_tc3`
    (PyPI tencentcloud-sdk-python-common).
It rejects stale timestamps (Aliyun: more than 15 minutes off; Tencent: more
than 5 minutes), reused nonces (Aliyun `x-acs-signature-nonce` /
`SignatureNonce`) and replayed requests (Tencent: the same Authorization seen
twice -- TC3 has no nonce), checks the SendSms parameters against the
configured sign names and the templates the test registered, and answers on
cue with the providers' real error bodies.

Needs: pip install alibabacloud-openapi-util tencentcloud-sdk-python-common
(the proof, tests/sms_sdk_check.py, also alibabacloud-dysmsapi20170525 and
tencentcloud-sdk-python-sms).

Start: `python3 tests/sms_service.py [options]`; the first line on stdout is
{"port": N}. It stops when its standard input closes (the test ending).
Options (or environment variables; defaults in brackets):
  --aliyun-access-key-id      SMS_ALIYUN_ACCESS_KEY_ID      [LTAI5tStandInKeyId]
  --aliyun-access-key-secret  SMS_ALIYUN_ACCESS_KEY_SECRET  [stand-in-aliyun-secret]
  --aliyun-sign-name          SMS_ALIYUN_SIGN_NAME          [职工驿站]
  --tencent-secret-id         SMS_TENCENT_SECRET_ID         [AKIDStandInSecretId]
  --tencent-secret-key        SMS_TENCENT_SECRET_KEY        [stand-in-tencent-key]
  --tencent-sdk-app-id        SMS_TENCENT_SDK_APP_ID        [1400000000]
  --tencent-sign-name         SMS_TENCENT_SIGN_NAME         [职工驿站]

Control API (JSON, all under /control):
  PUT  /control/templates/aliyun/<TemplateCode> {"params": ["code", "event"]}
  PUT  /control/templates/tencent/<TemplateId>  {"params": 2 | ["code", "event"],
                                                "kind": "code"?}   ("code": a
        verification-code template, every value must be 0-6 digits; optional
        "max_len": n, the longest value allowed)
  PUT  /control/cues/<phone> {"answers": [<answer>, ...], "then": "ok"}
        <phone>: "+8613800138000", "8613800138000" or "13800138000" (one key).
        <answer>: "ok" | "hold" | a provider error code (e.g.
        "isv.BUSINESS_LIMIT_CONTROL", "LimitExceeded.PhoneNumberThirtySecondLimit")
        | {"code": ..., "message": ..., "status": n (Aliyun HTTP status),
           "level": "number" | "request" (Tencent)}.
        Answers are given in order to the SendSms requests (either provider)
        that pass every check and name this phone; then `then` for ever.
  PUT  /control/config {"aliyun_access_key_secret": ..., ...}  change settings
  PUT  /control/replay-guard {"tencent": false}  stop rejecting a repeated
        Tencent Authorization. TC3 has no nonce and X-TC-Timestamp counts whole
        seconds, so the SAME request sent twice within one second (a retry of the
        same delivery with the same SessionContext) is byte-identical; Tencent
        itself is not known to reject that, this guard does (on by default).
  PUT  /control/clock {"offset": seconds}  the stand-in's clock runs this far
        ahead of the real one (to make a client's timestamps stale)
  GET  /control/log   -> every SendSms seen, in order of arrival: {"provider",
        "auth" ("acs3" | "rpc" | "tc3"), "verified", "auth_error",
        "canonical_request", "phones", "sign_name", "template", "params"
        (object for Aliyun, list for Tencent), "out_id" | "session_context",
        "request_id", "answer": {"status", "body"} | "hold", "code", ...}
  GET  /control/held  -> {"held": n}  requests waiting unanswered
  POST /control/receipt {"provider": "aliyun"|"tencent", "url": callback URL,
        "phone": ..., "success": true|false, "out_id"/"session_context" (finds
        the delivery's BizId/SerialNo in the log) or "biz_id"/"serial_no",
        "err_code"?, "err_msg"?}  -> POSTs the provider's delivery report to
        the URL; answers {"status": n, "body": <the callee's answer>, "sent": [...]}

------------------------------------------------------------------------------
FACTS FOR THE RUST CLIENTS (with where each comes from)
------------------------------------------------------------------------------
Aliyun, as alibabacloud-dysmsapi20170525 4.6.0 + alibabacloud-tea-openapi
0.4.6 send it (captured against this stand-in by tests/sms_sdk_check.py):
  * dysmsapi client.py `send_sms_with_options`: every SendSms parameter goes
    in the QUERY (`req = OpenApiRequest(query=...)`), style RPC, method POST,
    pathname "/", req_body_type formData -- but there is no body, so the body
    is empty (Content-Length: 0, no Content-Type).
  * tea_openapi client.py `do_request` (l.1462-1605): headers host,
    x-acs-version: 2017-05-25, x-acs-action: SendSms, user-agent,
    x-acs-date (UTC, %Y-%m-%dT%H:%M:%SZ), x-acs-signature-nonce (md5 hex),
    accept: application/json, x-acs-content-sha256 = hex SHA-256 of the body
    (empty body: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855).
    Authorization = "ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=
    <h1;h2;...>,Signature=<hex>" (no spaces after commas). Captured: the SDK
    also sends (and signs) x-acs-credentials-provider: static_ak, and
    accept-encoding: identity, content-length: 0 (unsigned).
  * tea_openapi utils.py `get_authorization` / `get_canonicalized_headers`
    (l.88-110, 431-446): the SDK signs EVERY header it set (host, accept,
    user-agent and all x-acs-*), lower-cased names, sorted, values trimmed,
    "name:value\n" each; SignedHeaders = the names joined by ";". The
    documentation (help.aliyun.com "V3版本请求体&签名机制") requires host, every
    x-acs-* header present and content-type if present; the server rebuilds
    from the SignedHeaders list, so signing just those is enough. This
    stand-in rejects (IncompleteSignature) a request whose SignedHeaders
    lacks host or any x-acs-* header it carries, or content-type.
    CanonicalRequest = METHOD \n path("/") \n CanonicalQueryString \n
    CanonicalHeaders(each line ending \n) \n SignedHeaders \n HashedPayload;
    StringToSign = "ACS3-HMAC-SHA256\n" + hex(SHA-256(CanonicalRequest));
    Signature = hex(HMAC-SHA256(secret, StringToSign)).
  * Canonical query string (utils.py `get_canonical_query_string`, l.68-85):
    keys sorted (byte order), each value `quote(v, safe='~')`, i.e. RFC 3986:
    unreserved A-Z a-z 0-9 - _ . ~ kept, everything else %XX upper-case hex of
    the UTF-8 bytes: space -> %20, "+" -> %2B, "*" -> %2A, "~" stays "~",
    Chinese -> %E5%B7%A5...; keys are NOT encoded by the SDK (its keys are
    plain ASCII). On the wire the SDK's URL is built by darabonba core.py
    `compose_url` with `urllib.parse.urlencode` -- form-style, space as "+",
    "*" as %2A -- which is a DIFFERENT encoding from the signed one: the server
    decodes the query and re-encodes it for signing. A Rust client may send
    the RFC 3986 form on the wire too (this stand-in decodes "+" as space,
    as Aliyun does, so a literal "+" must go as %2B).
  * RPC signature (tea_openapi client.py `do_rpcrequest`, used when
    Config.signature_algorithm == "v2"): query gets Action, Format=json,
    Version, Timestamp (same format), SignatureNonce, SignatureMethod=HMAC-SHA1,
    SignatureVersion=1.0, AccessKeyId, Signature; StringToSign =
    "POST&%2F&" + quote_plus(canonicalized, safe='~') where canonicalized =
    sorted "k=v" pairs joined by "&", each quote(.., safe='~'); key =
    secret + "&"; base64 HMAC-SHA1 (openapi_util client.py l.262-296).
  * Gateway errors are HTTP 4xx JSON (the SDK raises ClientException with
    .code): {"RequestId", "HostId": "dysmsapi.aliyuncs.com", "Code",
    "Message", "Recommend": "https://api.aliyun.com/troubleshoot?..."}.
    Codes used here (status, message): see ALIYUN_GATEWAY below. Answers
    carry Content-Type: application/json;charset=utf-8 (the SDK parses XML
    only for text/xml;charset=utf-8, JSON otherwise).
    SendSms business errors are HTTP 200 {"RequestId", "Code", "Message"}
    with Code != "OK" (the SDK does NOT raise; check Code). Success:
    {"Code": "OK", "Message": "OK", "BizId": "<digits>^0", "RequestId"}.
Tencent, as tencentcloud-sdk-python-common 3.1.195 sends it
(abstract_client.py `_build_req_with_tc3_signature`, l.175-264):
  * POST "/" (no query), body = json.dumps(params) (ASCII-escaped: Chinese as
    \\uXXXX), headers Content-Type: application/json, Host: <endpoint>,
    X-TC-Action: SendSms, X-TC-Version: 2021-01-11, X-TC-Timestamp: <unix s>,
    X-TC-Region (e.g. ap-guangzhou), X-TC-RequestClient, Authorization:
    "TC3-HMAC-SHA256 Credential=<SecretId>/<UTC date YYYY-MM-DD>/sms/tc3_request,
    SignedHeaders=content-type;host, Signature=<hex>" (", " separators).
  * CanonicalRequest = "POST\n/\n\n" + "content-type:<ct>\nhost:<host>\n" +
    "\n" + "content-type;host" + "\n" + hex(SHA-256(body)); StringToSign =
    "TC3-HMAC-SHA256\n<X-TC-Timestamp>\n<date>/sms/tc3_request\n" +
    hex(SHA-256(CanonicalRequest)); key chain HMAC-SHA256("TC3"+key, date) ->
    "sms" -> "tc3_request" (sign.py `sign_tc3`). The documented algorithm
    lower-cases header names AND values and trims them; the host is the
    Host header exactly as sent (with ":port" when there is one).
  * Captured from the SDK (tests/sms_sdk_check.py prints it): also unsigned
    X-TC-RequestClient, X-TC-Language: zh-CN, X-TC-TraceId; requests adds
    user-agent, accept, accept-encoding, connection, content-length.
  * Answers carry `Content-Type: application/json` exactly: the Python SDK
    (abstract_client.py `_check_error`) reads Response.Error only when the
    Content-Type is "application/json" or "text/plain" -- so a client should
    always look for Response.Error itself, whatever the Content-Type.
  * Every answer is HTTP 200: request-level failure {"Response": {"Error":
    {"Code", "Message"}, "RequestId"}} (the SDK raises
    TencentCloudSDKException with .code); per-number results in
    Response.SendStatusSet[] with Code "Ok" on success.
Receipts (delivery reports) -- documentation found with the search tool:
  * Aliyun SmsReport, HTTP batch push (help.aliyun.com "SmsReport"): POST
    application/json, a JSON array of {"phone_number", "send_time",
    "report_time", "success" (bool), "err_code" ("DELIVERED" on success),
    "err_msg", "sms_size" (string), "biz_id", "out_id"}; the callee answers
    {"code": 0, "msg": "接收成功"}.
  * Tencent "短信下发状态通知" (cloud.tencent.com/document/api/382/5807,
    tencentcloud.com/document/product/382/43547): POST a JSON array of
    {"user_receive_time", "nationcode", "mobile", "report_status"
    ("SUCCESS"|"FAIL"), "errmsg" ("DELIVRD" on success), "description",
    "sid" (= the SendSms SerialNo)}; the callee answers {"result": 0,
    "errmsg": "OK"}. The documentation shows NO SessionContext in the
    report: settle by sid (SerialNo) -- so keep the SerialNo SendSms
    returned. (This stand-in adds "ext": SessionContext only when asked,
    "with_ext": true; unconfirmed.)
"""

import argparse
import datetime
import hashlib
import hmac
import json
import os
import random
import re
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit, unquote

from alibabacloud_openapi_util.client import Client as AliyunUtil
from alibabacloud_openapi_util.client import get_canonical_query_string, get_canonicalized_headers
from tencentcloud.common.sign import Sign as TencentSign

LOCK = threading.Lock()
CONFIG = {}
TEMPLATES = {"aliyun": {}, "tencent": {}}
CUES = {}  # normalised phone -> {"answers": [...], "then": ...}
LOG = []
HELD = [0]
NONCES = set()  # Aliyun nonces seen (ACS3 and RPC)
AUTHS = set()  # Tencent Authorization headers seen
CLOCK = {"offset": 0.0}
REPLAY_GUARD = {"tencent": True}  # PUT /control/replay-guard {"tencent": false}
NEVER = threading.Event()  # held requests wait on this (never set)

ALIYUN_MAX_SKEW = 15 * 60  # x-acs-date "请求发出前15分钟内" (V3 signature doc)
TENCENT_MAX_SKEW = 5 * 60  # AuthFailure.SignatureExpire beyond 5 minutes
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# Aliyun POP gateway errors: (HTTP status, Message).
ALIYUN_GATEWAY = {
    "SignatureDoesNotMatch": (400, "Specified signature does not match our calculation."),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "InvalidAccessKeyId.Inactive": (400, "Specified access key is disabled."),
    "MissingParameter": (400, "The input parameter that is mandatory for processing this request is not supplied."),
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "UnsupportedSignatureMethod": (400, "The signature method is not supported."),
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "Throttling": (400, "Request was denied due to request throttling."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
    "InternalError": (500, "The request processing has failed due to some unknown error, exception or failure."),
}
# dysmsapi SendSms business errors: HTTP 200, {"Code", "Message", "RequestId"}.
ALIYUN_BUSINESS = {
    "isv.BUSINESS_LIMIT_CONTROL": "触发分钟级流控Permits:1",
    "isv.DAY_LIMIT_CONTROL": "触发日发送限额",
    "isv.MOBILE_NUMBER_ILLEGAL": "非法手机号",
    "isv.MOBILE_COUNT_OVER_LIMIT": "手机号码数量超过限制",
    "isv.SMS_TEMPLATE_ILLEGAL": "该账号下找不到对应模板",
    "isv.SMS_SIGNATURE_ILLEGAL": "该账号下找不到对应签名",
    "isv.TEMPLATE_MISSING_PARAMETERS": "模版缺少变量",
    "isv.TEMPLATE_PARAMS_ILLEGAL": "模版变量里包含非法关键字",
    "isv.INVALID_JSON_PARAM": "JSON参数不合法，只接受字符串值",
    "isv.INVALID_PARAMETERS": "参数异常",
    "isv.PARAM_LENGTH_LIMIT": "参数超出长度限制",
    "isv.AMOUNT_NOT_ENOUGH": "账户余额不足",
    "isp.SYSTEM_ERROR": "系统出现错误，请重新调用",
    "isp.RAM_PERMISSION_DENY": "RAM权限DENY",
    "isv.BLACK_KEY_CONTROL_LIMIT": "黑名单管控",
    "isv.OUT_OF_SERVICE": "业务停机",
    "isv.ACCOUNT_ABNORMAL": "账户异常",
    "isv.ACCOUNT_NOT_EXISTS": "账户不存在",
    "isv.SMS_CONTENT_ILLEGAL": "短信内容包含禁止发送内容",
    "isv.EXTEND_CODE_ERROR": "扩展码使用错误，相同的扩展码不可用于多个签名",
    "isv.DENY_IP_RANGE": "源IP地址所在的地区被禁用",
}
# Tencent: codes answered per number inside SendStatusSet; the rest are
# request-level Response.Error. Messages: tencentcloud/sms/v20210111/errorcodes.py
# (Chinese) and the common error codes.
TENCENT_PER_NUMBER = {
    "LimitExceeded.PhoneNumberThirtySecondLimit": "单个手机号30秒内下发短信条数超过设定的上限，可自行到控制台调整短信频率限制策略。",
    "LimitExceeded.PhoneNumberOneHourLimit": "单个手机号1小时内下发短信条数超过设定的上限，可自行到控制台调整短信频率限制策略。",
    "LimitExceeded.PhoneNumberDailyLimit": "单个手机号日下发短信条数超过设定的上限，可自行到控制台调整短信频率限制策略。",
    "LimitExceeded.PhoneNumberSameContentDailyLimit": "单个手机号下发相同内容超过设定的上限，可自行到控制台调整短信频率限制策略。",
    "LimitExceeded.DeliveryFrequencyLimit": "下发短信命中了频率限制策略，可自行到控制台调整短信频率限制策略。",
    "InvalidParameterValue.IncorrectPhoneNumber": "手机号格式错误。",
    "FailedOperation.PhoneNumberInBlacklist": "手机号在免打扰名单库中，通常是用户退订或者命中运营商免打扰名单导致的。",
    "FailedOperation.PhoneNumberParseFail": "号码解析失败，请检查号码是否符合 E.164 标准。",
    "FailedOperation.InsufficientBalanceInSmsPackage": "套餐包余量不足，请购买套餐包。",
    "FailedOperation.ContainSensitiveWord": "短信内容中含有敏感词。",
}
TENCENT_REQUEST = {
    "AuthFailure.SignatureFailure": "The provided credentials could not be validated. Please check your signature is correct.",
    "AuthFailure.SignatureExpire": "Signature expired.",
    "AuthFailure.SecretIdNotFound": "The SecretId is not found, please ensure that your SecretId is correct.",
    "AuthFailure.InvalidAuthorization": "Authorization header format invalid.",
    "AuthFailure.MFAFailure": "MFA failure.",
    "RequestLimitExceeded": "Your current request times equals to `20` in a second, which exceeds the frequency limit `20` for a second. Please reduce the frequency of calls.",
    "InternalError.Timeout": "请求下发短信超时。",
    "InternalError.OtherError": "其他错误。",
    "InternalError": "An internal error has occurred. Retry your request, but if the problem persists, contact us.",
    "UnauthorizedOperation.SmsSdkAppIdVerifyFail": "SmsSdkAppId 校验失败，请检查 SmsSdkAppId 是否属于云API密钥的关联账户。",
    "UnauthorizedOperation.ServiceSuspendDueToArrears": "欠费被停止服务，可自行登录腾讯云充值来缴清欠款。",
    "FailedOperation.TemplateIncorrectOrUnapproved": "模板未审批或内容不匹配。",
    "FailedOperation.SignatureIncorrectOrUnapproved": "签名未审批或格式错误。",
    "FailedOperation.TemplateParamSetNotMatchApprovedTemplate": "请求内容与审核通过的模板内容不匹配。请检查请求中模板参数的个数是否与申请的模板一致。",
    "InvalidParameterValue.TemplateParameterFormatError": "验证码模板参数格式错误，验证码类模板，模板变量只能传入0 - 6位（包括6位）纯数字。",
    "InvalidParameterValue.TemplateParameterLengthLimit": "单个模板变量字符数超过规定的限制数。",
    "MissingParameter.EmptyPhoneNumberSet": "传入的号码列表为空，请确认您的参数中是否传入号码。",
    "LimitExceeded.PhoneNumberCountLimit": "调用接口单次提交的手机号个数超过200个，请遵守 API 接口输入参数描述。",
    "FailedOperation.JsonParseFail": "解析请求包体时候失败。",
    "InvalidParameter": "参数错误。",
    "MissingParameter": "缺少参数错误。",
    "InvalidAction": "The action requested is invalid.",
    "NoSuchVersion": "The API version `%s` does not exist.",
}


def now():
    return time.time() + CLOCK["offset"]


def request_id():
    return str(uuid.uuid4()).upper()


def normalise_phone(p):
    """One key per phone: 11 digits for a mainland number however written."""
    s = re.sub(r"[\s-]", "", str(p))
    for prefix in ("+86", "0086"):
        if s.startswith(prefix):
            return s[len(prefix):]
    if s.startswith("86") and len(s) == 13:
        return s[2:]
    return s.lstrip("+")


MAINLAND = re.compile(r"^1[3-9]\d{9}$")


def next_answer(phones):
    """The cued answer for the first cued phone (consumed), or "ok"."""
    with LOCK:
        for p in phones:
            cue = CUES.get(normalise_phone(p))
            if cue is not None:
                return cue["answers"].pop(0) if cue["answers"] else cue["then"]
    return "ok"


def answer_parts(answer):
    if isinstance(answer, dict):
        return answer.get("code", "ok"), answer
    return answer, {}


# ---------------------------------------------------------------- Aliyun ----

class AliyunFault(Exception):
    def __init__(self, code, message=None, status=None):
        super().__init__(code)
        self.code = code
        if code in ALIYUN_GATEWAY:
            st, msg = ALIYUN_GATEWAY[code]
        else:
            st, msg = 200, ALIYUN_BUSINESS.get(code, code)
        self.status = status or st
        self.message = message or msg


def aliyun_error_body(rid, code, message, status):
    if status == 200:
        return {"RequestId": rid, "Code": code, "Message": message}
    return {
        "RequestId": rid,
        "HostId": "dysmsapi.aliyuncs.com",
        "Code": code,
        "Message": message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=Dysmsapi&requestId={rid}",
    }


def check_aliyun_time(value):
    try:
        t = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        raise AliyunFault("InvalidTimeStamp.Format")
    if abs(t.timestamp() - now()) > ALIYUN_MAX_SKEW:
        raise AliyunFault("InvalidTimeStamp.Expired")


def use_nonce(nonce):
    with LOCK:
        if nonce in NONCES:
            raise AliyunFault("SignatureNonceUsed")
        NONCES.add(nonce)


def verify_acs3(method, path, query, headers, body, entry):
    """headers: lower-cased name -> value. Raises AliyunFault."""
    auth = headers.get("authorization", "")
    m = re.match(r"^(ACS3-[A-Z0-9-]+) (.*)$", auth)
    if not m:
        raise AliyunFault("IncompleteSignature")
    algorithm, rest = m.groups()
    if algorithm != "ACS3-HMAC-SHA256":
        raise AliyunFault("UnsupportedSignatureMethod", f"Specified signature method {algorithm} is not supported.")
    parts = dict(p.strip().partition("=")[::2] for p in rest.split(","))
    key_id, signed, signature = parts.get("Credential"), parts.get("SignedHeaders"), parts.get("Signature")
    if not key_id or not signed or not signature:
        raise AliyunFault("IncompleteSignature")
    for h in ("x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256", "x-acs-action", "x-acs-version"):
        if not headers.get(h):
            raise AliyunFault("MissingParameter", f'The input parameter "{h}" that is mandatory for processing this request is not supplied.')
    names = signed.split(";")
    required = {"host"} | {h for h in headers if h.startswith("x-acs-")}
    if "content-type" in headers:
        required.add("content-type")
    missing = sorted(required - set(names))
    if missing or names != sorted(names) or any(n not in headers for n in names):
        raise AliyunFault(
            "IncompleteSignature",
            f"The request signature does not conform to Aliyun standards. SignedHeaders must list, sorted, "
            f"every header it names and at least {sorted(required)}; missing {missing}.",
        )
    if key_id != CONFIG["aliyun_access_key_id"]:
        raise AliyunFault("InvalidAccessKeyId.NotFound")
    check_aliyun_time(headers["x-acs-date"])
    payload = headers["x-acs-content-sha256"]
    if payload != hashlib.sha256(body).hexdigest():
        raise AliyunFault("SignatureDoesNotMatch", "Specified signature does not match our calculation: x-acs-content-sha256 is not the SHA-256 of the body.")
    req = SimpleNamespace(method=method, pathname=path, query=query, headers={n: headers[n] for n in names})
    entry["canonical_request"] = "\n".join([
        method, path or "/", get_canonical_query_string(query),
        get_canonicalized_headers(req.headers)[0], signed, payload])
    expected = AliyunUtil.get_authorization(req, algorithm, payload, key_id, CONFIG["aliyun_access_key_secret"])
    if not hmac.compare_digest(expected.encode(), auth.encode()):
        raise AliyunFault("SignatureDoesNotMatch", "Specified signature does not match our calculation. server CanonicalRequest is " + json.dumps(entry["canonical_request"], ensure_ascii=False))
    use_nonce(headers["x-acs-signature-nonce"])
    if headers["x-acs-action"] != "SendSms":
        raise AliyunFault("InvalidAction.NotFound")
    if headers["x-acs-version"] != "2017-05-25":
        raise AliyunFault("InvalidVersion")


def verify_rpc(method, params, entry):
    for k in ("AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp", "Action", "Version"):
        if not params.get(k):
            raise AliyunFault("MissingParameter", f'The input parameter "{k}" that is mandatory for processing this request is not supplied.')
    if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
        raise AliyunFault("UnsupportedSignatureMethod", "Specified signature method is not supported.")
    if params["AccessKeyId"] != CONFIG["aliyun_access_key_id"]:
        raise AliyunFault("InvalidAccessKeyId.NotFound")
    check_aliyun_time(params["Timestamp"])
    signed = {k: v for k, v in params.items() if k != "Signature"}
    expected = AliyunUtil.get_rpcsignature(signed, method, CONFIG["aliyun_access_key_secret"])
    if not hmac.compare_digest(expected.encode(), params["Signature"].encode()):
        raise AliyunFault("SignatureDoesNotMatch")
    use_nonce(params["SignatureNonce"])
    if params["Action"] != "SendSms":
        raise AliyunFault("InvalidAction.NotFound")
    if params["Version"] != "2017-05-25":
        raise AliyunFault("InvalidVersion")


def check_aliyun_send(params, entry):
    phones = [p for p in (params.get("PhoneNumbers") or "").split(",") if p]
    entry.update(
        phones=phones,
        sign_name=params.get("SignName"),
        template=params.get("TemplateCode"),
        out_id=params.get("OutId"),
        params=None,
    )
    raw = params.get("TemplateParam")
    if raw is not None:
        try:
            entry["params"] = json.loads(raw)
        except ValueError:
            entry["params"] = raw
    if not phones or not params.get("SignName") or not params.get("TemplateCode"):
        raise AliyunFault("isv.INVALID_PARAMETERS", "参数异常: PhoneNumbers, SignName and TemplateCode are required")
    if len(phones) > 1000:
        raise AliyunFault("isv.MOBILE_COUNT_OVER_LIMIT")
    if not all(MAINLAND.match(normalise_phone(p)) for p in phones):
        raise AliyunFault("isv.MOBILE_NUMBER_ILLEGAL")
    if params["SignName"] != CONFIG["aliyun_sign_name"]:
        raise AliyunFault("isv.SMS_SIGNATURE_ILLEGAL")
    with LOCK:
        template = TEMPLATES["aliyun"].get(params["TemplateCode"])
    if template is None:
        raise AliyunFault("isv.SMS_TEMPLATE_ILLEGAL")
    wanted = set(template["params"])
    if raw is None:
        given = {}
    else:
        given = entry["params"]
        if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
            raise AliyunFault("isv.INVALID_JSON_PARAM")
    if wanted - set(given):
        raise AliyunFault("isv.TEMPLATE_MISSING_PARAMETERS", f"模版缺少变量: {sorted(wanted - set(given))}")
    if set(given) - wanted:
        # Stricter than Aliyun is known to be: a name the template lacks is a bug in the caller.
        raise AliyunFault("isv.TEMPLATE_PARAMS_ILLEGAL", f"模版变量里包含非法关键字: {sorted(set(given) - wanted)} (not in the template)")
    if template.get("max_len") and any(len(v) > template["max_len"] for v in given.values()):
        raise AliyunFault("isv.PARAM_LENGTH_LIMIT")


def aliyun(handler, method, path, query, body, rawquery=""):
    headers = {k.lower(): v for k, v in handler.headers.items()}
    params = dict(query)
    ctype = headers.get("content-type", "")
    if body and ctype.startswith("application/x-www-form-urlencoded"):
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    rid = request_id()
    rpc = "authorization" not in headers and "Signature" in params
    entry = {
        "provider": "aliyun", "at": time.time(), "auth": "rpc" if rpc else "acs3",
        "verified": False, "auth_error": None, "request_id": rid,
        "method": method, "path": path, "raw_query": rawquery, "query": query,
        "headers": headers, "body": body.decode("utf-8", "replace"),
    }
    try:
        try:
            if rpc:
                verify_rpc(method, params, entry)
            else:
                verify_acs3(method, path, query, headers, body, entry)
            entry["verified"] = True
        except AliyunFault as f:
            entry["auth_error"] = f"{f.code}: {f.message}"
            try:  # only to fill the log entry in
                check_aliyun_send(params, entry)
            except AliyunFault:
                pass
            raise f
        check_aliyun_send(params, entry)
        answer = next_answer(entry["phones"])
    except AliyunFault as f:
        answer = {"code": f.code, "message": f.message, "status": f.status}
    code, detail = answer_parts(answer)
    if code == "hold":
        entry.update(code="hold", answer="hold")
        with LOCK:
            LOG.append(entry)
            HELD[0] += 1
        NEVER.wait()
        return
    if code == "ok":
        status, doc = 200, {"Code": "OK", "Message": "OK", "BizId": f"{random.randint(10**17, 10**18 - 1)}^0", "RequestId": rid}
        entry["biz_id"] = doc["BizId"]
    else:
        f = AliyunFault(code, detail.get("message"), detail.get("status"))
        status, doc = f.status, aliyun_error_body(rid, code, f.message, f.status)
    entry.update(code=doc["Code"], answer={"status": status, "body": doc})
    with LOCK:
        LOG.append(entry)
    handler.reply(status, doc)


# --------------------------------------------------------------- Tencent ----

class TencentFault(Exception):
    def __init__(self, code, message=None):
        super().__init__(code)
        self.code = code
        self.message = message or TENCENT_REQUEST.get(code) or TENCENT_PER_NUMBER.get(code) or code


def verify_tc3(method, path, rawquery, headers, body, entry):
    auth = headers.get("authorization", "")
    m = re.match(r"^TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([^/]+)/tc3_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$", auth)
    if not m:
        raise TencentFault("AuthFailure.InvalidAuthorization")
    secret_id, date, service, signed, signature = m.groups()
    if secret_id != CONFIG["tencent_secret_id"]:
        raise TencentFault("AuthFailure.SecretIdNotFound")
    ts = headers.get("x-tc-timestamp", "")
    if not ts.isdigit():
        raise TencentFault("MissingParameter", "The request is missing a required parameter `Timestamp`.")
    server = int(now())
    if abs(int(ts) - server) > TENCENT_MAX_SKEW:
        raise TencentFault("AuthFailure.SignatureExpire", f"Signature expired. Timestamp:{ts}, server time:{server}.")
    if date != datetime.datetime.fromtimestamp(int(ts), datetime.timezone.utc).strftime("%Y-%m-%d"):
        raise TencentFault("AuthFailure.SignatureFailure", "The provided credentials could not be validated: the Credential date is not the UTC date of X-TC-Timestamp.")
    if service != "sms":
        raise TencentFault("AuthFailure.SignatureFailure", "The provided credentials could not be validated: the Credential service is not `sms`.")
    names = signed.split(";")
    if "content-type" not in names or "host" not in names or any(n not in headers for n in names):
        raise TencentFault("AuthFailure.SignatureFailure", "The provided credentials could not be validated: SignedHeaders must name content-type and host, and only headers sent.")
    canonical_headers = "".join(f"{n}:{headers[n].strip().lower()}\n" for n in names)
    if headers.get("x-tc-content-sha256") == "UNSIGNED-PAYLOAD":
        payload_hash = hashlib.sha256(b"UNSIGNED-PAYLOAD").hexdigest()
    else:
        payload_hash = hashlib.sha256(body).hexdigest()
    canonical_query = rawquery if method == "GET" else ""
    canonical = "%s\n%s\n%s\n%s\n%s\n%s" % (method, path, canonical_query, canonical_headers, signed, payload_hash)
    entry["canonical_request"] = canonical
    string2sign = "TC3-HMAC-SHA256\n%s\n%s/%s/tc3_request\n%s" % (
        ts, date, service, hashlib.sha256(canonical.encode("utf-8")).hexdigest())
    expected = TencentSign.sign_tc3(CONFIG["tencent_secret_key"], date, service, string2sign)
    if not hmac.compare_digest(expected, signature):
        raise TencentFault("AuthFailure.SignatureFailure")
    with LOCK:
        if auth in AUTHS and REPLAY_GUARD["tencent"]:
            raise TencentFault("AuthFailure.SignatureFailure", "The provided credentials could not be validated: this request was seen before (replayed Authorization).")
        AUTHS.add(auth)
    if headers.get("x-tc-action") != "SendSms":
        raise TencentFault("InvalidAction", f"The action `{headers.get('x-tc-action')}` is invalid.")
    if headers.get("x-tc-version") != "2021-01-11":
        raise TencentFault("NoSuchVersion", TENCENT_REQUEST["NoSuchVersion"] % headers.get("x-tc-version"))
    if not headers.get("x-tc-region"):
        raise TencentFault("MissingParameter", "The request is missing a required parameter `Region`.")


def check_tencent_send(doc, entry):
    """Raises TencentFault for request-level faults; returns {phone: code} for per-number ones."""
    if not isinstance(doc, dict):
        raise TencentFault("FailedOperation.JsonParseFail")
    phones = doc.get("PhoneNumberSet")
    entry.update(
        phones=phones, sign_name=doc.get("SignName"), template=doc.get("TemplateId"),
        params=doc.get("TemplateParamSet"), session_context=doc.get("SessionContext"),
        sdk_app_id=doc.get("SmsSdkAppId"),
    )
    for k in ("SmsSdkAppId", "TemplateId"):
        if not isinstance(doc.get(k), str) or not doc.get(k):
            raise TencentFault("MissingParameter", f"The request is missing a required parameter `{k}`.")
    if not isinstance(phones, list) or not phones:
        raise TencentFault("MissingParameter.EmptyPhoneNumberSet")
    if len(phones) > 200:
        raise TencentFault("LimitExceeded.PhoneNumberCountLimit")
    if doc["SmsSdkAppId"] != CONFIG["tencent_sdk_app_id"]:
        raise TencentFault("UnauthorizedOperation.SmsSdkAppIdVerifyFail")
    if doc.get("SignName") != CONFIG["tencent_sign_name"]:
        raise TencentFault("FailedOperation.SignatureIncorrectOrUnapproved")
    with LOCK:
        template = TEMPLATES["tencent"].get(doc["TemplateId"])
    if template is None:
        raise TencentFault("FailedOperation.TemplateIncorrectOrUnapproved")
    values = doc.get("TemplateParamSet", [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TencentFault("InvalidParameter", "参数错误: TemplateParamSet must be an array of strings.")
    if len(values) != template["count"]:
        raise TencentFault("FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                           TENCENT_REQUEST["FailedOperation.TemplateParamSetNotMatchApprovedTemplate"] + f" ({len(values)} given, the template has {template['count']})")
    if template.get("kind") == "code" and not all(re.fullmatch(r"\d{0,6}", v) for v in values):
        raise TencentFault("InvalidParameterValue.TemplateParameterFormatError")
    if template.get("max_len") and any(len(v) > template["max_len"] for v in values):
        raise TencentFault("InvalidParameterValue.TemplateParameterLengthLimit")
    if "SessionContext" in doc and not isinstance(doc["SessionContext"], str):
        raise TencentFault("InvalidParameter", "参数错误: SessionContext must be a string.")
    per_number = {}
    for p in phones:
        # E.164 is what yizhan must send; Tencent itself reads a bare number as +86.
        if not isinstance(p, str) or not p.startswith("+") or (p.startswith("+86") and not MAINLAND.match(p[3:])):
            per_number[str(p)] = "InvalidParameterValue.IncorrectPhoneNumber"
    return per_number


def tencent(handler, method, path, rawquery, body):
    headers = {k.lower(): v for k, v in handler.headers.items()}
    rid = str(uuid.uuid4())
    entry = {
        "provider": "tencent", "at": time.time(), "auth": "tc3", "verified": False,
        "auth_error": None, "request_id": rid, "method": method, "path": path,
        "headers": headers, "body": body.decode("utf-8", "replace"),
    }
    try:
        doc = json.loads(body or b"null")
    except ValueError:
        doc = None
    try:
        try:
            verify_tc3(method, path, rawquery, headers, body, entry)
            entry["verified"] = True
        except TencentFault as f:
            entry["auth_error"] = f"{f.code}: {f.message}"
            if isinstance(doc, dict):
                entry.update(phones=doc.get("PhoneNumberSet"), sign_name=doc.get("SignName"),
                             template=doc.get("TemplateId"), params=doc.get("TemplateParamSet"),
                             session_context=doc.get("SessionContext"))
            raise
        per_number = check_tencent_send(doc, entry)
        answer = next_answer([p for p in entry["phones"] if isinstance(p, str)])
    except TencentFault as f:
        answer = {"code": f.code, "message": f.message, "level": "request"}
        per_number = {}
    code, detail = answer_parts(answer)
    if code == "hold":
        entry.update(code="hold", answer="hold")
        with LOCK:
            LOG.append(entry)
            HELD[0] += 1
        NEVER.wait()
        return
    level = detail.get("level") or ("number" if code in TENCENT_PER_NUMBER else "request")
    if code != "ok" and level == "request":
        message = detail.get("message") or TencentFault(code).message
        resp = {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": rid}}
        entry["code"] = code
    else:
        statuses = []
        for p in entry["phones"]:
            c = per_number.get(str(p)) or code
            if c == "ok":
                statuses.append({
                    "SerialNo": f"{random.randint(1000, 9999)}:{random.randint(10**27, 10**28 - 1)}",
                    "PhoneNumber": p, "Fee": 1, "SessionContext": entry.get("session_context") or "",
                    "Code": "Ok", "Message": "send success", "IsoCode": "CN" if str(p).startswith("+86") else "",
                })
            else:
                statuses.append({
                    "SerialNo": "", "PhoneNumber": p, "Fee": 0, "SessionContext": entry.get("session_context") or "",
                    "Code": c, "Message": detail.get("message") if c == code and detail.get("message") else TencentFault(c).message,
                    "IsoCode": "CN" if str(p).startswith("+86") else "",
                })
        resp = {"Response": {"SendStatusSet": statuses, "RequestId": rid}}
        entry["code"] = statuses[0]["Code"] if len(statuses) == 1 else [s["Code"] for s in statuses]
        entry["serial_nos"] = [s["SerialNo"] for s in statuses]
    entry["answer"] = {"status": 200, "body": resp}
    with LOCK:
        LOG.append(entry)
    # Exactly "application/json": the Python SDK (abstract_client.py `_check_error`)
    # looks for Response.Error only when Content-Type is "application/json" or "text/plain".
    handler.reply(200, resp, "application/json")


# -------------------------------------------------------------- receipts ----

def china_time(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone(datetime.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")


def send_receipt(req):
    provider, url = req["provider"], req["url"]
    ok = bool(req.get("success", True))
    with LOCK:
        log = list(LOG)
    key = "out_id" if provider == "aliyun" else "session_context"
    found = None
    for e in reversed(log):
        if e["provider"] == provider and req.get(key) is not None and e.get(key) == req.get(key) and e.get("code") in ("OK", "Ok"):
            found = e
            break
    sent_at = found["at"] if found else now() - 5
    phone = normalise_phone(req.get("phone") or (found["phones"][0] if found else ""))
    if provider == "aliyun":
        item = {
            "phone_number": phone,
            "send_time": china_time(sent_at),
            "report_time": china_time(now()),
            "success": ok,
            "err_code": req.get("err_code") or ("DELIVERED" if ok else "UNDELIV"),
            "err_msg": req.get("err_msg") or ("用户接收成功" if ok else "用户接收失败"),
            "sms_size": str(req.get("sms_size", "1")),
            "biz_id": req.get("biz_id") or (found or {}).get("biz_id", ""),
            "out_id": req.get("out_id") or "",
        }
    else:
        item = {
            "user_receive_time": china_time(now()),
            "nationcode": "86",
            "mobile": phone,
            "report_status": "SUCCESS" if ok else "FAIL",
            "errmsg": req.get("err_code") or ("DELIVRD" if ok else "UNDELIV"),
            "description": req.get("err_msg") or ("用户短信送达成功" if ok else "用户短信接收失败"),
            "sid": req.get("serial_no") or ((found or {}).get("serial_nos") or [""])[0],
        }
        if req.get("with_ext"):
            item["ext"] = req.get("session_context") or ""
    data = json.dumps([item], ensure_ascii=False).encode()
    r = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            status, text = resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode("utf-8", "replace")
    except OSError as e:
        status, text = 0, f"{type(e).__name__}: {e}"
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    return {"status": status, "body": body, "sent": [item]}


# ---------------------------------------------------------------- server ----

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, doc=None, ctype="application/json;charset=utf-8"):
        data = b"" if doc is None else json.dumps(doc, ensure_ascii=False).encode()
        self.send_response(status)
        if doc is not None:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = urlsplit(self.path).path
        with LOCK:
            if path == "/control/log":
                doc = list(LOG)
            elif path == "/control/held":
                doc = {"held": HELD[0]}
            elif path == "/control/templates":
                doc = TEMPLATES
            else:
                doc = None
        if doc is None and path == "/":
            return self.provider("GET")
        self.reply(404 if doc is None else 200, doc)

    def do_PUT(self):
        path = urlsplit(self.path).path
        try:
            doc = json.loads(self.body() or b"{}")
        except ValueError:
            return self.reply(400, {"error": "not JSON"})
        m = re.fullmatch(r"/control/templates/(aliyun|tencent)/(.+)", path)
        if m:
            provider, tid = m.group(1), unquote(m.group(2))
            params = doc.get("params", [])
            t = {"params": params if isinstance(params, list) else None,
                 "count": params if isinstance(params, int) else len(params),
                 "kind": doc.get("kind"), "max_len": doc.get("max_len")}
            if provider == "aliyun" and t["params"] is None:
                return self.reply(400, {"error": "Aliyun templates name their variables: params must be a list"})
            with LOCK:
                TEMPLATES[provider][tid] = t
            return self.reply(204)
        m = re.fullmatch(r"/control/cues/(.+)", path)
        if m:
            with LOCK:
                CUES[normalise_phone(unquote(m.group(1)))] = {
                    "answers": list(doc.get("answers", [])), "then": doc.get("then", "ok")}
            return self.reply(204)
        if path == "/control/config":
            unknown = set(doc) - set(CONFIG)
            if unknown:
                return self.reply(400, {"error": f"unknown settings {sorted(unknown)}"})
            with LOCK:
                CONFIG.update({k: str(v) for k, v in doc.items()})
            return self.reply(204)
        if path == "/control/replay-guard":
            REPLAY_GUARD["tencent"] = bool(doc.get("tencent", True))
            return self.reply(204)
        if path == "/control/clock":
            CLOCK["offset"] = float(doc.get("offset", 0))
            return self.reply(204)
        self.reply(404)

    def do_POST(self):
        if urlsplit(self.path).path == "/control/receipt":
            try:
                req = json.loads(self.body())
                return self.reply(200, send_receipt(req))
            except (ValueError, KeyError) as e:
                return self.reply(400, {"error": f"{type(e).__name__}: {e}"})
        self.provider("POST")

    def provider(self, method):
        parts = urlsplit(self.path)
        body = self.body()
        if "X-TC-Action" in self.headers:
            return tencent(self, method, parts.path, parts.query, body)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if "x-acs-action" in self.headers or "Signature" in query or "Action" in query:
            return aliyun(self, method, parts.path, query, body, parts.query)
        self.reply(404, {"error": "neither X-TC-Action (Tencent) nor x-acs-action / RPC Signature (Aliyun)"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = {
        "aliyun_access_key_id": "LTAI5tStandInKeyId",
        "aliyun_access_key_secret": "stand-in-aliyun-secret",
        "aliyun_sign_name": "职工驿站",
        "tencent_secret_id": "AKIDStandInSecretId",
        "tencent_secret_key": "stand-in-tencent-key",
        "tencent_sdk_app_id": "1400000000",
        "tencent_sign_name": "职工驿站",
    }
    for k, v in defaults.items():
        ap.add_argument("--" + k.replace("_", "-"), default=os.environ.get("SMS_" + k.upper(), v))
    CONFIG.update(vars(ap.parse_args()))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    # Stop when the test closes our standard input (or dies).
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
