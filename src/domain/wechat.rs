//! WeChat rules, pure (issue 25): the templates a union applies for and
//! which of yizhan's values fill their fields, each value fitted to its
//! field's type as WeChat checks it; and what WeChat's error codes mean.
//!
//! A subscribe message's field is named by its type and a number (`thing1`,
//! `time2`); WeChat rejects a value that breaks its type's rule with `47003`
//! ("订阅消息参数值内容限制说明" in the subscribe-message documentation):
//! `thing` at most 20 characters, `phrase` at most 5 Chinese characters,
//! `time` a 24-hour time with an optional date, and so on. Lengths count
//! characters, not bytes.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use super::hours::SHANGHAI;
use super::notify::NoticeType;

/// A subscribe message field's type, from its key (`thing1` is a `thing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// 事物: at most 20 characters of any kind.
    Thing,
    /// 数字: at most 32 digits, a decimal point allowed.
    Number,
    /// 字母: at most 32 letters.
    Letter,
    /// 符号: at most 5 symbols.
    Symbol,
    /// 字符串: at most 32 digits, letters or symbols.
    CharacterString,
    /// 时间: a 24-hour time, a date before it allowed.
    Time,
    /// 日期: a date, a time after it allowed.
    Date,
    /// 金额: a currency sign and at most 10 digits.
    Amount,
    /// 电话: at most 17 digits and symbols.
    PhoneNumber,
    /// 车牌: at most 8 characters.
    CarNumber,
    /// 姓名: at most 10 Chinese characters or 20 letters.
    Name,
    /// 汉字: at most 5 Chinese characters.
    Phrase,
}

impl FieldKind {
    const NAMES: [(&'static str, FieldKind); 12] = [
        ("thing", FieldKind::Thing),
        ("number", FieldKind::Number),
        ("letter", FieldKind::Letter),
        ("symbol", FieldKind::Symbol),
        ("character_string", FieldKind::CharacterString),
        ("time", FieldKind::Time),
        ("date", FieldKind::Date),
        ("amount", FieldKind::Amount),
        ("phone_number", FieldKind::PhoneNumber),
        ("car_number", FieldKind::CarNumber),
        ("name", FieldKind::Name),
        ("phrase", FieldKind::Phrase),
    ];

    /// The type of a field key: its name and a number (`thing1`, `time12`).
    pub fn of_key(key: &str) -> Option<FieldKind> {
        let name = key.trim_end_matches(|c: char| c.is_ascii_digit());
        if name.len() == key.len() {
            return None;
        }
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .expect("every kind is named")
    }
}

/// One of yizhan's values a field takes, named as in the SMS templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The event's title.
    Event,
    /// Its site's name (or its venue's).
    Site,
    /// When it starts.
    Time,
    /// An offer's deadline (`seat_offered` only).
    Deadline,
    /// A short word for what happened: 待确认, 已确认, 已取消…
    Status,
}

impl Source {
    const NAMES: [(&'static str, Source); 5] = [
        ("event", Source::Event),
        ("site", Source::Site),
        ("time", Source::Time),
        ("deadline", Source::Deadline),
        ("status", Source::Status),
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .expect("every source is named")
    }

    fn parse(s: &str) -> Option<Source> {
        Self::NAMES.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
    }

    /// The field types this value can fill without WeChat refusing it.
    fn fits(self, kind: FieldKind) -> bool {
        use FieldKind as K;
        match self {
            Source::Event | Source::Site => kind == K::Thing,
            Source::Time | Source::Deadline => matches!(kind, K::Time | K::Date | K::Thing),
            Source::Status => matches!(kind, K::Phrase | K::Thing),
        }
    }
}

/// One template, as approved in the mini program's console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub template_id: String,
    /// The mini program's page the message opens (`?booking=<id>` is added).
    pub page: Option<String>,
    /// Field key, its type, and the value it takes, in key order.
    pub fields: Vec<(String, FieldKind, Source)>,
}

/// `--wechat-templates`: one template per notice type that goes by WeChat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Templates(BTreeMap<&'static str, (NoticeType, Template)>);

/// A mistake in the templates file, naming its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// `seat_offered.fields.time2`, or `line 3` for a syntax error.
    pub key: String,
    pub problem: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

impl std::error::Error for TemplateError {}

fn wrong(key: impl Into<String>, problem: impl Into<String>) -> TemplateError {
    TemplateError {
        key: key.into(),
        problem: problem.into(),
    }
}

