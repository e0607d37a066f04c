//! The `backforge` binary as separate processes on one database: read-your-writes across the
//! command API, query API and projector; a projector SIGKILLed under load still ends equal to a
//! replay; one projector leads at a time and another takes over; the operator commands; graceful
//! shutdown; THP off in every process.

use std::collections::HashSet;
use std::time::Duration;

use deadpool_postgres::Pool;
use event_store::Position;
use serde_json::{Value, json};
use tests::TestDatabase;
use tests::TestUser;
use tests::process::{Api, Backforge, eventually, position_of, run};
use tokio::time::Instant;
use uuid::Uuid;

fn token(user: &TestUser) -> Option<&str> {
    Some(user.access_token.as_str())
}

fn pool(url: &str) -> Pool {
    event_store::setup::pool(url, 2).expect("pool")
}

fn parse(token: &str) -> Position {
    Position::parse_token(token).unwrap_or_else(|_| panic!("`{token}` is not a position"))
}

/// The read models' checkpoint and the projector instance that wrote it last.
async fn checkpoint(pool: &Pool) -> (Position, Option<Uuid>) {
    let client = pool.get().await.expect("client");
    let row = client
        .query_one(
            "SELECT tx, seq, instance FROM rm.checkpoints WHERE name = 'read_models'",
            &[],
        )
        .await
        .expect("checkpoint row");
    let tx: i64 = row.get(0);
    let seq: i64 = row.get(1);
    (
        Position {
            tx: tx as u64,
            seq: seq as u64,
        },
        row.get(2),
    )
}

/// The position of the newest committed event, ignoring the xmin horizon: once every writer is
/// done, the feed head the projector must reach.
pub(crate) async fn newest_event(pool: &Pool) -> Position {
    let client = pool.get().await.expect("client");
    let row = client
        .query_opt(
            "SELECT transaction_id::text::int8, position FROM events
             ORDER BY transaction_id DESC, position DESC LIMIT 1",
            &[],
        )
        .await
        .expect("head");
    row.map_or(Position::START, |r| Position {
        tx: r.get::<_, i64>(0) as u64,
        seq: r.get::<_, i64>(1) as u64,
    })
}

/// Waits until the checkpoint reaches `position`; returns the instance that wrote it.
async fn projected(pool: &Pool, position: Position, deadline: Duration) -> Option<Uuid> {
    eventually(
        &format!("the read models reach {position}"),
        deadline,
        || async {
            let (at, instance) = checkpoint(pool).await;
            (at >= position).then_some(instance)
        },
    )
    .await
}

/// The read models of the database at `url`: every table of schema `rm` (the four of phase 1 at
/// least, and whatever later phases add), every column, rows ordered by primary key, except who
/// wrote the checkpoint and when.
pub(crate) async fn dump(url: &str) -> Vec<(String, Vec<Value>)> {
    let pool = pool(url);
    let client = pool.get().await.expect("client");
    let tables = client
        .query(
            "SELECT c.relname,
                    coalesce((SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.n)
                              FROM pg_index i
                              CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                              WHERE i.indrelid = c.oid AND i.indisprimary), '')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'rm' AND c.relkind = 'r'
             ORDER BY c.relname",
            &[],
        )
        .await
        .expect("read-model tables");
    let mut out = Vec::new();
    for row in tables {
        let table: String = row.get(0);
        let key: String = row.get(1);
        let columns = if table == "checkpoints" {
            "to_jsonb(t) - 'instance' - 'updated_at'"
        } else {
            "to_jsonb(t)"
        };
        let order = if key.is_empty() {
            "1".to_owned()
        } else {
            key.split(", ")
                .map(|c| format!("t.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let sql = format!("SELECT {columns} FROM rm.\"{table}\" t ORDER BY {order}");
        let rows = client.query(&sql, &[]).await.expect("dump");
        out.push((table, rows.iter().map(|r| r.get::<_, Value>(0)).collect()));
    }
    let names: Vec<&str> = out.iter().map(|(t, _)| t.as_str()).collect();
    for table in ["checkpoints", "project_members", "projects", "users"] {
        assert!(names.contains(&table), "rm.{table} is missing: {names:?}");
    }
    out
}

fn rows<'a>(dump: &'a [(String, Vec<Value>)], table: &str) -> &'a [Value] {
    dump.iter()
        .find(|(t, _)| t == table)
        .map(|(_, rows)| rows.as_slice())
        .unwrap_or_default()
}

