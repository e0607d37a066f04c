//! The auth routes end to end: registration, login, refresh rotation, logout, profile, password
//! change, the JWT negative suite, and that no secret ever reaches an event.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use tests::{TEST_JWT_SECRET, TestApp};

#[tokio::test]
async fn registering_returns_the_user_a_token_pair_and_write_headers() {
    let app = TestApp::spawn().await;
    let answer = app
        .post(
            "/auth/register",
            None,
            json!({"email": "  Ada@Example.COM ", "password": "correct horse battery", "name": "Ada"}),
        )
        .await
        .expect(201);
    let body = &answer.body;
    assert_eq!(
        body["user"]["email"], "ada@example.com",
        "e-mail is trimmed and lower-cased"
    );
    assert_eq!(body["user"]["name"], "Ada");
    assert_eq!(body["user"]["role"], "member");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["version"], 1);
    assert!(
        body["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert!(body["refresh_token"].as_str().is_some_and(|t| t.len() > 40));
    assert_eq!(answer.header("etag").as_deref(), Some("\"1\""));
    assert_eq!(
        answer.header("backforge-position").as_deref(),
        body["position"].as_str()
    );
    assert!(answer.header("location").is_some());
    assert_eq!(
        app.event_count().await,
        2,
        "the e-mail reservation and UserRegistered"
    );
}

#[tokio::test]
async fn an_e_mail_registers_once_whatever_its_case() {
    let app = TestApp::spawn().await;
    let body =
        json!({"email": "grace@example.com", "password": "correct horse battery", "name": "Grace"});
    app.post("/auth/register", None, body).await.expect(201);
    let again = app
        .post(
            "/auth/register",
            None,
            json!({"email": "GRACE@example.com", "password": "another long password", "name": "G"}),
        )
        .await
        .expect(409);
    assert_eq!(
        again.body["type"],
        "https://backforge.dev/problems/email-taken"
    );
    assert_eq!(
        app.event_count().await,
        2,
        "the refused registration wrote nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_registrations_of_one_e_mail_give_exactly_one_201() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.post(
                "/auth/register",
                None,
                json!({"email": "race@example.com", "password": "correct horse battery", "name": format!("R{i}")}),
            )
            .await
            .status
            .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    statuses.sort();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn invalid_registrations_get_one_error_per_problem_and_write_nothing() {
    let app = TestApp::spawn().await;
    let answer = app
        .post(
            "/auth/register",
            None,
            json!({"email": "not-an-email", "password": "short", "name": "  "}),
        )
        .await
        .expect(422);
    let fields: Vec<&str> = answer.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap_or(""))
        .collect();
    for field in ["/email", "/password", "/name"] {
        assert!(fields.contains(&field), "{field} reported in {fields:?}");
    }
    let long = "x".repeat(129);
    app.post(
        "/auth/register",
        None,
        json!({"email": "a@b.co", "password": long, "name": "A"}),
    )
    .await
    .expect(422);
    let long_email = format!("{}@example.com", "a".repeat(250));
    app.post(
        "/auth/register",
        None,
        json!({"email": long_email, "password": "correct horse battery", "name": "A"}),
    )
    .await
    .expect(422);
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn mass_assignment_of_role_id_or_owner_is_refused() {
    let app = TestApp::spawn().await;
    for (extra, pointer) in [("role", "/role"), ("id", "/id"), ("owner_id", "/owner_id")] {
        let mut body =
            json!({"email": "m@example.com", "password": "correct horse battery", "name": "M"});
        body[extra] = json!("admin");
        let answer = app.post("/auth/register", None, body).await.expect(422);
        assert_eq!(answer.body["errors"][0]["field"], pointer);
    }
    let user = app.register("Mallory").await;
    let answer = app
        .put(
            "/auth/profile",
            Some(&user.access_token),
            json!({"name": "M", "role": "admin"}),
        )
        .await
        .expect(422);
    assert_eq!(answer.body["errors"][0]["field"], "/role");
    assert_eq!(app.event_count().await, 2);
}

#[tokio::test]
async fn malformed_bodies_get_400_415_and_413() {
    let app = TestApp::spawn().await;
    app.send_raw(
        Method::POST,
        "/auth/register",
        None,
        Some("application/json"),
        b"{\"email\":".to_vec(),
    )
    .await
    .expect(400);
    app.send_raw(
        Method::POST,
        "/auth/register",
        None,
        Some("text/plain"),
        b"{}".to_vec(),
    )
    .await
    .expect(415);
    app.send_raw(Method::POST, "/auth/register", None, None, b"{}".to_vec())
        .await
        .expect(415);
    // A small limit: with the 1 MiB default the server answers 413 before reading the body and
    // closes the connection while the client is still sending, which the client may report as a
    // broken pipe instead of the answer (the default itself is covered by the settings tests).
    let small = TestApp::spawn_with(&[("BACKFORGE_BODY_LIMIT_BYTES", "2048")]).await;
    let huge = format!("{{\"email\":\"{}\"}}", "a".repeat(4096));
    small
        .send_raw(
            Method::POST,
            "/auth/register",
            None,
            Some("application/json"),
            huge.into_bytes(),
        )
        .await
        .expect(413);
    app.post(
        "/auth/register",
        None,
        json!({"email": 5, "password": "x", "name": "y"}),
    )
    .await
    .expect(422);
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn login_succeeds_with_the_right_password_and_says_nothing_about_which_part_was_wrong() {
    let app = TestApp::spawn().await;
    let user = app.register("Linus").await;
    let ok = app
        .post(
            "/auth/login",
            None,
            json!({"email": user.email.to_uppercase(), "password": user.password}),
        )
        .await
        .expect(200);
    assert_eq!(ok.body["user"]["id"], user.id.as_str());
    assert!(ok.body["access_token"].is_string() && ok.body["refresh_token"].is_string());
    let wrong = app
        .post(
            "/auth/login",
            None,
            json!({"email": user.email, "password": "wrong password!"}),
        )
        .await
        .expect(401);
    let unknown = app
        .post(
            "/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": "wrong password!"}),
        )
        .await
        .expect(401);
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    assert!(
        wrong
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );
}

#[tokio::test]
async fn login_is_rate_limited_per_account_with_retry_after() {
    let app = TestApp::spawn_with(&[("BACKFORGE_LOGIN_PER_ACCOUNT_PER_MINUTE", "3")]).await;
    let user = app.register("Limited").await;
    for _ in 0..3 {
        app.post(
            "/auth/login",
            None,
            json!({"email": user.email, "password": "wrong password!"}),
        )
        .await
        .expect(401);
    }
    let limited = app
        .post(
            "/auth/login",
            None,
            json!({"email": user.email, "password": user.password}),
        )
        .await
        .expect(429);
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));
}

