//! WeChat, for the union's mini program (issue 25): sign-in with a login
//! code (`jscode2session`) and a phone code (`getuserphonenumber`), one
//! access token shared by every node (`stable_token`, kept in the database),
//! and subscribe messages (`message/subscribe/send`).
//!
//! The app secret and a session's `session_key` never reach a log, an error
//! or `Debug` output; the `session_key` is dropped as soon as the answer is
//! read (yizhan does not decrypt anything with it).

pub mod channel;
pub mod config;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::domain::user::Phone;
use crate::domain::wechat::{Class, classify};
use crate::metrics::Metrics;
use crate::store::DynStore;

pub use config::{MiniprogramState, WechatSettings};

/// How long a call to WeChat may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What WeChat said, or that it said nothing usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WxError {
    /// An answer with a non-zero `errcode`.
    Code { errcode: i64, errmsg: String },
    /// No answer, or one that is not WeChat's JSON.
    Transport(String),
}

impl WxError {
    pub fn class(&self) -> Class {
        match self {
            WxError::Code { errcode, .. } => classify(*errcode),
            WxError::Transport(_) => Class::Later,
        }
    }
}

impl std::fmt::Display for WxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WxError::Code { errcode, errmsg } => write!(f, "WeChat errcode {errcode}: {errmsg}"),
            WxError::Transport(why) => write!(f, "no answer from WeChat: {why}"),
        }
    }
}

/// Who a login code belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub openid: String,
    pub unionid: Option<String>,
}

/// The WeChat client every part of yizhan shares (one per node).
pub struct Wechat {
    pub settings: WechatSettings,
    http: reqwest::Client,
    pub(crate) tokens: token::Tokens,
}

impl std::fmt::Debug for Wechat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wechat")
            .field("appid", &self.settings.appid)
            .finish_non_exhaustive()
    }
}

/// A WeChat answer: `errcode` absent or 0 is success.
#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

impl Wechat {
    pub fn new(settings: WechatSettings, store: DynStore, metrics: Arc<Metrics>) -> Arc<Wechat> {
        let http = crate::sms::http_client(TIMEOUT);
        let tokens = token::Tokens::new(store, metrics);
        Arc::new(Wechat {
            settings,
            http,
            tokens,
        })
    }

    fn url(&self, path: &str) -> url::Url {
        let mut u = self.settings.endpoint.clone();
        let base = u.path().trim_end_matches('/').to_owned();
        u.set_path(&format!("{base}{path}"));
        u
    }

    /// Read an answer: its JSON when `errcode` is 0 or absent.
    async fn answer(
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<serde_json::Value, WxError> {
        let resp = resp.map_err(|e| WxError::Transport(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(WxError::Transport(format!("HTTP {}", resp.status())));
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| WxError::Transport(format!("not JSON: {}", e.without_url())))?;
        let status: Status = serde_json::from_value(body.clone())
            .map_err(|e| WxError::Transport(format!("not WeChat's answer: {e}")))?;
        if status.errcode != 0 {
            return Err(WxError::Code {
                errcode: status.errcode,
                errmsg: status.errmsg,
            });
        }
        Ok(body)
    }

    /// `GET /sns/jscode2session`: the person a `wx.login` code belongs to.
    /// The `session_key` in the answer is read past and dropped here.
    pub async fn session(&self, login_code: &str) -> Result<Session, WxError> {
        let mut url = self.url("/sns/jscode2session");
        url.query_pairs_mut()
            .append_pair("appid", &self.settings.appid)
            .append_pair("secret", self.settings.secret.expose())
            .append_pair("js_code", login_code)
            .append_pair("grant_type", "authorization_code");
        let body = Self::answer(self.http.get(url).send().await).await?;
        let openid = body["openid"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| WxError::Transport("jscode2session answered no openid".into()))?;
        Ok(Session {
            openid: openid.to_owned(),
            unionid: body["unionid"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        })
    }

    /// `POST /wxa/business/getuserphonenumber`: the verified phone a phone
    /// code stands for (mainland numbers only: yizhan texts them).
    pub async fn phone(&self, phone_code: &str) -> Result<Result<Phone, String>, WxError> {
        let body = self
            .with_token(|token| {
                let mut url = self.url("/wxa/business/getuserphonenumber");
                url.query_pairs_mut().append_pair("access_token", token);
                self.http
                    .post(url)
                    .json(&json!({ "code": phone_code }))
                    .send()
            })
            .await?;
        let info = &body["phone_info"];
        // A string in real answers ("86"), a number in the documentation's example.
        let country = match &info["countryCode"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => "86".to_owned(),
        };
        let pure = info["purePhoneNumber"].as_str().unwrap_or_default();
        if country != "86" {
            return Ok(Err(format!(
                "the phone's country code is +{country}; yizhan serves mainland numbers"
            )));
        }
        Ok(pure.parse::<Phone>().map_err(|e| e.to_string()))
    }

    /// `POST /cgi-bin/message/subscribe/send`: one subscribe message.
    pub async fn send(
        &self,
        openid: &str,
        template_id: &str,
        page: Option<&str>,
        data: &[(String, String)],
    ) -> Result<(), WxError> {
        let data: serde_json::Map<String, serde_json::Value> = data
            .iter()
            .map(|(k, v)| (k.clone(), json!({ "value": v })))
            .collect();
        let mut body = json!({
            "touser": openid,
            "template_id": template_id,
            "data": data,
            "miniprogram_state": self.settings.state.as_str(),
            "lang": "zh_CN",
        });
        if let Some(page) = page {
            body["page"] = json!(page);
        }
        self.with_token(|token| {
            let mut url = self.url("/cgi-bin/message/subscribe/send");
            url.query_pairs_mut().append_pair("access_token", token);
            self.http.post(url).json(&body).send()
        })
        .await
        .map(|_| ())
    }

    /// Call WeChat with the shared access token; when WeChat says the token
    /// is invalid or expired (40001, 40014, 42001), get a fresh one once and
    /// call again.
    async fn with_token<F, Fut>(&self, call: F) -> Result<serde_json::Value, WxError>
    where
        F: Fn(&str) -> Fut,
        Fut: std::future::Future<Output = Result<reqwest::Response, reqwest::Error>>,
    {
        let token = self.tokens.get(self, None).await?;
        match Self::answer(call(&token).await).await {
            Err(e) if e.class() == Class::Token => {
                tracing::info!(target: "yizhan::wechat", error = %e, "WeChat refused the access token; fetching a new one");
                let fresh = self.tokens.get(self, Some(&token)).await?;
                Self::answer(call(&fresh).await).await
            }
            other => other,
        }
    }

    /// `POST /cgi-bin/stable_token`: an access token and its lifetime.
    pub(crate) async fn fetch_token(&self, force_refresh: bool) -> Result<(String, i64), WxError> {
        let url = self.url("/cgi-bin/stable_token");
        let body = Self::answer(
            self.http
                .post(url)
                .json(&json!({
                    "grant_type": "client_credential",
                    "appid": self.settings.appid,
                    "secret": self.settings.secret.expose(),
                    "force_refresh": force_refresh,
                }))
                .send()
                .await,
        )
        .await?;
        let token = body["access_token"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| WxError::Transport("stable_token answered no access_token".into()))?;
        let expires_in = body["expires_in"].as_i64().unwrap_or(7200);
        Ok((token.to_owned(), expires_in))
    }
}
