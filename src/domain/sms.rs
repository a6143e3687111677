//! Texts (SMS): the messages yizhan texts and the values each one has, how a
//! provider's pre-approved template (模板) takes them, and what every answer
//! of a provider means. Pure: the `sms` module does the talking.

use std::fmt;

use chrono::{DateTime, Duration, Utc};

use super::hours::SHANGHAI;
use super::notify::NoticeType;
use super::retry::{Retry, next_try};

/// A message yizhan texts; each has a template of its own in the provider's
/// console (the keys of `[templates]` in the SMS configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Message {
    SignInCode,
    SeatOffered,
    EventCancelled,
    EventChanged,
    Reminder,
}

impl Message {
    pub const ALL: [Message; 5] = [
        Message::SignInCode,
        Message::SeatOffered,
        Message::EventCancelled,
        Message::EventChanged,
        Message::Reminder,
    ];

    /// Its key under `[templates]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Message::SignInCode => "sign_in_code",
            Message::SeatOffered => "seat_offered",
            Message::EventCancelled => "event_cancelled",
            Message::EventChanged => "event_changed",
            Message::Reminder => "reminder",
        }
    }

    /// The values this message has, that its template may use.
    pub fn values(self) -> &'static [Var] {
        match self {
            Message::SignInCode => &[Var::Code],
            Message::SeatOffered => &[Var::Event, Var::Site, Var::Time, Var::Deadline],
            Message::EventCancelled | Message::EventChanged | Message::Reminder => {
                &[Var::Event, Var::Site, Var::Time]
            }
        }
    }

    /// The message a notice is texted as, when it is texted at all.
    pub fn for_notice(kind: NoticeType) -> Option<Message> {
        match kind {
            NoticeType::SeatOffered => Some(Message::SeatOffered),
            NoticeType::EventCancelled => Some(Message::EventCancelled),
            NoticeType::EventChanged => Some(Message::EventChanged),
            NoticeType::EventReminder => Some(Message::Reminder),
            _ => None,
        }
    }
}

impl std::str::FromStr for Message {
    type Err = ();
    fn from_str(s: &str) -> Result<Message, ()> {
        Message::ALL.into_iter().find(|m| m.as_str() == s).ok_or(())
    }
}

/// One of yizhan's values a template variable takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    /// The sign-in code.
    Code,
    /// The event's title.
    Event,
    /// Its site's name (or its venue's).
    Site,
    /// Its start, `MM月DD日HH:mm` in China time.
    Time,
    /// An offer's deadline, the same format.
    Deadline,
}

impl Var {
    pub const ALL: [Var; 5] = [Var::Code, Var::Event, Var::Site, Var::Time, Var::Deadline];

    /// Its name in `params` (and, for Aliyun, the template's `${…}` name).
    pub fn as_str(self) -> &'static str {
        match self {
            Var::Code => "code",
            Var::Event => "event",
            Var::Site => "site",
            Var::Time => "time",
            Var::Deadline => "deadline",
        }
    }
}

impl std::str::FromStr for Var {
    type Err = ();
    fn from_str(s: &str) -> Result<Var, ()> {
        Var::ALL.into_iter().find(|v| v.as_str() == s).ok_or(())
    }
}

/// `12月20日09:00`: a time as texts show it, in China time.
pub fn china_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&SHANGHAI)
        .format("%m月%d日%H:%M")
        .to_string()
}

/// The values of one text (those its message has).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Values {
    pub code: Option<String>,
    pub event: Option<String>,
    pub site: Option<String>,
    pub time: Option<String>,
    pub deadline: Option<String>,
}

impl Values {
    pub fn get(&self, v: Var) -> Option<&str> {
        match v {
            Var::Code => self.code.as_deref(),
            Var::Event => self.event.as_deref(),
            Var::Site => self.site.as_deref(),
            Var::Time => self.time.as_deref(),
            Var::Deadline => self.deadline.as_deref(),
        }
    }
}

/// A sign-in code is a secret: `Debug` never shows it.
impl fmt::Debug for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Values")
            .field("code", &self.code.as_ref().map(|_| "******"))
            .field("event", &self.event)
            .field("site", &self.site)
            .field("time", &self.time)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// A template as approved in the provider's console: its id, and which of
/// yizhan's values fill its variables, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub id: String,
    pub params: Vec<Var>,
}

