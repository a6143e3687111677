//! Web Push rules (RFC 8030, 8291, 8292), free of I/O: which subscriptions
//! are acceptable, what a person's notification settings allow and when,
//! what goes in the encrypted payload, and what a push service's answer
//! means. Encrypting, signing and sending are the `push` module's.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::Serialize;

use super::hours::SHANGHAI;
use super::notify::NoticeType;

crate::domain::id::opaque_id!(
    /// A push subscription's opaque id, such as `p3k9v0q2m7x1c`.
    SubscriptionId,
    "p",
    BadSubscriptionId,
    "push subscription"
);

/// base64url as browsers write it, with or without padding.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// base64url without padding, as keys are served.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decode base64url with or without padding.
pub fn from_b64url(s: &str) -> Option<Vec<u8>> {
    B64URL.decode(s.trim()).ok()
}

/// Longest endpoint URL accepted.
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// A browser's `PushSubscription`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    pub endpoint: String,
    /// The browser's P-256 public key, a 65-byte uncompressed point.
    pub p256dh: Vec<u8>,
    /// The 16-byte authentication secret.
    pub auth: Vec<u8>,
    /// Only these types are pushed to this device; `None`: all.
    pub types: Option<Vec<NoticeType>>,
}

/// A field at fault and why.
pub type FieldError = (&'static str, String);

/// Check a subscription as a browser sends it. The endpoint must be `https`
/// on a public host; with `allow_insecure_loopback` (tests), also
/// `http://127.0.0.1:…` or `http://[::1]:…`.
pub fn validate_subscription(
    endpoint: &str,
    p256dh: &str,
    auth: &str,
    types: Option<Vec<NoticeType>>,
    allow_insecure_loopback: bool,
) -> Result<NewSubscription, FieldError> {
    check_endpoint(endpoint, allow_insecure_loopback).map_err(|e| ("endpoint", e))?;
    let key = from_b64url(p256dh).ok_or_else(|| ("keys.p256dh", "is not base64url".to_owned()))?;
    if key.len() != 65 || key[0] != 0x04 {
        return Err((
            "keys.p256dh",
            format!(
                "must be a 65-byte uncompressed P-256 point, got {} bytes",
                key.len()
            ),
        ));
    }
    if p256::PublicKey::from_sec1_bytes(&key).is_err() {
        return Err(("keys.p256dh", "is not a point on P-256".to_owned()));
    }
    let secret = from_b64url(auth).ok_or_else(|| ("keys.auth", "is not base64url".to_owned()))?;
    if secret.len() != 16 {
        return Err((
            "keys.auth",
            format!("must be 16 bytes, got {}", secret.len()),
        ));
    }
    if types.as_ref().is_some_and(|t| t.is_empty()) {
        return Err((
            "types",
            "must name at least one type (leave it out for all)".to_owned(),
        ));
    }
    Ok(NewSubscription {
        endpoint: endpoint.to_owned(),
        p256dh: key,
        auth: secret,
        types: types.map(dedup),
    })
}

fn dedup(mut t: Vec<NoticeType>) -> Vec<NoticeType> {
    t.sort_by_key(|k| k.as_str());
    t.dedup();
    t
}

fn check_endpoint(endpoint: &str, allow_insecure_loopback: bool) -> Result<(), String> {
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(format!("is longer than {MAX_ENDPOINT_LEN} characters"));
    }
    let url = url::Url::parse(endpoint).map_err(|e| format!("is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let host = url.host().ok_or("has no host")?;
    let loopback = match &host {
        url::Host::Ipv4(a) => a.is_loopback(),
        url::Host::Ipv6(a) => a.is_loopback(),
        url::Host::Domain(_) => false,
    };
    match url.scheme() {
        "http" if loopback && allow_insecure_loopback => return Ok(()),
        "https" => {}
        _ => return Err("must be an https URL".into()),
    }
    // A push service is on the public Internet: an address literal inside a
    // private network would make this server a way in.
    let private = match host {
        url::Host::Ipv4(a) => {
            a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
        }
        url::Host::Ipv6(a) => {
            a.is_loopback()
                || a.is_unspecified()
                || (a.segments()[0] & 0xfe00) == 0xfc00
                || (a.segments()[0] & 0xffc0) == 0xfe80
        }
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
    };
    if private && !(loopback && allow_insecure_loopback) {
        return Err("must be a push service on a public host".into());
    }
    Ok(())
}

/// Hours in China time when pushes wait (the inbox does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub from: NaiveTime,
    pub to: NaiveTime,
}

impl QuietHours {
    /// Parse `HH:MM` bounds; they must differ.
    pub fn parse(from: &str, to: &str) -> Result<QuietHours, FieldError> {
        let t = |s: &str, field| {
            NaiveTime::parse_from_str(s, "%H:%M")
                .map_err(|_| (field, format!("'{s}' is not a time HH:MM")))
        };
        let q = QuietHours {
            from: t(from, "quiet_hours.from")?,
            to: t(to, "quiet_hours.to")?,
        };
        if q.from == q.to {
            return Err(("quiet_hours.to", "must differ from `from`".into()));
        }
        Ok(q)
    }

    /// If `now` falls in the quiet hours, when they end.
    pub fn ends_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&SHANGHAI);
        let t = local.time();
        let inside = if self.from < self.to {
            self.from <= t && t < self.to
        } else {
            t >= self.from || t < self.to
        };
        if !inside {
            return None;
        }
        let day = if t < self.to {
            local.date_naive()
        } else {
            local.date_naive() + Duration::days(1)
        };
        Some(
            day.and_time(self.to)
                .and_local_timezone(SHANGHAI)
                .single()
                .expect("a fixed offset")
                .with_timezone(&Utc),
        )
    }

    pub fn format(t: NaiveTime) -> String {
        t.format("%H:%M").to_string()
    }
}

