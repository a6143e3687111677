//! Unions and memberships on PostgreSQL: reads, plain writes, and the
//! membership primitives of a write transaction. A membership command holds
//! the person (a transaction-scoped advisory lock) before it reads their
//! memberships, and an adcode's counter (another) before it reads the last
//! member number; the partial unique indexes of one active membership and one
//! pending application per person, and the unique member number, are the last
//! line of defence.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use super::StoreError;
use super::postgres::{PgStore, corrupt, lock_ns};
use super::unions::{Application, UnionStore};
use crate::domain::site::Adcode;
use crate::domain::union::{
    Effect, MembershipId, MembershipRecord, MembershipStatus, Union, UnionDraft, UnionId,
};
use crate::domain::user::{Phone, Role, User, UserId};

const UNION_COLUMNS: &str =
    "id, name, adcode, parent_id, lat, lon, join_policy, code_version, created_at";
const MEMBERSHIP_COLUMNS: &str = "id, user_id, union_id, status, member_no, applied_at, \
     decided_at, decided_by, reason, activated_at, ended_at, transferred_from";

fn union_from_row(r: &PgRow) -> Result<Union, StoreError> {
    let id: i64 = r.try_get("id")?;
    let adcode: String = r.try_get("adcode")?;
    let parent: Option<i64> = r.try_get("parent_id")?;
    let lat: Option<f64> = r.try_get("lat")?;
    let lon: Option<f64> = r.try_get("lon")?;
    let policy: String = r.try_get("join_policy")?;
    let version: i32 = r.try_get("code_version")?;
    Ok(Union {
        id: UnionId::from_i64(id).ok_or_else(|| corrupt("union id", id))?,
        draft: UnionDraft {
            name: r.try_get("name")?,
            adcode: adcode.parse().map_err(|e| corrupt("adcode", e))?,
            parent_id: parent.and_then(UnionId::from_i64),
            location: lat.zip(lon),
            join_policy: policy.parse().map_err(|e| corrupt("join_policy", e))?,
        },
        code_version: u32::try_from(version).map_err(|e| corrupt("code_version", e))?,
        created_at: r.try_get("created_at")?,
    })
}

fn membership_from_row(r: &PgRow) -> Result<MembershipRecord, StoreError> {
    let id: i64 = r.try_get("id")?;
    let union: i64 = r.try_get("union_id")?;
    let status: String = r.try_get("status")?;
    let from: Option<i64> = r.try_get("transferred_from")?;
    Ok(MembershipRecord {
        id: MembershipId::from_i64(id).ok_or_else(|| corrupt("membership id", id))?,
        user: r.try_get("user_id")?,
        union: UnionId::from_i64(union).ok_or_else(|| corrupt("union id", union))?,
        status: status.parse().map_err(|e| corrupt("status", e))?,
        member_no: r.try_get("member_no")?,
        applied_at: r.try_get("applied_at")?,
        decided_at: r.try_get("decided_at")?,
        decided_by: r.try_get("decided_by")?,
        reason: r.try_get("reason")?,
        activated_at: r.try_get("activated_at")?,
        ended_at: r.try_get("ended_at")?,
        transferred_from: from.and_then(MembershipId::from_i64),
    })
}