/// Is `t` fit for `message`? `Err` names the field (`id` or `params`) and
/// says what is wrong.
pub fn check_template(message: Message, t: &Template) -> Result<(), (&'static str, String)> {
    let params = |why: String| Err(("params", why));
    if t.id.trim().is_empty() {
        return Err(("id", "the template has no id".into()));
    }
    for (i, v) in t.params.iter().enumerate() {
        if !message.values().contains(v) {
            return params(format!(
                "params: `{}` is not a value of {} (it has: {})",
                v.as_str(),
                message.as_str(),
                names(message.values())
            ));
        }
        if t.params[..i].contains(v) {
            return params(format!("params: `{}` is listed twice", v.as_str()));
        }
    }
    if message == Message::SignInCode && t.params != [Var::Code] {
        return params("params: the sign-in template takes `code` alone".into());
    }
    Ok(())
}

fn names(vars: &[Var]) -> String {
    vars.iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The template's variables filled from `values`, in order, each cut to
/// `max_chars` characters (a provider's limit on one variable; the cut ends
/// with `…`). `Err` names a value the text lacks.
pub fn fill(t: &Template, values: &Values, max_chars: usize) -> Result<Vec<(Var, String)>, Var> {
    t.params
        .iter()
        .map(|&v| {
            let s = values.get(v).ok_or(v)?;
            Ok((v, cut(s, max_chars)))
        })
        .collect()
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// The providers yizhan speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Aliyun,
    Tencent,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aliyun => "aliyun",
            Provider::Tencent => "tencent",
        }
    }

    /// The most characters one variable may hold (Aliyun: 35; Tencent: 12
    /// for a notice's variable, its error 1036).
    pub fn max_var_chars(self) -> usize {
        match self {
            Provider::Aliyun => 35,
            Provider::Tencent => 12,
        }
    }
}

/// What a provider said to one `SendSms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It took the text: its id for the text (Aliyun's `BizId`, Tencent's `SerialNo`).
    Accepted { reference: String },
    /// It refused, with its error code and message.
    Refused { code: String, message: String },
    /// No answer (a timeout, a connection lost, a body that is not the
    /// provider's): the text may or may not have gone.
    NoAnswer { why: String },
}

/// Why a number cannot be texted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unreachable {
    /// Not a number the provider can text (空号, a malformed number).
    InvalidNumber,
    /// The person unsubscribed (replied TD) or is on the carriers' do-not-disturb list.
    Unsubscribed,
    /// On the provider's or a carrier's blacklist.
    Blacklisted,
}

impl Unreachable {
    pub const ALL: [Unreachable; 3] = [
        Unreachable::InvalidNumber,
        Unreachable::Unsubscribed,
        Unreachable::Blacklisted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Unreachable::InvalidNumber => "invalid_number",
            Unreachable::Unsubscribed => "unsubscribed",
            Unreachable::Blacklisted => "blacklisted",
        }
    }

    pub fn parse(s: &str) -> Option<Unreachable> {
        Unreachable::ALL.into_iter().find(|u| u.as_str() == s)
    }
}

/// What in the configuration (or the account behind it) is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Misconfigured {
    /// The signature (签名) is not approved, or not the one sent.
    Signature,
    /// The template is not approved, or the text does not match it.
    Template,
    /// The template's variables and what was sent disagree.
    Parameters,
    /// The account's balance or SMS package is exhausted.
    Balance,
    /// The account's own daily quota, set in the provider's console.
    Quota,
    /// The keys are wrong, disabled or not allowed to send.
    Credentials,
    /// The account is suspended or the service not opened.
    Account,
    /// This machine's clock is off (the signature's time is refused).
    Clock,
}

impl Misconfigured {
    pub fn as_str(self) -> &'static str {
        match self {
            Misconfigured::Signature => "signature",
            Misconfigured::Template => "template",
            Misconfigured::Parameters => "parameters",
            Misconfigured::Balance => "balance",
            Misconfigured::Quota => "quota",
            Misconfigured::Credentials => "credentials",
            Misconfigured::Account => "account",
            Misconfigured::Clock => "clock",
        }
    }
}

/// A provider's per-number frequency window (频率限制).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    ThirtySeconds,
    Minute,
    Hour,
    /// Until midnight, China time.
    Day,
}

