//! The generated app's contract over HTTP, on a running app: owner scoping between accounts (and an
//! admin made with the app's CLI), secrets that fail closed at start-up, defaults and stored
//! answers, the platform's list syntax; and the generated suite catching planted bugs.

use std::fs;
use std::path::Path;
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use super::{pytest_with, python, run, served, unpack};

const PASSWORD: &str = "a long enough password";

/// One request to the served app: (status, body text).
async fn call(
    client: &Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut request = client.request(method.clone(), format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Registers `email` and logs in; the access token.
async fn account(client: &Client, base: &str, email: &str) -> String {
    let credentials = json!({"email": email, "password": PASSWORD});
    let (status, text) = call(
        client,
        base,
        Method::POST,
        "/api/auth/register",
        None,
        Some(credentials.clone()),
    )
    .await;
    assert_eq!(status, 201, "register {email}: {text}");
    let (status, text) = call(
        client,
        base,
        Method::POST,
        "/api/auth/login",
        None,
        Some(credentials),
    )
    .await;
    assert_eq!(status, 200, "login {email}: {text}");
    json_of(&text)["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

#[tokio::test]
async fn owner_scoping_holds_between_accounts_on_the_running_app() {
    let (dir, server, http) = served("owners").await;
    let base = server.base.clone();
    let ada = account(&http, &base, "ada@example.com").await;
    let bob = account(&http, &base, "bob@example.com").await;
    let go = |method: Method, path: String, token: Option<String>, body: Option<Value>| {
        let (http, base) = (http.clone(), base.clone());
        async move { call(&http, &base, method, &path, token.as_deref(), body).await }
    };

    // customer is owner_scoped: Bob cannot tell Ada's row exists.
    let (status, text) = go(
        Method::POST,
        "/api/customers".into(),
        Some(ada.clone()),
        Some(json!({"name": "Ada's client", "email": "client@example.com"})),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let customer = json_of(&text);
    let customer_path = format!("/api/customers/{}", customer["id"].as_str().expect("id"));
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "taken over"}))),
        (
            Method::PUT,
            Some(json!({"name": "x", "email": "x@example.com"})),
        ),
        (Method::DELETE, None),
    ] {
        let (status, text) = go(
            method.clone(),
            customer_path.clone(),
            Some(bob.clone()),
            body,
        )
        .await;
        assert_eq!(status, 404, "Bob's {method} of Ada's customer: {text}");
        assert!(!text.contains("client@example.com"), "{text}");
    }
    let (_, text) = go(
        Method::GET,
        "/api/customers".into(),
        Some(bob.clone()),
        None,
    )
    .await;
    assert_eq!(
        json_of(&text)["total"],
        0,
        "Bob lists Ada's customer: {text}"
    );
    // The unique e-mail is global: Bob's duplicate is 409, and learns nothing of Ada's row.
    let (status, text) = go(
        Method::POST,
        "/api/customers".into(),
        Some(bob.clone()),
        Some(json!({"name": "Bob's client", "email": "client@example.com"})),
    )
    .await;
    assert_eq!(status, 409, "{text}");
    assert!(
        !text.contains(customer["id"].as_str().expect("id")) && !text.contains("Ada"),
        "{text}"
    );

    // product is shared_read: Bob reads Ada's row but may not change it.
    let (status, text) = go(
        Method::POST,
        "/api/products".into(),
        Some(ada.clone()),
        Some(json!({"sku": "ABC-1234", "title": "Widget", "price": "9.99"})),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let product = json_of(&text);
    let product_path = format!("/api/products/{}", product["id"].as_str().expect("id"));
    let (status, text) = go(Method::GET, product_path.clone(), Some(bob.clone()), None).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = go(
        Method::PATCH,
        product_path.clone(),
        Some(bob.clone()),
        Some(json!({"title": "Mine now"})),
    )
    .await;
    assert_eq!(status, 403, "{text}");
    assert_eq!(
        json_of(&text)["type"],
        "https://backforge.dev/problems/forbidden"
    );

    // A reference to a row Bob cannot read is refused as if the row did not exist.
    let (status, text) = go(
        Method::POST,
        "/api/orders".into(),
        Some(bob.clone()),
        Some(
            json!({"customer_id": customer["id"], "product_id": product["id"],
                    "quantity": 1, "number": "ORD-000001"}),
        ),
    )
    .await;
    assert_eq!(status, 422, "{text}");
    assert_eq!(
        json_of(&text)["errors"][0]["field"],
        "/customer_id",
        "{text}"
    );

    // Without a token: 401 everywhere.
    let (status, _) = go(Method::GET, customer_path.clone(), None, None).await;
    assert_eq!(status, 401);

    // The app's CLI makes Bob an admin: he now sees and changes Ada's rows.
    let granted = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            run(
                python(&dir)
                    .args(["-m", "app.cli", "grant-admin", "bob@example.com"])
                    .env(
                        "DATABASE_URL",
                        format!("sqlite:///{}", dir.join("app.db").display()),
                    ),
                Duration::from_secs(60),
            )
        }
    })
    .await
    .expect("the CLI ran");
    assert!(granted.success, "grant-admin failed:\n{}", granted.text);
    let (status, text) = go(Method::GET, customer_path.clone(), Some(bob.clone()), None).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = go(
        Method::PATCH,
        customer_path,
        Some(bob),
        Some(json!({"notes": "seen by an admin"})),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(json_of(&text)["owner_id"], customer["owner_id"], "{text}");
    drop(server);
    let _ = fs::remove_dir_all(&dir);
}

