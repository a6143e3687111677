//! China's holiday calendar: public for phone apps to show, writable by admins
//! (as `yizhan admin holidays import` is for operators).

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::body::JsonObject;
use super::caller::Caller;
use super::params::{self, Params};
use super::sites::tagged;
use crate::domain::calendar::{CalendarDay, HolidayYear, MAX_YEAR, MIN_YEAR, RawDay};
use crate::domain::user::Role;
use crate::error::{ApiError, Problem};
use crate::holidays;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/holidays", get(holiday_year))
        .route("/v1/admin/holidays/{year}", put(put_holiday_year))
}

/// One year of the calendar.
#[derive(Debug, Serialize, ToSchema)]
pub struct HolidayYearDoc {
    pub year: i32,
    /// Public holidays (every day of a Golden Week), in date order: `PH` in opening hours.
    pub holidays: Vec<HolidayDay>,
    /// Make-up workdays (调休上班日), Saturdays or Sundays worked as weekdays, in date order.
    pub makeup_workdays: Vec<HolidayDay>,
}

/// A day of the calendar.
#[derive(Debug, Serialize, ToSchema)]
pub struct HolidayDay {
    /// `YYYY-MM-DD`, in Asia/Shanghai.
    #[schema(value_type = String, format = Date, example = "2027-02-06")]
    pub date: NaiveDate,
    #[schema(example = "Spring Festival")]
    pub name: String,
}

/// The body of `PUT /v1/admin/holidays/{year}` (documentation; parsing is field by field).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HolidayYearBody {
    /// `[{date, name}]`, every date inside the year, at least one.
    holidays: Vec<HolidayDayInput>,
    /// `[{date, name}]`, Saturdays or Sundays inside the year, none a holiday (may be empty).
    makeup_workdays: Vec<HolidayDayInput>,
    /// Where the arrangement comes from (e.g. the State Council's notice).
    source: Option<String>,
}

/// A day as sent.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HolidayDayInput {
    #[schema(example = "2027-02-06")]
    date: String,
    #[schema(example = "Spring Festival")]
    name: String,
}

impl HolidayYearDoc {
    pub fn of(y: &HolidayYear) -> HolidayYearDoc {
        let days = |days: &[CalendarDay]| {
            days.iter()
                .map(|d| HolidayDay {
                    date: d.date,
                    name: d.name.clone(),
                })
                .collect()
        };
        HolidayYearDoc {
            year: y.year(),
            holidays: days(y.holidays()),
            makeup_workdays: days(y.makeup_workdays()),
        }
    }
}

fn year_param(v: &str) -> Result<i32, String> {
    params::int_in_range(v, i64::from(MIN_YEAR), i64::from(MAX_YEAR)).map(|y| y as i32)
}

fn doc_response(headers: &HeaderMap, y: &HolidayYear) -> Response {
    let body = serde_json::to_vec(&HolidayYearDoc::of(y)).expect("holiday year serializes");
    tagged(headers, "application/json", body)
}

/// The holiday calendar of a year, as this node evaluates opening hours with
/// it: public holidays (`PH`) and make-up workdays. 404 when the year is not
/// known (then holidays are ignored for it). With an `ETag`.
#[utoipa::path(
    get,
    path = "/v1/holidays",
    tag = "holidays",
    params(("year" = i32, Query, description = "The year, 2000–2100")),
    responses(
        (status = 200, description = "The year's calendar", body = HolidayYearDoc, headers(("ETag" = String))),
        (status = 304, description = "Not modified (If-None-Match matched)"),
        (status = 400, description = "`year` is missing or malformed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The year is not known", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn holiday_year(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = Params::parse(raw.as_deref())?;
    let year = p.required("year", year_param)?;
    let calendar = state.index.calendar();
    let y = calendar.year(year).ok_or_else(|| {
        ApiError::NotFound(format!(
            "the holiday calendar has no {year} (known: {})",
            holidays::year_list(calendar.years())
        ))
    })?;
    Ok(doc_response(&headers, y))
}

/// `[{date, name}]` as sent, each item named by its place when malformed.
fn days(obj: &JsonObject, list: &str) -> Result<Vec<RawDay>, ApiError> {
    let items = match obj.0.get(list) {
        None | Some(Value::Null) => return Err(ApiError::unprocessable(list, "required")),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::unprocessable(
                list,
                "expected an array of {date, name}",
            ));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = |field: &str| format!("{list}[{i}]{field}");
            let o = item
                .as_object()
                .ok_or_else(|| ApiError::unprocessable(at(""), "expected {date, name}"))?;
            if let Some(k) = o.keys().find(|k| !["date", "name"].contains(&k.as_str())) {
                return Err(ApiError::unprocessable(
                    at(""),
                    format!("unknown field '{k}'; expected date, name"),
                ));
            }
            let text = |field: &str| match o.get(field) {
                Some(Value::String(s)) => Ok(s.clone()),
                None | Some(Value::Null) => Err(ApiError::unprocessable(
                    at(&format!(".{field}")),
                    "required",
                )),
                Some(_) => Err(ApiError::unprocessable(
                    at(&format!(".{field}")),
                    "expected a string",
                )),
            };
            Ok(RawDay::new(text("date")?, text("name")?))
        })
        .collect()
}

/// Add or replace a year of the holiday calendar (admins). The year is
/// validated as a whole (dates inside the year, no day both a holiday and a
/// make-up workday, make-up workdays on Saturdays or Sundays); a bad day is a
/// 422 naming it, and changes nothing. This node evaluates opening hours with
/// the new calendar when the response leaves; every other node within its
/// follow interval.
#[utoipa::path(
    put,
    path = "/v1/admin/holidays/{year}",
    tag = "holidays",
    security(("bearer" = [])),
    params(("year" = i32, Path, description = "The year, 2000–2100")),
    request_body(content = HolidayYearBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The year as stored", body = HolidayYearDoc),
        (status = 400, description = "Malformed year or JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A day is invalid (its field in `param`, e.g. `makeup_workdays[1].date`, and the date in `detail`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_holiday_year(
    State(state): State<AppState>,
    caller: Caller,
    Path(year): Path<String>,
    obj: JsonObject,
) -> Result<Response, ApiError> {
    if caller.user.role != Role::Admin {
        return Err(ApiError::forbidden("only an admin may do this"));
    }
    let year = year_param(&year).map_err(|e| ApiError::param("year", e))?;
    obj.only(&["holidays", "makeup_workdays", "source"])?;
    let holidays = days(&obj, "holidays")?;
    let makeup = days(&obj, "makeup_workdays")?;
    let source = obj
        .optional("source", |v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| "expected a string".to_owned())
        })?
        .unwrap_or_default();
    let y = HolidayYear::new(year, &source, &holidays, &makeup).map_err(|e| {
        ApiError::unprocessable(e.field.unwrap_or_else(|| "year".into()), e.message)
    })?;
    let put = state
        .store
        .put_holiday_years(std::slice::from_ref(&y), state.auth.clock.now())
        .await?;
    tracing::info!(
        user = %caller.user.id,
        year,
        change = put.years[0].1.as_str(),
        revision = put.revision,
        "holiday year written"
    );
    // The year is stored: should this read fail, the follower installs it on its next tick.
    if let Err(e) = holidays::refresh(&*state.store, &state.index).await {
        tracing::warn!(error = %e, "installing the new holiday calendar failed; the follower will retry");
    }
    Ok(Json(HolidayYearDoc::of(&y)).into_response())
}
