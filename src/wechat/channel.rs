//! Subscribe messages as a channel of the outbox (issue 25). A notice goes
//! by WeChat when its type has a template, the person signed in with WeChat,
//! and they have a consent left for that template; one consent is spent when
//! WeChat accepts the message (`errcode` 0), and none before. The person's
//! muted types and quiet hours apply as to every channel. Retries use the one
//! backoff rule; a `47003` (a field's value broke its type's rule) is the
//! templates file's fault: one ERROR naming the template and field, a
//! metric, and no retry.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Wechat;
use crate::domain::notify::NoticeType;
use crate::domain::push::{PushDecision, push_decision};
use crate::domain::wechat::{self as rules, Class, Values};
use crate::metrics::Metrics;
use crate::notify::Channel;
use crate::store::{ChannelName, DeliveryJob, DeliveryOutcome, DynStore};

/// Which WeChat client the channel uses: set once WeChat is configured.
pub type WechatSlot = Arc<ArcSwapOption<Wechat>>;

pub struct WechatChannel {
    pub slot: WechatSlot,
    pub store: DynStore,
    pub metrics: Arc<Metrics>,
    /// Configuration errors already logged (each once).
    said: Mutex<HashSet<String>>,
}

impl WechatChannel {
    pub fn new(slot: WechatSlot, store: DynStore, metrics: Arc<Metrics>) -> WechatChannel {
        WechatChannel {
            slot,
            store,
            metrics,
            said: Mutex::new(HashSet::new()),
        }
    }

    /// Log a configuration error at ERROR the first time its `key` is seen
    /// (WeChat's errmsg differs on every answer: it ends in a request id).
    fn config_error(&self, cause: &str, key: String, what: String) {
        self.metrics.wechat_config_error(cause);
        if self.said.lock().expect("not poisoned").insert(key) {
            tracing::error!(target: "yizhan::wechat", cause, "{what}");
        }
    }

    async fn values(&self, job: &DeliveryJob) -> Result<Values, crate::store::StoreError> {
        let n = &job.notification;
        let mut v = Values {
            status: Some(rules::status_word(n.kind)),
            ..Values::default()
        };
        if let Some((e, site)) = crate::notify::event_and_site(&self.store, n).await? {
            v.event = Some(e.draft.title.clone());
            v.site = Some(site);
            v.time = Some(e.draft.starts_at);
            if n.kind == NoticeType::SeatOffered {
                v.deadline = n.expires_at;
            }
        } else if let Some(site) = n.data["site_id"].as_str().and_then(|s| s.parse().ok()) {
            v.site = self.store.get_site(site).await?.map(|s| s.draft.name);
        }
        Ok(v)
    }
}

#[async_trait]
impl Channel for WechatChannel {
    fn name(&self) -> ChannelName {
        ChannelName::Wechat
    }

    async fn deliver(&self, job: &DeliveryJob, now: DateTime<Utc>) -> DeliveryOutcome {
        let Some(wx) = self.slot.load_full() else {
            return DeliveryOutcome::Skipped("WeChat is not configured on this node".into());
        };
        let n = &job.notification;
        // The person's muted types and quiet hours, as for a push.
        match push_decision(n.kind, n.expires_at, &job.settings, None, now) {
            PushDecision::Skip(why) => return DeliveryOutcome::Skipped(why.into()),
            PushDecision::WaitUntil(t) => return DeliveryOutcome::Later(t),
            PushDecision::Send { .. } => {}
        }
        let Some(template) = wx.settings.templates.get(n.kind) else {
            return DeliveryOutcome::Skipped(format!("no WeChat template for {}", n.kind.as_str()));
        };
        let Some(openid) = &job.openid else {
            return DeliveryOutcome::Skipped("WeChat is no longer bound".into());
        };
        let user = n.user;
        let retry = |why: String| crate::notify::retry_or_give_up(job, now, why);
        match self.store.consents_left(user, &template.template_id).await {
            Ok(0) => {
                return DeliveryOutcome::Skipped("no WeChat consent left for its template".into());
            }
            Ok(_) => {}
            Err(e) => return retry(format!("reading the consents: {e}")),
        }
        let values = match self.values(job).await {
            Ok(v) => v,
            Err(e) => return retry(format!("reading the event: {e}")),
        };
        let data = match rules::fill(template, &values) {
            Ok(d) => d,
            Err(key) => {
                return DeliveryOutcome::Skipped(format!(
                    "the notice has no value for the template's field {key}"
                ));
            }
        };
        let page = template
            .page
            .as_ref()
            .map(|p| match n.data["booking_id"].as_str() {
                Some(b) => format!("{p}?booking={b}"),
                None => p.clone(),
            });
        let sent = wx
            .send(openid, &template.template_id, page.as_deref(), &data)
            .await;
        let class = match &sent {
            Ok(()) => Class::Ok,
            Err(e) => e.class(),
        };
        self.metrics.wechat_call("subscribe_send", class.as_str());
        let e = match sent {
            Ok(()) => {
                if let Err(e) = self
                    .store
                    .spend_consent(user, &template.template_id, now)
                    .await
                {
                    tracing::warn!(target: "yizhan::wechat", error = %e, "a sent message's consent was not recorded as spent");
                }
                return DeliveryOutcome::Sent;
            }
            Err(e) => e,
        };
        match class {
            Class::NoConsent => {
                if let Err(e) = self
                    .store
                    .clear_consent(user, &template.template_id, now)
                    .await
                {
                    return retry(format!("recording that no consent is left: {e}"));
                }
                DeliveryOutcome::Skipped(format!("no WeChat consent left ({e})"))
            }
            Class::BadField => {
                let field = match &e {
                    super::WxError::Code { errmsg, .. } => rules::field_of_47003(errmsg),
                    super::WxError::Transport(_) => None,
                }
                .unwrap_or("an unnamed field")
                .to_owned();
                self.config_error(
                    "field",
                    format!("field {} {field}", template.template_id),
                    format!(
                        "WeChat refused the value of field {field} of template {} ({}): fix --wechat-templates ({e})",
                        template.template_id,
                        n.kind.as_str()
                    ),
                );
                DeliveryOutcome::Failed(format!("field {field} refused ({e})"))
            }
            Class::UnknownUser => {
                DeliveryOutcome::Skipped(format!("WeChat does not know this openid ({e})"))
            }
            Class::Config | Class::BadCode | Class::Risky => {
                self.config_error(
                    "template",
                    format!("template {} {}", template.template_id, e.class().as_str()),
                    format!(
                        "WeChat refused template {} ({}): check the template id, page and AppID ({e})",
                        template.template_id,
                        n.kind.as_str()
                    ),
                );
                DeliveryOutcome::Failed(e.to_string())
            }
            Class::Later | Class::Token | Class::Unknown | Class::Ok => retry(e.to_string()),
        }
    }
}