impl Window {
    /// When a number limited at `now` may be texted again.
    pub fn ends(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Window::ThirtySeconds => now + Duration::seconds(30),
            Window::Minute => now + Duration::minutes(1),
            Window::Hour => now + Duration::hours(1),
            Window::Day => {
                let tomorrow = now.with_timezone(&SHANGHAI).date_naive() + Duration::days(1);
                tomorrow
                    .and_hms_opt(0, 0, 0)
                    .expect("midnight exists")
                    .and_local_timezone(SHANGHAI)
                    .single()
                    .expect("a fixed offset")
                    .with_timezone(&Utc)
            }
        }
    }
}

/// What an answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Accepted,
    /// Throttling, an internal error, no answer: try again after the backoff.
    RetryLater,
    /// The provider's frequency limit for this number: wait out its window.
    NumberLimited(Window),
    /// This number cannot be texted: stop texting it.
    Unreachable(Unreachable),
    /// The configuration is wrong: no retry per text; an operator must act.
    Misconfigured(Misconfigured),
    /// This text cannot go as it is (a blocked word or a link in a value, a
    /// value too long): it is given up, other texts are not affected.
    Rejected,
    /// A code in no table: retried like [`Class::RetryLater`], and logged.
    Unknown,
}

use Class as C;
use Misconfigured as M;
use Unreachable as U;

/// Aliyun's `SendSms` codes (API error codes, 2017-05-25, and the
/// platform's common codes). `isv.BUSINESS_LIMIT_CONTROL` is judged by its
/// message ([`aliyun_window`]).
pub const ALIYUN_CODES: &[(&str, Class)] = &[
    ("OK", C::Accepted),
    (
        "isv.MOBILE_NUMBER_ILLEGAL",
        C::Unreachable(U::InvalidNumber),
    ),
    (
        "isv.NOT_SUPPORTED_COUNTRY",
        C::Unreachable(U::InvalidNumber),
    ),
    ("isv.COUNTRY_RESTRICTED", C::Unreachable(U::InvalidNumber)),
    ("isv.SMS_TEMPLATE_ILLEGAL", C::Misconfigured(M::Template)),
    (
        "isv.SMS_CONTENT_CODE_ILLEGAL",
        C::Misconfigured(M::Template),
    ),
    ("isv.SMS_SIGNATURE_ILLEGAL", C::Misconfigured(M::Signature)),
    ("isv.SMS_SIGN_NAME_ILLEGAL", C::Misconfigured(M::Signature)),
    (
        "isv.SMS_SIGNATURE_SCENE_ILLEGAL",
        C::Misconfigured(M::Signature),
    ),
    (
        "isv.TEMPLATE_MISSING_PARAMETERS",
        C::Misconfigured(M::Parameters),
    ),
    (
        "isv.TEMPLATE_PARAMS_ILLEGAL",
        C::Misconfigured(M::Parameters),
    ),
    (
        "isv.CONTENT_MISSING_PARAMETERS",
        C::Misconfigured(M::Parameters),
    ),
    ("isv.INVALID_JSON_PARAM", C::Misconfigured(M::Parameters)),
    ("isv.INVALID_PARAMETERS", C::Misconfigured(M::Parameters)),
    (
        "isv.MOBILE_COUNT_OVER_LIMIT",
        C::Misconfigured(M::Parameters),
    ),
    ("MissingParameter", C::Misconfigured(M::Parameters)),
    ("isv.AMOUNT_NOT_ENOUGH", C::Misconfigured(M::Balance)),
    ("isv.OUT_OF_SERVICE", C::Misconfigured(M::Balance)),
    ("isv.BILLING_DEDUCTION_ERROR", C::RetryLater),
    ("isv.DAY_LIMIT_CONTROL", C::Misconfigured(M::Quota)),
    ("isv.ACCOUNT_NOT_EXISTS", C::Misconfigured(M::Account)),
    ("isv.ACCOUNT_ABNORMAL", C::Misconfigured(M::Account)),
    ("isv.PRODUCT_UN_SUBSCRIPT", C::Misconfigured(M::Account)),
    ("isv.PRODUCT_UNSUBSCRIBE", C::Misconfigured(M::Account)),
    ("isv.FORBIDDEN_ACTION", C::Misconfigured(M::Account)),
    ("isp.RAM_PERMISSION_DENY", C::Misconfigured(M::Credentials)),
    ("isv.RAM_CHECK_FAILED", C::Misconfigured(M::Credentials)),
    (
        "InvalidAccessKeyId.NotFound",
        C::Misconfigured(M::Credentials),
    ),
    (
        "InvalidAccessKeyId.Inactive",
        C::Misconfigured(M::Credentials),
    ),
    ("SignatureDoesNotMatch", C::Misconfigured(M::Credentials)),
    ("IncompleteSignature", C::Misconfigured(M::Credentials)),
    ("Forbidden.RAM", C::Misconfigured(M::Credentials)),
    ("InvalidTimeStamp.Expired", C::Misconfigured(M::Clock)),
    ("isv.BLACK_KEY_CONTROL_LIMIT", C::Rejected),
    ("isv.PARAM_LENGTH_LIMIT", C::Rejected),
    ("isv.PARAM_NOT_SUPPORT_URL", C::Rejected),
    ("isp.SYSTEM_ERROR", C::RetryLater),
    ("isp.GATEWAY_ERROR", C::RetryLater),
    ("isp.UNKNOWN", C::RetryLater),
    ("isv.DATA_NOT_EXIST", C::RetryLater),
    // A nonce of ours seen twice (a resend of the same request): a new
    // request has a new nonce.
    ("SignatureNonceUsed", C::RetryLater),
    ("Throttling", C::RetryLater),
    ("Throttling.User", C::RetryLater),
    ("Throttling.Api", C::RetryLater),
    ("ServiceUnavailable", C::RetryLater),
    ("InternalError", C::RetryLater),
];

