//! The security-version cache across processes: a password change rejects the old tokens at once
//! on the process that made it, and on another process as soon as its NOTIFY arrives — long
//! before the cache's max age, which this test sets to a minute so only the eviction can explain it.

use std::time::{Duration, Instant};

use serde_json::json;
use tests::TestDatabase;
use tests::process::{Backforge, eventually};

#[tokio::test]
async fn a_password_change_revokes_old_tokens_here_at_once_and_elsewhere_within_the_notify() {
    let db = TestDatabase::create().await.expect("test database");
    let env = [("BACKFORGE_SV_CACHE_MAX_AGE_MS", "60000")];
    let here = Backforge::start("serve", &db.url, &env).await;
    let there = Backforge::start("serve", &db.url, &env).await;
    let (user, _) = here.register("Ana").await;
    let old = Some(user.access_token.as_str());
    // Both processes have read (and, once their LISTEN is up, cached) the security version.
    for process in [&here, &there] {
        for _ in 0..3 {
            process.get("/projects", old).await.expect(200);
        }
    }
    let changed = here
        .post(
            "/auth/change-password",
            old,
            json!({"current_password": user.password, "new_password": "a brand new passphrase"}),
        )
        .await
        .expect(200);
    let at = Instant::now();
    here.get("/projects", old).await.expect(401);
    eventually(
        "the other process rejects the old token",
        Duration::from_secs(5),
        || async { (there.get("/projects", old).await.status == 401).then_some(()) },
    )
    .await;
    let took = at.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "revoked after {took:?}: the max age, not the notification"
    );
    let new = changed.body["access_token"].as_str();
    here.get("/projects", new).await.expect(200);
    there.get("/projects", new).await.expect(200);
}

#[tokio::test]
async fn an_operator_changing_credentials_by_hand_reaches_a_running_process() {
    let db = TestDatabase::create().await.expect("test database");
    let server = Backforge::start(
        "serve",
        &db.url,
        &[("BACKFORGE_SV_CACHE_MAX_AGE_MS", "60000")],
    )
    .await;
    let (user, _) = server.register("Ben").await;
    let token = Some(user.access_token.as_str());
    for _ in 0..3 {
        server.get("/projects", token).await.expect(200);
    }
    let pool = event_store::setup::pool(&db.url, 1).expect("pool");
    pool.get()
        .await
        .expect("client")
        .execute(
            "UPDATE credentials SET active = false WHERE user_id = $1::text::uuid",
            &[&user.id],
        )
        .await
        .expect("deactivate");
    eventually(
        "the running process rejects a deactivated user's token",
        Duration::from_secs(5),
        || async { (server.get("/projects", token).await.status == 401).then_some(()) },
    )
    .await;
}
