//! Who is calling: the bearer token's user, and the client's address.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use crate::auth::token_hash;
use crate::domain::user::User;
use crate::error::ApiError;

/// A signed-in caller (401 without a live bearer token).
pub struct Caller {
    pub user: User,
    /// The hash of the presented token (for logout).
    pub token_hash: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthorized("sign in: send Authorization: Bearer <token>".into())
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty() && t.len() <= 200)
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header is not a bearer token".into())
            })?;
        let hash = token_hash(token);
        let user = state
            .tokens
            .user(&hash, state.auth.clock.now())
            .await?
            .ok_or_else(|| {
                ApiError::Unauthorized("the token is unknown, expired or revoked".into())
            })?;
        // A write counts against the person's own limit (429 past it).
        state
            .guard
            .check_user_write(&parts.method, user.id, &state.metrics)?;
        Ok(Caller {
            user,
            token_hash: hash,
        })
    }
}

/// The client's address: the socket's peer, or behind a trusted proxy the
/// address it forwarded for (see `client_addr`).
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(
                    || "unknown".to_owned(),
                    |c| state.guard.client_ip(c.0.ip(), &parts.headers).to_string(),
                ),
        ))
    }
}