/// The window of Aliyun's `isv.BUSINESS_LIMIT_CONTROL` from its message:
/// `触发分钟级流控Permits:1`, `触发小时级流控Permits:5`, `触发天级流控Permits:10`.
pub fn aliyun_window(message: &str) -> Window {
    if message.contains("天") || message.contains("日") {
        Window::Day
    } else if message.contains("小时") {
        Window::Hour
    } else {
        Window::Minute
    }
}

/// Tencent Cloud's `SendSms` codes (API 2021-01-11): per number in
/// `SendStatusSet[].Code`, per request in `Response.Error.Code`.
pub const TENCENT_CODES: &[(&str, Class)] = &[
    ("Ok", C::Accepted),
    (
        "LimitExceeded.PhoneNumberThirtySecondLimit",
        C::NumberLimited(Window::ThirtySeconds),
    ),
    (
        "LimitExceeded.PhoneNumberOneHourLimit",
        C::NumberLimited(Window::Hour),
    ),
    (
        "LimitExceeded.PhoneNumberDailyLimit",
        C::NumberLimited(Window::Day),
    ),
    (
        "LimitExceeded.PhoneNumberSameContentDailyLimit",
        C::NumberLimited(Window::Day),
    ),
    (
        "LimitExceeded.DeliveryFrequencyLimit",
        C::NumberLimited(Window::Minute),
    ),
    ("LimitExceeded.AppDailyLimit", C::Misconfigured(M::Quota)),
    ("LimitExceeded.DailyLimit", C::Misconfigured(M::Quota)),
    (
        "LimitExceeded.AppGlobalDailyLimit",
        C::Misconfigured(M::Quota),
    ),
    (
        "LimitExceeded.AppMainlandChinaDailyLimit",
        C::Misconfigured(M::Quota),
    ),
    (
        "InvalidParameterValue.IncorrectPhoneNumber",
        C::Unreachable(U::InvalidNumber),
    ),
    (
        "UnsupportedOperation.UnsupportedRegion",
        C::Unreachable(U::InvalidNumber),
    ),
    (
        "FailedOperation.PhoneNumberInBlacklist",
        C::Unreachable(U::Blacklisted),
    ),
    (
        "FailedOperation.PhoneNumberOnBlacklist",
        C::Unreachable(U::Blacklisted),
    ),
    (
        "FailedOperation.TemplateIncorrectOrUnapproved",
        C::Misconfigured(M::Template),
    ),
    (
        "FailedOperation.MissingTemplateToModify",
        C::Misconfigured(M::Template),
    ),
    (
        "FailedOperation.SignatureIncorrectOrUnapproved",
        C::Misconfigured(M::Signature),
    ),
    (
        "FailedOperation.MissingSignature",
        C::Misconfigured(M::Signature),
    ),
    (
        "InvalidParameterValue.TemplateParameterFormatError",
        C::Misconfigured(M::Parameters),
    ),
    (
        "FailedOperation.FailResolvePacket",
        C::Misconfigured(M::Parameters),
    ),
    (
        "FailedOperation.JsonParseFail",
        C::Misconfigured(M::Parameters),
    ),
    (
        "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber",
        C::Misconfigured(M::Parameters),
    ),
    ("InvalidParameter", C::Misconfigured(M::Parameters)),
    ("MissingParameter", C::Misconfigured(M::Parameters)),
    (
        "FailedOperation.InsufficientBalanceInSmsPackage",
        C::Misconfigured(M::Balance),
    ),
    (
        "UnauthorizedOperation.SerivceSuspendDueToArrears",
        C::Misconfigured(M::Balance),
    ),
    (
        "UnauthorizedOperation.SmsSdkAppIdVerifyFail",
        C::Misconfigured(M::Credentials),
    ),
    (
        "InvalidParameterValue.SdkAppIdNotExist",
        C::Misconfigured(M::Credentials),
    ),
    (
        "UnauthorizedOperation.RequestIpNotInWhitelist",
        C::Misconfigured(M::Credentials),
    ),
    (
        "UnauthorizedOperation.RequestPermissionDeny",
        C::Misconfigured(M::Credentials),
    ),
    (
        "UnauthorizedOperation.IndividualUserMarketingSmsPermissionDeny",
        C::Misconfigured(M::Account),
    ),
    ("AuthFailure.SignatureExpire", C::Misconfigured(M::Clock)),
    (
        "InvalidParameterValue.TemplateParameterLengthLimit",
        C::Rejected,
    ),
    ("InvalidParameterValue.ContentLengthLimit", C::Rejected),
    (
        "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
        C::Rejected,
    ),
    ("FailedOperation.ContainSensitiveWord", C::Rejected),
    ("InternalError.Timeout", C::RetryLater),
    ("InternalError.OtherError", C::RetryLater),
    (
        "InternalError.RequestTimeException",
        C::Misconfigured(M::Clock),
    ),
];

