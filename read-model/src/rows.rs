//! Typed readers of the read-model rows, for the query API and the worker: the SQL of every read
//! lives here, next to the DDL it depends on, and enum columns are read back through the domain's
//! own spelling (an unknown spelling is an error, never a default).

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::GenericClient;
use domain::generation::GenerationStatus;
use domain::project::ProjectStatus;
use domain::user::Role;
use serde::Serialize;
use serde::de::{DeserializeOwned, IntoDeserializer};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::feature_lists::FeatureLists;
use crate::visibility::{Reader, Visibility, listed_predicate};

/// A read-model row that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("read model column {column} holds {value:?}, which the domain does not spell")]
    Spelling { column: &'static str, value: String },
    #[error("a read-model document is not valid JSON")]
    Json(#[from] serde_json::Error),
}

/// A domain enum from its spelling (a stored column, a query parameter): the domain's serde
/// name, as its `as_str` writes it.
pub fn spelled<T: DeserializeOwned>(column: &'static str, raw: &str) -> Result<T, ReadError> {
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        raw.into_deserializer();
    T::deserialize(de).map_err(|_| ReadError::Spelling {
        column,
        value: raw.to_owned(),
    })
}

/// A user's profile row.
#[derive(Debug, Clone)]
pub struct Profile {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

pub async fn profile<C: GenericClient>(
    client: &C,
    user_id: Uuid,
) -> Result<Option<Profile>, ReadError> {
    let stmt = client
        .prepare_cached(
            "SELECT id, email, name, role, created_at, updated_at, version FROM rm.users WHERE id = $1",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&user_id]).await? else {
        return Ok(None);
    };
    let role: &str = row.try_get(3)?;
    Ok(Some(Profile {
        id: row.try_get(0)?,
        email: row.try_get(1)?,
        name: row.try_get(2)?,
        role: spelled("users.role", role)?,
        created_at: row.try_get(4)?,
        updated_at: row.try_get(5)?,
        version: row.try_get(6)?,
    }))
}

/// The statement behind `GET /projects/{id}` (and the bench's W3 baseline): the project row, the
/// reader's membership and the features in their order, in one round trip.
pub const PROJECT_WITH_FEATURES_SQL: &str = "SELECT p.owner_id, p.status, p.version, p.document,
        EXISTS (SELECT 1 FROM rm.project_members m WHERE m.project_id = p.id AND m.user_id = $2),
        (SELECT coalesce('[' || string_agg(f.document::text, ',' ORDER BY f.ordinal) || ']', '[]')
         FROM rm.project_features f WHERE f.project_id = p.id)
 FROM rm.projects p WHERE p.id = $1";

const PROJECT_SQL: &str = "SELECT p.owner_id, p.status, p.version, p.document,
        EXISTS (SELECT 1 FROM rm.project_members m WHERE m.project_id = p.id AND m.user_id = $2)
 FROM rm.projects p WHERE p.id = $1";

/// Whether a project read needs the feature list (the document is stored without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Features {
    With,
    Without,
}

/// A project row as stored, with the reader's membership.
#[derive(Debug)]
pub struct ProjectRow {
    pub visibility: Visibility,
    pub version: i64,
    /// The project as the domain serialises it, with an empty `features` list.
    pub document: Value,
    /// The features as one JSON array text, in their order, when asked for: written out to
    /// clients as read, never parsed on the way.
    pub features: Option<JsonText>,
}

/// JSON text as PostgreSQL built it from `json` columns (which it validated when they were
/// written), taken as bytes: neither checked as UTF-8 nor parsed again on the way to a client.
/// A reader that needs values parses it with [`JsonText::parse`].
/// Shared, so a cached list is handed to any number of readers without a copy.
#[derive(Debug, Clone)]
pub struct JsonText(Arc<[u8]>);

impl JsonText {
    /// The JSON array of `items` exactly as [`PROJECT_WITH_FEATURES_SQL`] forms it from rows
    /// holding each item's serialisation: `[` the items joined by `,` `]`.
    pub fn array<'i, T: Serialize + 'i>(
        items: impl IntoIterator<Item = &'i T>,
    ) -> Result<Self, serde_json::Error> {
        let mut out = Vec::with_capacity(512);
        out.push(b'[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, item)?;
        }
        out.push(b']');
        Ok(JsonText(out.into()))
    }

    /// This array with `items` appended: the text [`JsonText::array`] gives for this array's
    /// items followed by `items`, when this text is one it gave.
    pub fn extended<'i, T: Serialize + 'i>(
        &self,
        items: impl IntoIterator<Item = &'i T>,
    ) -> Result<Self, serde_json::Error> {
        let head = self.0.strip_suffix(b"]").unwrap_or(&self.0);
        let mut out = Vec::with_capacity(self.0.len() + 1024);
        out.extend_from_slice(head);
        let mut first = head == b"[";
        for item in items {
            if !first {
                out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut out, item)?;
        }
        out.push(b']');
        Ok(JsonText(out.into()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.0)
    }
}

impl<'a> tokio_postgres::types::FromSql<'a> for JsonText {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(JsonText(raw.into()))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        use tokio_postgres::types::Type;
        *ty == Type::TEXT || *ty == Type::JSON
    }
}

