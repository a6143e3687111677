//! Tencent Cloud SMS (腾讯云短信): `SendSms`, API version 2021-01-11, a JSON
//! body signed with TC3-HMAC-SHA256 (`X-TC-Action`, `X-TC-Version`,
//! `X-TC-Timestamp`, `X-TC-Region`; the signed headers `content-type;host`,
//! as Tencent's own SDKs sign). Success is the number's
//! `SendStatusSet[].Code == "Ok"`; a request-level failure is
//! `Response.Error`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::aliyun::host_header;
use super::config::TencentSettings;
use super::{Common, Reply, SmsSender, Text, hmac_sha256};
use crate::auth::{hex, sha256_hex};
use crate::domain::sms::{Answer, Provider};

pub const ACTION: &str = "SendSms";
pub const VERSION: &str = "2021-01-11";
const SERVICE: &str = "sms";
const CONTENT_TYPE: &str = "application/json; charset=utf-8";

pub struct Tencent {
    settings: TencentSettings,
    common: Common,
}

/// `SendSms`'s body, in the order Tencent documents its fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Body<'a> {
    pub phone_number_set: [String; 1],
    pub sms_sdk_app_id: &'a str,
    pub sign_name: &'a str,
    pub template_id: &'a str,
    pub template_param_set: Vec<String>,
    pub session_context: &'a str,
}

