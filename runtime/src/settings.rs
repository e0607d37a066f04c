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

/// Secrets that were ever published with Backforge (in the code, `docker-compose.yml`,
/// `.env.example` or the README): production refuses them whatever their length.
const PUBLISHED_SECRETS: &[&str] = &[
    DEV_JWT_SECRET,
    "compose-development-secret-change-me-0123456789",
    "change-me-to-32-or-more-random-bytes",
    "test-secret-that-is-long-enough-for-hs256-0123456789",
    "bench-only-secret-0123456789abcdef0123456789",
];

/// Words that mark a value as a placeholder someone forgot to replace (compared on the lower-case
/// letters and digits of the value).
const PLACEHOLDER_WORDS: &[&str] = &[
    "changeme",
    "changethis",
    "replaceme",
    "placeholder",
    "yoursecret",
    "mysecret",
    "secretkey",
    "donotuse",
    "notasecret",
    "insecure",
    "development",
    "example",
];

/// Why `secret` must not sign tokens in production, if it must not.
fn weak_secret(name: &str, secret: &str) -> Option<String> {
    if secret.len() < 32 {
        return Some(format!("{name} must be at least 32 bytes in production"));
    }
    let letters: String = secret
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if PUBLISHED_SECRETS.contains(&secret) || PLACEHOLDER_WORDS.iter().any(|w| letters.contains(w))
    {
        return Some(format!(
            "{name} is a published or placeholder value; set a random one (e.g. `openssl rand -base64 48`)"
        ));
    }
    let mut distinct: Vec<u8> = secret.bytes().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 8 {
        return Some(format!(
            "{name} repeats too few characters to be a random secret"
        ));
    }
    None
}

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
    /// Wrong guesses per (account, client IP) before that pair must wait: strangers cannot lock
    /// the owner out.
    pub login_per_account_per_minute: u32,
    /// Registrations per client IP (also the burst).
    pub register_per_ip_per_minute: u32,
    /// Sign-in password checks that may run at once; each hashing queue lets 64 more wait.
    pub hash_login_slots: usize,
    /// Registration and password-change hashes that may run at once.
    pub hash_other_slots: usize,
    /// Bearer token required by `/metrics`; unset in production means no `/metrics` on the main
    /// port.
    pub metrics_token: Option<Secret<String>>,
    /// A listener of its own for `/metrics` (and `/health`); then the main port serves none.
    pub metrics_addr: Option<String>,
    pub idempotency_ttl: Duration,
    /// The largest event the store accepts, measured as its CloudEvent (`BACKFORGE_MAX_EVENT_BYTES`).
    pub max_event_bytes: usize,
    /// The bytes of folded project states the command side keeps (`BACKFORGE_STATE_CACHE_BYTES`).
    pub state_cache_bytes: usize,
    /// The bytes of project feature lists the query side keeps, as read or as the projector
    /// carried them forward (`BACKFORGE_FEATURE_LIST_CACHE_BYTES`; 0 turns the cache off).
    pub feature_list_cache_bytes: usize,
    /// How long a security version read for a request may be reused
    /// (`BACKFORGE_SV_CACHE_MAX_AGE_MS`; 0 turns the cache off).
    pub sv_cache_max_age: Duration,
    /// Whether the command side batches concurrent commits into one transaction
    /// (`BACKFORGE_GROUP_COMMIT`, `on` by default; `off` commits each command on its own).
    pub group_commit: bool,
    /// Where and how untrusted code runs (`BACKFORGE_SANDBOX_*`).
    pub sandbox: SandboxSettings,
    /// A generation still `requested` this long after its request is failed by the sweeper
    /// (`BACKFORGE_GENERATION_QUEUE_TIMEOUT`: seconds, or a number with `ms`, `s`, `m` or `h`).
    pub generation_queue_timeout: Duration,
    /// The default AI model `BACKFORGE_AI_PROVIDER`, `_BASE_URL`, `_MODEL` (and `_API_KEY`,
    /// `_API_VERSION`, `_INPUT_USD_PER_MTOK`, `_OUTPUT_USD_PER_MTOK`, `_MAX_OUTPUT_TOKENS`)
    /// describe, recorded in the catalog at start. It never holds the key: only the name of the
    /// variable that does.
    pub ai_default_model: Option<domain::ai::ModelConfig>,
    /// The monthly AI budget in USD of every user without one of their own
    /// (`BACKFORGE_AI_MONTHLY_BUDGET_USD`, an exact decimal; none by default).
    pub ai_monthly_budget_usd: Option<rust_decimal::Decimal>,
    /// What loading found worth a warning (a development secret in use), for the log once it runs.
    pub warnings: Vec<String>,
}

