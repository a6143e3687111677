//! Delivery receipts (回执) in the formats the providers push them:
//! - Aliyun SMS `SmsReport` (HTTP batch push): a JSON array of
//!   `{phone_number, send_time, report_time, success, err_code, err_msg,
//!   sms_size, biz_id, out_id}`; the callee answers `{"code": 0, "msg": "接收成功"}`.
//! - Tencent Cloud SMS status callback (短信下发状态通知): a JSON array of
//!   `{user_receive_time, nationcode, mobile, report_status, errmsg,
//!   description, sid}`, `sid` being `SendSms`'s `SerialNo`; the callee
//!   answers `{"result": 0, "errmsg": "OK"}`.

use serde::Deserialize;

use crate::domain::notify::NotificationId;
use crate::domain::user::Phone;
use crate::store::SmsReceipt;

/// A receipt, with the number it names (when it names one yizhan can read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub receipt: SmsReceipt,
    pub phone: Option<Phone>,
}

/// Why a body is not a batch of receipts: the field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadReceipt {
    pub field: String,
    pub problem: String,
}

#[derive(Deserialize)]
struct AliyunReport {
    phone_number: Option<String>,
    success: Option<serde_json::Value>,
    err_code: Option<String>,
    err_msg: Option<String>,
    biz_id: Option<String>,
    out_id: Option<String>,
}

#[derive(Deserialize)]
struct TencentReport {
    mobile: Option<String>,
    nationcode: Option<String>,
    report_status: Option<String>,
    errmsg: Option<String>,
    description: Option<String>,
    sid: Option<String>,
    /// Not in Tencent's documents; taken if a gateway passes our
    /// `SessionContext` back here.
    #[serde(default, alias = "SessionContext")]
    ext: Option<serde_json::Value>,
}

fn array<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<Vec<T>, BadReceipt> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| BadReceipt {
        field: "(body)".into(),
        problem: format!("not JSON: {e}"),
    })?;
    let items = match v {
        serde_json::Value::Array(a) => a,
        // A single report, as some gateways send.
        o @ serde_json::Value::Object(_) => vec![o],
        _ => {
            return Err(BadReceipt {
                field: "(body)".into(),
                problem: "expected an array of reports".into(),
            });
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value(item).map_err(|e| BadReceipt {
                field: format!("[{i}]"),
                problem: e.to_string(),
            })
        })
        .collect()
}

/// Our notification id from an `OutId` / `SessionContext` (a sign-in
/// code's id, `c…`, names none).
fn notification(out_id: Option<&str>) -> Option<NotificationId> {
    out_id.and_then(|s| s.parse().ok())
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

pub fn aliyun(body: &[u8]) -> Result<Vec<Parsed>, BadReceipt> {
    array::<AliyunReport>(body)?
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let delivered = match r.success {
                Some(serde_json::Value::Bool(b)) => b,
                Some(serde_json::Value::String(s)) if s == "true" || s == "false" => s == "true",
                _ => {
                    return Err(BadReceipt {
                        field: format!("[{i}].success"),
                        problem: "expected true or false".into(),
                    });
                }
            };
            let out_id = nonempty(r.out_id);
            let reference = nonempty(r.biz_id);
            if out_id.is_none() && reference.is_none() {
                return Err(BadReceipt {
                    field: format!("[{i}].biz_id"),
                    problem: "a report names its text by biz_id or out_id".into(),
                });
            }
            Ok(Parsed {
                receipt: SmsReceipt {
                    notification: notification(out_id.as_deref()),
                    reference,
                    delivered,
                    detail: format!(
                        "{} {}",
                        r.err_code.unwrap_or_default(),
                        r.err_msg.unwrap_or_default()
                    )
                    .trim()
                    .to_owned(),
                },
                phone: r.phone_number.and_then(|p| p.parse().ok()),
            })
        })
        .collect()
}

