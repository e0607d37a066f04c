//! Who may write to a project, over every id-bearing write route: its owner and admins may; a
//! viewer gets 403; anyone else gets the same 404 as for a project that does not exist.

use serde_json::{Value, json};
use tests::{Answer, TestApp, TestUser};

use crate::projects::{Shop, add_viewer, assert_write_headers, id_bearing_writes};

/// Makes `user` a global admin the way `backforge admin grant` ends up: the credentials row.
/// The role is read on every request, so the user's current token carries it at once.
async fn make_admin(app: &TestApp, user: &TestUser) {
    let client = app.pool.get().await.expect("client");
    let id: uuid::Uuid = user.id.parse().expect("uuid");
    let changed = client
        .execute(
            "UPDATE credentials SET role = 'admin' WHERE user_id = $1",
            &[&id],
        )
        .await
        .expect("update");
    assert_eq!(changed, 1);
}

/// The problem document without its `detail`, which may name the id that was asked for.
fn problem_shape(answer: &Answer) -> (u16, Value, Value) {
    (
        answer.status.as_u16(),
        answer.body["type"].clone(),
        answer.body["title"].clone(),
    )
}

#[tokio::test]
async fn a_stranger_gets_the_404_of_an_unknown_project_on_every_write_route_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let stranger = app.register("Sam").await;
    let third = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(stranger.access_token.as_str());
    let before = app.event_count().await;

    let unknown = uuid::Uuid::new_v4().to_string();
    let foreign = id_bearing_writes(&shop.id, &shop.login, &third.id);
    let missing = id_bearing_writes(&unknown, &shop.login, &third.id);
    for (write, twin) in foreign.iter().zip(&missing) {
        let answer = write.send(&app, token, &[]).await;
        assert_eq!(answer.status, 404, "{}: {}", write.name(), answer.body);
        let control = twin.send(&app, token, &[]).await;
        assert_eq!(
            problem_shape(&answer),
            problem_shape(&control),
            "{}: someone else's project looks like no project",
            write.name()
        );
        assert_eq!(
            answer.body["detail"],
            control.body["detail"],
            "{}: the detail tells nothing either",
            write.name()
        );
        assert!(answer.header("etag").is_none());
    }
    // The stranger cannot make themselves a member either.
    app.put(
        &format!("{}/members/{}", shop.path(), stranger.id),
        token,
        json!({"role": "viewer"}),
    )
    .await
    .expect(404);
    assert_eq!(
        app.event_count().await,
        before,
        "the stranger wrote nothing"
    );
}

#[tokio::test]
async fn a_viewer_who_writes_gets_403_on_every_write_route_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let viewer = app.register("Victor").await;
    let third = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    add_viewer(&app, &owner, &shop.id, &viewer).await;
    let token = Some(viewer.access_token.as_str());
    let before = app.event_count().await;

    for write in id_bearing_writes(&shop.id, &shop.login, &third.id) {
        let answer = write.send(&app, token, &[]).await;
        assert_eq!(answer.status, 403, "{}: {}", write.name(), answer.body);
        assert_eq!(
            answer.body["type"],
            "https://backforge.dev/problems/forbidden"
        );
    }
    // Nor may a viewer promote, re-add or remove themselves.
    let own = format!("{}/members/{}", shop.path(), viewer.id);
    app.put(&own, token, json!({"role": "viewer"}))
        .await
        .expect(403);
    app.delete(&own, token).await.expect(403);
    // A referenced feature: still 403, not the 409 the owner would get.
    app.delete(&shop.feature_path(&shop.customers), token)
        .await
        .expect(403);
    assert_eq!(app.event_count().await, before, "the viewer wrote nothing");
}

