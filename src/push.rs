//! Web Push delivery: the server's VAPID key (RFC 8292), the ES256 token
//! that identifies it to push services, and the push [`Channel`] that
//! encrypts a notice for one browser (RFC 8291 aes128gcm, by
//! `web-push-native`) and posts it to the browser's push service (RFC 8030).
//! What to push, when, and what an answer means are rules in
//! [`crate::domain::push`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};

use crate::domain::push::{self as rules, PushDecision, PushResult, b64url};
use crate::notify::Channel;
use crate::store::{ChannelName, DeliveryJob, DeliveryOutcome};

/// The server's VAPID key pair. Its `Debug` never shows the private half.
#[derive(Clone)]
pub struct VapidKey {
    signing: SigningKey,
    public: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public_key", &self.public)
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// A fresh key pair from the operating system's randomness.
    pub fn generate() -> VapidKey {
        loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(k) = p256::SecretKey::from_slice(&bytes) {
                return VapidKey::from_secret(k);
            }
        }
    }

    fn from_secret(secret: p256::SecretKey) -> VapidKey {
        let public = b64url(secret.public_key().to_encoded_point(false).as_bytes());
        VapidKey {
            signing: SigningKey::from(secret),
            public,
        }
    }

    /// Read a private key: PKCS#8 PEM (what `yizhan vapid generate` writes),
    /// SEC1 PEM (`openssl ecparam -genkey -name prime256v1`), or the raw 32
    /// bytes in base64url (what the `web-push` npm tool prints).
    pub fn parse(text: &str) -> anyhow::Result<VapidKey> {
        let text = text.trim();
        let secret = if text.contains("BEGIN PRIVATE KEY") {
            p256::SecretKey::from_pkcs8_pem(text).context("not a P-256 PKCS#8 key")?
        } else if text.contains("BEGIN EC PRIVATE KEY") {
            p256::SecretKey::from_sec1_pem(text).context("not a P-256 SEC1 key")?
        } else {
            let raw =
                rules::from_b64url(text).context("neither PEM nor a base64url private key")?;
            p256::SecretKey::from_slice(&raw).context("not a 32-byte P-256 private key")?
        };
        Ok(VapidKey::from_secret(secret))
    }

    /// The key whose private scalar is these 32 bytes (the database's
    /// `vapid-private-key` secret).
    pub fn from_raw(bytes: &[u8]) -> anyhow::Result<VapidKey> {
        let secret =
            p256::SecretKey::from_slice(bytes).context("not a 32-byte P-256 private key")?;
        Ok(VapidKey::from_secret(secret))
    }

    /// The private key as PKCS#8 PEM.
    pub fn to_pem(&self) -> String {
        let secret = p256::SecretKey::from(self.signing.as_nonzero_scalar());
        secret
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a P-256 key encodes")
            .to_string()
    }

    /// The public key as browsers take it (`applicationServerKey`): the
    /// 65-byte uncompressed point in base64url.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// Read the key at `path`.
    pub fn load(path: &Path) -> anyhow::Result<VapidKey> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the VAPID key {}", path.display()))?;
        VapidKey::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Write the private key to a new file readable by its owner only;
    /// never overwrites. The file appears whole or not at all (written
    /// aside, then linked into place), so a node starting at the same moment
    /// never reads half a key.
    pub fn write_new(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        if path.exists() {
            anyhow::bail!("{} exists already; it is never overwritten", path.display());
        }
        let aside = dir.join(format!(
            ".{}.{:016x}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("vapid"),
            rand::random::<u64>()
        ));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let written = (|| -> anyhow::Result<()> {
            let mut f = opts
                .open(&aside)
                .with_context(|| format!("creating {}", aside.display()))?;
            f.write_all(self.to_pem().as_bytes())?;
            f.sync_all()?;
            // A link fails if the name exists: never overwrites.
            std::fs::hard_link(&aside, path)
                .with_context(|| format!("creating {} (it must not exist yet)", path.display()))
        })();
        let _ = std::fs::remove_file(&aside);
        written
    }

    /// The key at `path`, made there first if there is none. `true` when it
    /// was made now.
    pub fn load_or_create(path: &Path) -> anyhow::Result<(VapidKey, bool)> {
        if path.exists() {
            return Ok((VapidKey::load(path)?, false));
        }
        let key = VapidKey::generate();
        match key.write_new(path) {
            Ok(()) => Ok((key, true)),
            // Another node made it meanwhile.
            Err(_) if path.exists() => Ok((VapidKey::load(path)?, false)),
            Err(e) => Err(e),
        }
    }

    /// A signed ES256 JWT for these claims.
    pub fn sign_jwt(&self, claims: &rules::VapidClaims) -> String {
        let header = b64url(br#"{"typ":"JWT","alg":"ES256"}"#);
        let body = b64url(&serde_json::to_vec(claims).expect("claims serialise"));
        let input = format!("{header}.{body}");
        let sig: Signature = self.signing.sign(input.as_bytes());
        format!("{input}.{}", b64url(&sig.to_bytes()))
    }
}

