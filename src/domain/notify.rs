//! What people are told, and when: the notices the rules produce (in the same
//! transaction as their cause), their Chinese default texts, and the SMS
//! fallback policy. Delivery (inbox, Web Push, SMS) is the `notify` module's.

use chrono::{DateTime, Duration, Timelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::booking::Transition;
use super::event::{BookingStatus, Event};
use super::hours::SHANGHAI;
use super::site::{Site, Status};
use super::user::UserId;

crate::domain::id::opaque_id!(
    /// A notification's opaque id, such as `n3k9v0q2m7x1c`.
    NotificationId,
    "n",
    BadNotificationId,
    "notification"
);

/// The kinds of notice (`type` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeType {
    BookingConfirmed,
    WaitlistPromoted,
    SeatOffered,
    OfferLapsed,
    EventChanged,
    EventCancelled,
    EventReminder,
    SiteHoursChanged,
    SiteClosed,
    SiteReopened,
    MembershipApproved,
    MembershipRejected,
    /// A draw was made and did not place the person (waiting, or not eligible).
    DrawResult,
}

impl NoticeType {
    pub const ALL: [NoticeType; 13] = [
        NoticeType::BookingConfirmed,
        NoticeType::WaitlistPromoted,
        NoticeType::SeatOffered,
        NoticeType::OfferLapsed,
        NoticeType::EventChanged,
        NoticeType::EventCancelled,
        NoticeType::EventReminder,
        NoticeType::SiteHoursChanged,
        NoticeType::SiteClosed,
        NoticeType::SiteReopened,
        NoticeType::MembershipApproved,
        NoticeType::MembershipRejected,
        NoticeType::DrawResult,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeType::BookingConfirmed => "booking_confirmed",
            NoticeType::WaitlistPromoted => "waitlist_promoted",
            NoticeType::SeatOffered => "seat_offered",
            NoticeType::OfferLapsed => "offer_lapsed",
            NoticeType::EventChanged => "event_changed",
            NoticeType::EventCancelled => "event_cancelled",
            NoticeType::EventReminder => "event_reminder",
            NoticeType::SiteHoursChanged => "site_hours_changed",
            NoticeType::SiteClosed => "site_closed",
            NoticeType::SiteReopened => "site_reopened",
            NoticeType::MembershipApproved => "membership_approved",
            NoticeType::MembershipRejected => "membership_rejected",
            NoticeType::DrawResult => "draw_result",
        }
    }

    /// Must not be missed: falls back to SMS when still unread (each has
    /// its SMS template, [`crate::domain::sms::Message::for_notice`]).
    pub fn sms_fallback(self) -> bool {
        matches!(
            self,
            NoticeType::SeatOffered
                | NoticeType::EventCancelled
                | NoticeType::EventChanged
                | NoticeType::EventReminder
        )
    }
}

impl std::str::FromStr for NoticeType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        NoticeType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not a notification type"))
    }
}

/// A notice to one person, as the rules produce it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub user: UserId,
    /// When it was decided (the time of its cause).
    pub at: DateTime<Utc>,
    pub kind: NoticeType,
    pub title: String,
    pub body: String,
    /// A deep link path in the app, such as `/events/e…`.
    pub url: String,
    pub data: serde_json::Value,
    /// After this, pushing it is pointless (an offer's deadline, an event's start).
    pub expires_at: Option<DateTime<Utc>>,
    /// A newer push with the same topic replaces an older one on the device.
    pub topic: Option<String>,
}

/// `11月24日 09:00` in China time.
fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&SHANGHAI)
        .format("%m月%d日 %H:%M")
        .to_string()
}

fn event_url(e: &Event) -> String {
    format!("/events/{}", e.id)
}