/// What a person chose about their notifications.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotificationSettings {
    /// Never pushed nor texted (the inbox still has them).
    pub muted_types: Vec<NoticeType>,
    pub quiet_hours: Option<QuietHours>,
}

impl NotificationSettings {
    pub fn new(muted: Vec<NoticeType>, quiet_hours: Option<QuietHours>) -> NotificationSettings {
        NotificationSettings {
            muted_types: dedup(muted),
            quiet_hours,
        }
    }

    pub fn mutes(&self, kind: NoticeType) -> bool {
        self.muted_types.contains(&kind)
    }

    /// When the person's quiet hours, holding a notice of this kind now, end:
    /// every channel waits for them, except for an offered seat, which
    /// cannot wait.
    pub fn quiet_until(&self, kind: NoticeType, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if kind == NoticeType::SeatOffered {
            return None;
        }
        self.quiet_hours.and_then(|q| q.ends_after(now))
    }
}

/// How long a push without a natural deadline is worth keeping.
pub const DEFAULT_TTL: Duration = Duration::days(3);

/// Whether to push a notice to one subscription now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushDecision {
    /// Push it, for the push service to keep this many seconds (`TTL`).
    Send { ttl_secs: i64 },
    /// Quiet hours: look again then.
    WaitUntil(DateTime<Utc>),
    /// Not at all, and why.
    Skip(&'static str),
}

/// Push a notice now, later or never: never once it has expired or when
/// its type is muted (for the person or on this device); quiet hours hold
/// it until they end, except an offered seat, which cannot wait.
pub fn push_decision(
    kind: NoticeType,
    expires_at: Option<DateTime<Utc>>,
    settings: &NotificationSettings,
    device_types: Option<&[NoticeType]>,
    now: DateTime<Utc>,
) -> PushDecision {
    if expires_at.is_some_and(|e| e <= now) {
        return PushDecision::Skip("expired before it could be pushed");
    }
    if settings.mutes(kind) {
        return PushDecision::Skip("muted in the person's settings");
    }
    if device_types.is_some_and(|t| !t.contains(&kind)) {
        return PushDecision::Skip("muted on this device");
    }
    if let Some(end) = settings.quiet_until(kind, now) {
        return if expires_at.is_some_and(|e| e <= end) {
            PushDecision::Skip("would expire in quiet hours")
        } else {
            PushDecision::WaitUntil(end)
        };
    }
    let ttl = expires_at.map_or(DEFAULT_TTL, |e| e - now);
    PushDecision::Send {
        ttl_secs: ttl.num_seconds().clamp(1, Duration::days(28).num_seconds()),
    }
}