/// Starts uvicorn with `env` and returns its output once it has exited (or panics if it keeps
/// running for a minute).
fn start_and_exit(dir: &Path, env: &[(&str, &str)]) -> super::Output {
    let mut command = super::uvicorn(dir, super::free_port());
    command.env_remove("JWT_SECRET").env(
        "DATABASE_URL",
        format!("sqlite:///{}", dir.join("app.db").display()),
    );
    for (key, value) in env {
        command.env(key, value);
    }
    run(&mut command, Duration::from_secs(60))
}

#[test]
fn the_app_refuses_to_start_in_production_with_a_missing_placeholder_or_short_secret() {
    let dir = unpack("secrets");
    let example = fs::read_to_string(dir.join(".env.example")).expect(".env.example");
    let placeholder = example
        .lines()
        .find_map(|line| line.strip_prefix("JWT_SECRET="))
        .expect("the example names JWT_SECRET");
    let cases: [(&str, &[(&str, &str)]); 5] = [
        ("no APP_ENV (production by default) and no secret", &[]),
        (
            "Production, capitalised, and no secret",
            &[("APP_ENV", "Production")],
        ),
        (
            "the .env.example placeholder",
            &[("APP_ENV", "production"), ("JWT_SECRET", placeholder)],
        ),
        (
            "31 bytes",
            &[
                ("APP_ENV", "PRODUCTION"),
                ("JWT_SECRET", "abcdefghijklmnopqrstuvwxyz01234"),
            ],
        ),
        ("an unknown environment", &[("APP_ENV", "prod")]),
    ];
    for (what, env) in cases {
        let output = start_and_exit(&dir, env);
        assert!(
            !output.timed_out && !output.success,
            "{what}: the app started:\n{}",
            output.text
        );
        assert!(
            output.text.contains("JWT_SECRET") || output.text.contains("APP_ENV"),
            "{what}: no reason given:\n{}",
            output.text
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn defaults_refuse_null_and_a_write_answers_what_a_later_get_shows_byte_for_byte() {
    let (dir, server, http) = served("stored").await;
    let base = server.base.clone();
    let token = account(&http, &base, "owner@example.com").await;
    let post = |path: &'static str, body: Value| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move { call(&http, &base, Method::POST, path, Some(&token), Some(body)).await }
    };

    // `tier` defaults to bronze: an explicit null is refused (documented), absence takes it.
    let (status, text) = post(
        "/api/customers",
        json!({"name": "Ada", "email": "ada@example.com", "tier": null}),
    )
    .await;
    assert_eq!(status, 422, "{text}");
    assert_eq!(json_of(&text)["errors"][0]["field"], "/tier", "{text}");
    let (status, text) = post(
        "/api/customers",
        json!({"name": "Ada", "email": "ada@example.com", "credit": "12.5"}),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let customer = json_of(&text);
    assert_eq!(customer["tier"], "bronze");
    assert_eq!(customer["credit"], "12.50", "the column's scale: {text}");
    let (_, later) = call(
        &http,
        &base,
        Method::GET,
        &format!("/api/customers/{}", customer["id"].as_str().expect("id")),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(later, text, "the create's answer and a later GET differ");

    let (status, text) = post(
        "/api/products",
        json!({"sku": "ABC-1234", "title": "Widget", "price": "9.9",
               "released_at": "2025-01-31T23:30:00.25-05:00"}),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let product = json_of(&text);
    assert_eq!(product["price"], "9.90");
    assert_eq!(
        product["released_at"], "2025-02-01T04:30:00.250000Z",
        "UTC: {text}"
    );
    let path = format!("/api/products/{}", product["id"].as_str().expect("id"));
    let (_, later) = call(&http, &base, Method::GET, &path, Some(&token), None).await;
    assert_eq!(later, text, "the create's answer and a later GET differ");
    let (status, patched) = call(
        &http,
        &base,
        Method::PATCH,
        &path,
        Some(&token),
        Some(json!({"price": "1.5", "released_at": "2025-06-01T12:00:00+02:00"})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(json_of(&patched)["price"], "1.50");
    let (_, later) = call(&http, &base, Method::GET, &path, Some(&token), None).await;
    assert_eq!(later, patched, "the update's answer and a later GET differ");
    drop(server);
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_platforms_filter_cases_pass_against_the_generated_app() {
    let (dir, server, http) = served("filters").await;
    let base = server.base.clone();
    let token = account(&http, &base, "lists@example.com").await;
    let rows = [
        json!({"name": "Ada", "email": "ada@example.com", "tier": "gold", "credit": "10.00", "birthday": "1990-05-01"}),
        json!({"name": "Bob", "email": "bob@example.com", "tier": "silver", "credit": "20.00"}),
        json!({"name": "Dana", "email": "dana@example.com", "credit": "30.00", "birthday": "1985-01-01"}),
    ];
    for row in rows {
        let (status, text) = call(
            &http,
            &base,
            Method::POST,
            "/api/customers",
            Some(&token),
            Some(row),
        )
        .await;
        assert_eq!(status, 201, "{text}");
    }
    let names = |text: &str| -> Vec<String> {
        json_of(text)["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["name"].as_str().expect("a name").to_owned())
            .collect()
    };
    let cases: [(&str, &str, &[&str]); 12] = [
        ("equality", "tier=gold", &["Ada"]),
        ("not equal", "tier__ne=gold", &["Bob", "Dana"]),
        ("greater than", "credit__gt=10", &["Bob", "Dana"]),
        ("at least", "credit__gte=20&sort=credit", &["Bob", "Dana"]),
        ("less than", "credit__lt=20", &["Ada"]),
        ("at most", "credit__lte=20", &["Ada", "Bob"]),
        ("in", "tier__in=gold,bronze", &["Ada", "Dana"]),
        (
            "contains, case-sensitive",
            "name__contains=a",
            &["Ada", "Dana"],
        ),
        ("contains nothing", "name__contains=ADA", &[]),
        ("is null", "birthday__is_null=true", &["Bob"]),
        (
            "is not null",
            "birthday__is_null=false&sort=-birthday",
            &["Ada", "Dana"],
        ),
        ("sort descending", "sort=-credit", &["Dana", "Bob", "Ada"]),
    ];
    for (what, query, expected) in cases {
        let (status, text) = call(
            &http,
            &base,
            Method::GET,
            &format!("/api/customers?{query}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{what} ({query}): {text}");
        assert_eq!(names(&text), expected, "{what} ({query})");
    }
    for query in [
        "colour=red",
        "credit__near=1",
        "sort=colour",
        "credit__gt=lots",
        "name__gt=A",
        "limit=0",
    ] {
        let (status, text) = call(
            &http,
            &base,
            Method::GET,
            &format!("/api/customers?{query}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, 422, "{query}: {text}");
        let problem = json_of(&text);
        assert_eq!(problem["errors"][0]["in"], "query", "{query}: {text}");
    }
    drop(server);
    let _ = fs::remove_dir_all(&dir);
}

/// A fault planted in a copy of the generated app: `edits` are (file, the text it must hold
/// exactly once, what replaces it); a file ending in `/` names every `.py` file of that directory
/// holding the text, one of which must.
struct Fault {
    what: &'static str,
    edits: Vec<(&'static str, String, String)>,
}

fn faults() -> Vec<Fault> {
    vec![
        Fault {
            what: "drop a CHECK (customer.name's max_length in the database)",
            edits: vec![(
                "alembic/versions/",
                "sa.CheckConstraint(".to_owned(),
                "ck_customers_name_max_length".to_owned(),
            )],
        },
        Fault {
            what: "skip updated_at on update",
            edits: vec![(
                "app/crud.py",
                "    row.updated_at = utcnow()\n".to_owned(),
                String::new(),
            )],
        },
        Fault {
            what: "remove the owner filter (owner_scoped rows visible to every account)",
            edits: vec![(
                "app/crud.py",
                "        return model.owner_id == actor.id\n".to_owned(),
                "        return None\n".to_owned(),
            )],
        },
        Fault {
            what: "accept a bad enum value (customer.tier)",
            edits: vec![(
                "app/schemas.py",
                "_Literal[\"bronze\", \"silver\", \"gold\"]".to_owned(),
                "str".to_owned(),
            )],
        },
        Fault {
            what: "skip a unique constraint (customer.email, in the app and the database)",
            edits: vec![
                (
                    "app/routers/customer.py",
                    "    unique=((\"email\",),),\n".to_owned(),
                    "    unique=(),\n".to_owned(),
                ),
                (
                    "alembic/versions/",
                    "sa.UniqueConstraint(".to_owned(),
                    "uq_customers_email".to_owned(),
                ),
                (
                    "app/",
                    "_sa.UniqueConstraint(".to_owned(),
                    "uq_customers_email".to_owned(),
                ),
            ],
        },
    ]
}

/// Plants `fault` in the app in `dir`. An edit on a directory drops the one line of its `.py`
/// files that holds both its text and its replacement (a constraint and its name).
fn plant(dir: &Path, fault: &Fault) {
    for (file, text, replacement) in &fault.edits {
        if let Some(folder) = file.strip_suffix('/') {
            let mut dropped = 0;
            for entry in fs::read_dir(dir.join(folder)).expect("the directory") {
                let path = entry.expect("an entry").path();
                if path.extension().is_none_or(|e| e != "py") {
                    continue;
                }
                let source = fs::read_to_string(&path).expect("a migration");
                let kept: Vec<&str> = source
                    .lines()
                    .filter(|line| {
                        !(line.contains(text.as_str()) && line.contains(replacement.as_str()))
                    })
                    .collect();
                let gone = source.lines().count() - kept.len();
                if gone > 0 {
                    dropped += gone;
                    fs::write(&path, kept.join("\n") + "\n").expect("plant the fault");
                }
            }
            assert_eq!(
                dropped, 1,
                "{}: one line of {folder} holds {text} {replacement}",
                fault.what
            );
            continue;
        }
        let path = dir.join(file);
        let source = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let count = source.matches(text.as_str()).count();
        assert!(count >= 1, "{}: {file} does not hold {text:?}", fault.what);
        fs::write(&path, source.replace(text.as_str(), replacement)).expect("plant the fault");
    }
}

/// The mutation check: each planted fault, alone in its own copy of the app, makes the generated
/// suite fail. `-x` stops a run at the first failure, so a caught fault costs seconds.
#[test]
fn every_planted_fault_is_caught_by_the_generated_suite() {
    let mut missed = Vec::new();
    for fault in faults() {
        let dir = unpack("mutant");
        plant(&dir, &fault);
        let report = pytest_with(&dir, None, &["-x"]);
        if report.failures + report.errors == 0 {
            missed.push(format!("{} ({} tests passed)", fault.what, report.tests));
        } else {
            eprintln!("caught: {} by {:?}", fault.what, report.failed);
        }
        let _ = fs::remove_dir_all(&dir);
    }
    assert!(
        missed.is_empty(),
        "faults the generated suite missed:\n{}",
        missed.join("\n")
    );
}