impl Templates {
    /// Read and check the TOML text of a templates file.
    pub fn parse(text: &str) -> Result<Templates, TemplateError> {
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            wrong(
                line.map_or("the file".to_owned(), |l| format!("line {l}")),
                e.message().to_owned(),
            )
        })?;
        let mut out = BTreeMap::new();
        for (name, table) in &doc {
            let kind: NoticeType = name
                .parse()
                .map_err(|_| wrong(name, "not a notification type"))?;
            let table = table
                .as_table()
                .ok_or_else(|| wrong(name, "expected a table"))?;
            out.insert(kind.as_str(), (kind, template(kind, table)?));
        }
        Ok(Templates(out))
    }

    /// The template for notices of this type, if one is configured.
    pub fn get(&self, kind: NoticeType) -> Option<&Template> {
        self.0.get(kind.as_str()).map(|(_, t)| t)
    }

    /// Every configured template id, with its notice type.
    pub fn ids(&self) -> impl Iterator<Item = (NoticeType, &str)> {
        self.0.values().map(|(k, t)| (*k, t.template_id.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn template(kind: NoticeType, table: &toml::Table) -> Result<Template, TemplateError> {
    let at = |k: &str| format!("{}.{k}", kind.as_str());
    for k in table.keys() {
        if !["template_id", "page", "fields"].contains(&k.as_str()) {
            return Err(wrong(at(k), "unknown key (template_id, page, fields)"));
        }
    }
    let template_id = match table.get("template_id") {
        Some(toml::Value::String(s)) if !s.trim().is_empty() && s.len() <= 128 => s.clone(),
        Some(_) => return Err(wrong(at("template_id"), "expected the template's id")),
        None => return Err(wrong(at("template_id"), "missing")),
    };
    let page = match table.get("page") {
        None => None,
        Some(toml::Value::String(s))
            if !s.is_empty() && !s.contains('?') && !s.starts_with('/') =>
        {
            Some(s.clone())
        }
        Some(_) => {
            return Err(wrong(
                at("page"),
                "expected a page path such as pages/booking/detail (no leading / or ?query)",
            ));
        }
    };
    let fields = table
        .get("fields")
        .ok_or_else(|| wrong(at("fields"), "missing"))?
        .as_table()
        .ok_or_else(|| {
            wrong(
                at("fields"),
                "expected a table such as { thing1 = \"event\" }",
            )
        })?;
    if fields.is_empty() {
        return Err(wrong(at("fields"), "a template has at least one field"));
    }
    let mut out = Vec::new();
    for (key, value) in fields {
        let here = at(&format!("fields.{key}"));
        let field = FieldKind::of_key(key).ok_or_else(|| {
            wrong(
                &here,
                "not a subscribe-message field (a type and a number: thing1, time2, phrase3…)",
            )
        })?;
        let source = value
            .as_str()
            .and_then(Source::parse)
            .ok_or_else(|| wrong(&here, "expected one of event, site, time, deadline, status"))?;
        if source == Source::Deadline && kind != NoticeType::SeatOffered {
            return Err(wrong(&here, "only seat_offered has a deadline"));
        }
        if !source.fits(field) {
            return Err(wrong(
                &here,
                format!(
                    "a {} field cannot hold the {}",
                    field.as_str(),
                    source.as_str()
                ),
            ));
        }
        out.push((key.clone(), field, source));
    }
    Ok(Template {
        template_id,
        page,
        fields: out,
    })
}

/// yizhan's values for one notice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    pub event: Option<String>,
    pub site: Option<String>,
    pub time: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub status: Option<&'static str>,
}

/// The short word `status` takes for a notice of this type.
pub fn status_word(kind: NoticeType) -> &'static str {
    match kind {
        NoticeType::BookingConfirmed | NoticeType::WaitlistPromoted => "已确认",
        NoticeType::SeatOffered => "待确认",
        NoticeType::OfferLapsed => "已过期",
        NoticeType::EventChanged | NoticeType::SiteHoursChanged => "已变更",
        NoticeType::EventCancelled => "已取消",
        NoticeType::EventReminder => "即将开始",
        NoticeType::SiteClosed => "已关闭",
        NoticeType::SiteReopened => "已开放",
        NoticeType::MembershipApproved => "已通过",
        NoticeType::MembershipRejected => "未通过",
        NoticeType::DrawResult => "未中签",
    }
}

/// The most characters a `thing` holds.
pub const THING_MAX: usize = 20;

/// `s` cut to at most `n` characters (whole characters), control characters
/// (which WeChat refuses) as spaces.
pub fn cut(s: &str, n: usize) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(n)
        .collect()
}

/// `2026年12月20日 09:00`: a time as `time` fields take it, China time.
pub fn wechat_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&SHANGHAI)
        .format("%Y年%m月%d日 %H:%M")
        .to_string()
}

