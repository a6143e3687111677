//! What an import would do, decided before anything is written: the console
//! shows it as a preview (a dry run) and applies the file only while the
//! registry still matches it. The plan is the store's own
//! (`store::plan_import`): by `ref`, a draft equal to the stored site
//! changes nothing.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::domain::site::{Site, SiteDraft, SiteId};
use crate::domain::union::UnionId;
use crate::store::{DynStore, StoreError, plan_import};

/// One feature that would create or change a site.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub ext_ref: String,
    pub name: String,
    /// The stored site it would change (`None`: a new site) and its version.
    pub existing: Option<(SiteId, i64)>,
    /// `{field: {old, new}}` as the audit log will record it.
    pub changes: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportPlan {
    pub created: Vec<Planned>,
    pub updated: Vec<Planned>,
    pub unchanged: usize,
}

/// Compare `drafts` (every one with a ref, as `parse_collection` gives them)
/// with the stored `sites`, by the store's own plan of an import
/// (`store::plan_import`, which both backends apply).
pub fn plan(sites: &[Site], drafts: &[SiteDraft]) -> Result<ImportPlan, StoreError> {
    let existing: HashMap<String, Site> = sites
        .iter()
        .filter_map(|s| s.draft.ext_ref.clone().map(|r| (r, s.clone())))
        .collect();
    let (outcome, olds) = plan_import(drafts.to_vec(), existing.clone(), chrono::Utc::now())?;
    let mut out = ImportPlan {
        unchanged: outcome.unchanged,
        ..ImportPlan::default()
    };
    for (site, old) in outcome.changed.iter().zip(&olds) {
        let ext_ref = site.draft.ext_ref.clone().unwrap_or_default();
        let planned = Planned {
            name: site.draft.name.clone(),
            changes: SiteDraft::diff(old.as_ref(), &site.draft),
            existing: existing.get(&ext_ref).map(|s| (s.id, s.version)),
            ext_ref,
        };
        if old.is_some() {
            out.updated.push(planned);
        } else {
            out.created.push(planned);
        }
    }
    Ok(out)
}

impl ImportPlan {
    /// Names the registry's state the plan was made against: the refs it
    /// creates and the versions it changes. Equal fingerprints, equal plans.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for p in self.created.iter().chain(&self.updated) {
            h.update(p.ext_ref.as_bytes());
            h.update(b"\0");
            if let Some((id, v)) = &p.existing {
                h.update(format!("{id}:{v}").as_bytes());
            }
            h.update(b"\n");
        }
        h.update(self.unchanged.to_le_bytes());
        h.finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The first draft naming a union that does not exist: its index and the
/// union (the command line's import and the console's refuse the whole file).
pub async fn unknown_union(
    store: &DynStore,
    drafts: &[SiteDraft],
) -> Result<Option<(usize, UnionId)>, StoreError> {
    let mut known = std::collections::BTreeSet::new();
    for (i, d) in drafts.iter().enumerate() {
        if let Some(u) = d.union_id
            && !known.contains(&u)
        {
            if store.get_union(u).await?.is_none() {
                return Ok(Some((i, u)));
            }
            known.insert(u);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::site::{AmenitySet, Kind, Status};

    fn draft(r: &str, name: &str) -> SiteDraft {
        SiteDraft {
            ext_ref: Some(r.into()),
            kind: Kind::UnionStation,
            name: name.into(),
            address: String::new(),
            adcode: "370102".parse().unwrap(),
            lat: 36.6,
            lon: 117.0,
            amenities: AmenitySet::EMPTY,
            opening_hours: "24/7".into(),
            phone: None,
            photos: vec![],
            status: Status::Open,
            closure: Default::default(),
            union_id: None,
        }
    }

    #[test]
    fn a_plan_says_what_would_be_created_changed_and_left() {
        let stored = |r: &str, name: &str, v: i64| Site {
            id: SiteId::random(),
            draft: draft(r, name),
            version: v,
            updated_at: chrono::Utc::now(),
        };
        let sites = vec![stored("a", "甲", 3), stored("b", "乙", 1)];
        let file = [draft("a", "甲"), draft("b", "乙二"), draft("c", "丙")];
        let p = plan(&sites, &file).unwrap();
        assert_eq!(p.unchanged, 1);
        assert_eq!(p.updated.len(), 1);
        assert_eq!(p.updated[0].changes["name"]["new"], "乙二");
        assert_eq!(p.created.len(), 1);
        assert_eq!(p.created[0].ext_ref, "c");
        let again = plan(&sites, &file).unwrap();
        assert_eq!(p.fingerprint(), again.fingerprint());
        let moved = vec![stored("a", "甲", 3), stored("b", "乙", 2)];
        let later = plan(&moved, &file).unwrap();
        assert_ne!(p.fingerprint(), later.fingerprint(), "b moved on meanwhile");
    }
}