#[tokio::test]
async fn the_owner_succeeds_on_every_write_route() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let third = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(owner.access_token.as_str());
    let before = app.event_count().await;

    let writes = id_bearing_writes(&shop.id, &shop.login, &third.id);
    for (i, write) in writes.iter().enumerate() {
        let answer = write.send(&app, token, &[]).await;
        assert!(
            answer.status.is_success(),
            "{}: {} {}",
            write.name(),
            answer.status,
            answer.body
        );
        assert_write_headers(&answer, 5 + i as u64);
    }
    assert_eq!(app.event_count().await, before + writes.len() as i64);
}

#[tokio::test]
async fn an_admin_may_write_to_someone_elses_project_on_every_route() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let admin = app.register("Ada").await;
    let third = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    let token = Some(admin.access_token.as_str());
    let writes = id_bearing_writes(&shop.id, &shop.login, &third.id);

    // Before the grant, the admin-to-be is a stranger.
    let refused = writes[0].send(&app, token, &[]).await.expect(404);
    assert!(refused.header("etag").is_none());
    make_admin(&app, &admin).await;

    let before = app.event_count().await;
    for (i, write) in writes.iter().enumerate() {
        let answer = write.send(&app, token, &[]).await;
        assert!(
            answer.status.is_success(),
            "{}: {} {}",
            write.name(),
            answer.status,
            answer.body
        );
        assert_write_headers(&answer, 5 + i as u64);
    }
    let events = app.all_events().await;
    assert_eq!(events.len() as i64, before + writes.len() as i64);
    for (stream, event_type, _, metadata) in &events[before as usize..] {
        assert_eq!(stream, &format!("project-{}", shop.id));
        assert_eq!(
            metadata["actor"],
            json!(admin.id),
            "{event_type} records the admin as its actor"
        );
    }
    // The owner is still the owner: an admin cannot make them a member.
    let second = Shop::create(&app, &owner).await;
    let answer = app
        .put(
            &format!("{}/members/{}", second.path(), owner.id),
            token,
            json!({"role": "viewer"}),
        )
        .await
        .expect(422);
    assert_eq!(answer.body["errors"][0]["field"], "/user_id");
}

#[tokio::test]
async fn a_removed_viewer_gets_404_like_any_stranger() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let viewer = app.register("Victor").await;
    let third = app.register("Mia").await;
    let shop = Shop::create(&app, &owner).await;
    add_viewer(&app, &owner, &shop.id, &viewer).await;
    app.delete(
        &format!("{}/members/{}", shop.path(), viewer.id),
        Some(&owner.access_token),
    )
    .await
    .expect(204);
    let before = app.event_count().await;
    for write in id_bearing_writes(&shop.id, &shop.login, &third.id) {
        let answer = write.send(&app, Some(&viewer.access_token), &[]).await;
        assert_eq!(answer.status, 404, "{}: {}", write.name(), answer.body);
    }
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn after_archiving_every_write_is_404_for_the_owner_a_viewer_and_an_admin() {
    let app = TestApp::spawn().await;
    let owner = app.register("Olive").await;
    let viewer = app.register("Victor").await;
    let admin = app.register("Ada").await;
    let third = app.register("Mia").await;
    make_admin(&app, &admin).await;
    let shop = Shop::create(&app, &owner).await;
    add_viewer(&app, &owner, &shop.id, &viewer).await;
    app.delete(&shop.path(), Some(&owner.access_token))
        .await
        .expect(204);
    let before = app.event_count().await;

    for user in [&owner, &viewer, &admin] {
        for write in id_bearing_writes(&shop.id, &shop.login, &third.id) {
            for if_match in [None, Some("*")] {
                let headers: Vec<(&str, &str)> =
                    if_match.map(|t| ("If-Match", t)).into_iter().collect();
                let answer = write.send(&app, Some(&user.access_token), &headers).await;
                assert_eq!(
                    answer.status,
                    404,
                    "{} by {} (If-Match {if_match:?}): {}",
                    write.name(),
                    user.email,
                    answer.body
                );
            }
        }
    }
    assert_eq!(
        app.event_count().await,
        before,
        "an archived project takes no writes"
    );
}