/// Asserts two dumps are equal, naming the first table and row that differ.
#[track_caller]
pub(crate) fn assert_same_read_models(
    left: &[(String, Vec<Value>)],
    right: &[(String, Vec<Value>)],
    what: &str,
) {
    let tables = |d: &[(String, Vec<Value>)]| d.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>();
    assert_eq!(tables(left), tables(right), "{what}: the same tables");
    for ((table, a), (_, b)) in left.iter().zip(right) {
        assert_eq!(
            a.len(),
            b.len(),
            "{what}: rm.{table} has {} rows against {}",
            a.len(),
            b.len()
        );
        for (n, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(x, y, "{what}: rm.{table} row {n} differs");
        }
    }
}

/// The instance id a projector process announced when it took the lead.
async fn leader_instance(projector: &Backforge) -> Uuid {
    const LEADS: &str = "projector leads the read models instance=";
    projector.wait_for_log(LEADS, Duration::from_secs(10)).await;
    let log = projector.log();
    let at = log.find(LEADS).expect("announcement") + LEADS.len();
    log.get(at..at + 36)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no instance id after `{LEADS}`\n{}", projector.log_tail()))
}

/// A small random pause in `low..=high` ms (pacing only, never for correctness).
pub(crate) fn jitter(low: u64, high: u64) -> Duration {
    Duration::from_millis(low + (Uuid::new_v4().as_u128() % u128::from(high - low + 1)) as u64)
}

#[tokio::test]
async fn a_write_on_the_command_api_is_read_on_the_query_api_at_its_position_without_sleeping() {
    let db = TestDatabase::create().await.expect("test database");
    let commands = Backforge::start("command-api", &db.url, &[]).await;
    let queries = Backforge::start("query-api", &db.url, &[]).await;
    let _projector = Backforge::start("projector", &db.url, &[]).await;

    let (alice, registered) = commands.register("Alice").await;
    let profile = queries
        .get_at("/auth/profile", token(&alice), &registered)
        .await
        .expect(200);
    assert_eq!(profile.body["name"], json!("Alice"));
    let renamed = commands
        .put("/auth/profile", token(&alice), json!({"name": "Alice L"}))
        .await
        .expect(200);
    let profile = queries
        .get_at("/auth/profile", token(&alice), &position_of(&renamed))
        .await
        .expect(200);
    assert_eq!(profile.body["name"], json!("Alice L"));

    let mut ids = Vec::new();
    let mut last = String::new();
    for n in 0..8 {
        let created = commands
            .post("/projects", token(&alice), json!({"name": format!("P{n}")}))
            .await
            .expect(201);
        let id = created.body["id"].as_str().unwrap().to_owned();
        let path = format!("/projects/{id}");
        let read = queries
            .get_at(&path, token(&alice), &position_of(&created))
            .await
            .expect(200);
        assert_eq!(read.body["name"], json!(format!("P{n}")));
        assert_eq!(read.body["version"], json!(1));

        let updated = commands
            .put(
                &path,
                token(&alice),
                json!({"description": format!("d{n}")}),
            )
            .await
            .expect(200);
        let read = queries
            .get_at(&path, token(&alice), &position_of(&updated))
            .await
            .expect(200);
        assert_eq!(read.body["description"], json!(format!("d{n}")));
        assert_eq!(read.header("ETag").as_deref(), Some("\"2\""));

        let feature = commands
            .post(
                &format!("{path}/features"),
                token(&alice),
                json!({"name": "Login", "feature_type": "auth"}),
            )
            .await
            .expect(201);
        let fid = feature.body["id"].as_str().unwrap();
        last = position_of(&feature);
        let read = queries
            .get_at(&format!("{path}/features/{fid}"), token(&alice), &last)
            .await
            .expect(200);
        assert_eq!(read.body["name"], json!("Login"));
        ids.push(id);
    }
    let list = queries
        .get_at("/projects", token(&alice), &last)
        .await
        .expect(200);
    let listed: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);

    let archived = commands
        .delete(&format!("/projects/{}", ids[0]), token(&alice))
        .await
        .expect(204);
    queries
        .get_at(
            &format!("/projects/{}", ids[0]),
            token(&alice),
            &position_of(&archived),
        )
        .await
        .expect(404);
}

