//! Sign-in under attack (issue 10, items 4 and 5): a login in flight cannot outlive a password
//! change, registrations cannot starve sign-in, strangers cannot lock an owner out, `/metrics` is
//! closed in production, and the shipped configuration fails closed on secrets.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tests::process::{Backforge, free_port};
use tests::{TestApp, TestDatabase};

/// A client whose requests come from another loopback address, i.e. another client IP.
fn client_from(last_octet: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet)))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn post_raw(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    body: Value,
) -> (StatusCode, Option<String>, Value) {
    let response = client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

/// H3: logins with the old password wait in a busy argon2 queue (one slot) while the password
/// changes. Every one that got through must be dead afterwards: its refresh token refused and its
/// access token rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_login_in_flight_during_a_password_change_outlives_it() {
    let app = TestApp::spawn_with(&[("BACKFORGE_HASH_LOGIN_SLOTS", "1")]).await;
    let user = app.register("Racer").await;
    let old = json!({"email": user.email, "password": user.password});
    let mut logins: FuturesUnordered<_> = (0..24)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/auth/login");
            let body = old.clone();
            async move {
                let response = client.post(url).json(&body).send().await.expect("login");
                let status = response.status();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        })
        .collect();
    // Once the first login is through, the others have read the old credentials and wait for
    // the hashing slot: change the password now, while they are in flight.
    let mut answers = vec![logins.next().await.expect("a first login")];
    let change = async {
        app.post(
            "/auth/change-password",
            Some(&user.access_token),
            json!({"current_password": user.password, "new_password": "a brand new password"}),
        )
        .await
        .expect(200)
    };
    let (changed, rest) = tokio::join!(change, logins.collect::<Vec<_>>());
    answers.extend(rest);
    let granted: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    for (status, body) in &answers {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::UNAUTHORIZED,
            "a login with the old password answered {status}: {body}"
        );
    }
    for body in &granted {
        let refresh = body["refresh_token"].as_str().expect("refresh token");
        app.post("/auth/refresh", None, json!({"refresh_token": refresh}))
            .await
            .expect(401);
        let access = body["access_token"].as_str().expect("access token");
        app.put("/auth/profile", Some(access), json!({"name": "Racer"}))
            .await
            .expect(401);
    }
    // The change itself works: its new pair is live and the new password signs in.
    let new_refresh = changed.body["refresh_token"].as_str().expect("refresh");
    app.post("/auth/refresh", None, json!({"refresh_token": new_refresh}))
        .await
        .expect(200);
    app.post(
        "/auth/login",
        None,
        json!({"email": user.email, "password": "a brand new password"}),
    )
    .await
    .expect(200);
    eprintln!(
        "{} of {} old-password logins got tokens; none survived the change",
        granted.len(),
        answers.len()
    );
}

/// M1: a flood of registrations fills only its own hashing queue (one slot, 64 waiting, the rest
/// 503 with Retry-After); a login meanwhile still answers within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_during_a_registration_flood_answers_within_a_second() {
    let app = TestApp::spawn_with(&[("BACKFORGE_HASH_OTHER_SLOTS", "1")]).await;
    let user = app.register("Steady").await;
    let mut flood: FuturesUnordered<_> = (0..150)
        .map(|i| {
            let client = app.client.clone();
            let url = app.url("/auth/register");
            let body = json!({
                "email": format!("flood-{i}-{}@example.com", uuid::Uuid::new_v4().simple()),
                "password": "flood password 123",
                "name": "Flood",
            });
            async move {
                let response = client.post(url).json(&body).send().await.expect("register");
                let retry_after = response.headers().get("retry-after").cloned();
                (response.status(), retry_after)
            }
        })
        .collect();
    // The flood is under way once its first answer is back.
    let mut answers = vec![flood.next().await.expect("a first registration answer")];
    let started = Instant::now();
    let login = app
        .post(
            "/auth/login",
            None,
            json!({"email": user.email, "password": user.password}),
        )
        .await;
    let took = started.elapsed();
    login.expect(200);
    eprintln!("a login during a registration flood took {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "a login during the flood took {took:?}"
    );
    answers.extend(flood.collect::<Vec<_>>().await);
    let busy: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        answers
            .iter()
            .all(|(s, _)| *s == StatusCode::CREATED || *s == StatusCode::SERVICE_UNAVAILABLE),
        "registrations answer 201 or 503: {:?}",
        answers.iter().map(|(s, _)| s.as_u16()).collect::<Vec<_>>()
    );
    assert!(
        !busy.is_empty(),
        "150 registrations at once overflow a queue of 1 + 64"
    );
    assert!(busy.iter().all(|(_, retry)| retry.is_some()));
}