/// The `Urgency` header (RFC 8030 §5.3): an offered seat wakes the phone.
pub fn urgency(kind: NoticeType) -> &'static str {
    match kind {
        NoticeType::SeatOffered => "high",
        NoticeType::SiteHoursChanged => "low",
        _ => "normal",
    }
}

/// The `Topic` header (RFC 8030 §5.4): at most 32 base64url characters, so
/// a stored topic is hashed down to that.
pub fn topic_header(topic: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(topic.as_bytes());
    b64url(&digest[..24])
}

/// Most plaintext a push can carry (RFC 8291: 4,096-byte records less the
/// header, key id, padding delimiter and tag).
pub const MAX_PAYLOAD: usize = 3993;

#[derive(Serialize)]
struct Payload<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    body: &'a str,
    url: &'a str,
}

/// The JSON a service worker receives: `{"id","type","title","body","url"}`,
/// the body shortened (by whole characters, with `…`) to fit [`MAX_PAYLOAD`].
pub fn payload(id: &str, kind: NoticeType, title: &str, body: &str, url: &str) -> Vec<u8> {
    let encode = |title: &str, body: &str| {
        serde_json::to_vec(&Payload {
            id,
            kind: kind.as_str(),
            title,
            body,
            url,
        })
        .expect("plain strings serialise")
    };
    let full = encode(title, body);
    if full.len() <= MAX_PAYLOAD {
        return full;
    }
    let title: String = title.chars().take(64).collect();
    let mut chars: Vec<char> = body.chars().collect();
    loop {
        let short: String = chars.iter().collect::<String>() + "…";
        let out = encode(&title, &short);
        if out.len() <= MAX_PAYLOAD || chars.is_empty() {
            return out;
        }
        // Each character costs at most 6 bytes of JSON (`\uXXXX` is 6).
        let over = (out.len() - MAX_PAYLOAD).div_ceil(6).max(1);
        chars.truncate(chars.len().saturating_sub(over));
    }
}

/// What a push service's answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushResult {
    /// Accepted (201): the push service holds it.
    Accepted,
    /// The subscription is gone (404, 410): delete it.
    Gone(String),
    /// Try again at this time.
    Retry { at: DateTime<Utc>, why: String },
    /// Give up, and why.
    GiveUp(String),
}

/// Classify an answer (`None`: no answer, a network error) to try number
/// `attempts + 1`. 429 and 5xx are retried by the one retry rule
/// ([`super::retry`]), never sooner than the service's `Retry-After`.
pub fn push_result(
    status: Option<u16>,
    retry_after: Option<Duration>,
    why: &str,
    attempts: u32,
    now: DateTime<Utc>,
) -> PushResult {
    use super::retry::{MAX_ATTEMPTS, Retry, next_try};
    let retry =
        |what: String| match next_try(attempts, retry_after.unwrap_or(Duration::zero()), now) {
            Retry::GiveUp => {
                PushResult::GiveUp(format!("gave up after {MAX_ATTEMPTS} tries: {what}"))
            }
            Retry::At(at) => PushResult::Retry { at, why: what },
        };
    match status {
        Some(200..=299) => PushResult::Accepted,
        Some(s @ (404 | 410)) => PushResult::Gone(format!("{s}: the subscription is gone {why}")),
        Some(s @ (429 | 500..=599)) => retry(format!("{s} {why}")),
        Some(s) => PushResult::GiveUp(format!("{s} {why}")),
        None => retry(why.to_owned()),
    }
}

