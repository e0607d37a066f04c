//! The deployment files hold what the services need, read statically (no Docker engine here): the
//! image's final stage and every service of docker-compose.yml.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One Dockerfile instruction: its keyword (upper case) and its arguments, continuations joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The instructions of the last stage (from its `FROM` on).
fn final_stage(dockerfile: &str) -> Vec<Instruction> {
    let mut instructions = Vec::new();
    let mut pending = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                pending.push_str(part);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (keyword, args) = pending
                    .split_once(char::is_whitespace)
                    .unwrap_or((&pending, ""));
                instructions.push(Instruction {
                    keyword: keyword.to_uppercase(),
                    args: args.trim().to_owned(),
                });
                pending.clear();
            }
        }
    }
    let last_from = instructions
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .expect("the Dockerfile has a FROM");
    instructions.split_off(last_from)
}

/// The packages each `apt-get install` of `stage` installs.
fn apt_installed(stage: &[Instruction]) -> Vec<String> {
    let mut packages = Vec::new();
    for run in stage.iter().filter(|i| i.keyword == "RUN") {
        for command in run.args.split("&&") {
            let words: Vec<&str> = command.split_whitespace().collect();
            let Some(at) = words.windows(2).position(|w| w == ["apt-get", "install"]) else {
                continue;
            };
            packages.extend(
                words[at + 2..]
                    .iter()
                    .filter(|w| !w.starts_with('-'))
                    .map(|w| (*w).to_owned()),
            );
        }
    }
    packages
}

fn dockerfile() -> Vec<Instruction> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    final_stage(&text)
}

#[test]
fn the_image_has_debians_python3_with_venv_and_bubblewrap() {
    let stage = dockerfile();
    assert!(
        stage[0].args.contains("debian"),
        "the final stage is Debian, whose python3 and bwrap the sandbox expects: {:?}",
        stage[0]
    );
    let installed = apt_installed(&stage);
    for package in ["python3", "python3-venv", "bubblewrap"] {
        assert!(
            installed.iter().any(|p| p == package),
            "the final stage installs {package} with apt-get (installed: {installed:?})"
        );
    }
}

#[test]
fn the_image_runs_as_an_unprivileged_user_with_a_health_check() {
    let stage = dockerfile();
    let user = stage
        .iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .expect("the final stage sets a USER");
    let name = user.args.split(':').next().unwrap_or_default();
    assert!(
        !["root", "0", ""].contains(&name),
        "the image runs as a non-root user, not {name:?}"
    );
    let health = stage
        .iter()
        .find(|i| i.keyword == "HEALTHCHECK")
        .expect("the final stage has a HEALTHCHECK");
    assert!(
        health.args.contains("CMD") && health.args.contains("/health"),
        "the health check asks /health: {}",
        health.args
    );
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose file");
    let mut doc: Value = serde_yaml_ng::from_str(&text).expect("docker-compose.yml is YAML");
    doc.apply_merge().expect("merge keys resolve");
    doc
}

/// Services that run the Backforge image (`build: .`), by name.
fn backforge_services(doc: &Value) -> Vec<(String, Value)> {
    doc["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .filter(|(_, s)| s.get("build").is_some())
        .map(|(name, s)| (name.as_str().expect("name").to_owned(), s.clone()))
        .collect()
}

fn env<'a>(service: &'a Value, key: &str) -> Option<&'a str> {
    service["environment"].get(key).and_then(Value::as_str)
}

#[test]
fn the_split_profile_runs_every_part_with_what_it_needs() {
    let doc = compose();
    let services = backforge_services(&doc);
    let split: Vec<&(String, Value)> = services
        .iter()
        .filter(|(_, s)| {
            s["profiles"]
                .as_sequence()
                .is_some_and(|p| p.iter().any(|p| p.as_str() == Some("split")))
        })
        .collect();
    for part in ["command-api", "query-api", "projector", "worker"] {
        let (_, service) = split
            .iter()
            .find(|(name, _)| name == part)
            .unwrap_or_else(|| panic!("the split profile has a `{part}` service"));
        assert_eq!(
            service["command"][0].as_str(),
            Some(part),
            "`{part}` runs `backforge {part}`"
        );
        assert!(
            service["depends_on"].get("migrate").is_some(),
            "`{part}` starts after the migrations"
        );
        assert!(
            env(service, "BACKFORGE_ADDR").is_some(),
            "`{part}` listens (health and metrics at least)"
        );
    }
    for part in ["projector", "worker"] {
        let (_, service) = split.iter().find(|(name, _)| name == part).unwrap();
        assert!(
            service["depends_on"].get("nats").is_some(),
            "`{part}` needs NATS"
        );
    }
}

#[test]
fn every_service_has_its_settings_and_no_default_jwt_secret() {
    let doc = compose();
    let services = backforge_services(&doc);
    assert!(
        services.len() >= 6,
        "migrate, backforge and the split parts"
    );
    for (name, service) in &services {
        for key in ["DATABASE_URL", "NATS_URL", "BACKFORGE_NATS_PREFIX"] {
            assert!(env(service, key).is_some(), "`{name}` sets {key}");
        }
        let secret = env(service, "JWT_SECRET")
            .unwrap_or_else(|| panic!("`{name}` passes JWT_SECRET through"));
        // `${JWT_SECRET:?message}` refuses to start without it; `:-` or `-` would be a default.
        assert!(
            secret.starts_with("${JWT_SECRET:?") && secret.ends_with('}'),
            "`{name}` takes JWT_SECRET from the environment with no default: {secret}"
        );
    }
}

#[test]
fn the_services_that_host_the_sandbox_have_its_security_options_and_no_more() {
    let doc = compose();
    let services = backforge_services(&doc);
    let option = |service: &Value, wanted: &str| {
        service["security_opt"]
            .as_sequence()
            .is_some_and(|o| o.iter().any(|o| o.as_str() == Some(wanted)))
    };
    for (name, service) in &services {
        let hosts = ["backforge", "command-api", "worker"].contains(&name.as_str());
        if !hosts {
            assert!(
                service.get("security_opt").is_none() && service.get("user").is_none(),
                "`{name}` runs no untrusted code: Docker's defaults and the image's user"
            );
            continue;
        }
        for wanted in [
            "no-new-privileges:true",
            "seccomp=unconfined",
            "apparmor=unconfined",
            "systempaths=unconfined",
        ] {
            assert!(option(service, wanted), "`{name}` sets {wanted}");
        }
        assert_eq!(
            service["cap_drop"].as_sequence().map(Vec::as_slice),
            Some(&[Value::from("ALL")][..]),
            "`{name}` drops every capability"
        );
        let mut added: Vec<&str> = service["cap_add"]
            .as_sequence()
            .expect("cap_add")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        added.sort_unstable();
        assert_eq!(
            added,
            ["DAC_OVERRIDE", "KILL", "SETGID", "SETUID"],
            "`{name}` keeps only what the sandbox uses"
        );
    }
}
