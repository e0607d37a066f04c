//! The generation pipeline through the real processes: request → job over NATS → worker →
//! artifact → download, including a worker that arrives late and one killed mid-job.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tests::TestDatabase;
use tests::process::{Backforge, eventually, position_of, worker_venvs};

fn shop() -> Value {
    json!({"name": "Shop", "features": [
        {"name": "Customers", "feature_type": "crud", "schema_definition": {"entity": "customer", "fields": [
            {"name": "email", "type": "string", "required": true, "unique": true, "max_length": 200}]}},
        {"name": "Orders", "feature_type": "crud", "schema_definition": {"entity": "order", "fields": [
            {"name": "title", "type": "string", "required": true, "max_length": 120},
            {"name": "total", "type": "decimal", "precision": 12, "scale": 2, "min": 0},
            {"name": "status", "type": "enum", "values": ["new", "paid"], "default": "new"},
            {"name": "code", "type": "string", "unique": true, "pattern": "^[A-Z]{3}-[0-9]{4}$"},
            {"name": "customer_id", "type": "reference", "references": "customer", "required": true}],
            "unique": [["customer_id", "title"]]}},
        {"name": "Login", "feature_type": "auth"},
        {"name": "Uploads", "feature_type": "file_storage"}
    ]})
}

async fn download(
    api: &tests::process::Api,
    path: &str,
    token: &str,
) -> (u16, Option<String>, Vec<u8>) {
    let response = api
        .client
        .get(api.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("download");
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        etag,
        response.bytes().await.expect("bytes").to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generation_waits_for_a_worker_then_is_generated_stored_and_downloadable() {
    let db = TestDatabase::create().await.expect("db");
    let writes = Backforge::start("command-api", &db.url, &[]).await;
    let reads = Backforge::start("query-api", &db.url, &[]).await;
    let _projector = Backforge::start("projector", &db.url, &[]).await;
    let (owner, _) = writes.register("Gwen").await;
    let token = owner.access_token.as_str();
    let created = writes
        .post("/projects", Some(token), shop())
        .await
        .expect(201);
    let project = created.body["id"].as_str().expect("id").to_owned();
    let requested = writes
        .post(
            &format!("/projects/{project}/generations"),
            Some(token),
            json!({}),
        )
        .await
        .expect(202);
    let generation = requested.body["id"].as_str().expect("id").to_owned();
    let position = position_of(&requested);

    // No worker yet: the generation is requested, and its download is a 409.
    let pending = reads
        .send(
            Method::GET,
            &format!("/generations/{generation}"),
            Some(token),
            None,
            &[("Backforge-Min-Position", &position)],
        )
        .await
        .expect(200);
    assert_eq!(pending.body["status"], "requested");
    let (status, _, _) = download(
        &reads,
        &format!("/generations/{generation}/download"),
        token,
    )
    .await;
    assert_eq!(status, 409, "an unfinished generation cannot be downloaded");
    let (status, _, _) = download(&reads, &format!("/projects/{project}/download"), token).await;
    assert_eq!(status, 404, "no succeeded generation yet");

    let _worker = Backforge::start("worker", &db.url, &[]).await;
    let done = eventually(
        "the generation finishes",
        Duration::from_secs(60),
        || async {
            let answer = reads
                .get(&format!("/generations/{generation}"), Some(token))
                .await;
            matches!(
                answer.body["status"].as_str(),
                Some("succeeded") | Some("failed")
            )
            .then_some(answer.body)
        },
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["project_version"], 5);
    assert!(done["file_count"].as_u64().is_some_and(|n| n > 10));
    let steps: Vec<&str> = done["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(steps.contains(&"generate"), "{steps:?}");
    let sha = done["sha256"].as_str().expect("sha256").to_owned();

    let (status, etag, zip) = download(
        &reads,
        &format!("/generations/{generation}/download"),
        token,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(etag, Some(format!("\"{sha}\"")));
    assert_eq!(
        hex::encode(Sha256::digest(&zip)),
        sha,
        "the ZIP is the recorded artifact"
    );
    assert_eq!(done["size_bytes"], json!(zip.len()));
    let (status, _, latest) =
        download(&reads, &format!("/projects/{project}/download"), token).await;
    assert_eq!((status, latest), (200, zip.clone()));
    let list = reads
        .get(&format!("/projects/{project}/generations"), Some(token))
        .await
        .expect(200);
    assert_eq!(list.body["items"][0]["id"], generation.as_str());

    // A second generation builds on the latest succeeded one by default: the first's migration
    // byte for byte, and one more.
    assert_eq!(done["base_generation_id"], Value::Null);
    let succeeded = |id: String| {
        let reads = &reads;
        async move {
            eventually("a generation finishes", Duration::from_secs(60), || async {
                let answer = reads.get(&format!("/generations/{id}"), Some(token)).await;
                (answer.body["status"] == "succeeded").then_some(answer.body)
            })
            .await
        }
    };
    let request = |body: Value| {
        let writes = &writes;
        let project = &project;
        async move {
            writes
                .post(
                    &format!("/projects/{project}/generations"),
                    Some(token),
                    body,
                )
                .await
        }
    };
    let second = request(json!({})).await.expect(202).body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let redone = succeeded(second.clone()).await;
    assert_eq!(redone["base_generation_id"], generation.as_str());
    let (_, _, second_zip) =
        download(&reads, &format!("/generations/{second}/download"), token).await;
    let first_files = generator::read_zip(&zip).expect("the first ZIP");
    let second_files = generator::read_zip(&second_zip).expect("the second ZIP");
    let migrations: Vec<&String> = second_files
        .keys()
        .filter(|p| p.starts_with("alembic/versions/"))
        .collect();
    assert_eq!(migrations.len(), 2, "{migrations:?}");
    let initial = "alembic/versions/0001_initial.py";
    assert_eq!(first_files[initial], second_files[initial]);
    // The same project version on the same base generates byte-identical bytes.
    let third = request(json!({"base_generation_id": generation}))
        .await
        .expect(202)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let third = succeeded(third).await;
    assert_eq!(
        third["sha256"], redone["sha256"],
        "generation is reproducible"
    );
    // A base that is no generation of this project is refused at its pointer.
    let refused = request(json!({"base_generation_id": uuid::Uuid::now_v7()}))
        .await
        .expect(422);
    assert_eq!(
        refused.body["errors"][0]["field"], "/base_generation_id",
        "{}",
        refused.body
    );
    // Someone else sees none of it.
    let (stranger, _) = writes.register("Stranger").await;
    reads
        .get(
            &format!("/generations/{generation}"),
            Some(&stranger.access_token),
        )
        .await
        .expect(404);
    let (status, _, _) = download(
        &reads,
        &format!("/generations/{generation}/download"),
        &stranger.access_token,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_is_replaced_and_the_verified_generation_finishes() {
    let db = TestDatabase::create().await.expect("db");
    let venvs = worker_venvs();
    let worker_env = [
        ("BACKFORGE_JOB_ACK_WAIT_SECS", "3"),
        ("BACKFORGE_VENV_DIR", venvs.as_str()),
        ("BACKFORGE_VERIFY_TIMEOUT_SECS", "600"),
    ];
    let writes = Backforge::start("command-api", &db.url, &[]).await;
    let reads = Backforge::start("query-api", &db.url, &[]).await;
    let _projector = Backforge::start("projector", &db.url, &[]).await;
    let mut first = Backforge::start("worker", &db.url, &worker_env).await;
    let (owner, _) = writes.register("Kai").await;
    let token = owner.access_token.as_str();
    let project = writes
        .post("/projects", Some(token), shop())
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let requested = writes
        .post(
            &format!("/projects/{project}/generations"),
            Some(token),
            json!({"verify": true}),
        )
        .await
        .expect(202);
    let generation = requested.body["id"].as_str().expect("id").to_owned();
    eventually(
        "the first worker starts the job",
        Duration::from_secs(60),
        || async {
            let answer = reads
                .get(&format!("/generations/{generation}"), Some(token))
                .await;
            (answer.body["status"] == "running").then_some(())
        },
    )
    .await;
    first.kill();

    let _second = Backforge::start("worker", &db.url, &worker_env).await;
    let done = eventually(
        "the job finishes after redelivery",
        Duration::from_secs(400),
        || async {
            let answer = reads
                .get(&format!("/generations/{generation}"), Some(token))
                .await;
            matches!(
                answer.body["status"].as_str(),
                Some("succeeded") | Some("failed")
            )
            .then_some(answer.body)
        },
    )
    .await;
    assert!(
        done["attempt"].as_u64().is_some_and(|a| a >= 2),
        "redelivered: {done}"
    );
    match done["status"].as_str() {
        Some("succeeded") => {
            assert!(
                done["tests"]["passed"].as_u64().is_some_and(|n| n > 50),
                "{}",
                done["tests"]
            );
            assert_eq!(done["tests"]["failed"], 0);
            let verify = done["steps"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["name"] == "verify"))
                .expect("a verify step");
            assert_eq!(verify["status"], "succeeded");
        }
        _ => panic!("the verified generation failed: {}", done["error"]),
    }
}