/// What a refusal with this code (and message) means.
pub fn classify(provider: Provider, code: &str, message: &str) -> Class {
    let table = match provider {
        Provider::Aliyun => ALIYUN_CODES,
        Provider::Tencent => TENCENT_CODES,
    };
    if let Some((_, c)) = table.iter().find(|(k, _)| *k == code) {
        return *c;
    }
    match provider {
        Provider::Aliyun if code == "isv.BUSINESS_LIMIT_CONTROL" => {
            C::NumberLimited(aliyun_window(message))
        }
        Provider::Aliyun if code.starts_with("InvalidAccessKeyId") => {
            C::Misconfigured(M::Credentials)
        }
        Provider::Aliyun if code.starts_with("Throttling") || code.starts_with("isp.") => {
            C::RetryLater
        }
        Provider::Tencent if code.starts_with("AuthFailure") => C::Misconfigured(M::Credentials),
        Provider::Tencent
            if code.starts_with("InternalError") || code.starts_with("RequestLimitExceeded") =>
        {
            C::RetryLater
        }
        Provider::Tencent if code.starts_with("LimitExceeded.PhoneNumber") => {
            C::NumberLimited(Window::Hour)
        }
        _ => C::Unknown,
    }
}

/// The class of any answer.
pub fn class_of(provider: Provider, answer: &Answer) -> Class {
    match answer {
        Answer::Accepted { .. } => C::Accepted,
        Answer::Refused { code, message } => classify(provider, code, message),
        Answer::NoAnswer { .. } => C::RetryLater,
    }
}

/// How long a text that got no answer waits before it is sent again: its
/// delivery receipt, keyed by the delivery's own id, settles it meanwhile.
pub const RECEIPT_WAIT: Duration = Duration::minutes(10);

/// What becomes of a notice's text after an answer to try `attempts + 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The provider has it.
    Sent { reference: String },
    /// Try again then (a try counted).
    RetryAt { at: DateTime<Utc>, why: String },
    /// Look again then, no try counted (the number's frequency window).
    WaitUntil { at: DateTime<Utc>, why: String },
    /// Stop texting this number, and say why on the person's account.
    Unreachable { reason: Unreachable, why: String },
    /// The configuration is wrong: this text is not retried.
    Misconfigured { cause: Misconfigured, why: String },
    /// Given up.
    Failed(String),
}