/// The `data` of a subscribe message: each field's value fitted to its
/// type. `Err(key)`: the notice lacks a value this field takes.
pub fn fill(t: &Template, v: &Values) -> Result<Vec<(String, String)>, String> {
    t.fields
        .iter()
        .map(|(key, kind, source)| {
            let text = match source {
                Source::Event => v.event.clone(),
                Source::Site => v.site.clone(),
                Source::Status => v.status.map(str::to_owned),
                Source::Time | Source::Deadline => {
                    let at = if *source == Source::Time {
                        v.time
                    } else {
                        v.deadline
                    };
                    at.map(|at| match kind {
                        FieldKind::Date => at
                            .with_timezone(&SHANGHAI)
                            .format("%Y年%m月%d日")
                            .to_string(),
                        FieldKind::Thing => super::sms::china_time(at),
                        _ => wechat_time(at),
                    })
                }
            }
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| key.clone())?;
            let fitted = match kind {
                FieldKind::Phrase => cut(&text, 5),
                _ => cut(&text, THING_MAX),
            };
            Ok((key.clone(), fitted))
        })
        .collect()
}

/// What an `errcode` from WeChat means for yizhan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 0.
    Ok,
    /// The access token is invalid or expired (40001, 40014, 42001): fetch
    /// a new one once and try again.
    Token,
    /// The person has no consent left for this template (43101).
    NoConsent,
    /// A field's value broke its type's rule (47003): the templates file is
    /// wrong for this template.
    BadField,
    /// The openid is not this mini program's (40003).
    UnknownUser,
    /// A login or phone code is invalid, used or expired (40029, 40163).
    BadCode,
    /// WeChat refused a risky user (40226).
    Risky,
    /// Busy or rate-limited: try again later (-1, 45009, 45011).
    Later,
    /// yizhan's configuration is wrong: appid, secret, template id, page,
    /// the server's address not on the allow-list, an API not granted.
    Config,
    /// Anything else.
    Unknown,
}

impl Class {
    /// Its name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::Token => "token",
            Class::NoConsent => "no_consent",
            Class::BadField => "bad_field",
            Class::UnknownUser => "unknown_user",
            Class::BadCode => "bad_code",
            Class::Risky => "risky",
            Class::Later => "later",
            Class::Config => "config",
            Class::Unknown => "unknown",
        }
    }
}

/// The class of a WeChat `errcode`.
pub fn classify(errcode: i64) -> Class {
    match errcode {
        0 => Class::Ok,
        40001 | 40014 | 42001 => Class::Token,
        43101 => Class::NoConsent,
        47003 => Class::BadField,
        40003 => Class::UnknownUser,
        40029 | 40163 => Class::BadCode,
        40226 => Class::Risky,
        -1 | 45009 | 45011 => Class::Later,
        40013 | 40125 | 40164 | 40037 | 41030 | 48001 | 40002 | 41002 | 41004 => Class::Config,
        _ => Class::Unknown,
    }
}