#[tokio::test]
async fn login_is_rate_limited_per_ip() {
    let app = TestApp::spawn_with(&[("BACKFORGE_LOGIN_PER_IP_PER_MINUTE", "4")]).await;
    for i in 0..4 {
        app.post(
            "/auth/login",
            None,
            json!({"email": format!("u{i}@example.com"), "password": "whatever long"}),
        )
        .await
        .expect(401);
    }
    app.post(
        "/auth/login",
        None,
        json!({"email": "u9@example.com", "password": "whatever long"}),
    )
    .await
    .expect(429);
}

#[tokio::test]
async fn a_refresh_token_rotates_and_its_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let user = app.register("Rita").await;
    let first = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await
        .expect(200);
    let second_token = first.body["refresh_token"]
        .as_str()
        .expect("new refresh")
        .to_owned();
    assert_ne!(second_token, user.refresh_token);
    // The spent token comes back: someone copied it. The whole family dies.
    app.post(
        "/auth/refresh",
        None,
        json!({"refresh_token": user.refresh_token}),
    )
    .await
    .expect(401);
    app.post(
        "/auth/refresh",
        None,
        json!({"refresh_token": second_token}),
    )
    .await
    .expect(401);
    app.post(
        "/auth/refresh",
        None,
        json!({"refresh_token": "bfr_made_up"}),
    )
    .await
    .expect(401);
}

#[tokio::test]
async fn logout_revokes_the_family() {
    let app = TestApp::spawn().await;
    let user = app.register("Lou").await;
    let rotated = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await
        .expect(200);
    let current = rotated.body["refresh_token"]
        .as_str()
        .expect("token")
        .to_owned();
    app.post("/auth/logout", None, json!({"refresh_token": current}))
        .await
        .expect(204);
    app.post("/auth/refresh", None, json!({"refresh_token": current}))
        .await
        .expect(401);
}