/// M1: registration is rate-limited per client IP, with Retry-After; other addresses are not.
#[tokio::test]
async fn registration_is_rate_limited_per_client_ip() {
    let app = TestApp::spawn_with(&[("BACKFORGE_REGISTER_PER_IP_PER_MINUTE", "3")]).await;
    for i in 0..3 {
        app.register(&format!("Early{i}")).await;
    }
    let limited = app
        .post(
            "/auth/register",
            None,
            json!({"email": "late@example.com", "password": "correct horse battery", "name": "Late"}),
        )
        .await
        .expect(429);
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let (status, _, body) = post_raw(
        &client_from(3),
        &app,
        "/auth/register",
        json!({"email": "elsewhere@example.com", "password": "correct horse battery", "name": "E"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// L2: ten wrong passwords a minute from a stranger's address lock only that address out of the
/// account; the owner, elsewhere, still signs in.
#[tokio::test]
async fn strangers_cannot_lock_the_owner_out() {
    let app = TestApp::spawn_with(&[("BACKFORGE_LOGIN_PER_ACCOUNT_PER_MINUTE", "10")]).await;
    let owner = app.register("Owner").await;
    let stranger = client_from(2);
    let guess = json!({"email": owner.email, "password": "not the password"});
    for _ in 0..10 {
        let (status, _, body) = post_raw(&stranger, &app, "/auth/login", guess.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (status, retry_after, _) = post_raw(&stranger, &app, "/auth/login", guess).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.is_some());
    app.post(
        "/auth/login",
        None,
        json!({"email": owner.email, "password": owner.password}),
    )
    .await
    .expect(200);
}

/// A secret that passes the production checks (48 random bytes, base64).
const PRODUCTION_SECRET: &str = "Jd8s0QpX2vLr7nYcKz4tWm1bHf6gTe9uAo3iPy5xVl0kNqRwSjZhCaGdMbEeFtUr";
const METRICS_TOKEN: &str = "mt-7Hq2ZxV9pLk4Rw8Nc1Bf6Ty3Dg5Js0Ua";

async fn metrics(address: &str, token: Option<&str>) -> StatusCode {
    let mut request = reqwest::Client::new().get(format!("{address}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("GET /metrics").status()
}

/// L6: in production `/metrics` on the main port needs the bearer token; without a token it is
/// not served there at all; `BACKFORGE_METRICS_ADDR` moves it to a listener of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_closed_in_production() {
    let db = TestDatabase::create().await.expect("test database");
    let production = [
        ("BACKFORGE_ENV", "Production"),
        ("JWT_SECRET", PRODUCTION_SECRET),
    ];
    let with_token = [
        &production[..],
        &[("BACKFORGE_METRICS_TOKEN", METRICS_TOKEN)],
    ]
    .concat();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let moved = [
        &production[..],
        &[("BACKFORGE_METRICS_ADDR", metrics_addr.as_str())],
    ]
    .concat();
    let (guarded, hidden, split) = tokio::join!(
        Backforge::start("command-api", &db.url, &with_token),
        Backforge::start("command-api", &db.url, &production),
        Backforge::start("command-api", &db.url, &moved),
    );

    assert_eq!(
        metrics(&guarded.address, None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        metrics(&guarded.address, Some("mt-wrong-token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        metrics(
            &guarded.address,
            Some(&METRICS_TOKEN[..METRICS_TOKEN.len() - 1])
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        metrics(&guarded.address, Some(METRICS_TOKEN)).await,
        StatusCode::OK
    );

    assert_eq!(metrics(&hidden.address, None).await, StatusCode::NOT_FOUND);
    assert_eq!(
        metrics(&hidden.address, Some(METRICS_TOKEN)).await,
        StatusCode::NOT_FOUND
    );

    assert_eq!(metrics(&split.address, None).await, StatusCode::NOT_FOUND);
    let own = format!("http://{metrics_addr}");
    assert_eq!(metrics(&own, None).await, StatusCode::OK);
    let body = reqwest::get(format!("{own}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(body.contains("backforge_http_requests_total"), "{body}");
    // The API itself is unchanged on the main port.
    split
        .send(Method::GET, "//health", None, None, &[])
        .await
        .expect(200);
}

/// M2: the shipped files fail closed: compose has no default JWT_SECRET and publishes the port on
/// loopback only, and every secret the repository shows is refused in production.
#[test]
fn the_shipped_configuration_fails_closed_on_secrets() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let read = |name: &str| std::fs::read_to_string(root.join(name)).expect(name);
    let compose = read("docker-compose.yml");
    let jwt_lines: Vec<&str> = compose
        .lines()
        .filter(|l| l.trim_start().starts_with("JWT_SECRET:"))
        .collect();
    assert!(!jwt_lines.is_empty(), "compose passes JWT_SECRET through");
    for line in &jwt_lines {
        assert!(
            line.contains("${JWT_SECRET:?"),
            "compose must refuse to start without JWT_SECRET: {line}"
        );
    }
    let mut published_ports = 0;
    let mut in_ports = false;
    for line in compose.lines() {
        let trimmed = line.trim_start().trim_start_matches('#').trim();
        if trimmed.starts_with("ports:") {
            in_ports = true;
            // An inline list: `ports: ["8080:8080"]`.
            if trimmed.contains('[') {
                published_ports += 1;
                assert!(trimmed.contains("127.0.0.1"), "bound to loopback: {line}");
                in_ports = false;
            }
            continue;
        }
        if in_ports && trimmed.starts_with("- ") {
            published_ports += 1;
            assert!(trimmed.contains("127.0.0.1"), "bound to loopback: {line}");
        } else {
            in_ports = false;
        }
        if trimmed.contains("ports: [") {
            published_ports += 1;
            assert!(trimmed.contains("127.0.0.1"), "bound to loopback: {line}");
        }
    }
    assert!(published_ports > 0, "compose publishes Backforge's port");

    // Every JWT_SECRET value written in the repository's configuration and docs.
    let mut shown: Vec<String> = Vec::new();
    for name in ["docker-compose.yml", ".env.example", "README.md"] {
        for line in read(name).lines() {
            let Some((_, value)) = line.split_once("JWT_SECRET") else {
                continue;
            };
            let value = value
                .trim_start_matches(['=', ':', ' '])
                .trim_matches(|c: char| c == '"' || c == '\'' || c == '`' || c.is_whitespace());
            for candidate in value.split(['$', '{', '}', ' ', '`', '|']) {
                let candidate = candidate.trim_start_matches([':', '-', '?']);
                if candidate.len() >= 8 {
                    shown.push(candidate.to_owned());
                }
            }
        }
    }
    for value in &shown {
        let settings = runtime::Settings::from_lookup(|key| match key {
            "BACKFORGE_ENV" => Some("production".into()),
            "JWT_SECRET" => Some(value.clone()),
            _ => None,
        });
        assert!(
            settings.is_err(),
            "production accepted the published value `{value}`"
        );
    }
}