/// The sandbox's settings: its interpreter, its pool and the limits of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSettings {
    /// Debian's interpreter by default, never the first `python3` on PATH.
    pub python: String,
    /// Slot n runs as uid and gid `uid_base + n`.
    pub uid_base: u32,
    pub slots: usize,
    /// Runs that may wait for a slot; beyond it, 503 with `Retry-After`.
    pub queue: usize,
    pub wall: Duration,
    pub cpu_seconds: u64,
    pub memory_bytes: u64,
    pub processes: u64,
    pub tmp_bytes: u64,
    pub file_bytes: u64,
    /// Bytes kept of stdout and of stderr each.
    pub output_bytes: usize,
    /// `POST /ai/sandbox-execute` and `POST /functions/{function_id}/test` calls per user and
    /// minute, together.
    pub executions_per_minute: u32,
    /// The worker's `verify` runs: a pool and a limit profile of their own
    /// (`BACKFORGE_SANDBOX_VERIFY_*`), so function runs are never starved by a test suite.
    pub verify: VerifySandboxSettings,
}

/// The pool and limits of `verify` runs (a generated backend's checks and test suite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySandboxSettings {
    /// Slot n runs as uid and gid `uid_base + n`; by default the uids right after the function
    /// pool's, so the two ranges never overlap.
    pub uid_base: u32,
    pub slots: usize,
    /// Runs that may wait for a slot (each waits within its job's deadline).
    pub queue: usize,
    /// Wall clock of one run; `None`: what is left of the job's deadline.
    pub wall: Option<Duration>,
    pub cpu_seconds: u64,
    pub memory_bytes: u64,
    pub processes: u64,
    pub tmp_bytes: u64,
    pub file_bytes: u64,
    /// Bytes kept of stdout and of stderr each.
    pub output_bytes: usize,
}

impl Settings {
    /// Logs what loading the settings warned about; call once telemetry is set up.
    pub fn log_warnings(&self) {
        for warning in &self.warnings {
            tracing::warn!("{warning}");
        }
    }

