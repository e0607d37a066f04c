//! What makes a generated backend CI- and deploy-ready: the hash-pinned requirements, the lint and
//! type-check configuration, the CI workflow, the image and the compose file.

use super::{Files, section};

/// The app's runtime requirements: every one pinned with its hashes (pip-tools style), direct and
/// transitive, so `pip install --require-hashes` installs exactly these files, also offline from a
/// wheel cache. Checked in, never resolved at generation time (generation is pure); the tests
/// below keep the lock complete and consistent.
pub const REQUIREMENTS: &str = include_str!("templates/requirements.txt");
/// The test, lint and type-check tools (pytest, ruff, mypy), pinned and hashed the same way and
/// constrained by [`REQUIREMENTS`].
pub const REQUIREMENTS_DEV: &str = include_str!("templates/requirements-dev.txt");

/// Adds the files of this module to `out`; with custom functions, ruff and mypy leave their
/// package (`app/functions/`, the authors' own code) alone.
pub(super) fn add(out: &mut Files, functions: bool) {
    out.add("requirements.txt", REQUIREMENTS);
    out.add("requirements-dev.txt", REQUIREMENTS_DEV);
    out.add("requirements.in", include_str!("templates/requirements.in"));
    out.add(
        "requirements-dev.in",
        include_str!("templates/requirements-dev.in"),
    );
    out.add(
        "ruff.toml",
        &section(include_str!("templates/ruff.toml"), "functions", functions),
    );
    let mypy = section(include_str!("templates/mypy.ini"), "functions", functions);
    out.add("mypy.ini", &section(&mypy, "nofunctions", !functions));
    out.add(".github/workflows/ci.yml", include_str!("templates/ci.yml"));
    out.add("Dockerfile", include_str!("templates/Dockerfile"));
    out.add("compose.yaml", include_str!("templates/compose.yaml"));
    out.add(".dockerignore", include_str!("templates/dockerignore"));
    out.add(".gitignore", include_str!("templates/gitignore"));
}

