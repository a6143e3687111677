//! Web Push: the server's public key, browsers' subscriptions, and each
//! person's notification settings (muted types, quiet hours).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::body::JsonObject;
use super::caller::Caller;
use crate::domain::notify::NoticeType;
use crate::domain::push::{
    self as rules, BadSubscriptionId, NotificationSettings, QuietHours, SubscriptionId,
};
use crate::error::{ApiError, Problem};
use crate::store::{PushSubscription, StoreError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/push/vapid-public-key", get(vapid_public_key))
        .route(
            "/v1/push/subscriptions",
            get(my_subscriptions).post(subscribe),
        )
        .route("/v1/push/subscriptions/{id}", delete(unsubscribe))
        .route(
            "/v1/me/notification-settings",
            get(get_settings).put(put_settings),
        )
}

/// The server's VAPID public key, for `PushManager.subscribe`.
#[derive(Serialize, ToSchema)]
pub struct VapidPublicKey {
    /// The 65-byte uncompressed P-256 point in base64url: the
    /// `applicationServerKey` for `pushManager.subscribe`.
    pub public_key: String,
}

/// The server's VAPID public key.
#[utoipa::path(
    get,
    path = "/v1/push/vapid-public-key",
    tag = "push",
    responses((status = 200, description = "The key browsers subscribe with", body = VapidPublicKey))
)]
pub async fn vapid_public_key(State(state): State<AppState>) -> Json<VapidPublicKey> {
    Json(VapidPublicKey {
        public_key: state.push.key.public_key().to_owned(),
    })
}

/// A browser's subscription as the API shows it (keys are never shown back).
#[derive(Serialize, ToSchema)]
pub struct SubscriptionDoc {
    #[schema(value_type = String)]
    pub id: String,
    pub endpoint: String,
    /// The types pushed to this browser; null: all.
    pub types: Option<Vec<NoticeType>>,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub created_at: DateTime<Utc>,
}

impl From<PushSubscription> for SubscriptionDoc {
    fn from(s: PushSubscription) -> SubscriptionDoc {
        SubscriptionDoc {
            id: s.id.to_string(),
            endpoint: s.endpoint,
            types: s.types,
            created_at: s.created_at,
        }
    }
}

/// The browser's `PushSubscription.toJSON()`, plus optional `types`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct SubscribeBody {
    /// The push service's URL for this browser (`https`).
    pub endpoint: String,
    pub keys: SubscriptionKeys,
    /// Push only these types here (the inbox still gets all).
    pub types: Option<Vec<NoticeType>>,
    /// As browsers send it (ms since the epoch, or null); checked, not kept.
    #[serde(rename = "expirationTime")]
    pub expiration_time: Option<f64>,
}

/// A browser's push subscription keys (`PushSubscription.toJSON().keys`).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct SubscriptionKeys {
    /// The browser's P-256 public key: 65 bytes, base64url.
    pub p256dh: String,
    /// The 16-byte authentication secret, base64url.
    pub auth: String,
}

fn types_field(v: &Value) -> Result<Vec<NoticeType>, String> {
    v.as_array()
        .ok_or("expected an array of notification types")?
        .iter()
        .map(|t| t.as_str().ok_or("expected strings")?.parse::<NoticeType>())
        .collect()
}

fn string_field(v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| "expected a string".to_owned())
}

/// A required string field `name` of the object in field `parent`; a
/// fault names `parent.name`.
fn nested_string(
    obj: &serde_json::Map<String, Value>,
    parent: &str,
    name: &str,
) -> Result<String, ApiError> {
    let field = format!("{parent}.{name}");
    match obj.get(name) {
        None | Some(Value::Null) => Err(ApiError::unprocessable(field, "required")),
        Some(v) => string_field(v).map_err(|e| ApiError::unprocessable(field, e)),
    }
}

/// Subscribe this browser to pushes.
#[utoipa::path(
    post,
    path = "/v1/push/subscriptions",
    tag = "push",
    security(("bearer" = [])),
    request_body = SubscribeBody,
    responses(
        (status = 201, description = "Subscribed", body = SubscriptionDoc),
        (status = 200, description = "This endpoint was subscribed already: the same id, with the keys and types now given", body = SubscriptionDoc),
        (status = 400, description = "Not a JSON object", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is unacceptable (`param` names it: endpoint, keys.p256dh, keys.auth, types, expirationTime)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    body.only(&["endpoint", "keys", "types", "expirationTime"])?;
    let endpoint = body.required("endpoint", string_field)?;
    let keys = body.required("keys", |v| {
        v.as_object()
            .cloned()
            .ok_or_else(|| "expected an object {p256dh, auth}".to_owned())
    })?;
    let (p256dh, auth) = (
        nested_string(&keys, "keys", "p256dh")?,
        nested_string(&keys, "keys", "auth")?,
    );
    let types = body.optional("types", types_field)?;
    // Browsers send null or a time in ms; it is not kept, but it is checked.
    body.nullable("expirationTime", |v| {
        v.as_f64()
            .ok_or_else(|| "expected a number or null".to_owned())
    })?;
    let sub = rules::validate_subscription(
        &endpoint,
        &p256dh,
        &auth,
        types,
        state.push.allow_insecure_loopback,
    )
    .map_err(|(field, e)| ApiError::unprocessable(field, e))?;
    let (stored, created) = state
        .store
        .add_subscription(caller.user.id, &sub, state.auth.clock.now())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(SubscriptionDoc::from(stored))))
}