    /// Reads the environment (`DATABASE_URL`, `NATS_URL`, `JWT_SECRET` and `BACKFORGE_*`).
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Same as [`Settings::from_env`] with an explicit lookup, for tests.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        // Case-insensitive: `Production` must not quietly mean development.
        let env_name = get("BACKFORGE_ENV").map(|v| v.trim().to_ascii_lowercase());
        let environment = match env_name.as_deref() {
            None | Some("") | Some("development") | Some("dev") | Some("test") => {
                Environment::Development
            }
            Some("production") | Some("prod") => Environment::Production,
            Some(other) => {
                bail!("BACKFORGE_ENV must be `development` or `production`, not `{other}`")
            }
        };
        // Settings load before logging is set up: warnings are kept and logged by `log_warnings`.
        let mut warnings = Vec::new();
        // An empty value (`JWT_SECRET=` in a compose file) counts as unset.
        let jwt_secret = match get("JWT_SECRET").filter(|s| !s.is_empty()) {
            Some(secret) => {
                if environment == Environment::Production {
                    if let Some(reason) = weak_secret("JWT_SECRET", &secret) {
                        bail!("{reason}");
                    }
                }
                secret
            }
            None if environment == Environment::Production => {
                bail!("JWT_SECRET is required when BACKFORGE_ENV=production")
            }
            None => {
                warnings.push(
                    "JWT_SECRET is not set: using the development secret; never do this in production"
                        .to_owned(),
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
            text_max_length: num("BACKFORGE_TEXT_MAX_LENGTH", defaults.text_max_length as u64)?
                as usize,
            default_max_bytes: num(
                "BACKFORGE_DEFAULT_MAX_BYTES",
                defaults.default_max_bytes as u64,
            )? as usize,
            project_max_bytes: num(
                "BACKFORGE_PROJECT_MAX_BYTES",
                defaults.project_max_bytes as u64,
            )? as usize,
            // The function limits are the contract's (50 functions, 64 KiB of code, 20 examples).
            ..defaults
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
        let metrics_token = match get("BACKFORGE_METRICS_TOKEN").filter(|t| !t.is_empty()) {
            Some(token) => {
                if environment == Environment::Production {
                    if let Some(reason) = weak_secret("BACKFORGE_METRICS_TOKEN", &token) {
                        bail!("{reason}");
                    }
                }
                Some(Secret::new(token))
            }
            None => None,
        };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let mut settings = Self {
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
            register_per_ip_per_minute: num("BACKFORGE_REGISTER_PER_IP_PER_MINUTE", 30)? as u32,
            hash_login_slots: num("BACKFORGE_HASH_LOGIN_SLOTS", cores as u64)?.max(1) as usize,
            hash_other_slots: num("BACKFORGE_HASH_OTHER_SLOTS", 1)?.max(1) as usize,
            metrics_token,
            metrics_addr: get("BACKFORGE_METRICS_ADDR").filter(|a| !a.trim().is_empty()),
            idempotency_ttl: Duration::from_secs(num("BACKFORGE_IDEMPOTENCY_TTL_SECS", 24 * 3600)?),
            max_event_bytes: num(
                "BACKFORGE_MAX_EVENT_BYTES",
                event_store::DEFAULT_MAX_EVENT_BYTES as u64,
            )? as usize,
            state_cache_bytes: num("BACKFORGE_STATE_CACHE_BYTES", 64 * 1024 * 1024)? as usize,
            feature_list_cache_bytes: num("BACKFORGE_FEATURE_LIST_CACHE_BYTES", 64 * 1024 * 1024)?
                as usize,
            sv_cache_max_age: Duration::from_millis(num("BACKFORGE_SV_CACHE_MAX_AGE_MS", 1000)?),
            sandbox: SandboxSettings {
                python: get("BACKFORGE_SANDBOX_PYTHON")
                    .filter(|p| !p.trim().is_empty())
                    .unwrap_or_else(|| "/usr/bin/python3".to_owned()),
                uid_base: num("BACKFORGE_SANDBOX_UID_BASE", 61000)? as u32,
                slots: num("BACKFORGE_SANDBOX_SLOTS", cores as u64)?.max(1) as usize,
                queue: num("BACKFORGE_SANDBOX_QUEUE", (cores * 4) as u64)? as usize,
                wall: Duration::from_millis(num("BACKFORGE_SANDBOX_WALL_MS", 5000)?.max(1)),
                cpu_seconds: num("BACKFORGE_SANDBOX_CPU_SECS", 2)?.max(1),
                memory_bytes: num("BACKFORGE_SANDBOX_MEMORY_BYTES", 256 * 1024 * 1024)?,
                processes: num("BACKFORGE_SANDBOX_PROCESSES", 16)?.max(1),
                tmp_bytes: num("BACKFORGE_SANDBOX_TMP_BYTES", 16 * 1024 * 1024)?,
                file_bytes: num("BACKFORGE_SANDBOX_FILE_BYTES", 1024 * 1024)?,
                output_bytes: num("BACKFORGE_SANDBOX_OUTPUT_BYTES", 64 * 1024)? as usize,
                executions_per_minute: num("BACKFORGE_SANDBOX_EXECUTIONS_PER_MINUTE", 60)? as u32,
                verify: VerifySandboxSettings {
                    uid_base: num(
                        "BACKFORGE_SANDBOX_VERIFY_UID_BASE",
                        num("BACKFORGE_SANDBOX_UID_BASE", 61000)?
                            + num("BACKFORGE_SANDBOX_SLOTS", cores as u64)?.max(1),
                    )? as u32,
                    slots: num("BACKFORGE_SANDBOX_VERIFY_SLOTS", 1)?.max(1) as usize,
                    queue: num("BACKFORGE_SANDBOX_VERIFY_QUEUE", 64)? as usize,
                    wall: match get("BACKFORGE_SANDBOX_VERIFY_WALL_MS").filter(|v| !v.trim().is_empty()) {
                        None => None,
                        Some(_) => Some(Duration::from_millis(
                            num("BACKFORGE_SANDBOX_VERIFY_WALL_MS", 0)?.max(1),
                        )),
                    },
                    cpu_seconds: num("BACKFORGE_SANDBOX_VERIFY_CPU_SECS", 600)?.max(1),
                    memory_bytes: num("BACKFORGE_SANDBOX_VERIFY_MEMORY_BYTES", 4 << 30)?,
                    processes: num("BACKFORGE_SANDBOX_VERIFY_PROCESSES", 128)?.max(1),
                    tmp_bytes: num("BACKFORGE_SANDBOX_VERIFY_TMP_BYTES", 1 << 30)?,
                    file_bytes: num("BACKFORGE_SANDBOX_VERIFY_FILE_BYTES", 256 << 20)?,
                    output_bytes: num("BACKFORGE_SANDBOX_VERIFY_OUTPUT_BYTES", 1 << 20)? as usize,
                },
            },
            group_commit: match get("BACKFORGE_GROUP_COMMIT")
                .map(|v| v.trim().to_ascii_lowercase())
                .as_deref()
            {
                None | Some("") | Some("on") | Some("true") | Some("1") => true,
                Some("off") | Some("false") | Some("0") => false,
                Some(other) => bail!("BACKFORGE_GROUP_COMMIT must be `on` or `off`, not `{other}`"),
            },
            ai_default_model: ai_default_model(&get)?,
            ai_monthly_budget_usd: match get("BACKFORGE_AI_MONTHLY_BUDGET_USD")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
            {
                None => None,
                Some(v) => Some(domain::ai::budget::parse_budget(&v).map_err(|e| {
                    anyhow::anyhow!("BACKFORGE_AI_MONTHLY_BUDGET_USD is invalid: {e}")
                })?),
            },
            warnings,
            generation_queue_timeout: match get("BACKFORGE_GENERATION_QUEUE_TIMEOUT") {
                None => Duration::from_secs(3600),
                Some(v) => parse_duration(&v).with_context(|| {
                    format!(
                        "BACKFORGE_GENERATION_QUEUE_TIMEOUT must be seconds or a number with ms, s, m \
                         or h (`90s`, `1h`), not `{v}`"
                    )
                })?,
            },
        };
        // Each slot is a uid of its own: a verify slot sharing a function slot's uid would share
        // its RLIMIT_NPROC, and a function run could starve a test suite (or the reverse).
        let sandbox = &settings.sandbox;
        let functions =
            u64::from(sandbox.uid_base)..u64::from(sandbox.uid_base) + sandbox.slots as u64;
        let verify = u64::from(sandbox.verify.uid_base)
            ..u64::from(sandbox.verify.uid_base) + sandbox.verify.slots as u64;
        if functions.start < verify.end && verify.start < functions.end {
            let warning = format!(
                "the verify pool's uids ({}..{}, BACKFORGE_SANDBOX_VERIFY_UID_BASE) overlap the \
                 function pool's ({}..{}): the two pools share RLIMIT_NPROC; give them uids of \
                 their own",
                verify.start, verify.end, functions.start, functions.end
            );
            settings.warnings.push(warning);
        }
        Ok(settings)
    }

    /// The listen address, or the given default for this kind of process.
    pub fn addr_or(&self, default: &str) -> String {
        self.addr.clone().unwrap_or_else(|| default.to_owned())
    }
}

/// A duration setting: whole seconds (`3600`), or a whole number with `ms`, `s`, `m` or `h`.
/// The default model of the `BACKFORGE_AI_*` variables: none unless one of `BACKFORGE_AI_PROVIDER`,
/// `BACKFORGE_AI_BASE_URL` and `BACKFORGE_AI_MODEL` is set, and then the URL and the model are
/// required. The provider defaults to `openai`, prices to 0 and the answer cap to 4096 tokens;
/// a non-empty `BACKFORGE_AI_API_KEY` makes it the model's key variable (read at call time,
/// never here). Checked by the catalog's own rules, so a bad value stops the start.
fn ai_default_model(
    get: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<domain::ai::ModelConfig>> {
    use domain::ai::config::{BOOTSTRAP_KEY_ENV, Provider};
    let set = |key: &str| {
        get(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let (provider, base_url, model) = (
        set("BACKFORGE_AI_PROVIDER"),
        set("BACKFORGE_AI_BASE_URL"),
        set("BACKFORGE_AI_MODEL"),
    );
    if provider.is_none() && base_url.is_none() && model.is_none() {
        return Ok(None);
    }
    let (Some(base_url), Some(model)) = (base_url, model) else {
        bail!(
            "BACKFORGE_AI_BASE_URL and BACKFORGE_AI_MODEL are both required once any \
             BACKFORGE_AI_PROVIDER, BACKFORGE_AI_BASE_URL or BACKFORGE_AI_MODEL is set"
        );
    };
    let provider = match provider.as_deref() {
        None | Some("openai") => Provider::Openai,
        Some("azure_openai") => Provider::AzureOpenai,
        Some("anthropic") => Provider::Anthropic,
        Some(other) => bail!(
            "BACKFORGE_AI_PROVIDER must be `openai`, `azure_openai` or `anthropic`, not `{}`",
            other.chars().take(40).collect::<String>()
        ),
    };
    // No price given: a free (local) model.
    let price = |key: &str| {
        let text = set(key).unwrap_or_else(|| "0".to_owned());
        domain::ai::money::parse_price(&text).with_context(|| key.to_owned())
    };
    let config = domain::ai::ModelConfig {
        provider,
        base_url,
        model,
        api_key_env: set(BOOTSTRAP_KEY_ENV).map(|_| BOOTSTRAP_KEY_ENV.to_owned()),
        api_version: set("BACKFORGE_AI_API_VERSION"),
        input_usd_per_mtok: price("BACKFORGE_AI_INPUT_USD_PER_MTOK")?,
        output_usd_per_mtok: price("BACKFORGE_AI_OUTPUT_USD_PER_MTOK")?,
        max_output_tokens: match set("BACKFORGE_AI_MAX_OUTPUT_TOKENS") {
            None => 4096,
            Some(v) => v.parse().with_context(|| {
                format!("BACKFORGE_AI_MAX_OUTPUT_TOKENS must be a whole number, not `{v}`")
            })?,
        },
        temperature: None,
        timeout_ms: None,
    };
    if let Some(problem) = domain::ai::models::config_problems(&config).first() {
        bail!(
            "the BACKFORGE_AI_* default model is invalid: {}",
            problem.to_string().replacen('/', "", 1)
        );
    }
    Ok(Some(config))
}

fn parse_duration(value: &str) -> anyhow::Result<Duration> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: u64 = number.parse().context("not a whole number")?;
    Ok(match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        other => bail!("unknown unit `{other}`"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_verify_pool_gets_the_uids_after_the_function_pools_and_an_overlap_is_warned_of() {
        let settings = Settings::from_lookup(|key| match key {
            "BACKFORGE_SANDBOX_UID_BASE" => Some("61000".into()),
            "BACKFORGE_SANDBOX_SLOTS" => Some("4".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(settings.sandbox.verify.uid_base, 61004);
        assert_eq!(settings.sandbox.verify.slots, 1);
        assert_eq!(settings.sandbox.verify.wall, None);
        assert_eq!(settings.sandbox.verify.cpu_seconds, 600);
        assert!(!settings.warnings.iter().any(|w| w.contains("overlap")));
        let overlapping = Settings::from_lookup(|key| match key {
            "BACKFORGE_SANDBOX_UID_BASE" => Some("61000".into()),
            "BACKFORGE_SANDBOX_SLOTS" => Some("4".into()),
            "BACKFORGE_SANDBOX_VERIFY_UID_BASE" => Some("61003".into()),
            _ => None,
        })
        .unwrap();
        assert!(
            overlapping.warnings.iter().any(|w| w.contains("overlap")),
            "{:?}",
            overlapping.warnings
        );
    }

    #[test]
    fn the_generation_queue_timeout_is_an_hour_unless_set_with_a_unit() {
        assert_eq!(
            load(&[]).unwrap().generation_queue_timeout,
            Duration::from_secs(3600)
        );
        for (value, expected) in [
            ("90", Duration::from_secs(90)),
            ("90s", Duration::from_secs(90)),
            ("1500ms", Duration::from_millis(1500)),
            ("15m", Duration::from_secs(900)),
            ("2h", Duration::from_secs(7200)),
        ] {
            let s = load(&[("BACKFORGE_GENERATION_QUEUE_TIMEOUT", value)]).unwrap();
            assert_eq!(s.generation_queue_timeout, expected, "{value}");
        }
        let err = load(&[("BACKFORGE_GENERATION_QUEUE_TIMEOUT", "soon")]).unwrap_err();
        assert!(format!("{err:#}").contains("BACKFORGE_GENERATION_QUEUE_TIMEOUT"));
    }

    fn load(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn the_monthly_ai_budget_is_none_by_default_and_an_exact_decimal_when_set() {
        assert_eq!(load(&[]).unwrap().ai_monthly_budget_usd, None);
        let s = load(&[("BACKFORGE_AI_MONTHLY_BUDGET_USD", "12.5")]).unwrap();
        assert_eq!(
            s.ai_monthly_budget_usd.map(|b| b.to_string()).as_deref(),
            Some("12.500000")
        );
        let err = load(&[("BACKFORGE_AI_MONTHLY_BUDGET_USD", "-3")]).unwrap_err();
        assert!(format!("{err:#}").contains("BACKFORGE_AI_MONTHLY_BUDGET_USD"));
    }

    #[test]
    fn no_ai_variable_means_no_default_model_and_a_partial_set_is_refused() {
        assert_eq!(load(&[]).unwrap().ai_default_model, None);
        let err = load(&[("BACKFORGE_AI_MODEL", "llama3.2")]).unwrap_err();
        assert!(format!("{err:#}").contains("BACKFORGE_AI_BASE_URL"));
        let err = load(&[
            ("BACKFORGE_AI_PROVIDER", "bard"),
            ("BACKFORGE_AI_BASE_URL", "http://localhost:11434/v1"),
            ("BACKFORGE_AI_MODEL", "llama3.2"),
        ])
        .unwrap_err();
        assert!(format!("{err:#}").contains("BACKFORGE_AI_PROVIDER"));
    }

    #[test]
    fn the_ai_variables_describe_a_model_whose_key_variable_is_named_never_read() {
        let s = load(&[
            ("BACKFORGE_AI_BASE_URL", "http://localhost:11434/v1"),
            ("BACKFORGE_AI_MODEL", "llama3.2"),
            ("BACKFORGE_AI_API_KEY", "sk-secret-value-123"),
            ("BACKFORGE_AI_INPUT_USD_PER_MTOK", "0.000150"),
        ])
        .unwrap();
        let model = s.ai_default_model.clone().unwrap();
        assert_eq!(model.provider.as_str(), "openai");
        assert_eq!(model.api_key_env.as_deref(), Some("BACKFORGE_AI_API_KEY"));
        assert_eq!(model.input_usd_per_mtok.to_string(), "0.00015");
        assert_eq!(model.output_usd_per_mtok.to_string(), "0");
        assert_eq!(model.max_output_tokens, 4096);
        assert!(!format!("{s:?}").contains("sk-secret-value-123"));
        let err = load(&[
            ("BACKFORGE_AI_PROVIDER", "azure_openai"),
            ("BACKFORGE_AI_BASE_URL", "https://r.openai.azure.com"),
            ("BACKFORGE_AI_MODEL", "gpt-4o"),
        ])
        .unwrap_err();
        assert!(format!("{err:#}").contains("api_version"), "{err:#}");
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
            ("JWT_SECRET", RANDOM_SECRET),
        ]);
        assert!(ok.is_ok());
    }

    /// 48 random bytes, base64: what `openssl rand -base64 48` prints.
    const RANDOM_SECRET: &str = "q3Vt9mXbZr1c0Hn7sPj2LwKd8yEaFgT4uQo6iN5vRhMzBxWcYeUlJkDpSfG0aI1t";

    #[test]
    fn production_refuses_every_published_or_placeholder_secret() {
        let refused = |secret: &str| {
            load(&[("BACKFORGE_ENV", "production"), ("JWT_SECRET", secret)])
                .expect_err(secret)
                .to_string()
        };
        for published in PUBLISHED_SECRETS {
            refused(published);
        }
        for placeholder in [
            "CHANGEME-CHANGEME-CHANGEME-CHANGEME-1234",
            "please-change-me-before-going-live-0123456789",
            "replace_me_with_a_real_secret_of_32_bytes",
            "your-secret-key-goes-here-0123456789abcdef",
        ] {
            assert!(refused(placeholder).contains("placeholder"));
        }
        assert!(refused(&"k".repeat(40)).contains("too few"));
        assert!(refused(&RANDOM_SECRET[..31]).contains("32 bytes"));
        // The same values are fine for development, which warns instead.
        assert!(load(&[("JWT_SECRET", PUBLISHED_SECRETS[1])]).is_ok());
    }

    #[test]
    fn the_environment_name_is_compared_case_insensitively() {
        for name in ["production", "Production", "PRODUCTION", " prod "] {
            let err = load(&[("BACKFORGE_ENV", name), ("JWT_SECRET", "short")]);
            assert!(err.is_err(), "{name} must be production");
            let s = load(&[("BACKFORGE_ENV", name), ("JWT_SECRET", RANDOM_SECRET)]).unwrap();
            assert_eq!(s.environment, Environment::Production);
        }
        let s = load(&[("BACKFORGE_ENV", "Development")]).unwrap();
        assert_eq!(s.environment, Environment::Development);
        assert!(load(&[("BACKFORGE_ENV", "staging")]).is_err());
    }

    #[test]
    fn an_empty_secret_is_no_secret() {
        assert!(load(&[("BACKFORGE_ENV", "production"), ("JWT_SECRET", "")]).is_err());
        let s = load(&[("JWT_SECRET", "")]).unwrap();
        assert_eq!(s.jwt_secret.expose(), DEV_JWT_SECRET);
    }

    #[test]
    fn the_metrics_token_is_a_secret_held_to_the_same_rules() {
        let s = load(&[
            ("BACKFORGE_ENV", "production"),
            ("JWT_SECRET", RANDOM_SECRET),
            (
                "BACKFORGE_METRICS_TOKEN",
                "metrics-token-q3Vt9mXbZr1c0Hn7sPj2LwKd8y",
            ),
            ("BACKFORGE_METRICS_ADDR", "127.0.0.1:9464"),
        ])
        .unwrap();
        assert!(!format!("{s:?}").contains("q3Vt9"));
        assert_eq!(s.metrics_addr.as_deref(), Some("127.0.0.1:9464"));
        assert!(
            load(&[
                ("BACKFORGE_ENV", "production"),
                ("JWT_SECRET", RANDOM_SECRET),
                ("BACKFORGE_METRICS_TOKEN", "changeme"),
            ])
            .is_err()
        );
        let dev = load(&[("BACKFORGE_METRICS_TOKEN", "")]).unwrap();
        assert!(dev.metrics_token.is_none() && dev.metrics_addr.is_none());
    }

    #[test]
    fn sign_in_limits_have_the_documented_defaults() {
        let s = load(&[]).unwrap();
        assert_eq!(s.register_per_ip_per_minute, 30);
        assert_eq!(s.hash_other_slots, 1);
        assert!(s.hash_login_slots >= 1);
        assert_eq!(s.login_per_account_per_minute, 10);
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
