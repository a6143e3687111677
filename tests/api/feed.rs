//! The offline change feed: a client that replays it holds exactly the server's set.

use std::collections::HashMap;

use serde_json::Value;
use yizhan::domain::site::{Kind, Status};

use crate::helpers::{TestApp, draft, spawn_app};

/// A phone's local copy: site id -> the site document.
#[derive(Default)]
struct Replica {
    sites: HashMap<String, Value>,
    cursor: i64,
}

impl Replica {
    /// Apply pages until the feed has nothing new; returns the pages read.
    async fn sync(&mut self, app: &TestApp, limit: usize) -> usize {
        let mut pages = 0;
        loop {
            let page = app
                .get_json(&format!(
                    "/v1/sites/changes?since={}&limit={limit}",
                    self.cursor
                ))
                .await;
            pages += 1;
            let items = page["items"].as_array().unwrap();
            let mut last = self.cursor;
            for it in items {
                let seq = it["seq"].as_i64().unwrap();
                assert!(seq > last, "seq must increase: {seq} after {last}");
                last = seq;
                let id = it["site"]["id"].as_str().unwrap().to_owned();
                match it["op"].as_str().unwrap() {
                    "upsert" => {
                        self.sites.insert(id, it["site"].clone());
                    }
                    "retire" => {
                        assert_eq!(it["site"]["status"], "retired");
                        self.sites.remove(&id);
                    }
                    op => panic!("unknown op {op}"),
                }
            }
            assert_eq!(page["next"].as_i64().unwrap(), last);
            self.cursor = last;
            if items.is_empty() {
                return pages;
            }
        }
    }

    /// (id, version, name) of every site held, sorted.
    fn fingerprint(&self) -> Vec<(String, i64, String)> {
        let mut v: Vec<_> = self
            .sites
            .values()
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_owned(),
                    s["version"].as_i64().unwrap(),
                    s["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    }
}

async fn server_fingerprint(app: &TestApp) -> Vec<(String, i64, String)> {
    let store = yizhan::store::connect(&app.database_url).await.unwrap();
    let mut v: Vec<_> = store
        .all_sites()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.draft.status != Status::Retired)
        .map(|s| (s.id.to_string(), s.version, s.draft.name))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn paging_from_zero_walks_the_whole_registry() {
    let drafts = (0..25)
        .map(|i| draft(i, Kind::OutdoorStation, 36.6 + i as f64 * 0.001, 117.1))
        .collect();
    let app = spawn_app(drafts).await;
    let mut replica = Replica::default();
    let pages = replica.sync(&app, 10).await;
    assert_eq!(pages, 4, "10 + 10 + 5 + an empty page");
    assert_eq!(replica.sites.len(), 25);
    assert_eq!(replica.fingerprint(), server_fingerprint(&app).await);
    // Nothing new: the cursor stays.
    let page = app
        .get_json(&format!("/v1/sites/changes?since={}", replica.cursor))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    assert_eq!(page["next"].as_i64().unwrap(), replica.cursor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_while_sites_change_ends_with_the_servers_set() {
    let app = spawn_app(
        (0..40)
            .map(|i| draft(i, Kind::MotherRoom, 36.6, 117.1 + i as f64 * 0.001))
            .collect(),
    )
    .await;
    let url = app.database_url.clone();
    // A writer creates, edits and retires sites in 30 committed batches…
    let writer = tokio::spawn(async move {
        let store = yizhan::store::connect(&url).await.unwrap();
        for round in 0..30usize {
            let mut batch = Vec::new();
            for j in 0..5usize {
                let n = (round * 7 + j * 13) % 60; // refs 0..59: some new, some existing
                let mut d = draft(n, Kind::MotherRoom, 36.6, 117.1 + n as f64 * 0.001);
                d.name = format!("站点{n} 第{round}版");
                if (round + j) % 4 == 0 {
                    d.status = Status::Retired;
                }
                batch.push(d);
            }
            store.import_sites(batch, chrono::Utc::now()).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    // …while the phone keeps syncing in small pages.
    let mut replica = Replica::default();
    while !writer.is_finished() {
        replica.sync(&app, 7).await;
    }
    writer.await.unwrap();
    replica.sync(&app, 7).await;
    let server = server_fingerprint(&app).await;
    assert!(
        server.len() > 20,
        "the test should leave a real set: {}",
        server.len()
    );
    assert_eq!(replica.fingerprint(), server);
}
