//! Operators' endpoints: liveness (with the holiday calendar's status),
//! readiness, Prometheus metrics.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use crate::error::ApiError;
use crate::holidays;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up and serving HTTP. The body also says whether the holiday
/// calendar is current (`holiday_calendar.warning` is set when this year is
/// unknown, or from 1 November while next year is); that never fails the check.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive: `{status: \"ok\", holiday_calendar: {last_year, current_year_known, next_year_known, warning}}`")))]
pub async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    let calendar = holidays::status(&state.index, &*state.auth.clock);
    Json(json!({"status": "ok", "holiday_calendar": calendar}))
}

/// The index is built and the database answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready to serve"),
    (status = 503, description = "Not ready", body = crate::error::Problem, content_type = "application/problem+json"),
))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if !state.ready.load(Ordering::Acquire) {
        return Err(ApiError::Unavailable("index is still loading".into()));
    }
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness probe: database did not answer");
        ApiError::Unavailable("database is not answering".into())
    })?;
    Ok(Json(
        json!({"status": "ready", "sites": state.index.snapshot().len()}),
    ))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "OpenMetrics 1.0 text (`application/openmetrics-text; version=1.0.0`), whatever `Accept` asks; Prometheus scrapes it", content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    state
        .metrics
        .set_indexed_sites(state.index.snapshot().len());
    let now = state.auth.clock.now();
    match state.store.outbox_stats(now).await {
        Ok(o) => state.metrics.set_outbox(
            o.pending,
            o.oldest_due.map_or(0, |t| (now - t).num_seconds()),
        ),
        Err(e) => tracing::warn!(error = %e, "metrics: the outbox could not be read"),
    }
    state
        .metrics
        .set_holiday_calendar(&holidays::status(&state.index, &*state.auth.clock));
    let (queries, lookups) = state.tokens.counts();
    state.metrics.set_token_reads(queries, lookups);
    let (batches, commands, busy) = state.writer.counts();
    state
        .metrics
        .set_writer(state.writer.depth(), batches, commands, busy);
    let mut resp = (StatusCode::OK, state.metrics.render()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}
