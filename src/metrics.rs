//! Prometheus metrics: request counts and latencies by route, index size, and
//! whether the holiday calendar is current.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The route template (`/v1/sites/{id}`), never the raw path: bounded cardinality.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    /// concurrency, timeout, address_rate, user_rate
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    channel: String,
    /// sent, later, retried, failed, skipped, gone
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SmsLabels {
    /// aliyun, tencent, log
    provider: String,
    /// sent (asked), accepted, delivered, failed (receipts), retry_later,
    /// number_limited, unreachable, misconfigured, rejected, no_answer
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SmsConfigLabels {
    provider: String,
    /// signature, template, parameters, balance, quota, credentials, account, clock
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WechatLabels {
    /// jscode2session, getuserphonenumber, subscribe_send
    api: String,
    /// ok, or the class of WeChat's refusal: token, no_consent, bad_field,
    /// unknown_user, bad_code, risky, later, config, unknown
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WechatFetchLabels {
    /// normal, force_refresh
    mode: String,
    /// ok, failed
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WechatConfigLabels {
    /// field (47003, labelled by template), template, page, credentials, other
    cause: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    indexed_sites: Gauge,
    shed: Family<ShedLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    outbox_pending: Gauge,
    outbox_oldest_age: Gauge,
    subscriptions_removed: Counter,
    holiday_last_year: Gauge,
    holiday_warning: Gauge,
    write_queue: Gauge,
    write_batches: Gauge,
    write_commands: Gauge,
    write_busy: Gauge<f64, std::sync::atomic::AtomicU64>,
    token_queries: Gauge,
    token_lookups: Gauge,
    sms: Family<SmsLabels, Counter>,
    sms_config_errors: Family<SmsConfigLabels, Counter>,
    wechat_calls: Family<WechatLabels, Counter>,
    wechat_token_fetches: Family<WechatFetchLabels, Counter>,
    wechat_config_errors: Family<WechatConfigLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("yizhan");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        let indexed_sites = Gauge::default();
        registry.register("http_requests", "HTTP requests served", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to produce a response",
            latency.clone(),
        );
        registry.register(
            "indexed_sites",
            "Non-retired sites in the spatial index",
            indexed_sites.clone(),
        );
        let shed = Family::<ShedLabels, Counter>::default();
        registry.register(
            "http_requests_shed",
            "Requests refused to protect the service: over the concurrency limit or the time bound (503), over a write limit (429)",
            shed.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let outbox_pending = Gauge::default();
        let outbox_oldest_age = Gauge::default();
        registry.register(
            "notification_deliveries",
            "Notification delivery attempts by channel and outcome",
            deliveries.clone(),
        );
        registry.register(
            "outbox_pending",
            "Notification deliveries not yet done",
            outbox_pending.clone(),
        );
        registry.register(
            "outbox_oldest_age_seconds",
            "How long the oldest due, undelivered notification has waited",
            outbox_oldest_age.clone(),
        );
        let (write_queue, write_batches, write_commands) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "write_queue",
            "Commands on events and bookings queued for the writer or in its batch under way",
            write_queue.clone(),
        );
        registry.register(
            "write_batches",
            "Batches the writer has committed (or failed) since start",
            write_batches.clone(),
        );
        registry.register(
            "write_commands",
            "Commands in those batches: over write_batches, the mean batch size",
            write_commands.clone(),
        );
        let write_busy = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "write_busy_seconds",
            "Time the writer spent running batches since start: its rate is the writer's utilisation (1: never idle)",
            write_busy.clone(),
        );
        let (token_queries, token_lookups) = (Gauge::default(), Gauge::default());
        registry.register(
            "token_queries",
            "Queries that looked bearer tokens up (several requests' lookups each)",
            token_queries.clone(),
        );
        registry.register(
            "token_lookups",
            "Bearer-token lookups answered by those queries",
            token_lookups.clone(),
        );
        let subscriptions_removed = Counter::default();
        registry.register(
            "push_subscriptions_removed",
            "Push subscriptions deleted because their push service said 404 or 410",
            subscriptions_removed.clone(),
        );
        let holiday_last_year = Gauge::default();
        let holiday_warning = Gauge::default();
        registry.register(
            "holiday_calendar_last_year",
            "The latest year of the holiday calendar (0: none); alert when it is not next year from 1 November",
            holiday_last_year.clone(),
        );
        registry.register(
            "holiday_calendar_warning",
            "1 while the holiday calendar lacks this year, or next year from 1 November",
            holiday_warning.clone(),
        );
        let sms = Family::<SmsLabels, Counter>::default();
        registry.register(
            "sms_texts",
            "Texts (SMS) by provider and outcome: sent (asked of the provider), accepted, delivered and failed (by receipt), and each class of refusal",
            sms.clone(),
        );
        let sms_config_errors = Family::<SmsConfigLabels, Counter>::default();
        registry.register(
            "sms_config_errors",
            "Texts refused because the SMS configuration or account is wrong, by cause: an operator must act",
            sms_config_errors.clone(),
        );
        let wechat_calls = Family::<WechatLabels, Counter>::default();
        registry.register(
            "wechat_calls",
            "Calls to WeChat's API by api and outcome (ok, or the class of its refusal)",
            wechat_calls.clone(),
        );
        let wechat_token_fetches = Family::<WechatFetchLabels, Counter>::default();
        registry.register(
            "wechat_token_fetches",
            "Access tokens fetched from WeChat (stable_token) by this node: WeChat caps them a day",
            wechat_token_fetches.clone(),
        );
        let wechat_config_errors = Family::<WechatConfigLabels, Counter>::default();
        registry.register(
            "wechat_config_errors",
            "Calls WeChat refused because yizhan's WeChat configuration is wrong, by cause: an operator must act",
            wechat_config_errors.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            latency,
            indexed_sites,
            shed,
            deliveries,
            outbox_pending,
            outbox_oldest_age,
            subscriptions_removed,
            holiday_last_year,
            holiday_warning,
            write_queue,
            write_batches,
            write_commands,
            write_busy,
            token_queries,
            token_lookups,
            sms,
            sms_config_errors,
            wechat_calls,
            wechat_token_fetches,
            wechat_config_errors,
        }
    }
}

impl Metrics {
    pub async fn observe(&self, req: Request, next: Next) -> Response {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
        let method = req.method().as_str().to_owned();
        let start = Instant::now();
        let resp = next.run(req).await;
        self.latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(start.elapsed().as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status: resp.status().as_u16(),
            })
            .inc();
        resp
    }

    /// Count a request refused to protect the service, by why.
    pub fn shed(&self, reason: &str) {
        self.shed
            .get_or_create(&ShedLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn set_indexed_sites(&self, n: usize) {
        self.indexed_sites.set(n as i64);
    }

    /// Count one delivery attempt's outcome on a channel.
    pub fn delivery(&self, channel: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                channel: channel.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Count a text's outcome with its provider.
    pub fn sms(&self, provider: &str, outcome: &str) {
        self.sms
            .get_or_create(&SmsLabels {
                provider: provider.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Count a text refused for a wrong configuration.
    pub fn sms_config_error(&self, provider: &str, cause: &str) {
        self.sms_config_errors
            .get_or_create(&SmsConfigLabels {
                provider: provider.to_owned(),
                cause: cause.to_owned(),
            })
            .inc();
    }

    /// Count a push subscription deleted on its push service's word.
    /// Count a call to WeChat by its api and outcome.
    pub fn wechat_call(&self, api: &str, outcome: &str) {
        self.wechat_calls
            .get_or_create(&WechatLabels {
                api: api.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Count an access-token fetch (`force_refresh`: the forced kind).
    pub fn wechat_token_fetch(&self, force_refresh: bool, ok: bool) {
        self.wechat_token_fetches
            .get_or_create(&WechatFetchLabels {
                mode: if force_refresh {
                    "force_refresh"
                } else {
                    "normal"
                }
                .to_owned(),
                outcome: if ok { "ok" } else { "failed" }.to_owned(),
            })
            .inc();
    }

    /// Count a call refused for yizhan's WeChat configuration.
    pub fn wechat_config_error(&self, cause: &str) {
        self.wechat_config_errors
            .get_or_create(&WechatConfigLabels {
                cause: cause.to_owned(),
            })
            .inc();
    }

    pub fn subscription_removed(&self) {
        self.subscriptions_removed.inc();
    }

    /// The outbox's depth, and the age of its oldest due row.
    pub fn set_outbox(&self, pending: u64, oldest_age_s: i64) {
        self.outbox_pending.set(pending as i64);
        self.outbox_oldest_age.set(oldest_age_s.max(0));
    }

    pub fn set_holiday_calendar(&self, status: &crate::domain::calendar::CalendarStatus) {
        self.holiday_last_year
            .set(status.last_year.map_or(0, i64::from));
        self.holiday_warning
            .set(i64::from(status.warning.is_some()));
    }

    /// The writer's queue and what it has run (`store::writer`).
    pub fn set_writer(&self, depth: usize, batches: u64, commands: u64, busy: Duration) {
        self.write_queue.set(depth as i64);
        self.write_batches.set(batches as i64);
        self.write_commands.set(commands as i64);
        self.write_busy.set(busy.as_secs_f64());
    }

    /// The token reader's queries and lookups (`store::reader`).
    pub fn set_token_reads(&self, queries: u64, lookups: u64) {
        self.token_queries.set(queries as i64);
        self.token_lookups.set(lookups as i64);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics registry poisoned");
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}
