//! Texts (SMS) to mainland phones: sign-in codes and the notices that must
//! not be missed. A [`SmsSender`] speaks one provider (Aliyun, Tencent
//! Cloud, or the development log); the [`Texter`] in front of it is what the
//! rest of yizhan calls: it keeps a number's frequency window, says a wrong
//! configuration once at ERROR, counts every outcome, and leaves what an
//! answer means to the rules in [`crate::domain::sms`].

pub mod aliyun;
pub mod config;
pub mod receipts;
pub mod tencent;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::sms::{self as rules, Answer, Class, Message, Provider, Unreachable, Values};
use crate::domain::user::Phone;
use crate::metrics::Metrics;
use crate::store::SmsBlock;

pub use config::{SmsChoice, SmsSettings};

/// One text to send.
pub struct Text<'a> {
    pub phone: &'a Phone,
    pub message: Message,
    pub values: &'a Values,
    /// Our own id for it, which the provider gives back in its receipt
    /// (Aliyun's `OutId`, Tencent's `SessionContext`): a notification's
    /// id for a notice, `c…` for a sign-in code.
    pub id: &'a str,
}

/// What a provider said, with its request id (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub answer: Answer,
    pub request_id: Option<String>,
}

impl Reply {
    pub fn accepted(reference: impl Into<String>) -> Reply {
        Reply {
            answer: Answer::Accepted {
                reference: reference.into(),
            },
            request_id: None,
        }
    }

    /// A refusal with the provider's code (or one of ours in its terms).
    pub fn refused(code: impl Into<String>, message: impl Into<String>) -> Reply {
        Reply {
            answer: Answer::Refused {
                code: code.into(),
                message: message.into(),
            },
            request_id: None,
        }
    }

    pub fn no_answer(why: impl Into<String>) -> Reply {
        Reply {
            answer: Answer::NoAnswer { why: why.into() },
            request_id: None,
        }
    }
}

/// Sends texts through one provider.
#[async_trait]
pub trait SmsSender: Send + Sync + 'static {
    /// Its name in logs and metrics: `log`, `aliyun`, `tencent`, `memory`.
    fn name(&self) -> &'static str;
    /// Whose error codes its refusals are (`None`: it never refuses).
    fn provider(&self) -> Option<Provider>;
    /// Send one text; never fails otherwise than by its answer.
    async fn send(&self, text: &Text<'_>) -> Reply;
}

/// The text as the phone would show it, for the development sender and
/// tests: the suggested template ([`config::suggested_text`]) filled in.
pub fn render(message: Message, values: &Values) -> String {
    let mut text = format!("【驿站】{}", config::suggested_text(message));
    for v in message.values() {
        text = text.replace(
            &format!("${{{}}}", v.as_str()),
            values.get(*v).unwrap_or(""),
        );
    }
    text
}

/// The development sender (`--sms-provider log`): writes each text to the
/// log under the target `yizhan::sms` instead of sending it. A sign-in code
/// is logged at INFO when the API listens on loopback only
/// (`codes_at_info`, a developer's machine); otherwise at DEBUG (run with
/// `YIZHAN_LOG=info,yizhan::sms=debug` to see it), so that a public
/// server's info-level logs never hold a code.
#[derive(Default)]
pub struct LogSender {
    pub codes_at_info: bool,
}

#[async_trait]
impl SmsSender for LogSender {
    fn name(&self) -> &'static str {
        "log"
    }

    fn provider(&self) -> Option<Provider> {
        None
    }

    async fn send(&self, text: &Text<'_>) -> Reply {
        if let Some(code) = &text.values.code {
            if self.codes_at_info {
                tracing::info!(target: "yizhan::sms", "sign-in code for {}: {code} (development: no SMS provider)", text.phone.masked());
            } else {
                tracing::debug!(target: "yizhan::sms", phone = %text.phone.masked(), code, "sign-in code (log sender: no SMS gateway configured)");
            }
        } else {
            let body = render(text.message, text.values);
            tracing::debug!(target: "yizhan::sms", phone = %text.phone.masked(), text = %body, "notification (log sender: no SMS gateway configured)");
        }
        Reply::accepted(format!("log-{}", text.id))
    }
}

/// A sender that keeps what it was asked to send: the tests' double where
/// no provider's protocol is under test.
#[derive(Default)]
pub struct MemorySender {
    sent: Mutex<Vec<(Phone, Message, Values)>>,
}

impl MemorySender {
    /// The last code sent to `phone`.
    pub fn last_code(&self, phone: &Phone) -> Option<String> {
        let sent = self.sent.lock().expect("sender poisoned");
        sent.iter()
            .rev()
            .find(|(p, m, _)| p == phone && *m == Message::SignInCode)
            .and_then(|(_, _, v)| v.code.clone())
    }