/// Parse `Retry-After`: delta-seconds or an HTTP date.
pub fn parse_retry_after(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u32>() {
        return Some(Duration::seconds(s.into()));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - now).max(Duration::zero()))
}

/// The VAPID JWT's claims (RFC 8292 §2): the push service's origin, an
/// expiry within 24 hours, and who to contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VapidClaims {
    pub aud: String,
    pub exp: i64,
    pub sub: String,
}

/// How long a signed token is used (12 h: within the 24 h RFC 8292 allows,
/// with room for clock skew).
pub const JWT_VALID: Duration = Duration::hours(12);

/// The claims for a push to `endpoint`, or `None` when it is no URL.
pub fn vapid_claims(endpoint: &str, subject: &str, now: DateTime<Utc>) -> Option<VapidClaims> {
    let url = url::Url::parse(endpoint).ok()?;
    let origin = url.origin();
    origin.is_tuple().then(|| VapidClaims {
        aud: origin.ascii_serialization(),
        exp: (now + JWT_VALID).timestamp(),
        sub: subject.to_owned(),
    })
}

/// Check `--vapid-subject`: a `mailto:` or `https:` URL, and not on
/// `localhost` (Apple's push service rejects that).
pub fn validate_subject(subject: &str) -> Result<(), String> {
    let url = url::Url::parse(subject).map_err(|e| format!("'{subject}' is not a URL: {e}"))?;
    match url.scheme() {
        "mailto" => {
            if url.path().contains('@') && !url.path().ends_with("@localhost") {
                Ok(())
            } else {
                Err(format!(
                    "'{subject}' needs a real address, as mailto:ops@example.org"
                ))
            }
        }
        "https" if url.host_str().is_some_and(|h| h != "localhost") => Ok(()),
        _ => Err(format!(
            "'{subject}' must be a mailto: or https: URL not on localhost"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const KEY: &str =
        "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY";
    const AUTH: &str = "_ordMnz7uTCmrpBTeUV4Bw";

    fn cst(h: u32, m: u32) -> DateTime<Utc> {
        SHANGHAI
            .with_ymd_and_hms(2026, 11, 24, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_browser_subscription_is_accepted_and_bad_fields_are_named() {
        let ok = validate_subscription(
            "https://fcm.googleapis.com/fcm/send/abc",
            KEY,
            AUTH,
            None,
            false,
        )
        .unwrap();
        assert_eq!(ok.p256dh.len(), 65);
        assert_eq!(ok.auth.len(), 16);
        let padded = format!("{AUTH}==");
        assert!(validate_subscription("https://p.example/x", KEY, &padded, None, false).is_ok());
        let field = |e: &str, k: &str, a: &str, t: Option<Vec<NoticeType>>, lo: bool| {
            validate_subscription(e, k, a, t, lo).unwrap_err().0
        };
        assert_eq!(
            field("http://p.example/x", KEY, AUTH, None, false),
            "endpoint"
        );
        assert_eq!(
            field("http://127.0.0.1:9/x", KEY, AUTH, None, false),
            "endpoint"
        );
        assert!(validate_subscription("http://127.0.0.1:9/x", KEY, AUTH, None, true).is_ok());
        assert_eq!(
            field("https://10.0.0.1/x", KEY, AUTH, None, false),
            "endpoint"
        );
        assert_eq!(
            field("https://localhost/x", KEY, AUTH, None, true),
            "endpoint"
        );
        assert_eq!(
            field("https://u:p@p.example/x", KEY, AUTH, None, false),
            "endpoint"
        );
        assert_eq!(field("not a url", KEY, AUTH, None, false), "endpoint");
        assert_eq!(
            field("https://p.example/x", &KEY[..40], AUTH, None, false),
            "keys.p256dh"
        );
        assert_eq!(
            field("https://p.example/x", "!!", AUTH, None, false),
            "keys.p256dh"
        );
        // 65 bytes starting 0x04 but not on the curve.
        let off = b64url(&[&[4u8][..], &[1u8; 64][..]].concat());
        assert_eq!(
            field("https://p.example/x", &off, AUTH, None, false),
            "keys.p256dh"
        );
        assert_eq!(
            field("https://p.example/x", KEY, "AAAA", None, false),
            "keys.auth"
        );
        assert_eq!(
            field("https://p.example/x", KEY, AUTH, Some(vec![]), false),
            "types"
        );
    }

    #[test]
    fn quiet_hours_wrap_midnight_and_end_at_their_close() {
        let q = QuietHours::parse("22:00", "07:00").unwrap();
        assert_eq!(q.ends_after(cst(21, 59)), None);
        assert_eq!(
            q.ends_after(cst(22, 0)),
            Some(cst(7, 0) + Duration::days(1))
        );
        assert_eq!(q.ends_after(cst(6, 59)), Some(cst(7, 0)));
        assert_eq!(q.ends_after(cst(7, 0)), None);
        let day = QuietHours::parse("12:00", "14:00").unwrap();
        assert_eq!(day.ends_after(cst(13, 0)), Some(cst(14, 0)));
        assert_eq!(day.ends_after(cst(15, 0)), None);
        assert_eq!(
            QuietHours::parse("22:00", "22:00").unwrap_err().0,
            "quiet_hours.to"
        );
        assert_eq!(
            QuietHours::parse("25:00", "07:00").unwrap_err().0,
            "quiet_hours.from"
        );
    }

    #[test]
    fn quiet_hours_hold_every_kind_but_an_offer() {
        let quiet =
            NotificationSettings::new(vec![], Some(QuietHours::parse("12:00", "14:00").unwrap()));
        assert_eq!(
            quiet.quiet_until(NoticeType::EventCancelled, cst(13, 0)),
            Some(cst(14, 0))
        );
        assert_eq!(quiet.quiet_until(NoticeType::SeatOffered, cst(13, 0)), None);
        assert_eq!(
            quiet.quiet_until(NoticeType::EventCancelled, cst(15, 0)),
            None
        );
        assert_eq!(
            NotificationSettings::default().quiet_until(NoticeType::EventCancelled, cst(13, 0)),
            None
        );
    }

    #[test]
    fn quiet_hours_hold_pushes_except_an_offer_and_mutes_skip() {
        let quiet =
            NotificationSettings::new(vec![], Some(QuietHours::parse("22:00", "07:00").unwrap()));
        let night = cst(23, 0);
        let morning = cst(7, 0) + Duration::days(1);
        let later = Some(night + Duration::days(2));
        assert_eq!(
            push_decision(NoticeType::EventReminder, later, &quiet, None, night),
            PushDecision::WaitUntil(morning)
        );
        assert!(matches!(
            push_decision(NoticeType::SeatOffered, later, &quiet, None, night),
            PushDecision::Send { .. }
        ));
        assert_eq!(
            push_decision(
                NoticeType::EventReminder,
                Some(night + Duration::hours(1)),
                &quiet,
                None,
                night
            ),
            PushDecision::Skip("would expire in quiet hours")
        );
        let muted = NotificationSettings::new(vec![NoticeType::SiteClosed], None);
        assert!(matches!(
            push_decision(NoticeType::SiteClosed, None, &muted, None, night),
            PushDecision::Skip(_)
        ));
        let only_offers = [NoticeType::SeatOffered];
        assert!(matches!(
            push_decision(
                NoticeType::SiteClosed,
                None,
                &NotificationSettings::default(),
                Some(&only_offers),
                night
            ),
            PushDecision::Skip("muted on this device")
        ));
        // TTL: a reminder lives until the event starts; others three days.
        assert_eq!(
            push_decision(
                NoticeType::EventReminder,
                Some(night + Duration::hours(2)),
                &NotificationSettings::default(),
                None,
                night
            ),
            PushDecision::Send { ttl_secs: 7200 }
        );
        assert_eq!(
            push_decision(
                NoticeType::SiteClosed,
                None,
                &NotificationSettings::default(),
                None,
                night
            ),
            PushDecision::Send {
                ttl_secs: 3 * 86400
            }
        );
        assert!(matches!(
            push_decision(
                NoticeType::EventReminder,
                Some(night),
                &NotificationSettings::default(),
                None,
                night
            ),
            PushDecision::Skip(_)
        ));
    }

    #[test]
    fn the_payload_fits_one_record_whatever_the_body() {
        let short = payload(
            "n1",
            NoticeType::SeatOffered,
            "课程",
            "请确认",
            "/events/e1",
        );
        let v: serde_json::Value = serde_json::from_slice(&short).unwrap();
        assert_eq!(v["type"], "seat_offered");
        assert_eq!(v["url"], "/events/e1");
        for body in ["长".repeat(5000), "\u{1}".repeat(5000), "a".repeat(10_000)] {
            let p = payload(
                "n1",
                NoticeType::SeatOffered,
                &"题".repeat(2000),
                &body,
                "/e",
            );
            assert!(p.len() <= MAX_PAYLOAD, "{}", p.len());
            let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
            assert!(v["body"].as_str().unwrap().ends_with('…'));
            assert!(
                p.len() > MAX_PAYLOAD - 64,
                "not cut far more than needed: {}",
                p.len()
            );
        }
    }

    #[test]
    fn answers_are_retried_removed_or_given_up() {
        let now = cst(12, 0);
        let r =
            |s: Option<u16>, ra: Option<Duration>, attempts| push_result(s, ra, "", attempts, now);
        assert_eq!(r(Some(201), None, 0), PushResult::Accepted);
        assert!(matches!(r(Some(410), None, 0), PushResult::Gone(_)));
        assert!(matches!(r(Some(404), None, 0), PushResult::Gone(_)));
        assert!(matches!(r(Some(400), None, 0), PushResult::GiveUp(_)));
        assert!(matches!(r(Some(413), None, 0), PushResult::GiveUp(_)));
        // Backoff doubles; Retry-After is a floor.
        assert!(
            matches!(r(Some(500), None, 2), PushResult::Retry { at, .. } if at == now + Duration::seconds(120))
        );
        assert!(
            matches!(r(Some(429), Some(Duration::seconds(600)), 0), PushResult::Retry { at, .. } if at == now + Duration::seconds(600))
        );
        assert!(
            matches!(r(Some(429), Some(Duration::seconds(1)), 0), PushResult::Retry { at, .. } if at == now + Duration::seconds(30))
        );
        assert!(matches!(r(None, None, 0), PushResult::Retry { .. }));
        assert!(
            matches!(r(Some(503), None, 7), PushResult::GiveUp(w) if w.contains("gave up after 8"))
        );
        assert_eq!(parse_retry_after("120", now), Some(Duration::seconds(120)));
        let date = (now + Duration::seconds(90)).to_rfc2822();
        assert_eq!(parse_retry_after(&date, now), Some(Duration::seconds(90)));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn vapid_claims_name_the_endpoints_origin_and_expire_within_a_day() {
        let now = cst(12, 0);
        let c = vapid_claims(
            "https://updates.push.services.mozilla.com/wpush/v2/abc",
            "mailto:ops@example.org",
            now,
        )
        .unwrap();
        assert_eq!(c.aud, "https://updates.push.services.mozilla.com");
        assert!(c.exp > now.timestamp() && c.exp <= (now + Duration::hours(24)).timestamp());
        assert_eq!(
            vapid_claims("http://127.0.0.1:8000/push/a", "mailto:a@b.c", now)
                .unwrap()
                .aud,
            "http://127.0.0.1:8000"
        );
        assert!(validate_subject("mailto:ops@example.org").is_ok());
        assert!(validate_subject("https://yizhan.example.org").is_ok());
        assert!(validate_subject("https://localhost").is_err());
        assert!(validate_subject("mailto:root@localhost").is_err());
        assert!(validate_subject("ops@example.org").is_err());
        assert_eq!(topic_header("e123-b456").len(), 32);
        assert_ne!(topic_header("e1-reminder"), topic_header("e2-reminder"));
    }
}
