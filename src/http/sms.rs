//! The SMS providers' delivery receipts (回执): `POST
//! /v1/sms/receipts/aliyun` and `POST /v1/sms/receipts/tencent`, in the
//! formats the providers push (see [`crate::sms::receipts`]), authenticated
//! by the secret `token` in the callback URL's query that operators set
//! (`receipt_token`). Providers call these, not apps: they are outside the
//! apps' contract (`openapi.yaml`), like the console.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::AppState;
use crate::domain::sms::Provider;
use crate::error::ApiError;
use crate::sms::receipts::{self, BadReceipt, Parsed};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sms/receipts/aliyun", post(aliyun))
        .route("/v1/sms/receipts/tencent", post(tencent))
}

async fn aliyun(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    receive(&state, Provider::Aliyun, query.as_deref(), &body).await
}

async fn tencent(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    receive(&state, Provider::Tencent, query.as_deref(), &body).await
}

/// A batch of receipts from provider `p`, answered as `p` expects.
async fn receive(
    state: &AppState,
    p: Provider,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    check_token(state, query)?;
    let (parsed, reply) = match p {
        Provider::Aliyun => (
            receipts::aliyun(body),
            serde_json::json!({"code": 0, "msg": "接收成功"}),
        ),
        Provider::Tencent => (
            receipts::tencent(body),
            serde_json::json!({"result": 0, "errmsg": "OK"}),
        ),
    };
    record(state, p.as_str(), parsed.map_err(unprocessable)?).await?;
    Ok(Json(reply).into_response())
}

fn unprocessable(e: BadReceipt) -> ApiError {
    ApiError::Unprocessable {
        param: e.field,
        detail: e.problem,
        position: None,
    }
}

/// The callback's `token` must be the configured one (compared in constant
/// time); without one configured, receipts are off.
fn check_token(state: &AppState, query: Option<&str>) -> Result<(), ApiError> {
    let Some(expected) = state.sms.receipt_token() else {
        return Err(ApiError::NotFound(
            "SMS receipts are not configured (receipt_token in the SMS configuration)".into(),
        ));
    };
    let given = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if crate::domain::secret::same(given.as_bytes(), expected.expose().as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "a receipt callback carries the configured token: ?token=…".into(),
        ))
    }
}

async fn record(state: &AppState, provider: &str, parsed: Vec<Parsed>) -> Result<(), ApiError> {
    let now = state.auth.clock.now();
    for p in parsed {
        let matched = state.store.record_sms_receipt(&p.receipt, now).await?;
        let outcome = if p.receipt.delivered {
            "delivered"
        } else {
            "failed"
        };
        state.sms.metrics().sms(provider, outcome);
        if p.receipt.delivered
            && let Some(phone) = &p.phone
        {
            state.store.clear_sms_unreachable(phone).await?;
        }
        tracing::info!(
            target: "yizhan::sms",
            provider,
            outcome,
            deliveries = matched,
            reference = p.receipt.reference.as_deref().unwrap_or(""),
            detail = %p.receipt.detail,
            "SMS receipt"
        );
    }
    Ok(())
}
