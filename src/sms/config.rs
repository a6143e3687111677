//! The SMS provider's settings: `--sms-provider`, `--sms-config FILE` (TOML),
//! `--sms-endpoint`, `YIZHAN_SMS_SECRET`. Checked whole at start: a missing
//! key, a template without an id or a variable its message does not have
//! stops `serve` with an error naming the key. Secrets never appear in
//! logs, `Debug` output or error messages.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::domain::sms::{Message, Provider, Template, Var, check_template};

/// `--sms-provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SmsChoice {
    /// Development: texts go to the log (no SMS leaves the machine).
    Log,
    /// Aliyun SMS (阿里云短信服务), `SendSms` 2017-05-25.
    Aliyun,
    /// Tencent Cloud SMS (腾讯云短信), `SendSms` 2021-01-11.
    Tencent,
}

/// A secret: shown nowhere (`Debug` and `Display` print `<redacted>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub struct AliyunSettings {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    pub sign_name: String,
}

#[derive(Debug, Clone)]
pub struct TencentSettings {
    pub secret_id: String,
    pub secret_key: Secret,
    pub sdk_app_id: String,
    pub sign_name: String,
    pub region: String,
}

#[derive(Debug, Clone)]
pub enum ProviderSettings {
    Log,
    Aliyun(AliyunSettings),
    Tencent(TencentSettings),
}

/// Everything the SMS channel needs, checked.
#[derive(Debug, Clone)]
pub struct SmsSettings {
    pub provider: ProviderSettings,
    /// Where `SendSms` goes (the provider's public endpoint unless `--sms-endpoint`).
    pub endpoint: url::Url,
    /// One per message.
    pub templates: BTreeMap<Message, Template>,
    /// The token receipt callbacks carry in their URL (`None`: receipts off).
    pub receipt_token: Option<Secret>,
    /// How long a `SendSms` may take before it counts as unanswered
    /// (`timeout_s`, default 10).
    pub timeout: std::time::Duration,
    /// The most characters one template variable holds (`param_max_chars`;
    /// default: the provider's limit, [`Provider::max_var_chars`]).
    pub param_max_chars: Option<usize>,
}

impl SmsSettings {
    /// The development default: texts to the log.
    pub fn log() -> SmsSettings {
        SmsSettings {
            provider: ProviderSettings::Log,
            endpoint: url::Url::parse("http://127.0.0.1/").expect("a URL"),
            templates: BTreeMap::new(),
            receipt_token: None,
            timeout: DEFAULT_TIMEOUT,
            param_max_chars: None,
        }
    }

    pub fn provider(&self) -> Option<Provider> {
        match self.provider {
            ProviderSettings::Log => None,
            ProviderSettings::Aliyun(_) => Some(Provider::Aliyun),
            ProviderSettings::Tencent(_) => Some(Provider::Tencent),
        }
    }
}

pub const ALIYUN_ENDPOINT: &str = "https://dysmsapi.aliyuncs.com";
pub const TENCENT_ENDPOINT: &str = "https://sms.tencentcloudapi.com";
pub const TENCENT_DEFAULT_REGION: &str = "ap-guangzhou";
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The Chinese template text a union registers for each message (Aliyun's
/// `${…}` names; for Tencent the same text with `{1}`, `{2}`, … in the
/// order of `params`). The development sender shows texts this way.
pub fn suggested_text(m: Message) -> &'static str {
    match m {
        Message::SignInCode => "您的登录验证码为${code}，5分钟内有效，请勿泄露给他人。",
        Message::SeatOffered => {
            "已为您留出“${event}”（${time}，${site}）的名额，请在${deadline}前打开驿站确认，逾期将顺延给下一位。"
        }
        Message::EventCancelled => {
            "很抱歉，您报名的“${event}”（${time}，${site}）已取消，详情请打开驿站查看。"
        }
        Message::EventChanged => {
            "您报名的“${event}”有变动：现定于${time}在${site}举行，详情请打开驿站查看。"
        }
        Message::Reminder => "提醒：您报名的“${event}”将于${time}在${site}开始，请准时参加。",
    }
}

/// The `params` of each suggested text, in its order.
pub fn suggested_params(m: Message) -> Vec<Var> {
    let text = suggested_text(m);
    let mut found: Vec<(usize, Var)> = m
        .values()
        .iter()
        .filter_map(|v| text.find(&format!("${{{}}}", v.as_str())).map(|i| (i, *v)))
        .collect();
    found.sort_by_key(|(i, _)| *i);
    found.into_iter().map(|(_, v)| v).collect()
}