    /// How many sign-in codes were sent.
    pub fn count(&self) -> usize {
        let sent = self.sent.lock().expect("sender poisoned");
        sent.iter()
            .filter(|(_, m, _)| *m == Message::SignInCode)
            .count()
    }

    /// The notices texted to `phone`, oldest first, as the phone shows them.
    pub fn texts_to(&self, phone: &Phone) -> Vec<String> {
        let sent = self.sent.lock().expect("sender poisoned");
        sent.iter()
            .filter(|(p, m, _)| p == phone && *m != Message::SignInCode)
            .map(|(_, m, v)| render(*m, v))
            .collect()
    }
}

#[async_trait]
impl SmsSender for MemorySender {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn provider(&self) -> Option<Provider> {
        None
    }

    async fn send(&self, text: &Text<'_>) -> Reply {
        self.sent.lock().expect("sender poisoned").push((
            text.phone.clone(),
            text.message,
            text.values.clone(),
        ));
        Reply::accepted(format!("memory-{}", text.id))
    }
}

/// What the rest of yizhan calls to text someone: one per process, shared
/// by sign-in and the notification worker.
pub struct Texter {
    sender: Arc<dyn SmsSender>,
    metrics: Arc<Metrics>,
    /// Numbers inside a provider's frequency window, until when (this
    /// node's memory: another node learns the window from its own answer).
    held: Mutex<HashMap<Phone, DateTime<Utc>>>,
    /// Configuration causes already logged at ERROR.
    reported: Mutex<HashSet<rules::Misconfigured>>,
    /// The secret token in the receipt callbacks' URL (`None`: receipts off).
    receipt_token: Option<config::Secret>,
}

/// One text's outcome, classified.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub reply: Reply,
    pub class: Class,
}

impl Outcome {
    /// What yizhan keeps of a number this outcome found `reason` not to
    /// take texts: the provider's code, the provider, since `now`.
    pub fn block(&self, provider: &str, reason: Unreachable, now: DateTime<Utc>) -> SmsBlock {
        SmsBlock {
            reason,
            code: match &self.reply.answer {
                Answer::Refused { code, .. } => code.clone(),
                _ => String::new(),
            },
            provider: provider.to_owned(),
            since: now,
        }
    }
}

impl Texter {
    pub fn new(
        sender: Arc<dyn SmsSender>,
        metrics: Arc<Metrics>,
        receipt_token: Option<config::Secret>,
    ) -> Texter {
        Texter {
            sender,
            metrics,
            held: Mutex::default(),
            reported: Mutex::default(),
            receipt_token,
        }
    }

    /// The sender's name (`aliyun`, `tencent`, `log`, …).
    pub fn name(&self) -> &'static str {
        self.sender.name()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The receipts' token, when receipts are configured.
    pub fn receipt_token(&self) -> Option<&config::Secret> {
        self.receipt_token.as_ref()
    }

    /// Until when `phone` is inside a provider's frequency window.
    pub fn held_until(&self, phone: &Phone, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut held = self.held.lock().expect("holds poisoned");
        held.retain(|_, until| *until > now);
        held.get(phone).copied()
    }