/// The field a `47003` errmsg names (`argument invalid! data.thing1.value
/// invalid`), if it names one.
pub fn field_of_47003(errmsg: &str) -> Option<&str> {
    let start = errmsg.find("data.")? + "data.".len();
    let rest = &errmsg[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const EXAMPLE: &str = r#"
[seat_offered]
template_id = "tmpl-offer"
page = "pages/booking/detail"
fields = { thing1 = "event", time2 = "deadline", thing3 = "site", phrase4 = "status" }

[event_cancelled]
template_id = "tmpl-cancel"
fields = { thing1 = "event", date2 = "time" }
"#;

    #[test]
    fn field_types_come_from_their_keys() {
        assert_eq!(FieldKind::of_key("thing1"), Some(FieldKind::Thing));
        assert_eq!(
            FieldKind::of_key("character_string12"),
            Some(FieldKind::CharacterString)
        );
        assert_eq!(FieldKind::of_key("phrase3"), Some(FieldKind::Phrase));
        assert_eq!(FieldKind::of_key("thing"), None);
        assert_eq!(FieldKind::of_key("colour1"), None);
        assert_eq!(FieldKind::of_key("1"), None);
        for (name, kind) in FieldKind::NAMES {
            assert_eq!(kind.as_str(), name);
        }
    }

    #[test]
    fn the_issues_example_parses() {
        let t = Templates::parse(EXAMPLE).unwrap();
        let offer = t.get(NoticeType::SeatOffered).unwrap();
        assert_eq!(offer.template_id, "tmpl-offer");
        assert_eq!(offer.page.as_deref(), Some("pages/booking/detail"));
        assert_eq!(
            offer.fields,
            vec![
                ("phrase4".into(), FieldKind::Phrase, Source::Status),
                ("thing1".into(), FieldKind::Thing, Source::Event),
                ("thing3".into(), FieldKind::Thing, Source::Site),
                ("time2".into(), FieldKind::Time, Source::Deadline),
            ]
        );
        assert!(t.get(NoticeType::EventReminder).is_none());
        assert_eq!(t.ids().count(), 2);
    }

    #[test]
    fn every_mistake_names_its_key() {
        let cases = [
            (
                "[seat_offerd]\ntemplate_id = \"x\"\nfields = { thing1 = \"event\" }",
                "seat_offerd",
            ),
            (
                "[seat_offered]\nfields = { thing1 = \"event\" }",
                "seat_offered.template_id",
            ),
            (
                "[seat_offered]\ntemplate_id = \"\"\nfields = { thing1 = \"event\" }",
                "seat_offered.template_id",
            ),
            ("[seat_offered]\ntemplate_id = \"x\"", "seat_offered.fields"),
            (
                "[seat_offered]\ntemplate_id = \"x\"\nfields = {}",
                "seat_offered.fields",
            ),
            (
                "[seat_offered]\ntemplate_id = \"x\"\ncolour = 1\nfields = { thing1 = \"event\" }",
                "seat_offered.colour",
            ),
            (
                "[seat_offered]\ntemplate_id = \"x\"\nfields = { thingy = \"event\" }",
                "seat_offered.fields.thingy",
            ),
            (
                "[seat_offered]\ntemplate_id = \"x\"\nfields = { thing1 = \"title\" }",
                "seat_offered.fields.thing1",
            ),
            (
                "[seat_offered]\ntemplate_id = \"x\"\nfields = { time1 = \"event\" }",
                "seat_offered.fields.time1",
            ),
            (
                "[seat_offered]\ntemplate_id = \"x\"\nfields = { phrase1 = \"site\" }",
                "seat_offered.fields.phrase1",
            ),
            (
                "[event_cancelled]\ntemplate_id = \"x\"\nfields = { time1 = \"deadline\" }",
                "event_cancelled.fields.time1",
            ),
            (
                "[seat_offered]\ntemplate_id = \"x\"\npage = \"/pages/a\"\nfields = { thing1 = \"event\" }",
                "seat_offered.page",
            ),
            (
                "[seat_offered]\ntemplate_id = \"x\"\nfields = 3",
                "seat_offered.fields",
            ),
            ("seat_offered = 1", "seat_offered"),
        ];
        for (text, key) in cases {
            let e = Templates::parse(text).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    #[test]
    fn a_syntax_error_names_only_its_line() {
        let e =
            Templates::parse("[seat_offered]\ntemplate_id = \"secret-ish\nfields = 1").unwrap_err();
        assert_eq!(e.key, "line 2", "{e}");
        assert!(!e.to_string().contains("secret-ish"), "{e}");
    }

    #[test]
    fn values_are_fitted_to_their_fields() {
        let t = Templates::parse(EXAMPLE).unwrap();
        let at = SHANGHAI
            .with_ymd_and_hms(2026, 12, 20, 9, 5, 0)
            .unwrap()
            .to_utc();
        let long = "山东省总工会二〇二六年冬季一线职工疗休养活动（第一批）";
        let v = Values {
            event: Some(long.into()),
            site: Some("济南\n驿站".into()),
            time: Some(at),
            deadline: Some(at),
            status: Some(status_word(NoticeType::SeatOffered)),
        };
        let data: BTreeMap<_, _> = fill(t.get(NoticeType::SeatOffered).unwrap(), &v)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(data["thing1"].chars().count(), 20);
        assert!(long.starts_with(&data["thing1"]));
        assert_eq!(data["thing3"], "济南 驿站");
        assert_eq!(data["time2"], "2026年12月20日 09:05");
        assert_eq!(data["phrase4"], "待确认");
        let cancel = t.get(NoticeType::EventCancelled).unwrap();
        let data: BTreeMap<_, _> = fill(cancel, &v).unwrap().into_iter().collect();
        assert_eq!(data["date2"], "2026年12月20日");
        // A value the notice lacks names its field.
        let bare = Values {
            event: Some("x".into()),
            ..Values::default()
        };
        assert_eq!(fill(cancel, &bare).unwrap_err(), "date2");
    }

    #[test]
    fn every_status_word_is_a_phrase() {
        for kind in NoticeType::ALL {
            let w = status_word(kind);
            assert!(
                w.chars().count() <= 5 && w.chars().all(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{w}"
            );
        }
    }

    #[test]
    fn errcodes_are_classed() {
        assert_eq!(classify(0), Class::Ok);
        assert_eq!(classify(42001), Class::Token);
        assert_eq!(classify(40001), Class::Token);
        assert_eq!(classify(43101), Class::NoConsent);
        assert_eq!(classify(47003), Class::BadField);
        assert_eq!(classify(40029), Class::BadCode);
        assert_eq!(classify(-1), Class::Later);
        assert_eq!(classify(45009), Class::Later);
        assert_eq!(classify(40125), Class::Config);
        assert_eq!(classify(12345), Class::Unknown);
        assert_eq!(
            field_of_47003("argument invalid! data.thing1.value invalid rid: 1"),
            Some("thing1")
        );
        assert_eq!(field_of_47003("argument invalid!"), None);
    }
}