pub fn tencent(body: &[u8]) -> Result<Vec<Parsed>, BadReceipt> {
    array::<TencentReport>(body)?
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let delivered = match r.report_status.as_deref() {
                Some("SUCCESS") => true,
                Some("FAIL") => false,
                _ => {
                    return Err(BadReceipt {
                        field: format!("[{i}].report_status"),
                        problem: "expected SUCCESS or FAIL".into(),
                    });
                }
            };
            let reference = nonempty(r.sid);
            let context = match r.ext {
                Some(serde_json::Value::String(s)) => Some(s),
                Some(serde_json::Value::Object(o)) => o
                    .get("SessionContext")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                _ => None,
            };
            if reference.is_none() && context.is_none() {
                return Err(BadReceipt {
                    field: format!("[{i}].sid"),
                    problem: "a report names its text by sid".into(),
                });
            }
            let phone = match r.nationcode.as_deref() {
                None | Some("86") => r.mobile.and_then(|p| p.parse().ok()),
                Some(_) => None,
            };
            Ok(Parsed {
                receipt: SmsReceipt {
                    notification: notification(context.as_deref()),
                    reference,
                    delivered,
                    detail: format!(
                        "{} {}",
                        r.errmsg.unwrap_or_default(),
                        r.description.unwrap_or_default()
                    )
                    .trim()
                    .to_owned(),
                },
                phone,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliyuns_documented_report_is_read() {
        let n = NotificationId::random().to_string();
        let body = r#"[{"phone_number":"13812345678","send_time":"2026-12-05 11:12:13","report_time":"2026-12-05 11:12:14","success":true,"err_code":"DELIVERED","err_msg":"用户接收成功","sms_size":"1","biz_id":"932702304080415357^0","out_id":"NID"},{"phone_number":"13812345679","success":false,"err_code":"MK:0001","err_msg":"空号","biz_id":"1^0","out_id":"c00000000000000ff"}]"#.replace("NID", &n);
        let r = aliyun(body.as_bytes()).unwrap();
        assert_eq!(r.len(), 2);
        assert!(r[0].receipt.delivered);
        assert_eq!(
            r[0].receipt.reference.as_deref(),
            Some("932702304080415357^0")
        );
        assert_eq!(r[0].receipt.notification.map(|n| n.to_string()), Some(n));
        assert_eq!(r[0].receipt.detail, "DELIVERED 用户接收成功");
        assert_eq!(r[0].phone.as_ref().map(|p| p.as_str()), Some("13812345678"));
        assert!(!r[1].receipt.delivered);
        assert_eq!(
            r[1].receipt.notification, None,
            "a code's id names no notification"
        );
        let bad = aliyun(br#"[{"biz_id":"1","success":"maybe"}]"#).unwrap_err();
        assert_eq!(bad.field, "[0].success");
        assert_eq!(aliyun(b"{").unwrap_err().field, "(body)");
        assert_eq!(
            aliyun(br#"[{"success":true}]"#).unwrap_err().field,
            "[0].biz_id"
        );
    }

    #[test]
    fn tencents_documented_report_is_read() {
        let body = r#"[{"user_receive_time":"2026-12-05 08:03:04","nationcode":"86","mobile":"13812345678","report_status":"SUCCESS","errmsg":"DELIVRD","description":"用户短信送达成功","sid":"5000:1045710669157053657849499619"}]"#;
        let r = tencent(body.as_bytes()).unwrap();
        assert!(r[0].receipt.delivered);
        assert_eq!(
            r[0].receipt.reference.as_deref(),
            Some("5000:1045710669157053657849499619")
        );
        assert_eq!(r[0].receipt.notification, None);
        assert_eq!(r[0].phone.as_ref().map(|p| p.as_str()), Some("13812345678"));
        let bad = tencent(br#"[{"sid":"1","report_status":"DONE"}]"#).unwrap_err();
        assert_eq!(bad.field, "[0].report_status");
    }
}
