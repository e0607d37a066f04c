//! Typed settings, loaded once from the environment; secrets are wrapped so they never print.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, bail};
use domain::limits::Limits;

/// A value that must never reach a log line.
#[derive(Clone)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// The development secret, used with a warning when `JWT_SECRET` is unset outside production.
const DEV_JWT_SECRET: &str = "backforge-development-secret-do-not-use-in-production";

#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    pub database_url: String,
    pub nats_url: String,
    pub nats_prefix: String,
    pub jwt_secret: Secret<String>,
    /// Listen address; `None` means the process's own default (8080, or 8081 for a lone query API).
    pub addr: Option<String>,
    pub min_position_wait: Duration,
    pub limits: Limits,
    pub body_limit_bytes: usize,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub pool_size: usize,
    pub login_per_ip_per_minute: u32,
    pub login_per_account_per_minute: u32,
    /// How many password hashes may run at once on the blocking pool.
    pub hash_concurrency: usize,
    pub idempotency_ttl: Duration,
}

impl Settings {
    /// Reads the environment (`DATABASE_URL`, `NATS_URL`, `JWT_SECRET` and `BACKFORGE_*`).
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Same as [`Settings::from_env`] with an explicit lookup, for tests.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let environment = match get("BACKFORGE_ENV").as_deref() {
            None | Some("development") | Some("dev") | Some("test") => Environment::Development,
            Some("production") | Some("prod") => Environment::Production,
            Some(other) => {
                bail!("BACKFORGE_ENV must be `development` or `production`, not `{other}`")
            }
        };
        let jwt_secret = match get("JWT_SECRET") {
            Some(secret) => {
                if environment == Environment::Production
                    && (secret.len() < 32 || secret == DEV_JWT_SECRET)
                {
                    bail!(
                        "JWT_SECRET must be at least 32 bytes (and not the development secret) in production"
                    );
                }
                secret
            }
            None if environment == Environment::Production => {
                bail!("JWT_SECRET is required when BACKFORGE_ENV=production")
            }
            None => {
                tracing::warn!(
                    "JWT_SECRET is not set: using the development secret; never do this in production"
                );
                DEV_JWT_SECRET.to_owned()
            }
        };
        let num = |key: &str, default: u64| -> anyhow::Result<u64> {
            match get(key) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .with_context(|| format!("{key} must be a whole number, not `{v}`")),
            }
        };
        let defaults = Limits::default();
        let limits = Limits {
            name_max_chars: num("BACKFORGE_NAME_MAX_CHARS", defaults.name_max_chars as u64)?
                as usize,
            description_max_chars: num(
                "BACKFORGE_DESCRIPTION_MAX_CHARS",
                defaults.description_max_chars as u64,
            )? as usize,
            features_per_project: num(
                "BACKFORGE_FEATURES_PER_PROJECT",
                defaults.features_per_project as u64,
            )? as usize,
            fields_per_entity: num(
                "BACKFORGE_FIELDS_PER_ENTITY",
                defaults.fields_per_entity as u64,
            )? as usize,
            password_min_chars: num(
                "BACKFORGE_PASSWORD_MIN_CHARS",
                defaults.password_min_chars as u64,
            )? as usize,
            password_max_chars: num(
                "BACKFORGE_PASSWORD_MAX_CHARS",
                defaults.password_max_chars as u64,
            )? as usize,
            email_max_chars: num("BACKFORGE_EMAIL_MAX_CHARS", defaults.email_max_chars as u64)?
                as usize,
        };
        let prefix = get("BACKFORGE_NATS_PREFIX").unwrap_or_else(|| "backforge".to_owned());
        if prefix.is_empty()
            || prefix.len() > 64
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            bail!("BACKFORGE_NATS_PREFIX must be 1-64 letters, digits, `_` or `-`");
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Ok(Self {
            environment,
            database_url: get("DATABASE_URL")
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/backforge".to_owned()),
            nats_url: get("NATS_URL").unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned()),
            nats_prefix: prefix,
            jwt_secret: Secret::new(jwt_secret),
            addr: get("BACKFORGE_ADDR"),
            min_position_wait: Duration::from_millis(num("BACKFORGE_MIN_POSITION_WAIT_MS", 5000)?),
            limits,
            body_limit_bytes: num("BACKFORGE_BODY_LIMIT_BYTES", 1024 * 1024)? as usize,
            access_token_ttl: Duration::from_secs(num("BACKFORGE_ACCESS_TOKEN_TTL_SECS", 15 * 60)?),
            refresh_token_ttl: Duration::from_secs(num(
                "BACKFORGE_REFRESH_TOKEN_TTL_SECS",
                30 * 24 * 3600,
            )?),
            jwt_issuer: get("BACKFORGE_JWT_ISSUER").unwrap_or_else(|| "backforge".to_owned()),
            jwt_audience: get("BACKFORGE_JWT_AUDIENCE")
                .unwrap_or_else(|| "backforge-api".to_owned()),
            pool_size: num("BACKFORGE_DB_POOL_SIZE", (cores * 4).max(8) as u64)? as usize,
            login_per_ip_per_minute: num("BACKFORGE_LOGIN_PER_IP_PER_MINUTE", 30)? as u32,
            login_per_account_per_minute: num("BACKFORGE_LOGIN_PER_ACCOUNT_PER_MINUTE", 10)? as u32,
            hash_concurrency: num("BACKFORGE_HASH_CONCURRENCY", cores as u64)?.max(1) as usize,
            idempotency_ttl: Duration::from_secs(num("BACKFORGE_IDEMPOTENCY_TTL_SECS", 24 * 3600)?),
        })
    }

    /// The listen address, or the given default for this kind of process.
    pub fn addr_or(&self, default: &str) -> String {
        self.addr.clone().unwrap_or_else(|| default.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_design_brief() {
        let s = load(&[]).unwrap();
        assert_eq!(
            s.database_url,
            "postgres://postgres@127.0.0.1:5432/backforge"
        );
        assert_eq!(s.nats_prefix, "backforge");
        assert_eq!(s.min_position_wait, Duration::from_millis(5000));
        assert_eq!(s.access_token_ttl, Duration::from_secs(900));
        assert_eq!(s.body_limit_bytes, 1024 * 1024);
        assert_eq!(s.environment, Environment::Development);
    }

    #[test]
    fn production_refuses_a_missing_short_or_development_secret() {
        assert!(load(&[("BACKFORGE_ENV", "production")]).is_err());
        assert!(load(&[("BACKFORGE_ENV", "production"), ("JWT_SECRET", "short")]).is_err());
        assert!(
            load(&[
                ("BACKFORGE_ENV", "production"),
                ("JWT_SECRET", DEV_JWT_SECRET)
            ])
            .is_err()
        );
        let ok = load(&[
            ("BACKFORGE_ENV", "production"),
            ("JWT_SECRET", &"k".repeat(32)),
        ]);
        assert!(ok.is_ok());
    }

    #[test]
    fn secrets_never_print() {
        let s = load(&[("JWT_SECRET", "super-secret-value-that-is-long-enough")]).unwrap();
        assert!(!format!("{s:?}").contains("super-secret"));
    }

    #[test]
    fn malformed_numbers_and_prefixes_are_refused_with_the_variable_named() {
        let err = load(&[("BACKFORGE_MIN_POSITION_WAIT_MS", "soon")]).unwrap_err();
        assert!(err.to_string().contains("BACKFORGE_MIN_POSITION_WAIT_MS"));
        assert!(load(&[("BACKFORGE_NATS_PREFIX", "a.b")]).is_err());
    }
}
