//! How the console writes things for people: China time, Chinese names of
//! fields, amenities and states. Presentation only: no rule lives here.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

use crate::domain::hours::{HoursState, SHANGHAI};
use crate::domain::site::{Amenity, Site, Status};

/// `11月25日 17:00` in China time.
pub fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&SHANGHAI)
        .format("%-m月%-d日 %H:%M")
        .to_string()
}

/// `2026年11月25日 17:00` in China time (history, where the year matters).
pub fn local_full(t: DateTime<Utc>) -> String {
    t.with_timezone(&SHANGHAI)
        .format("%Y年%-m月%-d日 %H:%M")
        .to_string()
}

/// A span in China time, written one way everywhere: `12月20日 09:00–11:00`
/// within a day, `12月20日 09:00 – 12月21日 11:00` across days.
pub fn local_span(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let (f, t) = (from.with_timezone(&SHANGHAI), to.with_timezone(&SHANGHAI));
    if f.date_naive() == t.date_naive() {
        format!("{}–{}", local(from), t.format("%H:%M"))
    } else {
        format!("{} – {}", local(from), local(to))
    }
}

/// The value of an `<input type="datetime-local">` for `t`, in China time.
pub fn datetime_local(t: DateTime<Utc>) -> String {
    t.with_timezone(&SHANGHAI)
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

/// An `<input type="datetime-local">` value (China time) as the RFC 3339
/// time the API takes; a bare date passes through (the API reads it as the
/// whole day in China time).
pub fn rfc3339_of_local(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() {
        return Some(s.to_owned());
    }
    let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    Some(format!("{}+08:00", t.format("%Y-%m-%dT%H:%M:%S")))
}

pub fn amenity_zh(a: Amenity) -> &'static str {
    match a {
        Amenity::DrinkingWater => "饮用水",
        Amenity::HotWater => "热水",
        Amenity::Microwave => "微波炉",
        Amenity::Refrigerator => "冰箱",
        Amenity::PhoneCharging => "手机充电",
        Amenity::EbikeCharging => "电动车充电",
        Amenity::Toilet => "卫生间",
        Amenity::RestSeats => "休息座椅",
        Amenity::AirConditioning => "空调",
        Amenity::Heating => "暖气",
        Amenity::FirstAidKit => "急救药箱",
        Amenity::Wifi => "无线网络",
        Amenity::ReadingCorner => "阅读角",
        Amenity::NursingChair => "哺乳椅",
        Amenity::BabyChanging => "婴儿护理台",
        Amenity::Umbrella => "爱心雨伞",
    }
}

/// The Chinese name of a site field (history, errors).
pub fn field_zh(f: &str) -> &str {
    match f {
        "opening_hours" => "营业时间",
        "status" => "状态",
        "status_reason" => "暂停原因",
        "reopens_at" => "预计恢复时间",
        "closures" => "临时闭馆",
        "amenities" => "设施",
        "phone" => "电话",
        "photos" => "照片",
        "name" => "名称",
        "address" => "地址",
        "kind" => "类型",
        "adcode" => "行政区划代码",
        "lat" => "纬度",
        "lon" => "经度",
        "ref" => "编号",
        "union_id" => "所属工会",
        "title" => "标题",
        "description" => "介绍",
        "starts_at" => "开始时间",
        "ends_at" => "结束时间",
        "capacity" => "名额",
        "booking_opens_at" => "开始报名",
        "booking_closes_at" => "截止报名",
        "cancel_deadline" => "取消截止",
        "waitlist" => "候补",
        "code" => "签到码",
        "quotas" => "名额分配",
        "eligibility" | "eligibility.min_age" | "eligibility.max_age" => "报名条件",
        "min_age" => "最小年龄",
        "max_age" => "最大年龄",
        "allocation" => "分配方式",
        "draw_at" => "抽签时间",
        "priority_groups" => "优先组",
        "public_value" => "公开随机值",
        "offer_hours" => "接受名额的时限",
        "frontline" => "一线职工",
        "union_member" => "工会会员",
        "gender" => "性别",
        "marital_status" => "婚姻状况",
        other => other,
    }
}

