//! Aliyun SMS (阿里云短信服务): `SendSms`, API version 2017-05-25, signed
//! with the V3 request signature ACS3-HMAC-SHA256 (as Aliyun's own SDKs do
//! by default): the parameters in the query string, an empty body, and
//! `Authorization: ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…`
//! over the method, path, canonical query, the signed headers and the
//! body's SHA-256. Success is `Code == "OK"`, not HTTP 200.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Deserialize;

use super::config::AliyunSettings;
use super::{Common, Reply, SmsSender, Text, hmac_sha256};
use crate::auth::{hex, sha256_hex};
use crate::domain::sms::{Answer, Provider, Template};

pub const ACTION: &str = "SendSms";
pub const VERSION: &str = "2017-05-25";
const ALGORITHM: &str = "ACS3-HMAC-SHA256";

pub struct Aliyun {
    settings: AliyunSettings,
    common: Common,
}

/// A signed request, ready to send (built without I/O, so it is tested
/// against Aliyun's own signing code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The URL's query, encoded as it was signed.
    pub query: String,
    /// Every header to send, the signed ones and `Authorization`.
    pub headers: Vec<(String, String)>,
}

/// RFC 3986 percent-encoding as Aliyun canonicalises (Python's
/// `quote(s, safe='~')`): unreserved characters stay, everything else is
/// `%XX` of its UTF-8 bytes (space is `%20`, `+` `%2B`, `*` `%2A`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sign a `SendSms` with `params` for `host` at `at` with `nonce`.
pub fn sign(
    settings: &AliyunSettings,
    host: &str,
    params: &BTreeMap<&str, String>,
    at: DateTime<Utc>,
    nonce: &str,
) -> Signed {
    // Sorted by name (a BTreeMap), each name and value encoded.
    let query = params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let body_hash = sha256_hex(b"");
    // Lower-case names, sorted.
    let signed = [
        ("host", host.to_owned()),
        ("x-acs-action", ACTION.to_owned()),
        ("x-acs-content-sha256", body_hash.clone()),
        ("x-acs-date", at.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ("x-acs-signature-nonce", nonce.to_owned()),
        ("x-acs-version", VERSION.to_owned()),
    ];
    let canonical_headers: String = signed
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let signed_names = signed.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(";");
    let canonical_request =
        format!("POST\n/\n{query}\n{canonical_headers}\n{signed_names}\n{body_hash}");
    let string_to_sign = format!("{ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()));
    let signature = hex(&hmac_sha256(
        settings.access_key_secret.expose().as_bytes(),
        string_to_sign.as_bytes(),
    ));
    let mut headers: Vec<(String, String)> =
        signed.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    headers.push(("accept".into(), "application/json".into()));
    headers.push((
        "authorization".into(),
        format!(
            "{ALGORITHM} Credential={},SignedHeaders={signed_names},Signature={signature}",
            settings.access_key_id
        ),
    ));
    Signed { query, headers }
}

/// `SendSms`'s parameters for one text.
pub fn params<'a>(
    settings: &AliyunSettings,
    template: &Template,
    phone: &str,
    values: &[(crate::domain::sms::Var, String)],
    out_id: &str,
) -> BTreeMap<&'a str, String> {
    let template_param: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), serde_json::Value::String(v.clone())))
        .collect();
    BTreeMap::from([
        ("PhoneNumbers", phone.to_owned()),
        ("SignName", settings.sign_name.clone()),
        ("TemplateCode", template.id.clone()),
        (
            "TemplateParam",
            serde_json::Value::Object(template_param).to_string(),
        ),
        ("OutId", out_id.to_owned()),
    ])
}