/// One writer of the kill test: a user creating, changing, sharing and archiving projects
/// through the command API until `until`. Returns how many projects it created.
pub(crate) async fn write_until(
    api: Api,
    me: TestUser,
    others: Vec<TestUser>,
    until: Instant,
) -> usize {
    struct Mine {
        id: String,
        features: Vec<String>,
        members: Vec<String>,
    }
    let mut projects: Vec<Mine> = Vec::new();
    let mut created = 0;
    let mut n = 0usize;
    while Instant::now() < until {
        n += 1;
        let entity = format!("thing{n}");
        let crud = json!({"name": format!("Thing {n}"), "feature_type": "crud", "schema_definition":
            {"entity": entity, "fields": [{"name": "title", "type": "string", "required": true}]}});
        if projects.is_empty() || n % 7 == 1 {
            let body = if n % 2 == 0 {
                json!({"name": format!("{} {n}", me.email), "features": [crud]})
            } else {
                json!({"name": format!("{} {n}", me.email), "description": "d"})
            };
            let answer = api.post("/projects", token(&me), body).await.expect(201);
            projects.push(Mine {
                id: answer.body["id"].as_str().unwrap().to_owned(),
                features: Vec::new(),
                members: Vec::new(),
            });
            created += 1;
            continue;
        }
        let pick = n % projects.len();
        let project = &mut projects[pick];
        let path = format!("/projects/{}", project.id);
        match n % 7 {
            2 | 5 => {
                let answer = api
                    .post(&format!("{path}/features"), token(&me), crud)
                    .await
                    .expect(201);
                project
                    .features
                    .push(answer.body["id"].as_str().unwrap().to_owned());
            }
            3 => {
                api.put(
                    &path,
                    token(&me),
                    json!({"name": format!("renamed {n}"), "description": null}),
                )
                .await
                .expect(200);
            }
            4 => {
                let other = &others[n % others.len()];
                api.put(
                    &format!("{path}/members/{}", other.id),
                    token(&me),
                    json!({"role": "viewer"}),
                )
                .await
                .expect(200);
                if !project.members.contains(&other.id) {
                    project.members.push(other.id.clone());
                }
            }
            6 => match project.features.first().cloned() {
                Some(feature) => {
                    api.put(
                        &format!("{path}/features/{feature}"),
                        token(&me),
                        json!({"is_enabled": n % 2 == 0, "name": format!("F{n}")}),
                    )
                    .await
                    .expect(200);
                }
                None => {
                    api.put(
                        "/auth/profile",
                        token(&me),
                        json!({"name": format!("W{n}")}),
                    )
                    .await
                    .expect(200);
                }
            },
            _ => {
                if let Some(member) = project.members.pop() {
                    api.delete(&format!("{path}/members/{member}"), token(&me))
                        .await
                        .expect(204);
                } else if n % 3 == 0 {
                    api.delete(&path, token(&me)).await.expect(204);
                    projects.remove(pick);
                } else if let Some(feature) = project.features.pop() {
                    api.delete(&format!("{path}/features/{feature}"), token(&me))
                        .await
                        .expect(204);
                }
            }
        }
    }
    created
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_again_and_again_under_writes_ends_equal_to_a_replay() {
    let db = TestDatabase::create().await.expect("test database");
    let fresh = TestDatabase::create().await.expect("replay target");
    let pg = pool(&db.url);
    let commands = Backforge::start("command-api", &db.url, &[]).await;
    let mut projector = Backforge::start("projector", &db.url, &[]).await;

    let mut users = Vec::new();
    for name in ["Ann", "Ben", "Cat", "Dan"] {
        users.push(commands.register(name).await.0);
    }
    let until = Instant::now() + Duration::from_secs(4);
    let writers: Vec<_> = users
        .iter()
        .map(|me| {
            let others: Vec<TestUser> = users.iter().filter(|u| u.id != me.id).cloned().collect();
            tokio::spawn(write_until(commands.api.clone(), me.clone(), others, until))
        })
        .collect();

    // Kill the projector at random moments and start a new one, at least five times, while the
    // writers run. Every start is a new instance id; note the ones that got to apply something.
    let mut kills = 0;
    let mut appliers = HashSet::new();
    while kills < 5 || writers.iter().any(|w| !w.is_finished()) {
        tokio::time::sleep(jitter(300, 700)).await;
        if let (_, Some(instance)) = checkpoint(&pg).await {
            appliers.insert(instance);
        }
        projector.kill();
        kills += 1;
        projector = Backforge::start("projector", &db.url, &[]).await;
    }
    let mut created = 0;
    for writer in writers {
        created += writer.await.expect("writer");
    }
    assert!(kills >= 5);
    assert!(
        appliers.len() >= 2,
        "several killed projectors applied batches before dying: {appliers:?}"
    );

    // The last projector catches up with everything that was committed.
    let head = newest_event(&pg).await;
    let writer = projected(&pg, head, Duration::from_secs(20)).await;
    assert!(writer.is_some(), "the checkpoint names its writer");
    eprintln!(
        "{kills} projector kills; {} killed instances had applied; {created} projects; head {head}",
        appliers.len()
    );
    let live = dump(&db.url).await;
    assert_eq!(
        rows(&live, "users").len(),
        users.len(),
        "every user is in rm.users"
    );
    assert_eq!(
        rows(&live, "projects").len(),
        created,
        "every project is in rm.projects"
    );
    assert!(
        !rows(&live, "project_members").is_empty(),
        "some members are left"
    );
    assert!(created >= 4, "the writers made projects: {created}");

    // A replay into another database builds the same read models from the same events.
    let replayed = run(
        &["replay", "--into", &fresh.url],
        &db.url,
        &[],
        Duration::from_secs(60),
    )
    .await
    .expect_success();
    assert!(replayed.output.contains("replayed"), "{}", replayed.output);
    assert_same_read_models(&live, &dump(&fresh.url).await, "replay --into");

    // So does a replay in place, with the live projector still running beside it; and the
    // projector carries on projecting new writes after the swap.
    run(&["replay"], &db.url, &[], Duration::from_secs(60))
        .await
        .expect_success();
    assert_same_read_models(&live, &dump(&db.url).await, "replay in place");
    let after = commands
        .post(
            "/projects",
            token(&users[0]),
            json!({"name": "after replay"}),
        )
        .await
        .expect(201);
    let instance = projected(&pg, parse(&position_of(&after)), Duration::from_secs(10)).await;
    assert_eq!(
        instance,
        Some(leader_instance(&projector).await),
        "the live projector goes on after the swap\n{}",
        projector.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projectors_never_both_apply_and_the_second_takes_over_when_the_first_dies() {
    let db = TestDatabase::create().await.expect("test database");
    let pg = pool(&db.url);
    let commands = Backforge::start("command-api", &db.url, &[]).await;
    let mut a = Backforge::start("projector", &db.url, &[]).await;
    let (alice, registered) = commands.register("Alice").await;
    let leader = projected(&pg, parse(&registered), Duration::from_secs(10))
        .await
        .expect("the checkpoint names its writer");
    a.wait_for_log("projector leads the read models", Duration::from_secs(5))
        .await;
    assert!(
        a.log().contains(&leader.to_string()),
        "A's log names the instance in the checkpoint ({leader})\n{}",
        a.log_tail()
    );

    let b = Backforge::start("projector", &db.url, &[]).await;
    b.wait_for_log("waiting for leadership", Duration::from_secs(10))
        .await;

    // Watch the checkpoint's writer while writes go on: only A may appear.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watcher = {
        let pg = pg.clone();
        tokio::spawn(async move {
            let mut seen = HashSet::new();
            while !*stopped.borrow() {
                if let (_, Some(instance)) = checkpoint(&pg).await {
                    seen.insert(instance);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    let mut last = registered;
    for n in 0..10 {
        let created = commands
            .post("/projects", token(&alice), json!({"name": format!("P{n}")}))
            .await
            .expect(201);
        last = position_of(&created);
    }
    let writer = projected(&pg, parse(&last), Duration::from_secs(10)).await;
    let _ = stop.send(true);
    let seen = watcher.await.expect("watcher");
    assert_eq!(writer, Some(leader));
    assert_eq!(
        seen,
        HashSet::from([leader]),
        "only the leader wrote the checkpoint"
    );
    assert!(
        !b.log().contains("projector leads the read models"),
        "B must not lead while A lives\n{}",
        b.log_tail()
    );

    // A dies without a word; B gets the lock and projects the next write.
    a.kill();
    let after = commands
        .post(
            "/projects",
            token(&alice),
            json!({"name": "after the leader died"}),
        )
        .await
        .expect(201);
    let successor = projected(&pg, parse(&position_of(&after)), Duration::from_secs(15))
        .await
        .expect("the checkpoint names its writer");
    assert_ne!(successor, leader, "a new instance projects after A died");
    b.wait_for_log("projector leads the read models", Duration::from_secs(5))
        .await;
    assert!(
        b.log().contains(&successor.to_string()),
        "B took over ({successor})\n{}",
        b.log_tail()
    );
    let (_, instance) = checkpoint(&pg).await;
    assert_eq!(instance, Some(successor));
}

#[tokio::test]
async fn admin_grant_makes_a_user_an_admin_who_sees_and_writes_any_project() {
    let db = TestDatabase::create().await.expect("test database");
    let app = Backforge::start("serve", &db.url, &[]).await;
    let (alice, _) = app.register("Alice").await;
    let (bob, _) = app.register("Bob").await;
    let created = app
        .post("/projects", token(&alice), json!({"name": "Alice's"}))
        .await
        .expect(201);
    let project = format!("/projects/{}", created.body["id"].as_str().unwrap());
    let gone = app
        .post("/projects", token(&alice), json!({"name": "Archived"}))
        .await
        .expect(201);
    let archived = format!("/projects/{}", gone.body["id"].as_str().unwrap());
    let at = position_of(&app.delete(&archived, token(&alice)).await.expect(204));
    app.get_at(&project, token(&bob), &at).await.expect(404);

    let granted = run(
        &["admin", "grant", &bob.email.to_uppercase()],
        &db.url,
        &[],
        Duration::from_secs(30),
    )
    .await
    .expect_success();
    assert!(
        granted.output.contains("is now an admin"),
        "{}",
        granted.output
    );
    let again = run(
        &["admin", "grant", &bob.email],
        &db.url,
        &[],
        Duration::from_secs(30),
    )
    .await
    .expect_success();
    assert!(
        again.output.contains("was an admin already"),
        "{}",
        again.output
    );
    let unknown = run(
        &["admin", "grant", "nobody@example.com"],
        &db.url,
        &[],
        Duration::from_secs(30),
    )
    .await;
    assert!(!unknown.status.success(), "{}", unknown.output);

    // The role change revoked Bob's old token; his next login carries the admin role.
    app.get(&project, token(&bob)).await.expect(401);
    let login = app
        .post(
            "/auth/login",
            None,
            json!({"email": bob.email, "password": bob.password}),
        )
        .await
        .expect(200);
    assert_eq!(login.body["user"]["role"], json!("admin"));
    let admin = TestUser {
        access_token: login.body["access_token"].as_str().unwrap().to_owned(),
        ..bob.clone()
    };
    let seen = app.get(&project, token(&admin)).await.expect(200);
    assert_eq!(seen.body["owner_id"], json!(alice.id));
    app.get(&format!("{archived}/history"), token(&admin))
        .await
        .expect(200);
    app.get(&format!("{archived}?as_of_version=1"), token(&admin))
        .await
        .expect(200);

    // An admin's write is recorded as theirs.
    let renamed = app
        .put(
            &project,
            token(&admin),
            json!({"name": "Renamed by an admin"}),
        )
        .await
        .expect(200);
    let history = app
        .get_at(
            &format!("{project}/history"),
            token(&admin),
            &position_of(&renamed),
        )
        .await
        .expect(200);
    let items = history.body["items"].as_array().unwrap();
    assert_eq!(items[0]["metadata"]["actor"], json!(alice.id));
    assert_eq!(items.last().unwrap()["metadata"]["actor"], json!(bob.id));

    // The read model follows the grant (it carries no position, so poll).
    eventually(
        "the profile shows the admin role",
        Duration::from_secs(10),
        || async {
            let profile = app.get("/auth/profile", token(&admin)).await.expect(200);
            (profile.body["role"] == json!("admin")).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn two_migrations_at_once_on_a_missing_database_both_succeed() {
    let db = TestDatabase::create().await.expect("test database");
    // Start from no database at all: both processes race to create it, then to migrate it.
    {
        let (client, connection) =
            tokio_postgres::connect(&event_store::testkit::admin_url(), tokio_postgres::NoTls)
                .await
                .expect("admin connection");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP DATABASE \"{}\" WITH (FORCE)", db.name))
            .await
            .expect("drop");
        drop(client);
        let _ = driver.await;
    }
    let deadline = Duration::from_secs(60);
    let (first, second) = tokio::join!(
        run(&["migrate"], &db.url, &[], deadline),
        run(&["migrate"], &db.url, &[], deadline)
    );
    for finished in [first, second] {
        let finished = finished.expect_success();
        assert!(
            finished.output.contains("migrations applied"),
            "{}",
            finished.output
        );
    }
    run(&["migrate"], &db.url, &[], deadline)
        .await
        .expect_success();

    let client = pool(&db.url).get().await.expect("client");
    for table in ["events", "credentials", "rm.projects", "rm.checkpoints"] {
        client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap_or_else(|e| panic!("{table} after migrate: {e}"));
    }
}

#[tokio::test]
async fn sigterm_stops_serve_and_the_projector_gracefully() {
    let db = TestDatabase::create().await.expect("test database");
    let mut app = Backforge::start("serve", &db.url, &[]).await;
    let mut projector = Backforge::start("projector", &db.url, &[]).await;
    // Leave a keep-alive connection open, as real clients do.
    let (alice, registered) = app.register("Alice").await;
    app.get_at("/projects", token(&alice), &registered)
        .await
        .expect(200);

    // actix lets open connections finish, an idle keep-alive one until its 5 s keep-alive runs
    // out; the server's own 10 s shutdown timeout is the bound that must never be reached.
    for process in [&mut app, &mut projector] {
        let started = Instant::now();
        process.terminate();
        let status = process
            .wait_exit(Duration::from_secs(15))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "`backforge {}` still runs 15 s after SIGTERM\n{}",
                    process.subcommand,
                    process.log_tail()
                )
            });
        let took = started.elapsed();
        assert_eq!(
            status.code(),
            Some(0),
            "`backforge {}` exits 0 after SIGTERM\n{}",
            process.subcommand,
            process.log_tail()
        );
        assert!(
            took < Duration::from_secs(8),
            "`backforge {}` took {took:?} to stop\n{}",
            process.subcommand,
            process.log_tail()
        );
    }
}

#[tokio::test]
async fn a_backforge_process_runs_without_transparent_huge_pages() {
    // given `serve` started as users start it (on a kernel whose THP mode may be `always`)
    let db = TestDatabase::create().await.expect("test database");
    let app = Backforge::start("serve", &db.url, &[]).await;
    // when its status is read from /proc
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid()))
        .expect("the process's status");
    // then the kernel reports THP off for it (main sets it before any thread or arena exists),
    // so an arena's eager commit never makes whole 2 MiB pages resident
    let thp = status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .map(str::trim);
    assert_eq!(
        thp,
        Some("0"),
        "THP_enabled of `backforge serve`:\n{status}"
    );
}