/// The caller's Web Push subscriptions, a page of them (keys are never shown back).
#[derive(Serialize, ToSchema)]
pub struct SubscriptionsResponse {
    pub items: Vec<SubscriptionDoc>,
    /// The `cursor` of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// The caller's subscribed browsers.
#[utoipa::path(
    get,
    path = "/v1/push/subscriptions",
    tag = "push",
    security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, description = "Items a page, 1–200 (default 50)"), ("cursor" = Option<String>, Query, description = "The previous page's `next_cursor`")),
    responses(
        (status = 200, description = "Oldest first", body = SubscriptionsResponse),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn my_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Json<SubscriptionsResponse>, ApiError> {
    let page = super::paging::Page::parse(&super::params::Params::parse(raw.as_deref())?, 2)?;
    let items = state.store.subscriptions(caller.user.id).await?;
    let items: Vec<SubscriptionDoc> = items.into_iter().map(SubscriptionDoc::from).collect();
    // Oldest first.
    let (items, next_cursor) = page.of(items, |d| {
        vec![
            super::paging::ms(d.created_at),
            super::paging::id_key(&d.id),
        ]
    });
    Ok(Json(SubscriptionsResponse { items, next_cursor }))
}

/// Unsubscribe a browser.
#[utoipa::path(
    delete,
    path = "/v1/push/subscriptions/{id}",
    tag = "push",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Subscription id")),
    responses(
        (status = 204, description = "Unsubscribed; pushes waiting for it are dropped"),
        (status = 400, description = "Not a subscription id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription of yours", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn unsubscribe(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: SubscriptionId = id
        .parse()
        .map_err(|e: BadSubscriptionId| ApiError::unknown_id("id", e.to_string()))?;
    state
        .store
        .delete_subscription(caller.user.id, id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound(format!("no subscription {id} of yours")),
            e => e.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct QuietHoursDoc {
    /// `HH:MM`, China time.
    pub from: String,
    /// `HH:MM`, China time; before `from` spans midnight.
    pub to: String,
}

/// What reaches the person besides the inbox, and when.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct NotificationSettingsDoc {
    /// Never pushed nor texted (still in the inbox).
    pub muted_types: Vec<NoticeType>,
    /// Pushes wait until these hours end, except `seat_offered`; null: none.
    pub quiet_hours: Option<QuietHoursDoc>,
}

impl From<NotificationSettings> for NotificationSettingsDoc {
    fn from(s: NotificationSettings) -> NotificationSettingsDoc {
        NotificationSettingsDoc {
            muted_types: s.muted_types,
            quiet_hours: s.quiet_hours.map(|q| QuietHoursDoc {
                from: QuietHours::format(q.from),
                to: QuietHours::format(q.to),
            }),
        }
    }
}

/// The caller's notification settings.
#[utoipa::path(
    get,
    path = "/v1/me/notification-settings",
    tag = "notifications",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The settings (defaults: nothing muted, no quiet hours)", body = NotificationSettingsDoc),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<NotificationSettingsDoc>, ApiError> {
    let s = state.store.notification_settings(caller.user.id).await?;
    Ok(Json(s.into()))
}

/// Replace the caller's notification settings.
#[utoipa::path(
    put,
    path = "/v1/me/notification-settings",
    tag = "notifications",
    security(("bearer" = [])),
    request_body = NotificationSettingsDoc,
    responses(
        (status = 200, description = "The settings now", body = NotificationSettingsDoc),
        (status = 400, description = "Not a JSON object", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is unacceptable (`param` names it)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_settings(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonObject,
) -> Result<Json<NotificationSettingsDoc>, ApiError> {
    body.only(&["muted_types", "quiet_hours"])?;
    let muted = body
        .optional("muted_types", types_field)?
        .unwrap_or_default();
    let quiet = match body.nullable("quiet_hours", |v| {
        v.as_object()
            .cloned()
            .ok_or_else(|| "expected {from, to} or null".to_owned())
    })? {
        None | Some(None) => None,
        Some(Some(q)) => {
            if let Some(k) = q.keys().find(|k| !matches!(k.as_str(), "from" | "to")) {
                return Err(ApiError::unprocessable(
                    format!("quiet_hours.{k}"),
                    "unknown field; expected from, to",
                ));
            }
            Some(
                QuietHours::parse(
                    &nested_string(&q, "quiet_hours", "from")?,
                    &nested_string(&q, "quiet_hours", "to")?,
                )
                .map_err(|(field, e)| ApiError::unprocessable(field, e))?,
            )
        }
    };
    let settings = NotificationSettings::new(muted, quiet);
    state
        .store
        .put_notification_settings(caller.user.id, &settings, state.auth.clock.now())
        .await?;
    Ok(Json(settings.into()))
}