/// A configuration error: names the file and the key, never a secret's value.
#[derive(Debug, thiserror::Error)]
#[error("SMS configuration {file}: {key}: {problem}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub problem: String,
}

/// Load the settings for `choice` from `file` (required for a real
/// provider), with the secret from `secret_env` when given (it wins over the
/// file's) and the endpoint from `endpoint` when given.
pub fn load(
    choice: SmsChoice,
    file: Option<&Path>,
    secret_env: Option<&str>,
    endpoint: Option<&str>,
) -> Result<SmsSettings, ConfigError> {
    let err = |file: &str, key: &str, problem: String| ConfigError {
        file: file.to_owned(),
        key: key.to_owned(),
        problem,
    };
    if choice == SmsChoice::Log {
        if file.is_some() || endpoint.is_some() {
            tracing::warn!("--sms-config and --sms-endpoint are ignored with --sms-provider log");
        }
        return Ok(SmsSettings::log());
    }
    let Some(file) = file else {
        return Err(err(
            "(none)",
            "--sms-config",
            format!(
                "--sms-provider {} needs a configuration file (--sms-config or YIZHAN_SMS_CONFIG)",
                choice_name(choice)
            ),
        ));
    };
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file)
        .map_err(|e| err(&name, "--sms-config", format!("cannot be read: {e}")))?;
    parse(choice, &text, secret_env, endpoint).map_err(|(key, problem)| err(&name, &key, problem))
}

fn choice_name(c: SmsChoice) -> &'static str {
    match c {
        SmsChoice::Log => "log",
        SmsChoice::Aliyun => "aliyun",
        SmsChoice::Tencent => "tencent",
    }
}

/// Parse and check a configuration's text; `Err((key, problem))`.
pub fn parse(
    choice: SmsChoice,
    text: &str,
    secret_env: Option<&str>,
    endpoint: Option<&str>,
) -> Result<SmsSettings, (String, String)> {
    // A syntax error's own message quotes the line, which may hold a
    // secret: say only where it is.
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            .unwrap_or(0);
        (
            "(syntax)".to_owned(),
            format!("not valid TOML at line {line}"),
        )
    })?;
    let (own, secret_key): (&[&str], &str) = match choice {
        SmsChoice::Aliyun => (
            &["access_key_id", "access_key_secret", "sign_name"],
            "access_key_secret",
        ),
        SmsChoice::Tencent => (
            &[
                "secret_id",
                "secret_key",
                "sdk_app_id",
                "sign_name",
                "region",
            ],
            "secret_key",
        ),
        SmsChoice::Log => unreachable!("the log provider reads no file"),
    };
    for key in table.keys() {
        let common = ["templates", "receipt_token", "timeout_s", "param_max_chars"];
        if !own.contains(&key.as_str()) && !common.contains(&key.as_str()) {
            return Err((
                key.clone(),
                format!(
                    "not a setting of the {} provider (its settings: {}, receipt_token, timeout_s, param_max_chars, [templates])",
                    choice_name(choice),
                    own.join(", ")
                ),
            ));
        }
    }
    let string = |key: &str| -> Result<Option<String>, (String, String)> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            Some(toml::Value::String(_)) => Err((key.to_owned(), "is empty".into())),
            Some(_) => Err((key.to_owned(), "must be a string".into())),
        }
    };
    let required = |key: &str| -> Result<String, (String, String)> {
        string(key)?.ok_or_else(|| (key.to_owned(), "missing".to_owned()))
    };
    let secret = match secret_env.filter(|s| !s.trim().is_empty()) {
        Some(s) => Secret::new(s.trim()),
        None => Secret::new(string(secret_key)?.ok_or_else(|| {
            (
                secret_key.to_owned(),
                "missing (set it here or in YIZHAN_SMS_SECRET)".to_owned(),
            )
        })?),
    };
    let provider = match choice {
        SmsChoice::Aliyun => ProviderSettings::Aliyun(AliyunSettings {
            access_key_id: required("access_key_id")?,
            access_key_secret: secret,
            sign_name: required("sign_name")?,
        }),
        SmsChoice::Tencent => {
            let sdk_app_id = required("sdk_app_id")?;
            if !sdk_app_id.bytes().all(|b| b.is_ascii_digit()) {
                return Err((
                    "sdk_app_id".into(),
                    "must be the application's digits, such as 1400006666".into(),
                ));
            }
            ProviderSettings::Tencent(TencentSettings {
                secret_id: required("secret_id")?,
                secret_key: secret,
                sdk_app_id,
                sign_name: required("sign_name")?,
                region: string("region")?.unwrap_or_else(|| TENCENT_DEFAULT_REGION.to_owned()),
            })
        }
        SmsChoice::Log => unreachable!(),
    };
    let receipt_token = string("receipt_token")?.map(Secret::new);
    if let Some(t) = &receipt_token
        && t.expose().len() < 16
    {
        return Err((
            "receipt_token".into(),
            "must be at least 16 characters (it is the receipts' only password)".into(),
        ));
    }
    let number = |key: &str, lo: i64, hi: i64| -> Result<Option<i64>, (String, String)> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if (lo..=hi).contains(n) => Ok(Some(*n)),
            Some(_) => Err((
                key.to_owned(),
                format!("must be a whole number from {lo} to {hi}"),
            )),
        }
    };
    let timeout = number("timeout_s", 1, 60)?
        .map(|n| std::time::Duration::from_secs(n as u64))
        .unwrap_or(DEFAULT_TIMEOUT);
    let param_max_chars = number("param_max_chars", 1, 500)?.map(|n| n as usize);
    let templates = templates(&table)?;
    let endpoint = parse_endpoint(endpoint.unwrap_or(match choice {
        SmsChoice::Tencent => TENCENT_ENDPOINT,
        _ => ALIYUN_ENDPOINT,
    }))
    .map_err(|e| ("--sms-endpoint".to_owned(), e))?;
    Ok(SmsSettings {
        provider,
        endpoint,
        templates,
        receipt_token,
        timeout,
        param_max_chars,
    })
}