#[tokio::test]
async fn the_profile_update_appends_an_event_and_an_unchanged_name_appends_none() {
    let app = TestApp::spawn().await;
    let user = app.register("Pat").await;
    let answer = app
        .put(
            "/auth/profile",
            Some(&user.access_token),
            json!({"name": "Patricia"}),
        )
        .await
        .expect(200);
    assert_eq!(answer.body["name"], "Patricia");
    assert_eq!(answer.body["version"], 2);
    assert_eq!(answer.header("etag").as_deref(), Some("\"2\""));
    let same = app
        .put(
            "/auth/profile",
            Some(&user.access_token),
            json!({"name": "Patricia"}),
        )
        .await
        .expect(200);
    assert_eq!(same.body["version"], 2, "nothing changed, no event");
    app.put(
        "/auth/profile",
        Some(&user.access_token),
        json!({"name": ""}),
    )
    .await
    .expect(422);
    app.put("/auth/profile", None, json!({"name": "X"}))
        .await
        .expect(401);
    assert_eq!(app.event_count().await, 3);
}

#[tokio::test]
async fn changing_the_password_kills_every_older_token_and_refresh_family() {
    let app = TestApp::spawn().await;
    let user = app.register("Cass").await;
    let other_session = app
        .post(
            "/auth/login",
            None,
            json!({"email": user.email, "password": user.password}),
        )
        .await
        .expect(200);
    let other_refresh = other_session.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let wrong = app
        .post(
            "/auth/change-password",
            Some(&user.access_token),
            json!({"current_password": "not my password", "new_password": "brand new password"}),
        )
        .await
        .expect(422);
    assert_eq!(wrong.body["errors"][0]["field"], "/current_password");
    let changed = app
        .post(
            "/auth/change-password",
            Some(&user.access_token),
            json!({"current_password": user.password, "new_password": "brand new password"}),
        )
        .await
        .expect(200);
    let new_access = changed.body["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    // Issued in the same second as the new token: `iat` cannot tell them apart, `sv` can.
    app.put(
        "/auth/profile",
        Some(&user.access_token),
        json!({"name": "Old"}),
    )
    .await
    .expect(401);
    app.put("/auth/profile", Some(&new_access), json!({"name": "New"}))
        .await
        .expect(200);
    app.post(
        "/auth/refresh",
        None,
        json!({"refresh_token": user.refresh_token}),
    )
    .await
    .expect(401);
    app.post(
        "/auth/refresh",
        None,
        json!({"refresh_token": other_refresh}),
    )
    .await
    .expect(401);
    let new_refresh = changed.body["refresh_token"].as_str().expect("refresh");
    app.post("/auth/refresh", None, json!({"refresh_token": new_refresh}))
        .await
        .expect(200);
    app.post(
        "/auth/login",
        None,
        json!({"email": user.email, "password": user.password}),
    )
    .await
    .expect(401);
    app.post(
        "/auth/login",
        None,
        json!({"email": user.email, "password": "brand new password"}),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn idempotency_keys_are_refused_on_auth_routes() {
    let app = TestApp::spawn().await;
    let answer = app
        .send(
            Method::POST,
            "/auth/register",
            None,
            Some(
                json!({"email": "k@example.com", "password": "correct horse battery", "name": "K"}),
            ),
            &[("Idempotency-Key", "abc")],
        )
        .await
        .expect(422);
    assert!(
        answer.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Idempotency-Key"))
    );
    assert_eq!(app.event_count().await, 0);
}

fn forge(claims: Value, secret: &str, alg: Algorithm) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("forged")
}

fn claims_for(user_id: &str) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({"sub": user_id, "iat": now, "exp": now + 600, "iss": "backforge", "aud": "backforge-api",
           "jti": uuid::Uuid::new_v4(), "sv": 1})
}

#[tokio::test]
async fn forged_tampered_and_expired_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.register("Jay").await;
    let good = forge(claims_for(&user.id), TEST_JWT_SECRET, Algorithm::HS256);
    app.put("/auth/profile", Some(&good), json!({"name": "ok"}))
        .await
        .expect(200);

    let mut attacks: Vec<(&str, String)> = Vec::new();
    // alg "none": header and claims without a signature.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims_for(&user.id).to_string());
    attacks.push(("alg none", format!("{none_header}.{body}.")));
    // A valid token with one claim changed after signing.
    let mut parts: Vec<String> = user.access_token.split('.').map(str::to_owned).collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).expect("b64"))
            .expect("claims json");
    claims["sv"] = json!(99);
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    attacks.push(("tampered", parts.join(".")));
    attacks.push((
        "wrong secret",
        forge(
            claims_for(&user.id),
            "another-secret-of-sufficient-length!!",
            Algorithm::HS256,
        ),
    ));
    attacks.push((
        "HS512",
        forge(claims_for(&user.id), TEST_JWT_SECRET, Algorithm::HS512),
    ));
    let mut c = claims_for(&user.id);
    c["aud"] = json!("someone-else");
    attacks.push(("wrong aud", forge(c, TEST_JWT_SECRET, Algorithm::HS256)));
    let mut c = claims_for(&user.id);
    c["iss"] = json!("evil");
    attacks.push(("wrong iss", forge(c, TEST_JWT_SECRET, Algorithm::HS256)));
    let mut c = claims_for(&user.id);
    c["exp"] = json!(time::OffsetDateTime::now_utc().unix_timestamp() - 120);
    attacks.push(("expired", forge(c, TEST_JWT_SECRET, Algorithm::HS256)));
    let mut c = claims_for(&user.id);
    c["exp"] = json!("9999999999");
    attacks.push(("string exp", forge(c, TEST_JWT_SECRET, Algorithm::HS256)));
    let mut c = claims_for(&user.id);
    c.as_object_mut().expect("object").remove("jti");
    attacks.push(("no jti", forge(c, TEST_JWT_SECRET, Algorithm::HS256)));
    let mut c = claims_for(&user.id);
    c["sub"] = json!(uuid::Uuid::new_v4());
    attacks.push(("unknown user", forge(c, TEST_JWT_SECRET, Algorithm::HS256)));
    attacks.push(("garbage", "not.a.token".to_owned()));
    for (name, token) in attacks {
        let answer = app
            .put("/auth/profile", Some(&token), json!({"name": "pwned"}))
            .await;
        assert_eq!(
            answer.status.as_u16(),
            401,
            "{name} must be refused: {}",
            answer.body
        );
        assert!(
            answer.header("www-authenticate").is_some(),
            "{name}: WWW-Authenticate"
        );
    }
    let basic = app
        .send(
            Method::PUT,
            "/auth/profile",
            None,
            Some(json!({"name": "x"})),
            &[("Authorization", "Basic abc")],
        )
        .await;
    assert_eq!(basic.status.as_u16(), 401);
}