/// Where `serve` keeps a key it generated: beside a SQLite database, or
/// in `./data` for a server database.
pub fn default_key_path(database_url: &str) -> PathBuf {
    let file = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.is_empty() && *p != ":memory:");
    let dir = match file {
        Some(f) => Path::new(f)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        None => PathBuf::from("data"),
    };
    dir.join("vapid-private-key.pem")
}

/// Install the process-wide TLS provider (ring) that every `reqwest`
/// client needs: reqwest is built without its default (aws-lc) provider to
/// keep the build lean, and panics when a client is built before this ran.
/// Idempotent; call it before building any `reqwest::Client`.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How Web Push is configured.
#[derive(Debug, Clone)]
pub struct PushConfig {
    pub key: Arc<VapidKey>,
    /// Who push services may contact (`mailto:` or `https:`).
    pub subject: String,
    /// Accept `http://127.0.0.1:…` endpoints (tests only).
    pub allow_insecure_loopback: bool,
}

impl PushConfig {
    /// A throwaway key (tests, benchmarks); push services would not know it
    /// after a restart.
    pub fn ephemeral(allow_insecure_loopback: bool) -> PushConfig {
        PushConfig {
            key: Arc::new(VapidKey::generate()),
            subject: DEFAULT_SUBJECT.to_owned(),
            allow_insecure_loopback,
        }
    }
}

/// The subject used when none is given (operators should set their own).
pub const DEFAULT_SUBJECT: &str = "mailto:yizhan-push@example.org";

/// How many pushes are in flight at once per worker.
pub const CONCURRENCY: usize = 64;

/// The Web Push channel.
pub struct PushChannel {
    config: PushConfig,
    client: reqwest::Client,
    /// Signed tokens per push-service origin, with their expiry (unix s).
    tokens: Mutex<HashMap<String, (String, i64)>>,
}