/// `host[:port]` as the Host header carries it.
pub(crate) fn host_header(u: &url::Url) -> String {
    let host = u.host_str().unwrap_or_default();
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Response {
    code: Option<String>,
    message: Option<String>,
    biz_id: Option<String>,
    request_id: Option<String>,
}

/// What an HTTP answer from `SendSms` says.
pub fn read_answer(status: u16, body: &[u8]) -> Reply {
    match serde_json::from_slice::<Response>(body) {
        Ok(Response {
            code: Some(code),
            message,
            biz_id,
            request_id,
        }) => {
            let answer = if code == "OK" {
                match biz_id {
                    Some(b) => Answer::Accepted { reference: b },
                    None => Answer::NoAnswer {
                        why: "OK without a BizId".into(),
                    },
                }
            } else {
                Answer::Refused {
                    code,
                    message: message.unwrap_or_default(),
                }
            };
            Reply { answer, request_id }
        }
        _ => Reply::refused(
            format!("HTTP {status}"),
            String::from_utf8_lossy(&body[..body.len().min(200)]),
        ),
    }
}

impl Aliyun {
    pub(crate) fn new(settings: AliyunSettings, common: Common) -> Aliyun {
        Aliyun { settings, common }
    }
}

#[async_trait]
impl SmsSender for Aliyun {
    fn name(&self) -> &'static str {
        "aliyun"
    }

    fn provider(&self) -> Option<Provider> {
        Some(Provider::Aliyun)
    }

    async fn send(&self, text: &Text<'_>) -> Reply {
        let (template, values) = match self.common.fill(
            text,
            "isv.SMS_TEMPLATE_ILLEGAL",
            "isv.TEMPLATE_MISSING_PARAMETERS",
        ) {
            Ok(t) => t,
            Err(refused) => return refused,
        };
        let params = params(
            &self.settings,
            template,
            text.phone.as_str(),
            &values,
            text.id,
        );
        let host = host_header(&self.common.endpoint);
        let nonce = hex(&rand::rng().random::<[u8; 16]>());
        let signed = sign(&self.settings, &host, &params, Utc::now(), &nonce);
        let mut url = self.common.endpoint.clone();
        url.set_path("/");
        url.set_query(Some(&signed.query));
        let mut req = self.common.http.post(url);
        for (k, v) in &signed.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        self.common.post(req, read_answer).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::config::Secret;

    #[test]
    fn encoding_is_rfc3986_as_aliyun_canonicalises() {
        assert_eq!(percent_encode("a b+c*d~e"), "a%20b%2Bc%2Ad~e");
        assert_eq!(percent_encode("驿"), "%E9%A9%BF");
        assert_eq!(
            percent_encode("{\"k\":\"v/\"}"),
            "%7B%22k%22%3A%22v%2F%22%7D"
        );
    }

    /// The expected signature was computed by Aliyun's published signing
    /// code (PyPI `alibabacloud-openapi-util` 0.2.4,
    /// `Client.get_authorization`) from the same request:
    /// `tests/sms_vectors.py` prints it.
    #[test]
    fn the_signature_matches_aliyuns_own_code() {
        let settings = AliyunSettings {
            access_key_id: "LTAI5tExampleKeyId".into(),
            access_key_secret: Secret::new("ExampleSecret0123456789abcdef"),
            sign_name: "山东省总工会".into(),
        };
        let template = Template {
            id: "SMS_465390001".into(),
            params: vec![crate::domain::sms::Var::Event],
        };
        let p = params(
            &settings,
            &template,
            "13812345678",
            &[(crate::domain::sms::Var::Event, "会聚良缘 +*~ 联谊".into())],
            "n3k9v0q2m7x1c",
        );
        let at = DateTime::parse_from_rfc3339("2026-12-05T03:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let signed = sign(
            &settings,
            "dysmsapi.aliyuncs.com",
            &p,
            at,
            "3a8b7c6d5e4f30211203a4b5c6d7e8f9",
        );
        let auth = &signed
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert_eq!(auth, ALIYUN_VECTOR);
        assert!(
            signed
                .query
                .contains("TemplateParam=%7B%22event%22%3A%22%E4%BC%9A")
        );
        assert!(signed.query.contains("%20%2B%2A~%20"));
    }

    /// From `python3 tests/sms_vectors.py` (Aliyun's own code).
    const ALIYUN_VECTOR: &str = "ACS3-HMAC-SHA256 Credential=LTAI5tExampleKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=3bb2dbb0f4534e82e2da48078bdf5202ea06d954f914a86d33a9b939ea60d7f2";

    #[test]
    fn answers_are_read_by_code_not_status() {
        let ok = read_answer(
            200,
            br#"{"Message":"OK","RequestId":"F655A8D5-B967-440B-8683-DAD6FF8DE990","Code":"OK","BizId":"900619746936498440^0"}"#,
        );
        assert_eq!(
            ok.answer,
            Answer::Accepted {
                reference: "900619746936498440^0".into()
            }
        );
        assert_eq!(
            ok.request_id.as_deref(),
            Some("F655A8D5-B967-440B-8683-DAD6FF8DE990")
        );
        let limited = read_answer(
            200,
            "{\"Message\":\"触发分钟级流控Permits:1\",\"RequestId\":\"x\",\"Code\":\"isv.BUSINESS_LIMIT_CONTROL\"}".as_bytes(),
        );
        assert!(
            matches!(limited.answer, Answer::Refused { ref code, .. } if code == "isv.BUSINESS_LIMIT_CONTROL")
        );
        let bad = read_answer(400, br#"{"RequestId":"y","HostId":"dysmsapi.aliyuncs.com","Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation."}"#);
        assert!(
            matches!(bad.answer, Answer::Refused { ref code, .. } if code == "SignatureDoesNotMatch")
        );
        let html = read_answer(502, b"<html>Bad Gateway</html>");
        assert!(matches!(html.answer, Answer::Refused { ref code, .. } if code == "HTTP 502"));
    }
}
