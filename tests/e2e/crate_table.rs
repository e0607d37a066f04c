//! The crate table holds: no workspace crate depends on another one the table does not allow
//! (read from `cargo metadata`; dev- and build-dependencies count too). docs/ARCHITECTURE.md has
//! the same table in prose.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Crates that may depend on every other workspace crate.
const ANY: &[&str] = &["backforge", "tests", "bench"];

/// Each workspace crate and the workspace crates it may depend on.
const TABLE: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("event-store", &["domain"]),
    ("messaging", &["domain"]),
    ("read-model", &["domain", "event-store"]),
    (
        "command-api",
        // `read-model`: a generation request's default base is the latest succeeded generation
        // the read model lists (a default the caller can name explicitly; the domain checks it).
        &[
            "domain",
            "event-store",
            "read-model",
            "runtime",
            "sandbox",
            "storage",
        ],
    ),
    (
        "projector",
        // `runtime`: the metrics registry and the consumer supervisor every background process
        // shares (the design lists metrics under `runtime`, but not `runtime` for the projector).
        &[
            "domain",
            "event-store",
            "read-model",
            "messaging",
            "runtime",
        ],
    ),
    (
        "query-api",
        &["domain", "event-store", "read-model", "runtime", "storage"],
    ),
    (
        "worker",
        &[
            "domain",
            "event-store",
            "read-model",
            "messaging",
            "generator",
            "sandbox",
            "ai",
            "storage",
            // As for the projector: metrics and the consumer supervisor.
            "runtime",
        ],
    ),
    ("sandbox", &[]),
    ("storage", &[]),
    ("ai", &["domain"]),
    ("generator", &["domain"]),
    (
        "runtime",
        // `event-store`: the one mapping of `StoreError` and `AppendRefusal` to problem documents
        // (a `From` impl lives beside `ApiError` or beside the error; `event-store` knows no HTTP)
        // and the default event-size limit the settings fall back to.
        &["domain", "event-store"],
    ),
];

fn metadata() -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(&root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Every edge between workspace crates that the table does not allow, as sentences.
fn forbidden_edges(metadata: &Value) -> Vec<String> {
    let packages = metadata["packages"].as_array().expect("packages");
    let members: BTreeSet<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("package name"))
        .collect();
    let mut found = Vec::new();
    for package in packages {
        let name = package["name"].as_str().expect("package name");
        if ANY.contains(&name) {
            continue;
        }
        let Some((_, allowed)) = TABLE.iter().find(|(crate_name, _)| *crate_name == name) else {
            found.push(format!(
                "`{name}` is not in the crate table; add it with the crates it may depend on"
            ));
            continue;
        };
        for dependency in package["dependencies"].as_array().expect("dependencies") {
            let target = dependency["name"].as_str().expect("dependency name");
            if !members.contains(target) || allowed.contains(&target) {
                continue;
            }
            let kind = dependency["kind"].as_str().unwrap_or("normal");
            found.push(format!(
                "`{name}` depends on `{target}` ({kind}); the table allows {allowed:?}"
            ));
        }
    }
    found
}

#[test]
fn workspace_crates_depend_only_on_what_the_crate_table_allows() {
    let metadata = metadata();
    let forbidden = forbidden_edges(&metadata);
    assert!(
        forbidden.is_empty(),
        "dependencies the crate table does not allow:\n{}",
        forbidden.join("\n")
    );
}

#[test]
fn the_check_sees_a_forbidden_edge() {
    // A workspace where the domain depends on the command API: the check must say so.
    let metadata = serde_json::json!({"packages": [
        {"name": "domain", "dependencies": [{"name": "command-api", "kind": null}]},
        {"name": "command-api", "dependencies": [{"name": "domain", "kind": null}]},
        {"name": "tests", "dependencies": [{"name": "command-api", "kind": "dev"}]},
    ]});
    let forbidden = forbidden_edges(&metadata);
    assert_eq!(forbidden.len(), 1, "{forbidden:?}");
    assert!(forbidden[0].starts_with("`domain` depends on `command-api`"));
}
