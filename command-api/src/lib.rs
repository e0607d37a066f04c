//! The command API: every write of `docs/api.md` served by actix-web; load → decide → append, with the
//! command-side tables (credentials, refresh tokens, idempotency keys) in the same transaction.

pub mod admin;
pub mod admin_users;
pub mod ai_catalog;
pub mod ai_requests;
pub mod auth_routes;
pub mod execute;
pub mod function_checks;
pub mod functions;
pub mod generations;
pub mod http;
pub mod idempotency;
pub mod load;
pub mod openapi;
pub mod passwords;
pub mod project_routes;
pub mod projects;
pub mod rate_limit;
pub mod record_constraints;
pub mod records;
pub mod sandbox_routes;
pub mod tokens;
pub mod users;

use std::sync::Arc;

use actix_web::web;
use domain::project::Project;
use event_store::{PgEventStore, StateCache};
use runtime::auth::Verifier;
use runtime::json::BodyLimit;
use runtime::security_cache::SecurityCache;
use runtime::{JwtKeys, Settings};

use crate::execute::Executor;
use crate::passwords::Passwords;
use crate::rate_limit::RateLimiter;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Creates or updates the command-side tables.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    event_store::setup::migrate_with(
        database_url,
        embedded::migrations::runner(),
        "command_side_migrations",
    )
    .await
}

/// Everything the write handlers share.
pub struct CommandState {
    pub store: PgEventStore,
    pub pool: deadpool_postgres::Pool,
    pub executor: Executor,
    pub jwt: JwtKeys,
    pub passwords: Passwords,
    pub settings: Arc<Settings>,
    /// Sign-in attempts per client IP.
    pub ip_limiter: RateLimiter,
    /// Sign-in attempts per (account, client IP), and password changes per account.
    pub account_limiter: RateLimiter,
    /// Registrations per client IP.
    pub register_limiter: RateLimiter,
    /// Folded project states, so a command reads only the events it has not folded yet.
    pub projects: Arc<StateCache<Project>>,
    /// The callers' security versions; a credentials change evicts its user here at once.
    pub security: Arc<SecurityCache>,
    /// Where untrusted code runs.
    pub sandbox: Arc<crate::sandbox_routes::SandboxService>,
}

/// How many project states the command side keeps folded (a few KB to a few hundred KB each).
const PROJECT_CACHE_CAPACITY: usize = 2048;

/// The command side's cache of folded projects, bounded by `BACKFORGE_STATE_CACHE_BYTES`; made
/// before the [`CommandState`] so an in-process projector can share it.
pub fn project_states(settings: &Settings) -> Arc<StateCache<Project>> {
    Arc::new(StateCache::new(
        PROJECT_CACHE_CAPACITY,
        settings.state_cache_bytes,
        Project::serialized_bytes,
    ))
}

impl CommandState {
    pub fn new(
        settings: Arc<Settings>,
        store: PgEventStore,
        security: Arc<SecurityCache>,
        sandbox: Arc<crate::sandbox_routes::SandboxService>,
        projects: Arc<StateCache<Project>>,
    ) -> anyhow::Result<Self> {
        let pool = store.pool().clone();
        Ok(Self {
            executor: Executor {
                store: store.clone(),
                pool: pool.clone(),
                idempotency_ttl: settings.idempotency_ttl,
            },
            jwt: JwtKeys::new(&settings),
            passwords: Passwords::new(settings.hash_login_slots, settings.hash_other_slots)?,
            ip_limiter: RateLimiter::new(settings.login_per_ip_per_minute),
            account_limiter: RateLimiter::new(settings.login_per_account_per_minute),
            register_limiter: RateLimiter::new(settings.register_per_ip_per_minute),
            projects,
            security,
            sandbox,
            store,
            pool,
            settings,
        })
    }

    /// The token verifier for this state's settings and database.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            keys: self.jwt.clone(),
            lookup: self.security.clone(),
        }
    }
}

/// Registers the write routes (under the caller's `/api/v1` scope) and the app data they need.
pub fn configure(state: web::Data<CommandState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state.verifier()))
            .app_data(BodyLimit(state.settings.body_limit_bytes))
            .app_data(state.clone())
            .service(auth_routes::register)
            .service(auth_routes::login)
            .service(auth_routes::refresh)
            .service(auth_routes::logout)
            .service(auth_routes::update_profile)
            .service(auth_routes::change_password)
            .service(project_routes::create_project)
            .service(project_routes::update_project)
            .service(project_routes::archive_project)
            .service(project_routes::put_member)
            .service(project_routes::delete_member)
            .service(project_routes::add_feature)
            .service(project_routes::update_feature)
            .service(project_routes::remove_feature)
            .service(functions::create_function)
            .service(functions::update_function)
            .service(functions::delete_function)
            .service(functions::test_function)
            .service(records::create_record)
            .service(records::update_record)
            .service(records::delete_record)
            .service(generations::request_generation)
            .service(sandbox_routes::sandbox_execute)
            .service(ai_catalog::register_model)
            .service(ai_catalog::update_model)
            .service(ai_catalog::retire_model)
            .service(ai_catalog::create_prompt)
            .service(ai_catalog::revise_prompt)
            .service(ai_requests::generate_config)
            .service(ai_requests::enhance_config)
            .service(ai_requests::generate_code)
            .service(ai_requests::apply_proposal)
            .service(admin_users::update_user);
    }
}
