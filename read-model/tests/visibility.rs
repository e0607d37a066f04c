//! The SQL that lists projects and the row read behind every project route agree with the
//! domain's visibility rule, for every global role, relation and status, against PostgreSQL.

use domain::ids::UserId;
use domain::project::{AccessFacts, ProjectRole, ProjectStatus};
use domain::user::Role;
use event_store::testkit::TestDatabase;
use read_model::Reader;
use read_model::rows::{self, Features};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Owner,
    Viewer,
    Stranger,
}

/// Every variant, so a new one fails to compile here until the test covers it.
fn roles() -> [Role; 2] {
    let _exhaustive = |r: Role| match r {
        Role::Admin | Role::Member => (),
    };
    [Role::Admin, Role::Member]
}

fn statuses() -> [ProjectStatus; 2] {
    let _exhaustive = |s: ProjectStatus| match s {
        ProjectStatus::Active | ProjectStatus::Archived => (),
    };
    [ProjectStatus::Active, ProjectStatus::Archived]
}

#[tokio::test]
async fn the_list_predicate_and_the_project_read_agree_with_the_domain_in_every_case() {
    let db = TestDatabase::create().await.expect("test database");
    read_model::ensure(&db.url)
        .await
        .expect("read-model tables");
    let pool = event_store::setup::pool(&db.url, 2).expect("pool");
    let client = pool.get().await.expect("connection");
    let now = OffsetDateTime::now_utc();
    let mut cases = 0;
    for role in roles() {
        for relation in [Relation::Owner, Relation::Viewer, Relation::Stranger] {
            for status in statuses() {
                let reader = Reader {
                    user_id: Uuid::new_v4(),
                    role,
                };
                let owner = match relation {
                    Relation::Owner => reader.user_id,
                    _ => Uuid::new_v4(),
                };
                let project = Uuid::new_v4();
                client
                    .execute(
                        "INSERT INTO rm.projects (id, owner_id, status, version, last_tx, last_seq,
                             created_at, updated_at, document)
                         VALUES ($1, $2, $3, 1, 1, 1, $4, $4, $5)",
                        &[
                            &project,
                            &owner,
                            &status.as_str(),
                            &now,
                            &serde_json::json!({"id": project}),
                        ],
                    )
                    .await
                    .expect("project row");
                if relation == Relation::Viewer {
                    client
                        .execute(
                            "INSERT INTO rm.project_members (project_id, user_id, role, added_at)
                             VALUES ($1, $2, $3, $4)",
                            &[
                                &project,
                                &reader.user_id,
                                &ProjectRole::Viewer.as_str(),
                                &now,
                            ],
                        )
                        .await
                        .expect("member row");
                }
                let case = format!("{role:?} {relation:?} {status:?}");
                let domain = AccessFacts {
                    owner_id: UserId::from_uuid(owner),
                    status,
                    is_member: relation == Relation::Viewer,
                }
                .access_for(UserId::from_uuid(reader.user_id), role);

                let row = rows::project(&client, project, reader.user_id, Features::With)
                    .await
                    .expect("project read")
                    .expect("the row");
                assert_eq!(row.visibility.access(reader), domain, "{case}");

                for wanted in statuses() {
                    let page = rows::list_projects(
                        &client,
                        reader,
                        wanted,
                        (now + time::Duration::days(1), Uuid::max()),
                        50,
                    )
                    .await
                    .expect("list");
                    let listed = page
                        .iter()
                        .any(|p| p.document["id"] == serde_json::json!(project));
                    let expected =
                        wanted == status && relation != Relation::Stranger && domain.can_read();
                    assert_eq!(listed, expected, "{case}, listing {wanted:?}");
                    assert_eq!(
                        listed,
                        wanted == status && read_model::visibility::listed(&row.visibility, reader),
                        "{case}: `listed` and the SQL disagree"
                    );
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 12);
}
