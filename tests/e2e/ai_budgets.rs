//! AI costs and monthly budgets against the real binary (`backforge serve`) and the fake model
//! server: costs computed exactly from the provider's token counts and the model's prices (sent as
//! JSON numbers and as strings), admission under concurrency (never past the budget), 429
//! `ai-budget-exceeded` with `Retry-After` to the next UTC month, settlement replacing the
//! reservation with the actual cost, `PUT /admin/users/{id}`, and the usage reports.

use std::str::FromStr;
use std::time::Duration;

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};
use tests::process::{Backforge, eventually, run};
use tests::{Answer, TestDatabase, TestUser};
use time::OffsetDateTime;

use crate::fake_provider::{FakeModel, finished, openai_answer, token, valid};

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal")
}

/// The cost of docs/api.md, computed here independently: `(in × in price + out × out price) /
/// 1e6`, half-even to 6 places.
fn expected_cost(input: u64, output: u64, input_price: &str, output_price: &str) -> Decimal {
    let raw = (Decimal::from(input) * dec(input_price) + Decimal::from(output) * dec(output_price))
        / Decimal::from(1_000_000u32);
    raw.round_dp_with_strategy(6, RoundingStrategy::MidpointNearestEven)
}

/// An answer's decimal string as a number (so `"0.010000"` equals `0.01`).
fn amount(value: &Value) -> Decimal {
    dec(value
        .as_str()
        .unwrap_or_else(|| panic!("a decimal string, got {value}")))
}

struct Serve {
    app: Backforge,
    admin: TestUser,
    db: TestDatabase,
}

/// `backforge serve` with `env`, and an admin made by `backforge admin grant`.
async fn serve(env: &[(&str, &str)]) -> Serve {
    let db = TestDatabase::create().await.expect("test database");
    let app = Backforge::start("serve", &db.url, env).await;
    let (admin, _) = app.register("Root").await;
    run(
        &["admin", "grant", &admin.email],
        &db.url,
        env,
        Duration::from_secs(60),
    )
    .await
    .expect_success();
    // A role change revokes the user's tokens: sign in again.
    let login = app
        .post(
            "/auth/login",
            None,
            json!({"email": admin.email, "password": admin.password}),
        )
        .await
        .expect(200);
    let admin = TestUser {
        access_token: login.body["access_token"]
            .as_str()
            .expect("access")
            .to_owned(),
        refresh_token: login.body["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned(),
        ..admin
    };
    Serve { app, admin, db }
}

/// Registers model `name` served by `model` at these prices (each a JSON number or string).
async fn register_model(
    s: &Serve,
    model: &FakeModel,
    name: &str,
    input: Value,
    output: Value,
    max_output_tokens: u32,
) {
    s.app
        .post(
            "/admin/ai/models",
            token(&s.admin),
            json!({
                "name": name,
                "provider": "openai",
                "base_url": format!("http://{}/v1", model.addr),
                "model": "test-model",
                "input_usd_per_mtok": input,
                "output_usd_per_mtok": output,
                "max_output_tokens": max_output_tokens,
            }),
        )
        .await
        .expect(201);
}

async fn project(app: &Backforge, owner: &TestUser, name: &str) -> String {
    let created = app
        .post("/projects", token(owner), json!({"name": name}))
        .await
        .expect(201);
    created.body["id"].as_str().expect("id").to_owned()
}

fn ask(project: &str, model: &str) -> Value {
    json!({"project_id": project, "prompt": "A shop with customers", "model": model})
}

/// The usage report at `path` once it counts `attempts` attempts in all.
async fn usage(app: &Backforge, user: &TestUser, path: &str, attempts: u64) -> Value {
    eventually(
        "the usage report counts every attempt",
        Duration::from_secs(30),
        || async {
            let answer = app.get(path, token(user)).await.expect(200);
            (answer.body["total"]["attempts"] == attempts).then_some(answer.body)
        },
    )
    .await
}

/// The groups of a report as `key → cost`.
fn costs(report: &Value) -> Vec<(String, Decimal)> {
    report["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["key"].as_str().expect("key").to_owned(),
                amount(&g["cost_usd"]),
            )
        })
        .collect()
}