impl PushChannel {
    pub fn new(config: PushConfig) -> anyhow::Result<PushChannel> {
        install_tls_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            // A push service answers; it does not send us elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(CONCURRENCY)
            .user_agent(concat!("yizhan/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the push HTTP client")?;
        Ok(PushChannel {
            config,
            client,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The `Authorization` header for a push to `endpoint`. Tokens are
    /// reused per origin until an hour before they expire. Their times are
    /// the real clock's: they are checked by push services, not by our rules.
    fn authorization(&self, endpoint: &str) -> Option<String> {
        let now = Utc::now();
        let claims = rules::vapid_claims(endpoint, &self.config.subject, now)?;
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = |exp: i64| exp - now.timestamp() > 3600;
        let jwt = match tokens.get(&claims.aud) {
            Some((jwt, exp)) if fresh(*exp) => jwt.clone(),
            _ => {
                let jwt = self.config.key.sign_jwt(&claims);
                tokens.insert(claims.aud.clone(), (jwt.clone(), claims.exp));
                jwt
            }
        };
        Some(format!("vapid t={jwt}, k={}", self.config.key.public_key()))
    }

    async fn post(
        &self,
        job: &DeliveryJob,
        endpoint: &str,
        body: Vec<u8>,
        ttl_secs: i64,
    ) -> Result<reqwest::Response, String> {
        let n = &job.notification;
        let auth = self
            .authorization(endpoint)
            .ok_or_else(|| "the endpoint is not a URL".to_owned())?;
        let mut req = self
            .client
            .post(endpoint)
            .header("TTL", ttl_secs.to_string())
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("Urgency", rules::urgency(n.kind))
            .header("Authorization", auth)
            .body(body);
        if let Some(topic) = &n.topic {
            req = req.header("Topic", rules::topic_header(topic));
        }
        req.send().await.map_err(|e| {
            // reqwest's Display stops at the top error; the cause says why.
            let mut why = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                why = format!("{why}: {s}");
                src = s.source();
            }
            why
        })
    }
}

#[async_trait]
impl Channel for PushChannel {
    fn name(&self) -> ChannelName {
        ChannelName::Push
    }

    async fn deliver(&self, job: &DeliveryJob, now: DateTime<Utc>) -> DeliveryOutcome {
        let Some(sub) = &job.subscription else {
            return DeliveryOutcome::Skipped("the subscription was removed".into());
        };
        let n = &job.notification;
        // WeChat carries a notice when it can: wait for its try, and stop
        // when it went (`domain::notify::wechat_first`).
        match crate::domain::notify::wechat_first(job.wechat, now) {
            PushDecision::Skip(why) => return DeliveryOutcome::Skipped(why.into()),
            PushDecision::WaitUntil(t) => return DeliveryOutcome::Later(t),
            PushDecision::Send { .. } => {}
        }
        let ttl_secs = match rules::push_decision(
            n.kind,
            n.expires_at,
            &job.settings,
            sub.types.as_deref(),
            now,
        ) {
            PushDecision::Skip(why) => return DeliveryOutcome::Skipped(why.into()),
            PushDecision::WaitUntil(t) => return DeliveryOutcome::Later(t),
            PushDecision::Send { ttl_secs } => ttl_secs,
        };
        let body = rules::payload(&n.id.to_string(), n.kind, &n.title, &n.body, &n.url);
        let Ok(key) = p256::PublicKey::from_sec1_bytes(&sub.p256dh) else {
            return DeliveryOutcome::Failed("the subscription's key is not on P-256".into());
        };
        let mut auth = web_push_native::Auth::default();
        if sub.auth.len() != auth.len() {
            return DeliveryOutcome::Failed("the subscription's secret is not 16 bytes".into());
        }
        auth.copy_from_slice(&sub.auth);
        let sealed = match web_push_native::encrypt(body, &key, &auth) {
            Ok(b) => b,
            Err(e) => return DeliveryOutcome::Failed(format!("encryption failed: {e}")),
        };
        let answer = self.post(job, &sub.endpoint, sealed, ttl_secs).await;
        let (status, retry_after, why) = match &answer {
            Ok(r) => (
                Some(r.status().as_u16()),
                r.headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| rules::parse_retry_after(v, now)),
                format!("from {}", host_of(&sub.endpoint)),
            ),
            Err(e) => (None, None, e.clone()),
        };
        match rules::push_result(status, retry_after, &why, job.attempts, now) {
            PushResult::Accepted => DeliveryOutcome::Sent,
            PushResult::Retry { at, why } => DeliveryOutcome::Retry { at, why },
            PushResult::GiveUp(why) => DeliveryOutcome::Failed(why),
            PushResult::Gone(why) => DeliveryOutcome::Gone(why),
        }
    }
}

/// The host of an endpoint, for logs (the path is a capability: not logged).
fn host_of(endpoint: &str) -> String {
    url::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier;

    #[test]
    fn a_key_round_trips_through_its_pem_and_hides_its_private_half() {
        let key = VapidKey::generate();
        let pem = key.to_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = VapidKey::parse(&pem).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert_eq!(rules::from_b64url(key.public_key()).unwrap().len(), 65);
        let shown = format!("{key:?}");
        assert!(!shown.contains(pem.lines().nth(1).unwrap()), "{shown}");
        assert!(
            VapidKey::parse("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .is_err()
        );
        // The raw form the npm `web-push` tool prints.
        let raw = "RS0WdYWWo1HajXg3NZR1olzCf31i-ZBGDkFyCs7j1jw";
        assert!(VapidKey::parse(raw).is_ok());
    }

    #[test]
    fn the_jwt_is_es256_over_its_header_and_claims() {
        let key = VapidKey::generate();
        let claims =
            rules::vapid_claims("https://push.example/x", "mailto:a@example.org", Utc::now())
                .unwrap();
        let jwt = key.sign_jwt(&claims);
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims_back: serde_json::Value =
            serde_json::from_slice(&rules::from_b64url(parts[1]).unwrap()).unwrap();
        assert_eq!(claims_back["aud"], "https://push.example");
        let public = rules::from_b64url(key.public_key()).unwrap();
        let verifier = VerifyingKey::from_sec1_bytes(&public).unwrap();
        let sig = Signature::from_slice(&rules::from_b64url(parts[2]).unwrap()).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(verifier.verify(input.as_bytes(), &sig).is_ok());
        assert!(verifier.verify(b"something else", &sig).is_err());
    }

    #[test]
    fn a_generated_key_sits_beside_the_sqlite_file() {
        assert_eq!(
            default_key_path("sqlite:./data/yizhan.db"),
            Path::new("./data/vapid-private-key.pem")
        );
        assert_eq!(
            default_key_path("sqlite:///var/lib/yizhan/y.db?mode=rwc"),
            Path::new("/var/lib/yizhan/vapid-private-key.pem")
        );
        assert_eq!(
            default_key_path("postgres://db/yizhan"),
            Path::new("data/vapid-private-key.pem")
        );
    }

    #[test]
    fn load_or_create_makes_the_key_once_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/vapid.pem");
        let (a, made) = VapidKey::load_or_create(&path).unwrap();
        assert!(made);
        let (b, made) = VapidKey::load_or_create(&path).unwrap();
        assert!(!made);
        assert_eq!(a.public_key(), b.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "owner only: {mode:o}");
        }
        assert!(a.write_new(&path).is_err(), "never overwrites");
    }

    /// Nodes starting at once on one data folder: one key, read whole by all.
    #[test]
    fn nodes_starting_at_once_share_one_whole_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid.pem");
        let keys: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| VapidKey::load_or_create(&path).unwrap().0))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().public_key().to_owned())
                .collect()
        });
        assert!(keys.iter().all(|k| k == &keys[0]), "{keys:?}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary files left");
    }
}