/// What a booking's transition tells its holder, if anything.
pub fn for_transition(t: &Transition, e: &Event) -> Option<Notice> {
    let title = &e.draft.title;
    let data = |extra: serde_json::Value| {
        let mut d =
            serde_json::json!({"event_id": e.id.to_string(), "booking_id": t.booking.to_string()});
        if let (Some(d), Some(x)) = (d.as_object_mut(), extra.as_object()) {
            d.extend(x.clone());
        }
        d
    };
    let notice = |kind, body: String, data, expires_at| Notice {
        user: t.user,
        at: t.at,
        kind,
        title: title.clone(),
        body,
        url: event_url(e),
        data,
        expires_at,
        topic: Some(format!("{}-{}", e.id, t.booking)),
    };
    match (t.from, t.to, t.note) {
        (BookingStatus::Waitlisted, BookingStatus::Offered, Some("drawn")) => {
            let deadline = t.offer_expires_at?;
            Some(notice(
                NoticeType::SeatOffered,
                format!(
                    "抽签结果：您已中签「{title}」，请在{}前确认，逾期将顺延给下一位。",
                    local(deadline)
                ),
                data(
                    serde_json::json!({"offer_expires_at": super::timestamp::format(&deadline), "drawn": true}),
                ),
                Some(deadline),
            ))
        }
        (BookingStatus::Waitlisted, BookingStatus::Confirmed, _) => Some(notice(
            NoticeType::WaitlistPromoted,
            format!(
                "候补成功：您已获得「{title}」的名额，活动于{}开始。",
                local(e.draft.starts_at)
            ),
            data(serde_json::json!({})),
            Some(e.draft.starts_at),
        )),
        (BookingStatus::Waitlisted, BookingStatus::Offered, _) => {
            let deadline = t.offer_expires_at?;
            Some(notice(
                NoticeType::SeatOffered,
                format!(
                    "「{title}」空出一个名额，请在{}前确认，逾期将顺延给下一位。",
                    local(deadline)
                ),
                data(serde_json::json!({"offer_expires_at": super::timestamp::format(&deadline)})),
                Some(deadline),
            ))
        }
        (BookingStatus::Offered, BookingStatus::Cancelled, Some("offer lapsed")) => Some(notice(
            NoticeType::OfferLapsed,
            format!("您未在期限内确认「{title}」的名额，名额已顺延。"),
            data(serde_json::json!({})),
            None,
        )),
        (_, BookingStatus::Cancelled, Some("event cancelled")) => Some(notice(
            NoticeType::EventCancelled,
            format!(
                "很抱歉，原定{}的「{title}」已取消。",
                local(e.draft.starts_at)
            ),
            data(serde_json::json!({})),
            None,
        )),
        _ => None,
    }
}

/// The notice of a new confirmed booking.
pub fn booking_confirmed(user: UserId, booking: &str, e: &Event, at: DateTime<Utc>) -> Notice {
    Notice {
        user,
        at,
        kind: NoticeType::BookingConfirmed,
        title: e.draft.title.clone(),
        body: format!(
            "报名成功：「{}」将于{}开始。",
            e.draft.title,
            local(e.draft.starts_at)
        ),
        url: event_url(e),
        data: serde_json::json!({"event_id": e.id.to_string(), "booking_id": booking}),
        expires_at: Some(e.draft.starts_at),
        topic: Some(format!("{}-{booking}", e.id)),
    }
}

/// A draw placed the person on its waitlist: their rank and position.
pub fn draw_waiting(
    user: UserId,
    application: &str,
    e: &Event,
    rank: u32,
    position: u32,
    at: DateTime<Utc>,
) -> Notice {
    Notice {
        user,
        at,
        kind: NoticeType::DrawResult,
        title: e.draft.title.clone(),
        body: format!(
            "抽签结果：「{}」未中签，您排在候补第{position}位；有名额空出将按顺序通知您。",
            e.draft.title
        ),
        url: event_url(e),
        data: serde_json::json!({"event_id": e.id.to_string(), "application_id": application,
            "result": "waiting", "rank": rank, "waitlist_position": position}),
        expires_at: Some(e.draft.starts_at),
        topic: Some(format!("{}-{application}", e.id)),
    }
}