#[tokio::test]
async fn costs_are_exact_at_prices_sent_as_numbers_and_strings_and_usage_adds_them_up() {
    // Token counts whose costs need exact decimals and rounding: see the expectations below.
    let model = FakeModel::start(vec![
        openai_answer(&valid(), 1234, 567),
        openai_answer(&valid(), 1001, 333),
    ])
    .await;
    let s = serve(&[]).await;
    let app = &s.app;
    // Prices as JSON numbers in one model and as strings in the other.
    register_model(&s, &model, "numbers", json!(0.15), json!(0.6), 1000).await;
    register_model(
        &s,
        &model,
        "strings",
        json!("2.5"),
        json!("10.000001"),
        1000,
    )
    .await;
    let (owner, _) = app.register("Ada").await;
    let shop = project(app, &owner, "Shop").await;
    let blog = project(app, &owner, "Blog").await;

    let first = app
        .post("/ai/generate-config", token(&owner), ask(&shop, "numbers"))
        .await
        .expect(202);
    let first_id = first.body["id"].as_str().expect("id").to_owned();
    let first_done = finished(app, &first_id, &owner).await;
    let second = app
        .post("/ai/generate-config", token(&owner), ask(&blog, "strings"))
        .await
        .expect(202);
    let second_id = second.body["id"].as_str().expect("id").to_owned();
    let second_done = finished(app, &second_id, &owner).await;

    // 1234 × 0.15 + 567 × 0.6 = 525.3 → 0.0005253 → 0.000525
    let cost_numbers = expected_cost(1234, 567, "0.15", "0.6");
    // 1001 × 2.5 + 333 × 10.000001 = 5832.500333 → 0.005832500333 → 0.005833
    let cost_strings = expected_cost(1001, 333, "2.5", "10.000001");
    assert_eq!(cost_numbers, dec("0.000525"));
    assert_eq!(cost_strings, dec("0.005833"));
    for (done, cost) in [(&first_done, cost_numbers), (&second_done, cost_strings)] {
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(amount(&done["attempts"][0]["cost_usd"]), cost, "{done}");
        assert_eq!(amount(&done["cost_usd"]), cost, "{done}");
        // Six places, always, as a string.
        assert_eq!(
            done["cost_usd"]
                .as_str()
                .map(|c| c.split('.').nth(1).map(str::len)),
            Some(Some(6))
        );
    }
    let total = cost_numbers + cost_strings;

    // The caller's usage by model, project and day adds up to the requests' costs.
    let by_model = usage(app, &owner, "/ai/usage?group_by=model", 2).await;
    assert_eq!(
        costs(&by_model),
        vec![
            ("numbers".to_owned(), cost_numbers),
            ("strings".to_owned(), cost_strings)
        ]
    );
    assert_eq!(amount(&by_model["total"]["cost_usd"]), total);
    assert_eq!(by_model["total"]["input_tokens"], 1234 + 1001);
    assert_eq!(by_model["total"]["output_tokens"], 567 + 333);
    let by_project = usage(app, &owner, "/ai/usage?group_by=project", 2).await;
    let mut expected = vec![(shop.clone(), cost_numbers), (blog.clone(), cost_strings)];
    expected.sort();
    assert_eq!(costs(&by_project), expected);
    let today = OffsetDateTime::now_utc().date();
    let by_day = usage(
        app,
        &owner,
        &format!("/ai/usage?group_by=day&from={today}&to={today}"),
        2,
    )
    .await;
    assert_eq!(costs(&by_day), vec![(today.to_string(), total)]);
    assert_eq!(by_day["groups"][0]["requests"], 2);
    // The default is the current month, by day.
    let default = usage(app, &owner, "/ai/usage", 2).await;
    assert_eq!(default["group_by"], "day");
    assert_eq!(amount(&default["total"]["cost_usd"]), total);

    // Everyone's usage is the admins': by user it is the owner's total.
    let all = usage(app, &s.admin, "/admin/ai/usage?group_by=user", 2).await;
    assert_eq!(costs(&all), vec![(owner.id.clone(), total)]);
    app.get("/admin/ai/usage", token(&owner)).await.expect(403);

    // A stranger, and a viewer of the owner's project, see none of the owner's usage.
    let (stranger, _) = app.register("Eve").await;
    let (viewer, _) = app.register("Vic").await;
    app.put(
        &format!("/projects/{shop}/members/{}", viewer.id),
        token(&owner),
        json!({"role": "viewer"}),
    )
    .await
    .expect(200);
    for other in [&stranger, &viewer] {
        let theirs = app
            .get("/ai/usage?group_by=project", token(other))
            .await
            .expect(200);
        assert_eq!(theirs.body["groups"], json!([]), "{}", theirs.body);
        assert_eq!(amount(&theirs.body["total"]["cost_usd"]), Decimal::ZERO);
    }

    // Bad parameters are 422s naming them.
    for (query, field) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("group_by=user", "group_by"),
        ("group_by=week", "group_by"),
        ("from=2025-01-01&to=2026-06-01", "to"),
        ("from=2026-06-02&to=2026-06-01", "to"),
    ] {
        let refused = app
            .get(&format!("/ai/usage?{query}"), token(&owner))
            .await
            .expect(422);
        assert_eq!(
            refused.body["errors"][0]["field"], field,
            "{query}: {}",
            refused.body
        );
    }
    drop(s.db);
}