/// One project with what `reader_id` needs to be told whether they may see it. Decide with
/// [`Visibility::access`] before answering.
pub async fn project<C: GenericClient>(
    client: &C,
    project_id: Uuid,
    reader_id: Uuid,
    features: Features,
) -> Result<Option<ProjectRow>, ReadError> {
    let stmt = client
        .prepare_cached(match features {
            Features::With => PROJECT_WITH_FEATURES_SQL,
            Features::Without => PROJECT_SQL,
        })
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&project_id, &reader_id]).await? else {
        return Ok(None);
    };
    let status: &str = row.try_get(1)?;
    let features = match features {
        Features::With => Some(row.try_get::<_, JsonText>(5)?),
        Features::Without => None,
    };
    Ok(Some(ProjectRow {
        visibility: Visibility {
            owner_id: row.try_get(0)?,
            status: spelled("projects.status", status)?,
            reader_is_member: row.try_get(4)?,
        },
        version: row.try_get(2)?,
        document: row.try_get(3)?,
        features,
    }))
}

/// One project with its features, as [`project`] with [`Features::With`] reads it, except that a
/// feature list `lists` holds at the row's version is taken from there instead of aggregated
/// from the feature rows again (the row itself, with its version and visibility, is always read).
pub async fn project_with_features<C: GenericClient>(
    client: &C,
    lists: &FeatureLists,
    project_id: Uuid,
    reader_id: Uuid,
) -> Result<Option<ProjectRow>, ReadError> {
    if let Some((version, features)) = lists.get(project_id) {
        let Some(mut row) = project(client, project_id, reader_id, Features::Without).await? else {
            lists.forget(project_id);
            return Ok(None);
        };
        if row.version == version {
            row.features = Some(features);
            return Ok(Some(row));
        }
    }
    let row = project(client, project_id, reader_id, Features::With).await?;
    if let Some(ProjectRow {
        version,
        features: Some(features),
        ..
    }) = &row
    {
        lists.offer(project_id, *version, features);
    }
    Ok(row)
}

/// One entry of a project list.
#[derive(Debug)]
pub struct ListedProject {
    pub version: i64,
    pub document: Value,
    pub feature_count: i64,
}

const LIST_PROJECTS_SQL: &str = concat!(
    "SELECT id, version, document,
            (SELECT count(*) FROM rm.project_features f WHERE f.project_id = p.id)
     FROM rm.projects p
     WHERE p.status = $4 AND ",
    listed_predicate!(),
    " AND (p.created_at, p.id) < ($5, $6)
     ORDER BY p.created_at DESC, p.id DESC
     LIMIT $7"
);

/// Up to `fetch` projects in `status` that `reader` has in their list (see
/// [`crate::visibility::LISTED`]), newest first, created before `before`.
pub async fn list_projects<C: GenericClient>(
    client: &C,
    reader: Reader,
    status: ProjectStatus,
    before: (OffsetDateTime, Uuid),
    fetch: usize,
) -> Result<Vec<ListedProject>, ReadError> {
    let stmt = client.prepare_cached(LIST_PROJECTS_SQL).await?;
    let rows = client
        .query(
            &stmt,
            &[
                &reader.user_id,
                &(reader.role == Role::Admin),
                &ProjectStatus::Active.as_str(),
                &status.as_str(),
                &before.0,
                &before.1,
                &i64::try_from(fetch).unwrap_or(i64::MAX),
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ListedProject {
                version: row.try_get(1)?,
                document: row.try_get(2)?,
                feature_count: row.try_get(3)?,
            })
        })
        .collect()
}

/// A generation row.
#[derive(Debug)]
pub struct GenerationRow {
    pub project_id: Uuid,
    pub status: GenerationStatus,
    /// The generation as the domain serialises it (the body of `GET /generations/{id}`).
    pub document: Value,
}

pub async fn generation<C: GenericClient>(
    client: &C,
    id: Uuid,
) -> Result<Option<GenerationRow>, ReadError> {
    let stmt = client
        .prepare_cached("SELECT project_id, document, status FROM rm.generations WHERE id = $1")
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&id]).await? else {
        return Ok(None);
    };
    let status: &str = row.try_get(2)?;
    Ok(Some(GenerationRow {
        project_id: row.try_get(0)?,
        status: spelled("generations.status", status)?,
        document: row.try_get(1)?,
    }))
}

/// One entry of a project's generation list.
#[derive(Debug)]
pub struct ListedGeneration {
    pub id: Uuid,
    pub requested_at: OffsetDateTime,
    pub document: Value,
}

