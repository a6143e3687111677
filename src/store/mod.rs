//! Storage: the source of truth. Handlers and the index talk to [`Store`], never
//! to a database driver, so PostgreSQL can arrive as a second backend beside
//! [`sqlite::SqliteStore`] without touching them.

pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::site::{Site, SiteDraft, SiteId};

/// What can go wrong below the HTTP layer. Details are logged, never shown to users.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("unsupported database url '{0}' (expected sqlite:…)")]
    UnsupportedUrl(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// The result of an all-or-nothing import.
#[derive(Debug, Default, Clone)]
pub struct ImportOutcome {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// The sites created or updated, as stored (for the index).
    pub changed: Vec<Site>,
}

/// One entry of the change feed, with the site as it is now.
#[derive(Debug, Clone)]
pub struct Change {
    pub seq: i64,
    pub site: Site,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Every site, retired ones included, in id order.
    async fn all_sites(&self) -> Result<Vec<Site>, StoreError>;
    async fn get_site(&self, id: SiteId) -> Result<Option<Site>, StoreError>;
    async fn count_sites(&self) -> Result<u64, StoreError>;
    /// Upsert by `ext_ref` in one transaction: every draft must carry a ref.
    /// A draft equal to the stored site changes nothing (no new version, no feed entry).
    async fn import_sites(&self, drafts: Vec<SiteDraft>) -> Result<ImportOutcome, StoreError>;
    /// The highest change-feed sequence number (0 when nothing was ever written).
    async fn last_change_seq(&self) -> Result<i64, StoreError>;
    /// Changes after `seq`, oldest first, at most `limit`. A site changed several
    /// times appears once per change, each time in its current state.
    async fn changes_since(&self, seq: i64, limit: i64) -> Result<Vec<Change>, StoreError>;
    /// Non-retired sites whose name or address contains every term (a substring
    /// match, for Chinese text), at most `limit`, in no particular order.
    async fn search_sites(&self, terms: &[String], limit: i64) -> Result<Vec<SiteId>, StoreError>;
    /// Cheap liveness probe of the database.
    async fn ping(&self) -> Result<(), StoreError>;
}

pub type DynStore = Arc<dyn Store>;

/// Open the backend named by the URL's scheme and apply its migrations.
pub async fn connect(url: &str) -> Result<DynStore, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}