/// The whole seconds from `now` to the next UTC month's first instant.
fn seconds_to_next_month(now: OffsetDateTime) -> i64 {
    let date = now.date();
    let (year, month) = match date.month() {
        time::Month::December => (date.year() + 1, time::Month::January),
        m => (date.year(), m.next()),
    };
    let next = time::Date::from_calendar_date(year, month, 1)
        .expect("date")
        .with_time(time::Time::MIDNIGHT)
        .assume_utc();
    (next - now).whole_seconds()
}

fn assert_budget_refusal(answer: &Answer, budget: &str) {
    assert_eq!(answer.status.as_u16(), 429, "{}", answer.body);
    assert!(
        answer.body["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/ai-budget-exceeded")),
        "{}",
        answer.body
    );
    let detail = answer.body["detail"].as_str().expect("detail");
    assert!(
        detail.contains(budget) && detail.contains("spent") && detail.contains("reserved"),
        "{detail}"
    );
    let retry: i64 = answer
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    let expected = seconds_to_next_month(OffsetDateTime::now_utc());
    assert!(
        (expected - 5..=expected + 5).contains(&retry),
        "Retry-After {retry}, the next month starts in {expected} s"
    );
}

#[tokio::test]
async fn a_budget_admits_exactly_the_worst_cases_it_holds_and_settlement_frees_the_rest() {
    // Answers are held, so no admitted request can finish (and settle) while others are admitted.
    let model = FakeModel::held(vec![openai_answer(&valid(), 100, 200)]).await;
    // Everyone without a budget of their own has 0 USD a month.
    let s = serve(&[("BACKFORGE_AI_MONTHLY_BUDGET_USD", "0")]).await;
    let app = &s.app;
    // Input is free, so a worst case is the output cap alone whatever the prompt's estimate:
    // 3 attempts × 1000 tokens × 10 USD per million = 0.03 USD.
    register_model(&s, &model, "capped", json!("0"), json!("10"), 1000).await;
    let worst = dec("0.03");
    let (owner, _) = app.register("Ada").await;
    let (member, _) = app.register("Bob").await;
    let shop = project(app, &owner, "Shop").await;
    let other = project(app, &member, "Other").await;

    // PUT /admin/users/{id}: admins only, a known user, a decimal ≥ 0 (number or string) or null.
    let path = format!("/admin/users/{}", owner.id);
    app.put(&path, token(&member), json!({"ai_monthly_budget_usd": "1"}))
        .await
        .expect(403);
    app.put(
        &format!("/admin/users/{}", uuid::Uuid::now_v7()),
        token(&s.admin),
        json!({"ai_monthly_budget_usd": "1"}),
    )
    .await
    .expect(404);
    for (body, field) in [
        (
            json!({"ai_monthly_budget_usd": -1}),
            "/ai_monthly_budget_usd",
        ),
        (
            json!({"ai_monthly_budget_usd": "0.0000001"}),
            "/ai_monthly_budget_usd",
        ),
        (
            json!({"ai_monthly_budget_usd": "lots"}),
            "/ai_monthly_budget_usd",
        ),
        (json!({"ai_monthly_budget_usd": 1, "role": "admin"}), ""),
        (json!({}), ""),
    ] {
        let refused = app
            .put(&path, token(&s.admin), body.clone())
            .await
            .expect(422);
        if !field.is_empty() {
            assert_eq!(
                refused.body["errors"][0]["field"], field,
                "{body}: {}",
                refused.body
            );
        }
    }
    // Exactly two worst cases, sent as a JSON number.
    let set = app
        .put(
            &path,
            token(&s.admin),
            json!({"ai_monthly_budget_usd": 0.06}),
        )
        .await
        .expect(200);
    assert_eq!(set.body["id"], owner.id.as_str());
    assert_eq!(amount(&set.body["ai_monthly_budget_usd"]), dec("0.06"));

    // The default budget (0) refuses the member at once; nothing is appended.
    let refused = app
        .post("/ai/generate-config", token(&member), ask(&other, "capped"))
        .await;
    assert_budget_refusal(&refused, "0.000000");

    // Eight concurrent requests against a budget of two worst cases: exactly two are admitted.
    let answers = futures::future::join_all(
        (0..8).map(|_| app.post("/ai/generate-config", token(&owner), ask(&shop, "capped"))),
    )
    .await;
    let admitted: Vec<String> = answers
        .iter()
        .filter(|a| a.status.as_u16() == 202)
        .map(|a| a.body["id"].as_str().expect("id").to_owned())
        .collect();
    let refusals: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status.as_u16() == 429)
        .collect();
    assert_eq!(
        (admitted.len(), refusals.len()),
        (2, 6),
        "{:?}",
        answers
            .iter()
            .map(|a| (a.status, &a.body))
            .collect::<Vec<_>>()
    );
    for refusal in refusals {
        assert_budget_refusal(refusal, "0.060000");
    }
    // Refused requests left nothing behind: the project lists the two admitted ones only.
    let listed = eventually(
        "the admitted requests are listed",
        Duration::from_secs(30),
        || async {
            // The project may not be in the read model yet (404): ask again.
            let list = app
                .get(&format!("/projects/{shop}/ai/requests"), token(&owner))
                .await;
            (list.status.as_u16() == 200 && list.body["items"].as_array().map(Vec::len) == Some(2))
                .then_some(list.body)
        },
    )
    .await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(2));
    // While both hold their reservations, even one more is refused.
    let refused = app
        .post("/ai/generate-config", token(&owner), ask(&shop, "capped"))
        .await;
    assert_budget_refusal(&refused, "0.060000");

    // Completion replaces each reservation with the actual cost: 200 × 10 / 1e6 = 0.002.
    model.release();
    let actual = expected_cost(100, 200, "0", "10");
    assert_eq!(actual, dec("0.002"));
    for id in &admitted {
        let done = finished(app, id, &owner).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(amount(&done["cost_usd"]), actual);
    }
    // 0.004 spent and nothing reserved: one more worst case fits (0.034 ≤ 0.06), two do not.
    assert!(actual * Decimal::from(2) + worst <= dec("0.06"));
    assert!(actual * Decimal::from(2) + worst * Decimal::from(2) > dec("0.06"));
    // Held again, so the third cannot finish (and settle) before the fourth is asked.
    model.hold();
    let third = app
        .post("/ai/generate-config", token(&owner), ask(&shop, "capped"))
        .await
        .expect(202);
    let refused = app
        .post("/ai/generate-config", token(&owner), ask(&shop, "capped"))
        .await;
    assert_budget_refusal(&refused, "0.060000");
    model.release();
    let third_id = third.body["id"].as_str().expect("id").to_owned();
    finished(app, &third_id, &owner).await;

    // Raising the budget admits again; null drops it back to the default (0): refused.
    app.put(
        &path,
        token(&s.admin),
        json!({"ai_monthly_budget_usd": "1"}),
    )
    .await
    .expect(200);
    let fourth = app
        .post("/ai/generate-config", token(&owner), ask(&shop, "capped"))
        .await
        .expect(202);
    let fourth_id = fourth.body["id"].as_str().expect("id").to_owned();
    finished(app, &fourth_id, &owner).await;
    let cleared = app
        .put(
            &path,
            token(&s.admin),
            json!({"ai_monthly_budget_usd": null}),
        )
        .await
        .expect(200);
    assert_eq!(cleared.body["ai_monthly_budget_usd"], Value::Null);
    let refused = app
        .post("/ai/generate-config", token(&owner), ask(&shop, "capped"))
        .await;
    assert_budget_refusal(&refused, "0.000000");

    // The usage of the four requests that ran is their actual costs, nothing reserved.
    let report = usage(app, &owner, "/ai/usage?group_by=model", 4).await;
    assert_eq!(
        costs(&report),
        vec![("capped".to_owned(), actual * Decimal::from(4))]
    );
    drop(s.db);
}