/// The event was cancelled before its draw: the applicant is told.
pub fn draw_cancelled(user: UserId, application: &str, e: &Event, at: DateTime<Utc>) -> Notice {
    Notice {
        user,
        at,
        kind: NoticeType::EventCancelled,
        title: e.draft.title.clone(),
        body: format!(
            "很抱歉，原定{}的「{}」已取消，抽签不再进行。",
            local(e.draft.starts_at),
            e.draft.title
        ),
        url: event_url(e),
        data: serde_json::json!({"event_id": e.id.to_string(), "application_id": application}),
        expires_at: None,
        topic: Some(format!("{}-{application}", e.id)),
    }
}

/// The person was not eligible when the draw was made.
pub fn draw_not_eligible(
    user: UserId,
    application: &str,
    e: &Event,
    why: &str,
    at: DateTime<Utc>,
) -> Notice {
    Notice {
        user,
        at,
        kind: NoticeType::DrawResult,
        title: e.draft.title.clone(),
        body: format!(
            "「{}」抽签时您不符合报名条件（{why}），未参加抽签。",
            e.draft.title
        ),
        url: event_url(e),
        data: serde_json::json!({"event_id": e.id.to_string(), "application_id": application,
            "result": "not_eligible"}),
        expires_at: None,
        topic: Some(format!("{}-{application}", e.id)),
    }
}

/// An application to a union (a join or a transfer) was approved.
pub fn membership_approved(
    user: UserId,
    membership: &str,
    union_name: &str,
    member_no: &str,
    at: DateTime<Utc>,
) -> Notice {
    Notice {
        user,
        at,
        kind: NoticeType::MembershipApproved,
        title: union_name.to_owned(),
        body: format!("入会申请已通过：您已成为「{union_name}」会员，会员号 {member_no}。"),
        url: format!("/memberships/{membership}"),
        data: serde_json::json!({"membership_id": membership, "member_no": member_no}),
        expires_at: None,
        topic: Some(format!("membership-{membership}")),
    }
}