    /// Send `text` and classify the answer: counts it, keeps a frequency
    /// window, and logs a configuration error at ERROR once per cause.
    pub async fn send(&self, text: &Text<'_>, now: DateTime<Utc>) -> Outcome {
        let name = self.sender.name();
        self.metrics.sms(name, "sent");
        let reply = self.sender.send(text).await;
        let class = match self.sender.provider() {
            Some(p) => rules::class_of(p, &reply.answer),
            None => match reply.answer {
                Answer::Accepted { .. } => Class::Accepted,
                _ => Class::Unknown,
            },
        };
        let outcome = match (&reply.answer, class) {
            (Answer::NoAnswer { .. }, _) => "no_answer",
            (_, Class::Accepted) => "accepted",
            (_, Class::RetryLater | Class::Unknown) => "retry_later",
            (_, Class::NumberLimited(_)) => "number_limited",
            (_, Class::Unreachable(_)) => "unreachable",
            (_, Class::Misconfigured(_)) => "misconfigured",
            (_, Class::Rejected) => "rejected",
        };
        self.metrics.sms(name, outcome);
        let request_id = reply.request_id.as_deref().unwrap_or("");
        match (&reply.answer, class) {
            (_, Class::NumberLimited(w)) => {
                let until = w.ends(now);
                self.held
                    .lock()
                    .expect("holds poisoned")
                    .insert(text.phone.clone(), until);
                tracing::info!(target: "yizhan::sms", provider = name, phone = %text.phone.masked(), until = %until, request_id, "the provider's frequency window for this number; waiting it out");
            }
            (Answer::Refused { code, message }, Class::Misconfigured(cause)) => {
                self.metrics.sms_config_error(name, cause.as_str());
                if self.reported.lock().expect("poisoned").insert(cause) {
                    tracing::error!(target: "yizhan::sms", provider = name, cause = cause.as_str(), code = %code, message = %message, request_id, "the SMS configuration is wrong: texts are not sent until an operator fixes it (logged once per cause; see yizhan_sms_config_errors_total)");
                }
            }
            (Answer::Refused { code, message }, Class::Unknown) => {
                tracing::warn!(target: "yizhan::sms", provider = name, code = %code, message = %message, request_id, "an SMS answer yizhan does not know; retrying it like an internal error");
            }
            (Answer::Accepted { reference }, _) => {
                tracing::info!(target: "yizhan::sms", provider = name, phone = %text.phone.masked(), message = text.message.as_str(), reference = %reference, request_id, "text accepted");
            }
            (Answer::Refused { code, .. }, _) => {
                tracing::info!(target: "yizhan::sms", provider = name, phone = %text.phone.masked(), code = %code, request_id, "text refused");
            }
            (Answer::NoAnswer { why }, _) => {
                tracing::warn!(target: "yizhan::sms", provider = name, phone = %text.phone.masked(), why = %why, "no answer from the SMS provider");
            }
        }
        Outcome { reply, class }
    }
}

/// A client for a provider: plain `http` only to a loopback address.
pub(crate) fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    crate::push::install_tls_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("an HTTP client")
}

/// A template and its variables filled for one text.
pub(crate) type Filled<'a> = (
    &'a crate::domain::sms::Template,
    Vec<(crate::domain::sms::Var, String)>,
);

/// What both providers' clients hold besides their keys.
pub(crate) struct Common {
    pub endpoint: url::Url,
    pub templates: std::collections::BTreeMap<Message, crate::domain::sms::Template>,
    pub param_max_chars: usize,
    pub http: reqwest::Client,
}

impl Common {
    fn of(settings: &SmsSettings, provider: Provider) -> Common {
        Common {
            endpoint: settings.endpoint.clone(),
            templates: settings.templates.clone(),
            param_max_chars: settings.param_max_chars.unwrap_or(provider.max_var_chars()),
            http: http_client(settings.timeout),
        }
    }

    /// The template and its filled variables for `text`, or the refusal
    /// the provider would give (`missing_template`, `missing_value`).
    pub fn fill(
        &self,
        text: &Text<'_>,
        missing_template: &str,
        missing_value: &str,
    ) -> Result<Filled<'_>, Reply> {
        let Some(template) = self.templates.get(&text.message) else {
            return Err(Reply::refused(
                missing_template,
                format!("no template configured for {}", text.message.as_str()),
            ));
        };
        match rules::fill(template, text.values, self.param_max_chars) {
            Ok(v) => Ok((template, v)),
            Err(var) => Err(Reply::refused(
                missing_value,
                format!("this text has no {}", var.as_str()),
            )),
        }
    }

    /// POST and read the answer with `read`; no answer on a network error.
    pub async fn post(&self, req: reqwest::RequestBuilder, read: fn(u16, &[u8]) -> Reply) -> Reply {
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                match r.bytes().await {
                    Ok(body) => read(status, &body),
                    Err(e) => Reply::no_answer(format!("reading the answer: {e}")),
                }
            }
            Err(e) => Reply::no_answer(without_url(e)),
        }
    }
}

/// A request's error without its URL (the query holds the phone and code).
fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    format!("{kind}: {e}")
}

/// HMAC-SHA256.
pub(crate) fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// The sender `settings` describe (the development one logs codes at INFO
/// when `loopback`: the API listens on a loopback address only).
pub fn sender(settings: &SmsSettings, loopback: bool) -> Arc<dyn SmsSender> {
    match &settings.provider {
        config::ProviderSettings::Log => Arc::new(LogSender {
            codes_at_info: loopback,
        }),
        config::ProviderSettings::Aliyun(a) => Arc::new(aliyun::Aliyun::new(
            a.clone(),
            Common::of(settings, Provider::Aliyun),
        )),
        config::ProviderSettings::Tencent(t) => Arc::new(tencent::Tencent::new(
            t.clone(),
            Common::of(settings, Provider::Tencent),
        )),
    }
}