/// The Chinese name of any field the API may name, with a priority group's
/// place spelt out: `priority_groups[1].max_age` is “第2个优先组的最大年龄”.
pub fn field_label(f: &str) -> String {
    let indexed = f
        .strip_prefix("priority_groups[")
        .and_then(|r| r.split_once("]."))
        .and_then(|(i, part)| Some((i.parse::<usize>().ok()?, part)));
    match indexed {
        Some((i, "name")) => format!("第{}个优先组的名称", i + 1),
        Some((i, part)) => format!("第{}个优先组的{}", i + 1, field_zh(part)),
        None => field_zh(f).to_owned(),
    }
}

pub fn status_zh(s: Status) -> &'static str {
    match s {
        Status::Open => "正常开放",
        Status::TemporarilyClosed => "暂停开放",
        Status::Retired => "已撤销",
    }
}

/// A holiday's Chinese name (the calendar names them in English).
pub fn holiday_zh(name: &str) -> &str {
    match name {
        "New Year's Day" => "元旦",
        "Spring Festival" => "春节",
        "Tomb-sweeping Day" => "清明节",
        "Labour Day" => "劳动节",
        "Dragon Boat Festival" => "端午节",
        "Mid-autumn Festival" => "中秋节",
        "National Day" => "国庆节",
        other => other,
    }
}

/// A value from the audit log, short: strings as they are, times in China
/// time, lists and objects as compact JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "（空）".to_owned(),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| local_full(t.with_timezone(&Utc)))
            .unwrap_or_else(|_| s.clone()),
        Value::Array(a) if a.is_empty() => "（无）".to_owned(),
        Value::Array(a) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(Value::as_str)
            .map(|s| {
                s.parse::<Amenity>()
                    .map_or_else(|_| s.to_owned(), |a| amenity_zh(a).to_owned())
            })
            .collect::<Vec<_>>()
            .join("、"),
        other => other.to_string(),
    }
}

/// The site's state now, as a person says it, and a class for its colour.
pub fn state_line(site: &Site, state: HoursState) -> (&'static str, String) {
    let d = &site.draft;
    match d.status {
        Status::Retired => ("closed", "已撤销".to_owned()),
        Status::TemporarilyClosed => {
            let mut s = "暂停开放".to_owned();
            if let Some(r) = &d.closure.reason {
                s.push_str(&format!("（{r}）"));
            }
            if let Some(t) = d.closure.reopens_at {
                s.push_str(&format!("，预计 {} 恢复", local(t)));
            }
            ("paused", s)
        }
        Status::Open if state.is_open => (
            "open",
            match state.next_change {
                Some(t) => format!("营业中，{} 关门", local(t)),
                None => "营业中（全天开放）".to_owned(),
            },
        ),
        Status::Open => (
            "closed",
            match state.next_change {
                Some(t) => format!("已关门，{} 开门", local(t)),
                None => "已关门（暂无开放时间）".to_owned(),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn spans_read_one_way_in_china_time() {
        assert_eq!(
            local_span(
                at("2026-12-20T09:00:00+08:00"),
                at("2026-12-20T11:00:00+08:00")
            ),
            "12月20日 09:00–11:00"
        );
        assert_eq!(
            local_span(
                at("2026-12-20T20:00:00+08:00"),
                at("2026-12-21T08:00:00+08:00")
            ),
            "12月20日 20:00 – 12月21日 08:00"
        );
        assert_eq!(
            local_full(at("2026-11-25T17:00:00+08:00")),
            "2026年11月25日 17:00"
        );
    }

    #[test]
    fn local_inputs_become_rfc3339_in_china_time() {
        assert_eq!(
            rfc3339_of_local("2026-12-01T09:30").as_deref(),
            Some("2026-12-01T09:30:00+08:00")
        );
        assert_eq!(
            rfc3339_of_local("2026-12-01").as_deref(),
            Some("2026-12-01")
        );
        assert_eq!(rfc3339_of_local("tomorrow"), None);
        let t = DateTime::parse_from_rfc3339("2026-12-01T01:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(datetime_local(t), "2026-12-01T09:30");
        assert_eq!(local(t), "12月1日 09:30");
    }

    #[test]
    fn a_priority_groups_field_is_named_with_its_place() {
        assert_eq!(
            field_label("priority_groups[1].max_age"),
            "第2个优先组的最大年龄"
        );
        assert_eq!(field_label("priority_groups[0].name"), "第1个优先组的名称");
        assert_eq!(field_label("draw_at"), "抽签时间");
        assert_eq!(
            field_label("priority_groups[x].name"),
            "priority_groups[x].name"
        );
    }
}