/// An application to a union was rejected, with the union's reason.
pub fn membership_rejected(
    user: UserId,
    membership: &str,
    union_name: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> Notice {
    Notice {
        user,
        at,
        kind: NoticeType::MembershipRejected,
        title: union_name.to_owned(),
        body: format!("「{union_name}」未通过您的入会申请：{reason}"),
        url: format!("/memberships/{membership}"),
        data: serde_json::json!({"membership_id": membership, "reason": reason}),
        expires_at: None,
        topic: Some(format!("membership-{membership}")),
    }
}

/// What holders of active bookings hear when an event's time or place moves.
pub fn event_changed(
    user: UserId,
    before: &Event,
    after: &Event,
    at: DateTime<Utc>,
) -> Option<Notice> {
    let (b, a) = (&before.draft, &after.draft);
    let moved = b.starts_at != a.starts_at || b.ends_at != a.ends_at;
    let relocated = b.venue_name != a.venue_name || b.lat != a.lat || b.lon != a.lon;
    if !(moved || relocated) {
        return None;
    }
    Some(Notice {
        user,
        at,
        kind: NoticeType::EventChanged,
        title: a.title.clone(),
        body: format!(
            "「{}」有变动：现定于{}至{}举行。",
            a.title,
            local(a.starts_at),
            local(a.ends_at)
        ),
        url: event_url(after),
        data: serde_json::json!({"event_id": after.id.to_string(), "starts_at": super::timestamp::format(&a.starts_at), "ends_at": super::timestamp::format(&a.ends_at)}),
        expires_at: Some(a.starts_at),
        topic: Some(format!("{}-changed", after.id)),
    })
}

/// What followers of a site hear when a manager changes it: closed (status
/// or a new closure), reopened, or new hours. `None` for other edits.
pub fn for_site_change(user: UserId, old: &Site, new: &Site, at: DateTime<Utc>) -> Option<Notice> {
    let (o, n) = (&old.draft, &new.draft);
    let name = &n.name;
    let closed = |s: Status| s != Status::Open;
    let (kind, body) = if !closed(o.status) && closed(n.status) {
        let why = n.closure.reason.as_deref().unwrap_or("临时闭站");
        let until = n
            .closure
            .reopens_at
            .map(|t| format!("，预计{}恢复", local(t)))
            .unwrap_or_default();
        (
            NoticeType::SiteClosed,
            format!("您关注的「{name}」暂停开放：{why}{until}。"),
        )
    } else if closed(o.status) && !closed(n.status) {
        (
            NoticeType::SiteReopened,
            format!("您关注的「{name}」已恢复开放。"),
        )
    } else if n.closure.exceptions.len() > o.closure.exceptions.len()
        && let Some(c) = n
            .closure
            .exceptions
            .iter()
            .find(|c| !o.closure.exceptions.contains(c) && c.to > at)
    {
        (
            NoticeType::SiteClosed,
            format!(
                "您关注的「{name}」将于{}至{}暂停开放{}。",
                local(c.from),
                local(c.to),
                c.reason
                    .as_deref()
                    .map(|r| format!("（{r}）"))
                    .unwrap_or_default()
            ),
        )
    } else if o.opening_hours != n.opening_hours {
        (
            NoticeType::SiteHoursChanged,
            format!("您关注的「{name}」开放时间已更新：{}", n.opening_hours),
        )
    } else {
        return None;
    };
    Some(Notice {
        user,
        at,
        kind,
        title: name.clone(),
        body,
        url: format!("/sites/{}", new.id),
        data: serde_json::json!({"site_id": new.id.to_string()}),
        expires_at: None,
        topic: Some(format!("{}-status", new.id)),
    })
}

/// The reminder to a seat holder `lead` before the event starts.
pub fn reminder(
    user: UserId,
    booking: &str,
    e: &Event,
    lead: Duration,
    at: DateTime<Utc>,
) -> Notice {
    let when = if lead >= Duration::hours(24) {
        "明天"
    } else {
        "即将"
    };
    Notice {
        user,
        at,
        kind: NoticeType::EventReminder,
        title: e.draft.title.clone(),
        body: format!(
            "提醒：「{}」{when}开始（{}）{}。",
            e.draft.title,
            local(e.draft.starts_at),
            e.draft
                .venue_name
                .as_deref()
                .map(|v| format!("，地点：{v}"))
                .unwrap_or_default()
        ),
        url: event_url(e),
        data: serde_json::json!({"event_id": e.id.to_string(), "booking_id": booking, "starts_at": super::timestamp::format(&e.draft.starts_at)}),
        expires_at: Some(e.draft.starts_at),
        topic: Some(format!("{}-reminder", e.id)),
    }
}

/// How long before an event's start its seat holders are reminded.
pub const REMINDER_LEADS: [Duration; 2] = [Duration::hours(24), Duration::hours(2)];

/// What became of a notice's WeChat subscribe message, as the other
/// channels see it (the `wechat` row of the outbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WechatState {
    /// The person has not signed in with WeChat: no message.
    #[default]
    None,
    /// Not tried yet.
    Untried,
    /// Tried, and to be tried again.
    Retrying,
    /// WeChat accepted it.
    Sent,
    /// Not sent, for good: no template, no consent, refused.
    NotSent,
}

impl WechatState {
    /// From the outbox row's state and tries (`None`: no row).
    pub fn of(state: Option<&str>, attempts: i64) -> WechatState {
        match state {
            None => WechatState::None,
            Some("pending") if attempts == 0 => WechatState::Untried,
            Some("pending") => WechatState::Retrying,
            Some("sent") => WechatState::Sent,
            Some(_) => WechatState::NotSent,
        }
    }
}

/// Web Push after WeChat: a notice WeChat carried is not pushed; one whose
/// WeChat message is not yet tried waits a little for it; otherwise (no
/// WeChat, not sent, or retrying) it is pushed.
pub fn wechat_first(wechat: WechatState, now: DateTime<Utc>) -> super::push::PushDecision {
    use super::push::PushDecision;
    match wechat {
        WechatState::Sent => PushDecision::Skip("sent by WeChat"),
        WechatState::Untried => PushDecision::WaitUntil(now + WECHAT_FIRST),
        WechatState::None | WechatState::Retrying | WechatState::NotSent => {
            PushDecision::Send { ttl_secs: 0 }
        }
    }
}