#[async_trait]
impl UnionStore for PgStore {
    async fn create_union(
        &self,
        draft: UnionDraft,
        at: DateTime<Utc>,
    ) -> Result<Union, StoreError> {
        let mut tx = self.write_tx().await?;
        if let Some(p) = draft.parent_id {
            let found: Option<i64> = sqlx::query_scalar("SELECT id FROM unions WHERE id = $1")
                .bind(p.as_i64())
                .fetch_optional(&mut *tx)
                .await?;
            if found.is_none() {
                return Err(StoreError::Invalid {
                    field: "parent_id",
                    detail: "no such union".into(),
                });
            }
        }
        let union = Union {
            id: UnionId::random(),
            draft,
            code_version: 1,
            created_at: super::micros(at),
        };
        let d = &union.draft;
        sqlx::query(
            "INSERT INTO unions (id, name, adcode, parent_id, lat, lon, join_policy, code_version, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)",
        )
        .bind(union.id.as_i64())
        .bind(&d.name)
        .bind(d.adcode.as_str())
        .bind(d.parent_id.map(UnionId::as_i64))
        .bind(d.location.map(|l| l.0))
        .bind(d.location.map(|l| l.1))
        .bind(d.join_policy.as_str())
        .bind(union.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(union)
    }

    async fn get_union(&self, id: UnionId) -> Result<Option<Union>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {UNION_COLUMNS} FROM unions WHERE id = $1"
        )))
        .bind(id.as_i64())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(union_from_row).transpose()
    }

    async fn update_union(&self, id: UnionId, draft: UnionDraft) -> Result<Union, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE unions SET name = $1, adcode = $2, parent_id = $3, lat = $4, lon = $5, \
             join_policy = $6 WHERE id = $7 RETURNING {UNION_COLUMNS}"
        )))
        .bind(&draft.name)
        .bind(draft.adcode.as_str())
        .bind(draft.parent_id.map(UnionId::as_i64))
        .bind(draft.location.map(|l| l.0))
        .bind(draft.location.map(|l| l.1))
        .bind(draft.join_policy.as_str())
        .bind(id.as_i64())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref()
            .map(union_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn unions_by_adcode(&self, prefix: &str) -> Result<Vec<Union>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {UNION_COLUMNS} FROM unions WHERE starts_with(adcode, $1) ORDER BY id"
        )))
        .bind(prefix)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(union_from_row).collect()
    }

    async fn located_unions(&self) -> Result<Vec<Union>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {UNION_COLUMNS} FROM unions WHERE lat IS NOT NULL ORDER BY id"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(union_from_row).collect()
    }

    async fn union_ancestry(&self, id: UnionId) -> Result<Vec<UnionId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "WITH RECURSIVE up(id, parent_id, depth) AS ( \
               SELECT id, parent_id, 0 FROM unions WHERE id = $1 \
               UNION ALL \
               SELECT u.id, u.parent_id, up.depth + 1 FROM unions u JOIN up ON u.id = up.parent_id \
               WHERE up.depth < 64) \
             SELECT id FROM up ORDER BY depth",
        )
        .bind(id.as_i64())
        .fetch_all(self.pool())
        .await?;
        Ok(ids.into_iter().filter_map(UnionId::from_i64).collect())
    }

    async fn union_subtree(&self, id: UnionId) -> Result<Vec<Union>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "WITH RECURSIVE down(id, depth) AS ( \
               SELECT id, 0 FROM unions WHERE id = $1 \
               UNION ALL \
               SELECT u.id, down.depth + 1 FROM unions u JOIN down ON u.parent_id = down.id \
               WHERE down.depth < 64) \
             SELECT {UNION_COLUMNS} FROM unions WHERE id IN (SELECT id FROM down) ORDER BY id"
        )))
        .bind(id.as_i64())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(union_from_row).collect()
    }

    async fn rotate_join_code(&self, id: UnionId) -> Result<Union, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE unions SET code_version = code_version + 1 WHERE id = $1 \
             RETURNING {UNION_COLUMNS}"
        )))
        .bind(id.as_i64())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref()
            .map(union_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn get_membership(
        &self,
        id: MembershipId,
    ) -> Result<Option<MembershipRecord>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE id = $1"
        )))
        .bind(id.as_i64())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(membership_from_row).transpose()
    }

    async fn user_memberships(&self, user: UserId) -> Result<Vec<MembershipRecord>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE user_id = $1 \
             ORDER BY applied_at DESC, \
             CASE status WHEN 'active' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END, id DESC"
        )))
        .bind(user)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(membership_from_row).collect()
    }

    async fn applications(&self, union: UnionId) -> Result<Vec<Application>, StoreError> {
        let cols: String = MEMBERSHIP_COLUMNS
            .split(", ")
            .map(|c| format!("m.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {cols}, u.phone, u.display_name, u.employer FROM memberships m \
             JOIN users u ON u.id = m.user_id \
             WHERE m.union_id = $1 AND m.status = 'pending' ORDER BY m.applied_at, m.id"
        )))
        .bind(union.as_i64())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let phone: String = r.try_get("phone")?;
                Ok(Application {
                    membership: membership_from_row(r)?,
                    phone: phone.parse().map_err(|e| corrupt("phone", e))?,
                    display_name: r.try_get("display_name")?,
                    employer: r.try_get("employer")?,
                })
            })
            .collect()
    }

    async fn membership_counts(
        &self,
        unions: &[UnionId],
    ) -> Result<Vec<(UnionId, MembershipStatus, u32)>, StoreError> {
        let ids: Vec<i64> = unions.iter().map(|u| u.as_i64()).collect();
        let rows = sqlx::query(
            "SELECT union_id, status, count(*) AS n FROM memberships \
             WHERE union_id = ANY($1) GROUP BY union_id, status",
        )
        .bind(ids)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let union: i64 = r.try_get("union_id")?;
                let status: String = r.try_get("status")?;
                let n: i64 = r.try_get("n")?;
                Ok((
                    UnionId::from_i64(union).ok_or_else(|| corrupt("union id", union))?,
                    status.parse().map_err(|e| corrupt("status", e))?,
                    n as u32,
                ))
            })
            .collect()
    }

    async fn membership_moves(
        &self,
        unions: &[UnionId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<MembershipRecord>, StoreError> {
        let ids: Vec<i64> = unions.iter().map(|u| u.as_i64()).collect();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE union_id = ANY($1) \
             AND ((activated_at >= $2 AND activated_at < $3) OR (ended_at >= $2 AND ended_at < $3)) \
             ORDER BY id"
        )))
        .bind(ids)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(membership_from_row).collect()
    }

    async fn put_union_admin(
        &self,
        phone: &Phone,
        unions: &[UnionId],
        at: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        use super::AccountStore;
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (phone, role, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (phone) DO UPDATE SET role = excluded.role RETURNING id",
        )
        .bind(phone.as_str())
        .bind(Role::UnionAdmin.as_str())
        .bind(super::micros(at))
        .fetch_one(&mut *tx)
        .await?;
        for table in ["user_sites", "user_unions"] {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE user_id = $1"
            )))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let ids: Vec<i64> = unions.iter().map(|u| u.as_i64()).collect();
        sqlx::query(
            "INSERT INTO user_unions (user_id, union_id) SELECT $1, u FROM unnest($2::bigint[]) \
             AS u ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(ids)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.user(id).await?.ok_or(StoreError::NotFound)
    }
}