/// The `Authorization` header for `body` sent to `host` at `at`.
pub fn authorization(
    settings: &TencentSettings,
    host: &str,
    body: &[u8],
    at: DateTime<Utc>,
) -> String {
    let date = at.format("%Y-%m-%d").to_string();
    let canonical_request = format!(
        "POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{host}\n\ncontent-type;host\n{}",
        sha256_hex(body)
    );
    let scope = format!("{date}/{SERVICE}/tc3_request");
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{}\n{scope}\n{}",
        at.timestamp(),
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac_sha256(
        format!("TC3{}", settings.secret_key.expose()).as_bytes(),
        date.as_bytes(),
    );
    let k_service = hmac_sha256(&k_date, SERVICE.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"tc3_request");
    let signature = hex(&hmac_sha256(&k_signing, string_to_sign.as_bytes()));
    format!(
        "TC3-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=content-type;host, Signature={signature}",
        settings.secret_id
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope {
    response: Option<ResponseBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResponseBody {
    error: Option<ErrorBody>,
    #[serde(default)]
    send_status_set: Vec<SendStatus>,
    request_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendStatus {
    serial_no: Option<String>,
    code: String,
    #[serde(default)]
    message: String,
}

/// What an HTTP answer from `SendSms` says about the one number sent.
pub fn read_answer(status: u16, body: &[u8]) -> Reply {
    let Ok(Envelope {
        response: Some(r), ..
    }) = serde_json::from_slice::<Envelope>(body)
    else {
        return Reply::refused(
            format!("HTTP {status}"),
            String::from_utf8_lossy(&body[..body.len().min(200)]),
        );
    };
    let answer = if let Some(e) = r.error {
        Answer::Refused {
            code: e.code,
            message: e.message,
        }
    } else if let Some(s) = r.send_status_set.into_iter().next() {
        match (s.code.as_str(), s.serial_no) {
            ("Ok", Some(serial)) => Answer::Accepted { reference: serial },
            ("Ok", None) => Answer::NoAnswer {
                why: "Ok without a SerialNo".into(),
            },
            _ => Answer::Refused {
                code: s.code,
                message: s.message,
            },
        }
    } else {
        Answer::NoAnswer {
            why: "an answer with neither Error nor SendStatusSet".into(),
        }
    };
    Reply {
        answer,
        request_id: r.request_id,
    }
}

impl Tencent {
    pub(crate) fn new(settings: TencentSettings, common: Common) -> Tencent {
        Tencent { settings, common }
    }
}

#[async_trait]
impl SmsSender for Tencent {
    fn name(&self) -> &'static str {
        "tencent"
    }

    fn provider(&self) -> Option<Provider> {
        Some(Provider::Tencent)
    }

    async fn send(&self, text: &Text<'_>) -> Reply {
        let (template, values) = match self.common.fill(
            text,
            "FailedOperation.TemplateIncorrectOrUnapproved",
            "InvalidParameterValue.TemplateParameterFormatError",
        ) {
            Ok(t) => t,
            Err(refused) => return refused,
        };
        let body = Body {
            phone_number_set: [format!("+86{}", text.phone.as_str())],
            sms_sdk_app_id: &self.settings.sdk_app_id,
            sign_name: &self.settings.sign_name,
            template_id: &template.id,
            template_param_set: values.into_iter().map(|(_, v)| v).collect(),
            session_context: text.id,
        };
        let body = serde_json::to_vec(&body).expect("a body serialises");
        let host = host_header(&self.common.endpoint);
        let now = Utc::now();
        let mut url = self.common.endpoint.clone();
        url.set_path("/");
        let req = self
            .common
            .http
            .post(url)
            .header(
                "authorization",
                authorization(&self.settings, &host, &body, now),
            )
            .header("content-type", CONTENT_TYPE)
            .header("host", &host)
            .header("x-tc-action", ACTION)
            .header("x-tc-timestamp", now.timestamp().to_string())
            .header("x-tc-version", VERSION)
            .header("x-tc-region", &self.settings.region)
            .body(body);
        self.common.post(req, read_answer).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::config::Secret;

    /// The expected body and signature come from Tencent's published code:
    /// `tests/sms_vectors.py` (PyPI `tencentcloud-sdk-python-common`,
    /// `Sign.sign_tc3`, with the SDK's canonical request).
    #[test]
    fn the_signature_matches_tencents_own_code() {
        let settings = TencentSettings {
            secret_id: "AKIDExampleSecretId".into(),
            secret_key: Secret::new("ExampleSecretKey0123456789abcdef"),
            sdk_app_id: "1400006666".into(),
            sign_name: "山东省总工会".into(),
            region: "ap-guangzhou".into(),
        };
        let body = Body {
            phone_number_set: ["+8613812345678".into()],
            sms_sdk_app_id: "1400006666",
            sign_name: "山东省总工会",
            template_id: "1110",
            template_param_set: vec!["会聚良缘 +*~ 联谊".into(), "12月20日09:00".into()],
            session_context: "n3k9v0q2m7x1c",
        };
        let body = serde_json::to_string(&body).unwrap();
        assert_eq!(
            body,
            r#"{"PhoneNumberSet":["+8613812345678"],"SmsSdkAppId":"1400006666","SignName":"山东省总工会","TemplateId":"1110","TemplateParamSet":["会聚良缘 +*~ 联谊","12月20日09:00"],"SessionContext":"n3k9v0q2m7x1c"}"#
        );
        let at = DateTime::from_timestamp(1_796_441_400, 0).unwrap();
        assert_eq!(
            authorization(&settings, "sms.tencentcloudapi.com", body.as_bytes(), at),
            "TC3-HMAC-SHA256 Credential=AKIDExampleSecretId/2026-12-05/sms/tc3_request, SignedHeaders=content-type;host, Signature=e152e5c6e9c53d78c4ce532a02b4358e0d0e3b35f21ccae3da2e9a98f44a3712"
        );
    }

    #[test]
    fn the_numbers_code_decides_not_the_status() {
        let ok = read_answer(
            200,
            br#"{"Response":{"SendStatusSet":[{"SerialNo":"5000:1045710669157053657849499619","PhoneNumber":"+8618511122233","Fee":1,"SessionContext":"test","Code":"Ok","Message":"send success","IsoCode":"CN"}],"RequestId":"a0aabda6-cf91-4f3e-a81f-9198114a2279"}}"#,
        );
        assert_eq!(
            ok.answer,
            Answer::Accepted {
                reference: "5000:1045710669157053657849499619".into()
            }
        );
        let limited = read_answer(
            200,
            br#"{"Response":{"SendStatusSet":[{"SerialNo":"","PhoneNumber":"+8618511122233","Fee":0,"SessionContext":"","Code":"LimitExceeded.PhoneNumberThirtySecondLimit","Message":"the number of sms messages sent from a single mobile number within 30 seconds exceeds the upper limit","IsoCode":"CN"}],"RequestId":"b"}}"#,
        );
        assert!(
            matches!(limited.answer, Answer::Refused { ref code, .. } if code == "LimitExceeded.PhoneNumberThirtySecondLimit")
        );
        let auth = read_answer(
            200,
            br#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"The provided credentials could not be validated."},"RequestId":"c"}}"#,
        );
        assert!(
            matches!(auth.answer, Answer::Refused { ref code, .. } if code == "AuthFailure.SignatureFailure")
        );
        assert_eq!(auth.request_id.as_deref(), Some("c"));
        assert!(
            matches!(read_answer(502, b"bad gateway").answer, Answer::Refused { ref code, .. } if code == "HTTP 502")
        );
    }
}