/// How long a push waits for the notice's WeChat message to be tried.
pub const WECHAT_FIRST: Duration = Duration::seconds(10);

/// When an unread notice falls back to SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsDecision {
    /// Send it now.
    Send,
    /// Not yet: look again at this time.
    WaitUntil(DateTime<Utc>),
    /// Never: read, pushed, not worth an SMS, or too late to matter.
    Skip,
}

/// The SMS fallback: a notice that must not be missed and is still unread
/// `after` its creation, with no push or WeChat message accepted, is sent by
/// SMS — but never between 22:00 and 07:00 China time, except an offer whose
/// deadline falls before 07:00; an offer past its deadline, or a change or
/// reminder of an event that has begun, is not sent at all. An offer to a
/// person who signed in with WeChat is texted at once, beside its WeChat
/// message: a subscribe message is easily missed, and the offer has a
/// deadline.
#[allow(clippy::too_many_arguments)]
pub fn sms_fallback(
    kind: NoticeType,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    read: bool,
    pushed: bool,
    wechat: WechatState,
    after: Duration,
    now: DateTime<Utc>,
) -> SmsDecision {
    let at_once = kind == NoticeType::SeatOffered && wechat != WechatState::None;
    let reached = pushed || (wechat == WechatState::Sent && !at_once);
    if !kind.sms_fallback() || read || reached {
        return SmsDecision::Skip;
    }
    let after = if at_once { Duration::zero() } else { after };
    // An offer past its deadline, a change or a reminder of an event that
    // has begun: too late to matter.
    let expires = matches!(
        kind,
        NoticeType::SeatOffered | NoticeType::EventChanged | NoticeType::EventReminder
    );
    if expires && expires_at.is_some_and(|d| d <= now) {
        return SmsDecision::Skip;
    }
    let due = created_at + after;
    if now < due {
        return SmsDecision::WaitUntil(due);
    }
    let local = now.with_timezone(&SHANGHAI);
    let night = local.hour() >= 22 || local.hour() < 7;
    if !night {
        return SmsDecision::Send;
    }
    // The next 07:00 in China time.
    let seven = {
        let day = if local.hour() >= 22 {
            local.date_naive() + Duration::days(1)
        } else {
            local.date_naive()
        };
        day.and_hms_opt(7, 0, 0)
            .expect("07:00 exists")
            .and_local_timezone(SHANGHAI)
            .single()
            .expect("a fixed offset")
            .with_timezone(&Utc)
    };
    match (kind, expires_at) {
        (NoticeType::SeatOffered, Some(deadline)) if deadline <= seven => SmsDecision::Send,
        _ => SmsDecision::WaitUntil(seven),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cst(h: u32, m: u32) -> DateTime<Utc> {
        SHANGHAI
            .with_ymd_and_hms(2026, 11, 24, h, m, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn sms_falls_back_only_when_unread_unpushed_and_not_at_night() {
        let after = Duration::minutes(15);
        let offer = NoticeType::SeatOffered;
        let t = cst(10, 0);
        let deadline = Some(t + Duration::hours(24));
        assert_eq!(
            sms_fallback(
                offer,
                t,
                deadline,
                false,
                false,
                WechatState::None,
                after,
                t
            ),
            SmsDecision::WaitUntil(t + after)
        );
        assert_eq!(
            sms_fallback(
                offer,
                t,
                deadline,
                false,
                false,
                WechatState::None,
                after,
                t + after
            ),
            SmsDecision::Send
        );
        assert_eq!(
            sms_fallback(
                offer,
                t,
                deadline,
                true,
                false,
                WechatState::None,
                after,
                t + after
            ),
            SmsDecision::Skip
        );
        assert_eq!(
            sms_fallback(
                offer,
                t,
                deadline,
                false,
                true,
                WechatState::None,
                after,
                t + after
            ),
            SmsDecision::Skip
        );
        assert_eq!(
            sms_fallback(
                NoticeType::BookingConfirmed,
                t,
                None,
                false,
                false,
                WechatState::None,
                after,
                t + after
            ),
            SmsDecision::Skip
        );
        // At 23:00 a cancellation waits for 07:00; an offer ending at 06:00 does not.
        let late = cst(22, 50);
        let seven = cst(7, 0) + Duration::days(1);
        assert_eq!(
            sms_fallback(
                NoticeType::EventCancelled,
                late,
                None,
                false,
                false,
                WechatState::None,
                after,
                late + after
            ),
            SmsDecision::WaitUntil(seven)
        );
        assert_eq!(
            sms_fallback(
                offer,
                late,
                Some(seven - Duration::hours(1)),
                false,
                false,
                WechatState::None,
                after,
                late + after
            ),
            SmsDecision::Send
        );
        assert_eq!(
            sms_fallback(
                offer,
                late,
                Some(seven + Duration::hours(5)),
                false,
                false,
                WechatState::None,
                after,
                late + after
            ),
            SmsDecision::WaitUntil(seven)
        );
        // An offer past its deadline is not worth an SMS.
        assert_eq!(
            sms_fallback(
                offer,
                t,
                Some(t + Duration::minutes(10)),
                false,
                false,
                WechatState::None,
                after,
                t + after
            ),
            SmsDecision::Skip
        );
    }

    #[test]
    fn an_offer_to_a_wechat_user_is_texted_at_once_and_a_sent_message_counts_as_reached() {
        let after = Duration::minutes(15);
        let t = cst(10, 0);
        let deadline = Some(t + Duration::hours(24));
        let offer = NoticeType::SeatOffered;
        for w in [
            WechatState::Untried,
            WechatState::Retrying,
            WechatState::Sent,
            WechatState::NotSent,
        ] {
            assert_eq!(
                sms_fallback(offer, t, deadline, false, false, w, after, t),
                SmsDecision::Send,
                "{w:?}"
            );
        }
        // At night the offer still waits for 07:00 unless its deadline is earlier.
        let late = cst(23, 0);
        assert_eq!(
            sms_fallback(
                offer,
                late,
                Some(late + Duration::hours(24)),
                false,
                false,
                WechatState::Sent,
                after,
                late
            ),
            SmsDecision::WaitUntil(cst(7, 0) + Duration::days(1))
        );
        // Read: no text.
        assert_eq!(
            sms_fallback(offer, t, deadline, true, false, WechatState::Sent, after, t),
            SmsDecision::Skip
        );
        // Another notice that WeChat carried is not texted; one it did not
        // carry falls back as before.
        let cancelled = NoticeType::EventCancelled;
        assert_eq!(
            sms_fallback(
                cancelled,
                t,
                None,
                false,
                false,
                WechatState::Sent,
                after,
                t + after
            ),
            SmsDecision::Skip
        );
        assert_eq!(
            sms_fallback(
                cancelled,
                t,
                None,
                false,
                false,
                WechatState::NotSent,
                after,
                t
            ),
            SmsDecision::WaitUntil(t + after)
        );
        assert_eq!(
            sms_fallback(
                cancelled,
                t,
                None,
                false,
                false,
                WechatState::NotSent,
                after,
                t + after
            ),
            SmsDecision::Send
        );
    }

    #[test]
    fn a_wechat_row_reads_as_its_state() {
        assert_eq!(WechatState::of(None, 0), WechatState::None);
        assert_eq!(WechatState::of(Some("pending"), 0), WechatState::Untried);
        assert_eq!(WechatState::of(Some("pending"), 2), WechatState::Retrying);
        assert_eq!(WechatState::of(Some("sent"), 1), WechatState::Sent);
        assert_eq!(WechatState::of(Some("skipped"), 0), WechatState::NotSent);
        assert_eq!(WechatState::of(Some("failed"), 8), WechatState::NotSent);
    }

    #[test]
    fn types_round_trip_their_names() {
        for t in NoticeType::ALL {
            assert_eq!(t.as_str().parse::<NoticeType>(), Ok(t));
        }
    }
}