// --- the primitives of a write transaction -------------------------------------

async fn advisory(c: &mut PgConnection, namespace: i32, key: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(namespace)
        .bind(key)
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub(super) async fn lock_memberships(
    c: &mut PgConnection,
    user: UserId,
) -> Result<Vec<MembershipRecord>, StoreError> {
    advisory(c, lock_ns::MEMBERSHIP, &user.to_string()).await?;
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {MEMBERSHIP_COLUMNS} FROM memberships \
         WHERE user_id = $1 AND status IN ('pending', 'active') ORDER BY applied_at, id"
    )))
    .bind(user)
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(membership_from_row).collect()
}

pub(super) async fn union_in(
    c: &mut PgConnection,
    id: UnionId,
) -> Result<Option<Union>, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {UNION_COLUMNS} FROM unions WHERE id = $1"
    )))
    .bind(id.as_i64())
    .fetch_optional(&mut *c)
    .await?;
    row.as_ref().map(union_from_row).transpose()
}

pub(super) async fn membership_in(
    c: &mut PgConnection,
    id: MembershipId,
) -> Result<Option<MembershipRecord>, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE id = $1"
    )))
    .bind(id.as_i64())
    .fetch_optional(&mut *c)
    .await?;
    row.as_ref().map(membership_from_row).transpose()
}

pub(super) async fn active_membership_in(
    c: &mut PgConnection,
    user: UserId,
) -> Result<Option<MembershipRecord>, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE user_id = $1 AND status = 'active'"
    )))
    .bind(user)
    .fetch_optional(&mut *c)
    .await?;
    row.as_ref().map(membership_from_row).transpose()
}

pub(super) async fn member_seq_in(c: &mut PgConnection, adcode: Adcode) -> Result<u64, StoreError> {
    advisory(c, lock_ns::MEMBER_NO, adcode.as_str()).await?;
    let last: Option<i64> =
        sqlx::query_scalar("SELECT last FROM member_no_counters WHERE adcode = $1")
            .bind(adcode.as_str())
            .fetch_optional(&mut *c)
            .await?;
    Ok(last.unwrap_or(0).max(0) as u64)
}

pub(super) async fn apply_membership_effects(
    c: &mut PgConnection,
    effects: &[Effect],
) -> Result<(), StoreError> {
    for e in effects {
        match e {
            Effect::Insert(m) => {
                sqlx::query(
                    "INSERT INTO memberships (id, user_id, union_id, status, member_no, \
                     applied_at, decided_at, decided_by, reason, activated_at, ended_at, \
                     transferred_from) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(m.id.as_i64())
                .bind(m.user)
                .bind(m.union.as_i64())
                .bind(m.status.as_str())
                .bind(&m.member_no)
                .bind(m.applied_at)
                .bind(m.decided_at)
                .bind(m.decided_by)
                .bind(&m.reason)
                .bind(m.activated_at)
                .bind(m.ended_at)
                .bind(m.transferred_from.map(MembershipId::as_i64))
                .execute(&mut *c)
                .await?;
            }
            Effect::Update { record: m, from } => {
                let done = sqlx::query(
                    "UPDATE memberships SET status = $1, member_no = $2, decided_at = $3, \
                     decided_by = $4, reason = $5, activated_at = $6, ended_at = $7 \
                     WHERE id = $8 AND status = $9",
                )
                .bind(m.status.as_str())
                .bind(&m.member_no)
                .bind(m.decided_at)
                .bind(m.decided_by)
                .bind(&m.reason)
                .bind(m.activated_at)
                .bind(m.ended_at)
                .bind(m.id.as_i64())
                .bind(from.as_str())
                .execute(&mut *c)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StoreError::WrongState(format!(
                        "membership {} is no longer {}",
                        m.id,
                        from.as_str()
                    )));
                }
            }
            Effect::Notify(_) => {
                return Err(StoreError::Corrupt(
                    "notices are applied by the transaction, not here".into(),
                ));
            }
            Effect::MemberSeq { adcode, last } => {
                sqlx::query(
                    "INSERT INTO member_no_counters (adcode, last) VALUES ($1, $2) \
                     ON CONFLICT (adcode) DO UPDATE SET last = excluded.last",
                )
                .bind(adcode.as_str())
                .bind(*last as i64)
                .execute(&mut *c)
                .await?;
            }
        }
    }
    Ok(())
}