#[tokio::test]
async fn no_secret_ever_reaches_an_event() {
    let app = TestApp::spawn().await;
    let user = app.register("Secretive").await;
    let login = app
        .post(
            "/auth/login",
            None,
            json!({"email": user.email, "password": user.password}),
        )
        .await
        .expect(200);
    let changed = app
        .post(
            "/auth/change-password",
            Some(&user.access_token),
            json!({"current_password": user.password, "new_password": "another secret phrase"}),
        )
        .await
        .expect(200);
    let refreshed = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": changed.body["refresh_token"]}),
        )
        .await
        .expect(200);
    let secrets = [
        user.password.clone(),
        "another secret phrase".to_owned(),
        user.access_token.clone(),
        user.refresh_token.clone(),
        login.body["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        changed.body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        refreshed.body["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        "$argon2".to_owned(),
    ];
    let events = app.all_events().await;
    assert!(events.iter().any(|e| e.1 == "PasswordChanged"));
    for (stream, event_type, data, metadata) in &events {
        let text = format!("{stream} {event_type} {data} {metadata}");
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{event_type} holds a secret"
            );
        }
        assert!(
            !text.to_lowercase().contains("hash\""),
            "{event_type} names a hash"
        );
    }
    let client = app.pool.get().await.expect("client");
    let hash: String = client
        .query_one("SELECT password_hash FROM credentials", &[])
        .await
        .expect("credential")
        .get(0);
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "argon2id with OWASP parameters"
    );
}