/// The next step for a text after `answer` (with its class `class`).
pub fn next_step(class: Class, answer: &Answer, attempts: u32, now: DateTime<Utc>) -> Step {
    let why = match answer {
        Answer::Accepted { reference } => {
            return Step::Sent {
                reference: reference.clone(),
            };
        }
        Answer::Refused { code, message } => format!("{code}: {message}"),
        Answer::NoAnswer { why } => format!("no answer ({why}); waiting for a receipt first"),
    };
    let retry = |floor: Duration, why: String| match next_try(attempts, floor, now) {
        Retry::At(at) => Step::RetryAt { at, why },
        Retry::GiveUp => Step::Failed(format!(
            "gave up after {} tries: {why}",
            super::retry::MAX_ATTEMPTS
        )),
    };
    match class {
        C::Accepted => Step::Failed(format!("accepted without an id: {why}")),
        C::RetryLater | C::Unknown => match answer {
            Answer::NoAnswer { .. } => retry(RECEIPT_WAIT, why),
            _ => retry(Duration::zero(), why),
        },
        C::NumberLimited(w) => Step::WaitUntil {
            at: w.ends(now),
            why,
        },
        C::Unreachable(reason) => Step::Unreachable { reason, why },
        C::Misconfigured(cause) => Step::Misconfigured { cause, why },
        C::Rejected => Step::Failed(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cst(h: u32, m: u32) -> DateTime<Utc> {
        SHANGHAI
            .with_ymd_and_hms(2026, 12, 20, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn templates_take_only_their_messages_values() {
        let t = |id: &str, p: &[Var]| Template {
            id: id.into(),
            params: p.to_vec(),
        };
        assert!(check_template(Message::SignInCode, &t("SMS_1", &[Var::Code])).is_ok());
        assert!(check_template(Message::SignInCode, &t("SMS_1", &[])).is_err());
        assert!(check_template(Message::SignInCode, &t("SMS_1", &[Var::Event])).is_err());
        assert!(check_template(Message::SignInCode, &t(" ", &[Var::Code])).is_err());
        let offer = [Var::Event, Var::Deadline];
        assert!(check_template(Message::SeatOffered, &t("1", &offer)).is_ok());
        assert!(check_template(Message::SeatOffered, &t("1", &[])).is_ok());
        let (field, e) = check_template(Message::EventCancelled, &t("1", &offer)).unwrap_err();
        assert_eq!(field, "params");
        assert!(
            e.contains("deadline") && e.contains("event_cancelled"),
            "{e}"
        );
        let twice = check_template(Message::Reminder, &t("1", &[Var::Time, Var::Time]));
        assert!(twice.unwrap_err().1.contains("twice"));
        assert!(check_template(Message::Reminder, &t("1", &[Var::Code])).is_err());
    }

    #[test]
    fn values_fill_in_template_order_and_are_cut_to_the_providers_limit() {
        let t = Template {
            id: "1".into(),
            params: vec![Var::Time, Var::Event],
        };
        let v = Values {
            event: Some("劳模工匠创新工作室开放日：数控机床实操与安全培训".into()),
            time: Some(china_time(cst(9, 5))),
            ..Values::default()
        };
        let filled = fill(&t, &v, 12).unwrap();
        assert_eq!(filled[0], (Var::Time, "12月20日09:05".into()));
        assert_eq!(filled[1].1.chars().count(), 12);
        assert!(filled[1].1.ends_with('…') && filled[1].1.starts_with("劳模工匠"));
        assert_eq!(fill(&t, &v, 35).unwrap()[1].1, v.event.clone().unwrap());
        let no_time = Values {
            time: None,
            ..v.clone()
        };
        assert_eq!(fill(&t, &no_time, 35), Err(Var::Time));
        assert!(
            !format!(
                "{:?}",
                Values {
                    code: Some("123456".into()),
                    ..v
                }
            )
            .contains("123456")
        );
    }

    #[test]
    fn every_tabled_code_is_classified_as_its_table_says() {
        for (p, table) in [
            (Provider::Aliyun, ALIYUN_CODES),
            (Provider::Tencent, TENCENT_CODES),
        ] {
            for (code, class) in table {
                assert_eq!(classify(p, code, ""), *class, "{code}");
            }
            // No code is listed twice.
            for (i, (a, _)) in table.iter().enumerate() {
                assert!(table[..i].iter().all(|(b, _)| a != b), "{a} twice");
            }
        }
    }

    #[test]
    fn the_classes_the_issue_names() {
        let a = |c, m| classify(Provider::Aliyun, c, m);
        let t = |c| classify(Provider::Tencent, c, "");
        use Window::*;
        assert_eq!(
            a("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1"),
            C::NumberLimited(Minute)
        );
        assert_eq!(
            a("isv.BUSINESS_LIMIT_CONTROL", "触发小时级流控Permits:5"),
            C::NumberLimited(Hour)
        );
        assert_eq!(
            a("isv.BUSINESS_LIMIT_CONTROL", "触发天级流控Permits:10"),
            C::NumberLimited(Day)
        );
        assert_eq!(a("Throttling.User", ""), C::RetryLater);
        assert_eq!(a("isp.SYSTEM_ERROR", ""), C::RetryLater);
        assert_eq!(
            a("isv.SMS_TEMPLATE_ILLEGAL", ""),
            C::Misconfigured(M::Template)
        );
        assert_eq!(a("isv.AMOUNT_NOT_ENOUGH", ""), C::Misconfigured(M::Balance));
        assert_eq!(
            a("InvalidAccessKeyId.Whatever", ""),
            C::Misconfigured(M::Credentials)
        );
        assert_eq!(
            a("isv.MOBILE_NUMBER_ILLEGAL", ""),
            C::Unreachable(U::InvalidNumber)
        );
        assert_eq!(a("isv.SOMETHING_NEW", ""), C::Unknown);
        assert_eq!(
            t("LimitExceeded.PhoneNumberThirtySecondLimit"),
            C::NumberLimited(ThirtySeconds)
        );
        assert_eq!(
            t("FailedOperation.PhoneNumberInBlacklist"),
            C::Unreachable(U::Blacklisted)
        );
        assert_eq!(
            t("AuthFailure.SecretIdNotFound"),
            C::Misconfigured(M::Credentials)
        );
        assert_eq!(t("RequestLimitExceeded.UinLimitExceeded"), C::RetryLater);
        assert_eq!(t("InternalError.Timeout"), C::RetryLater);
    }

    #[test]
    fn steps_follow_the_class() {
        let now = cst(12, 0);
        let refused = |c: &str, m: &str| Answer::Refused {
            code: c.into(),
            message: m.into(),
        };
        let step = |p, a: &Answer, attempts| next_step(class_of(p, a), a, attempts, now);
        let ok = Answer::Accepted {
            reference: "900619746936498440^0".into(),
        };
        assert_eq!(
            step(Provider::Aliyun, &ok, 0),
            Step::Sent {
                reference: "900619746936498440^0".into()
            }
        );
        // Throttling: the one backoff rule.
        let throttled = refused(
            "Throttling.User",
            "Request was denied due to user flow control.",
        );
        assert!(matches!(
            step(Provider::Aliyun, &throttled, 1),
            Step::RetryAt { at, .. } if at == now + Duration::seconds(60)
        ));
        assert!(matches!(
            step(Provider::Aliyun, &throttled, super::super::retry::MAX_ATTEMPTS - 1),
            Step::Failed(w) if w.contains("gave up")
        ));
        // No answer: a receipt may settle it before it is sent again.
        let silent = Answer::NoAnswer {
            why: "timed out".into(),
        };
        assert!(matches!(
            step(Provider::Tencent, &silent, 0),
            Step::RetryAt { at, .. } if at == now + RECEIPT_WAIT
        ));
        // The number's window, no try counted: a day ends at midnight China time.
        let day = refused("isv.BUSINESS_LIMIT_CONTROL", "触发天级流控Permits:10");
        assert!(matches!(
            step(Provider::Aliyun, &day, 0),
            Step::WaitUntil { at, .. } if at == SHANGHAI.with_ymd_and_hms(2026, 12, 21, 0, 0, 0).unwrap().with_timezone(&Utc)
        ));
        assert!(matches!(
            step(
                Provider::Tencent,
                &refused("InvalidParameterValue.IncorrectPhoneNumber", "x"),
                0
            ),
            Step::Unreachable {
                reason: Unreachable::InvalidNumber,
                ..
            }
        ));
        assert!(matches!(
            step(
                Provider::Tencent,
                &refused("FailedOperation.TemplateIncorrectOrUnapproved", "x"),
                0
            ),
            Step::Misconfigured {
                cause: Misconfigured::Template,
                ..
            }
        ));
        assert!(matches!(
            step(
                Provider::Aliyun,
                &refused("isv.BLACK_KEY_CONTROL_LIMIT", "x"),
                0
            ),
            Step::Failed(_)
        ));
    }
}
