#!/usr/bin/env python3
"""The signing vectors of src/sms/aliyun.rs and src/sms/tencent.rs, computed
by the providers' own published code:
  * Aliyun: `alibabacloud_openapi_util.client.Client.get_authorization`
    (PyPI alibabacloud-openapi-util), ACS3-HMAC-SHA256;
  * Tencent Cloud: `tencentcloud.common.sign.Sign.sign_tc3` (PyPI
    tencentcloud-sdk-python-common), with the canonical request built as the
    SDK's `AbstractClient._get_tc3_signature` builds it.
The Rust unit tests hold these strings; run this to see where they came from.
"""
import hashlib
import json

from alibabacloud_openapi_util.client import Client as AliyunUtil
from tencentcloud.common.sign import Sign


class Req:
    pass


def aliyun():
    req = Req()
    req.method = "POST"
    req.pathname = "/"
    req.query = {
        "PhoneNumbers": "13812345678",
        "SignName": "山东省总工会",
        "TemplateCode": "SMS_465390001",
        "TemplateParam": json.dumps({"event": "会聚良缘 +*~ 联谊"}, ensure_ascii=False, separators=(",", ":")),
        "OutId": "n3k9v0q2m7x1c",
    }
    empty = hashlib.sha256(b"").hexdigest()
    req.headers = {
        "host": "dysmsapi.aliyuncs.com",
        "x-acs-action": "SendSms",
        "x-acs-content-sha256": empty,
        "x-acs-date": "2026-12-05T03:30:00Z",
        "x-acs-signature-nonce": "3a8b7c6d5e4f30211203a4b5c6d7e8f9",
        "x-acs-version": "2017-05-25",
    }
    return AliyunUtil.get_authorization(req, "ACS3-HMAC-SHA256", empty, "LTAI5tExampleKeyId", "ExampleSecret0123456789abcdef")


def tencent():
    body = json.dumps({
        "PhoneNumberSet": ["+8613812345678"],
        "SmsSdkAppId": "1400006666",
        "SignName": "山东省总工会",
        "TemplateId": "1110",
        "TemplateParamSet": ["会聚良缘 +*~ 联谊", "12月20日09:00"],
        "SessionContext": "n3k9v0q2m7x1c",
    }, ensure_ascii=False, separators=(",", ":"))
    timestamp = 1796441400  # 2026-12-05T03:30:00Z
    date = "2026-12-05"
    canonical = "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:sms.tencentcloudapi.com\n\ncontent-type;host\n" + hashlib.sha256(body.encode()).hexdigest()
    s2s = "TC3-HMAC-SHA256\n%d\n%s/sms/tc3_request\n%s" % (timestamp, date, hashlib.sha256(canonical.encode()).hexdigest())
    sig = Sign.sign_tc3("ExampleSecretKey0123456789abcdef", date, "sms", s2s)
    return body, "TC3-HMAC-SHA256 Credential=AKIDExampleSecretId/%s/sms/tc3_request, SignedHeaders=content-type;host, Signature=%s" % (date, sig)


if __name__ == "__main__":
    print("aliyun:", aliyun())
    body, auth = tencent()
    print("tencent body:", body)
    print("tencent:", auth)