fn templates(table: &toml::Table) -> Result<BTreeMap<Message, Template>, (String, String)> {
    let Some(toml::Value::Table(t)) = table.get("templates") else {
        return Err((
            "templates".into(),
            "missing: a [templates] table with one entry per message".into(),
        ));
    };
    let mut out = BTreeMap::new();
    for (key, value) in t {
        let at = format!("templates.{key}");
        let message: Message = key.parse().map_err(|()| {
            (
                at.clone(),
                format!(
                    "not a message yizhan texts (they are: {})",
                    Message::ALL.map(|m| m.as_str()).join(", ")
                ),
            )
        })?;
        let toml::Value::Table(entry) = value else {
            return Err((at, "must be a table: { id = \"…\", params = […] }".into()));
        };
        for k in entry.keys() {
            if k != "id" && k != "params" {
                return Err((
                    format!("{at}.{k}"),
                    "unknown key (a template has id and params)".into(),
                ));
            }
        }
        let id = match entry.get("id") {
            Some(toml::Value::String(s)) => s.trim().to_owned(),
            Some(toml::Value::Integer(n)) => n.to_string(),
            Some(_) => return Err((format!("{at}.id"), "must be a string".into())),
            None => {
                return Err((
                    format!("{at}.id"),
                    "missing: the template's id as approved".into(),
                ));
            }
        };
        let params = match entry.get("params") {
            None => {
                return Err((
                    format!("{at}.params"),
                    "missing: the values its variables take, in order".into(),
                ));
            }
            Some(toml::Value::Array(a)) => a
                .iter()
                .map(|v| {
                    let s = v.as_str().unwrap_or("");
                    s.parse::<Var>().map_err(|()| {
                        (
                            format!("{at}.params"),
                            format!(
                                "`{s}` is not a value of {} (it has: {})",
                                message.as_str(),
                                message
                                    .values()
                                    .iter()
                                    .map(|v| v.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err((format!("{at}.params"), "must be a list of names".into())),
        };
        let template = Template { id, params };
        check_template(message, &template).map_err(|(field, e)| (format!("{at}.{field}"), e))?;
        out.insert(message, template);
    }
    for m in Message::ALL {
        if !out.contains_key(&m) {
            return Err((
                format!("templates.{}", m.as_str()),
                "missing: every message yizhan texts needs its approved template".into(),
            ));
        }
    }
    Ok(out)
}

/// An endpoint: `https`, or plain `http` to a loopback address only.
pub fn parse_endpoint(s: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    let loopback = match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match u.scheme() {
        "https" if u.host().is_some() => Ok(u),
        "http" if loopback => Ok(u),
        "http" => Err("plain http only to a loopback address; use https".into()),
        _ => Err("must be an https URL".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates_toml() -> String {
        Message::ALL
            .iter()
            .map(|m| {
                let params: Vec<String> = suggested_params(*m)
                    .iter()
                    .map(|v| format!("\"{}\"", v.as_str()))
                    .collect();
                format!(
                    "{} = {{ id = \"SMS_{}\", params = [{}] }}\n",
                    m.as_str(),
                    m.as_str(),
                    params.join(", ")
                )
            })
            .collect()
    }

    fn aliyun(extra: &str) -> String {
        format!(
            "access_key_id = \"LTAI5tExample\"\naccess_key_secret = \"s3cr3t-value-0000\"\nsign_name = \"山东省总工会\"\n{extra}\n[templates]\n{}",
            templates_toml()
        )
    }

    #[test]
    fn a_good_file_parses_and_its_secret_never_prints() {
        let s = parse(SmsChoice::Aliyun, &aliyun(""), None, None).unwrap();
        assert_eq!(s.endpoint.as_str(), "https://dysmsapi.aliyuncs.com/");
        assert_eq!(s.templates.len(), 5);
        assert_eq!(
            s.templates[&Message::SeatOffered].params,
            [Var::Event, Var::Time, Var::Site, Var::Deadline]
        );
        assert!(!format!("{s:?}").contains("s3cr3t"));
        // The environment's secret wins.
        let s = parse(SmsChoice::Aliyun, &aliyun(""), Some("from-env-1234"), None).unwrap();
        let ProviderSettings::Aliyun(a) = &s.provider else {
            panic!()
        };
        assert_eq!(a.access_key_secret.expose(), "from-env-1234");
        let t = format!(
            "secret_id = \"AKIDexample\"\nsecret_key = \"k\"\nsdk_app_id = \"1400006666\"\nsign_name = \"驿站\"\n[templates]\n{}",
            templates_toml()
        );
        let s = parse(SmsChoice::Tencent, &t, None, Some("http://127.0.0.1:9/")).unwrap();
        let ProviderSettings::Tencent(tc) = &s.provider else {
            panic!()
        };
        assert_eq!(tc.region, "ap-guangzhou");
        assert_eq!(s.endpoint.as_str(), "http://127.0.0.1:9/");
    }

    #[test]
    fn each_mistake_names_its_key_and_never_the_secret() {
        let cases = [
            (
                aliyun("").replace("sign_name = \"山东省总工会\"\n", ""),
                "sign_name",
            ),
            (
                aliyun("").replace("access_key_secret = \"s3cr3t-value-0000\"\n", ""),
                "access_key_secret",
            ),
            (
                aliyun("").replace("id = \"SMS_seat_offered\", ", ""),
                "templates.seat_offered.id",
            ),
            (
                aliyun("").replace(
                    "\"event\", \"time\", \"site\", \"deadline\"",
                    "\"event\", \"code\"",
                ),
                "templates.seat_offered.params",
            ),
            (
                aliyun("").replace("\"event\", \"time\", \"site\", \"deadline\"", "\"weather\""),
                "templates.seat_offered.params",
            ),
            (
                aliyun("").replace("reminder = ", "reminders = "),
                "templates.reminders",
            ),
            (
                aliyun("")
                    .lines()
                    .filter(|l| !l.starts_with("reminder"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                "templates.reminder",
            ),
            (aliyun("region = \"x\""), "region"),
            (aliyun("receipt_token = \"short\""), "receipt_token"),
            (
                aliyun("").replace("\"s3cr3t-value-0000\"", "\"s3cr3t-value-0000"),
                "(syntax)",
            ),
        ];
        for (text, key) in cases {
            let (k, problem) = parse(SmsChoice::Aliyun, &text, None, None).unwrap_err();
            assert_eq!(k, key, "{problem}");
            assert!(!problem.contains("s3cr3t"), "{problem}");
        }
        let (k, _) = parse(
            SmsChoice::Aliyun,
            &aliyun(""),
            None,
            Some("http://example.org/"),
        )
        .unwrap_err();
        assert_eq!(k, "--sms-endpoint");
    }

    #[test]
    fn suggested_texts_use_only_their_messages_values() {
        for m in Message::ALL {
            let t = Template {
                id: "x".into(),
                params: suggested_params(m),
            };
            check_template(m, &t).unwrap();
            assert!(!suggested_text(m).contains('{') || !t.params.is_empty());
        }
    }
}