/// Up to `fetch` generations of a project, newest first, requested before `before`.
pub async fn list_generations<C: GenericClient>(
    client: &C,
    project_id: Uuid,
    before: (OffsetDateTime, Uuid),
    fetch: usize,
) -> Result<Vec<ListedGeneration>, ReadError> {
    let stmt = client
        .prepare_cached(
            "SELECT id, requested_at, document FROM rm.generations
             WHERE project_id = $1 AND (requested_at, id) < ($2, $3)
             ORDER BY requested_at DESC, id DESC LIMIT $4",
        )
        .await?;
    let rows = client
        .query(
            &stmt,
            &[
                &project_id,
                &before.0,
                &before.1,
                &i64::try_from(fetch).unwrap_or(i64::MAX),
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ListedGeneration {
                id: row.try_get(0)?,
                requested_at: row.try_get(1)?,
                document: row.try_get(2)?,
            })
        })
        .collect()
}

/// The document of a project's most recently completed successful generation.
pub async fn latest_succeeded<C: GenericClient>(
    client: &C,
    project_id: Uuid,
) -> Result<Option<Value>, ReadError> {
    let stmt = client
        .prepare_cached(
            "SELECT document FROM rm.generations WHERE project_id = $1 AND status = $2
             ORDER BY completed_at DESC, id DESC LIMIT 1",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&project_id, &GenerationStatus::Succeeded.as_str()])
        .await?;
    Ok(row.map(|row| row.try_get(0)).transpose()?)
}

/// A generation the sweeper must fail: in a state for longer than allowed.
#[derive(Debug)]
pub struct Overdue {
    pub id: Uuid,
    pub project_id: Uuid,
    /// The project version it was requested at, if the stored document says.
    pub project_version: Option<i64>,
    /// When it entered the state it is stuck in.
    pub since: OffsetDateTime,
}

/// Generations in `status` (`running`, timed from `started_at`, or `requested`, timed from
/// `requested_at`) for longer than `limit`. The status is written into the statement, spelled by
/// the domain, so the planner can use the partial index of open generations.
pub async fn overdue<C: GenericClient>(
    client: &C,
    status: GenerationStatus,
    limit: Duration,
) -> Result<Vec<Overdue>, ReadError> {
    let since = match status {
        GenerationStatus::Running => "started_at",
        _ => "requested_at",
    };
    let sql = format!(
        "SELECT id, project_id, (document->>'project_version')::bigint, {since}
         FROM rm.generations
         WHERE status = '{}' AND {since} < now() - make_interval(secs => $1)",
        status.as_str()
    );
    let rows = client.query(&sql, &[&limit.as_secs_f64()]).await?;
    rows.iter()
        .map(|row| {
            Ok(Overdue {
                id: row.try_get(0)?,
                project_id: row.try_get(1)?,
                project_version: row.try_get(2)?,
                since: row.try_get(3)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::TABLES;

    #[test]
    fn enum_columns_read_the_domains_spelling_and_refuse_others() {
        assert_eq!(
            spelled::<ProjectStatus>("c", ProjectStatus::Archived.as_str()).ok(),
            Some(ProjectStatus::Archived)
        );
        assert_eq!(
            spelled::<Role>("c", Role::Admin.as_str()).ok(),
            Some(Role::Admin)
        );
        assert!(matches!(
            spelled::<ProjectStatus>("c", "deleted"),
            Err(ReadError::Spelling { .. })
        ));
    }

    /// `as_str` (what the projector writes) and the serde name (what readers parse, and what the
    /// API serves) are one spelling for every variant.
    #[test]
    fn every_stored_enum_writes_its_serde_spelling() {
        use domain::project::ProjectRole;
        fn same<T: serde::Serialize>(value: T, spelled: &str) {
            assert_eq!(serde_json::to_value(value).ok(), Some(Value::from(spelled)));
        }
        for s in [ProjectStatus::Active, ProjectStatus::Archived] {
            same(s, s.as_str());
        }
        same(ProjectRole::Viewer, ProjectRole::Viewer.as_str());
        for r in [Role::Admin, Role::Member] {
            same(r, r.as_str());
        }
        for g in [
            GenerationStatus::Requested,
            GenerationStatus::Running,
            GenerationStatus::Succeeded,
            GenerationStatus::Failed,
        ] {
            same(g, g.as_str());
        }
    }

    #[test]
    fn every_statement_names_only_tables_the_ddl_creates() {
        let statements = [
            PROJECT_WITH_FEATURES_SQL,
            PROJECT_SQL,
            LIST_PROJECTS_SQL,
            crate::visibility::LISTED,
        ];
        // The readers spell the live schema out, so statements stay `&'static str`.
        assert_eq!(crate::tables::LIVE, "rm");
        for sql in statements {
            for (i, _) in sql.match_indices("rm.") {
                let name: String = sql[i + 3..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(TABLES.contains(&name.as_str()), "rm.{name} in {sql}");
            }
        }
    }
}