/// A lock's requirements: (normalised name, version, hashes), in file order.
#[cfg(test)]
fn locked(lock: &str) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
    for line in lock.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(hash) = trimmed.strip_prefix("--hash=sha256:") {
            let hash = hash.trim_end_matches(['\\', ' ']);
            let last = out.last_mut().expect("a hash follows a requirement");
            last.2.push(hash.to_owned());
            continue;
        }
        let spec = trimmed.trim_end_matches(['\\', ' ']);
        let (name, version) = spec
            .split_once("==")
            .unwrap_or_else(|| panic!("{spec} is not pinned with =="));
        out.push((
            name.to_lowercase().replace('_', "-"),
            version.to_owned(),
            Vec::new(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn direct(input: &str) -> Vec<(String, String)> {
        input
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('-'))
            .map(|l| {
                let (name, version) = l.split_once("==").expect("pinned");
                let name = name.split('[').next().unwrap_or(name);
                (name.to_lowercase().replace('_', "-"), version.to_owned())
            })
            .collect()
    }

    #[test]
    fn every_locked_requirement_is_pinned_with_sha256_hashes_once() {
        for lock in [REQUIREMENTS, REQUIREMENTS_DEV] {
            let reqs = locked(lock);
            assert!(reqs.len() > 10, "{reqs:?}");
            let mut seen = BTreeMap::new();
            for (name, version, hashes) in &reqs {
                assert!(!hashes.is_empty(), "{name}=={version} has no hash");
                for hash in hashes {
                    assert!(
                        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                        "{name}: {hash}"
                    );
                }
                assert!(seen.insert(name, version).is_none(), "{name} twice");
            }
            assert!(
                !lock.contains("--index-url") && !lock.contains("--find-links"),
                "the lock names no index: installs choose theirs"
            );
        }
    }

    #[test]
    fn the_locks_hold_their_inputs_and_agree_with_each_other() {
        let runtime: BTreeMap<_, _> = locked(REQUIREMENTS)
            .into_iter()
            .map(|(n, v, h)| (n, (v, h)))
            .collect();
        let dev: BTreeMap<_, _> = locked(REQUIREMENTS_DEV)
            .into_iter()
            .map(|(n, v, h)| (n, (v, h)))
            .collect();
        for (name, version) in direct(include_str!("templates/requirements.in")) {
            assert_eq!(runtime.get(&name).map(|e| &e.0), Some(&version), "{name}");
        }
        for (name, version) in direct(include_str!("templates/requirements-dev.in")) {
            assert_eq!(dev.get(&name).map(|e| &e.0), Some(&version), "{name}");
        }
        for tool in ["pytest", "ruff", "mypy"] {
            assert!(!runtime.contains_key(tool), "{tool} is not a runtime need");
            assert!(dev.contains_key(tool), "{tool} is in the dev lock");
        }
        // Both are installed together: a package in both must be the same files.
        for (name, entry) in &dev {
            if let Some(runtime_entry) = runtime.get(name) {
                assert_eq!(entry, runtime_entry, "{name} differs between the locks");
            }
        }
    }

    fn dockerfile() -> &'static str {
        include_str!("templates/Dockerfile")
    }

    fn compose() -> &'static str {
        include_str!("templates/compose.yaml")
    }

    /// Instructions of the Dockerfile, continuation lines joined, comments dropped.
    fn instructions(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
                continue;
            }
            current.push_str(trimmed.trim_end_matches('\\').trim_end());
            current.push(' ');
            if !trimmed.ends_with('\\') {
                out.push(current.trim().to_owned());
                current.clear();
            }
        }
        out
    }

    #[test]
    fn the_image_is_multi_stage_runs_as_a_user_checks_its_health_and_never_migrates() {
        let steps = instructions(dockerfile());
        let froms: Vec<&String> = steps.iter().filter(|s| s.starts_with("FROM ")).collect();
        assert!(froms.len() >= 2, "multi-stage: {froms:?}");
        let last_from = steps.iter().rposition(|s| s.starts_with("FROM ")).unwrap();
        let runtime = &steps[last_from..];
        assert!(
            runtime
                .iter()
                .any(|s| s.starts_with("COPY --from=build /opt/venv")),
            "the final stage takes the built virtualenv: {runtime:?}"
        );
        let user = runtime
            .iter()
            .rfind(|s| s.starts_with("USER "))
            .expect("a USER in the final stage");
        let who = user.trim_start_matches("USER ").trim();
        assert!(
            who != "root" && who != "0" && !who.starts_with("0:"),
            "{user}"
        );
        let user_at = runtime.iter().position(|s| s == user).unwrap();
        let cmd_at = runtime
            .iter()
            .position(|s| s.starts_with("CMD "))
            .expect("a CMD");
        assert!(user_at < cmd_at, "the CMD runs as the user");
        let health = runtime
            .iter()
            .find(|s| s.starts_with("HEALTHCHECK "))
            .expect("a HEALTHCHECK");
        assert!(
            health.contains("/health") && health.contains("CMD"),
            "{health}"
        );
        let cmd = &runtime[cmd_at];
        assert!(cmd.contains("uvicorn") && !cmd.contains("alembic") && !cmd.contains("migrate"));
        assert!(
            runtime.iter().all(|s| !s.starts_with("ENTRYPOINT")),
            "no entrypoint that could migrate first"
        );
        assert!(
            steps
                .iter()
                .any(|s| s.contains("pip install --require-hashes")),
            "hash-checked install"
        );
    }

    #[test]
    fn neither_the_image_nor_the_compose_file_holds_a_secret() {
        for (name, text) in [("Dockerfile", dockerfile()), ("compose.yaml", compose())] {
            for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
                let lower = line.to_lowercase();
                for key in ["secret", "password", "token"] {
                    if lower.contains(key) {
                        let value = line.split_once([':', '=']).map_or("", |(_, v)| v).trim();
                        assert!(
                            value.is_empty() || value.contains("${"),
                            "{name} sets {key} to a literal: {line}"
                        );
                    }
                }
            }
            assert!(
                !text.contains("ARG "),
                "{name}: build args end up in the image's history"
            );
            assert!(
                !text.to_lowercase().contains("app_env=development"),
                "{name}"
            );
        }
    }

    /// The block of `service` in the compose file (its indented lines).
    fn service(name: &str) -> String {
        let text = compose();
        let head = format!("\n  {name}:\n");
        let start = text
            .find(&head)
            .unwrap_or_else(|| panic!("no service {name}"))
            + head.len();
        text[start..]
            .lines()
            .take_while(|l| l.is_empty() || l.starts_with("    "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn compose_runs_postgresql_then_the_migrations_once_then_the_app() {
        let db = service("db");
        assert!(db.contains("image: postgres:"), "{db}");
        assert!(
            db.contains("healthcheck:") && db.contains("pg_isready"),
            "{db}"
        );
        let migrate = service("migrate");
        assert!(
            migrate.contains(r#"command: ["python", "-m", "app.cli", "migrate"]"#),
            "{migrate}"
        );
        assert!(migrate.contains("condition: service_healthy"), "{migrate}");
        assert!(migrate.contains(r#"restart: "no""#), "{migrate}");
        let app = service("app");
        assert!(
            app.contains("condition: service_completed_successfully"),
            "the app waits for the migrations: {app}"
        );
        assert!(
            !app.contains("command:"),
            "the image's CMD serves without migrating"
        );
        for block in [&migrate, &app] {
            assert!(
                block.contains("DATABASE_URL: postgresql://") && block.contains("@db:5432/"),
                "PostgreSQL by default: {block}"
            );
        }
    }

    #[test]
    fn ci_and_the_readme_run_the_checks_with_the_shipped_configuration() {
        let ruff = include_str!("templates/ruff.toml");
        for rule in ["\"E\"", "\"F\"", "\"W\"", "\"I\"", "\"UP\"", "\"B\""] {
            assert!(ruff.contains(rule), "ruff.toml selects {rule}");
        }
        assert!(include_str!("templates/mypy.ini").contains("strict = True"));
        let ci = include_str!("templates/ci.yml");
        for step in [
            "ruff check .",
            "ruff format --check .",
            "mypy .",
            "pytest",
            "--require-hashes",
        ] {
            assert!(ci.contains(step), "the workflow runs {step}");
        }
    }
}
