//! The one startup shape of every Backforge process: `App::build(settings, parts)` wires the parts a
//! subcommand runs (APIs, projector, relays, worker), and `main` and the end-to-end tests both use it.

pub mod http;

use std::future::Future;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{HttpServer, web};
use anyhow::Context;
use event_store::PgEventStore;
use projector::Projector;
use projector::supervise::{Consumers, supervise};
use query_api::{Checkpoints, QueryState};
use runtime::Settings;
use runtime::metrics::Metrics;
use runtime::settings::SandboxSettings;
use tokio::sync::watch;

/// Which parts one process runs. `serve` runs them all; each split subcommand runs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// The write routes.
    pub command_api: bool,
    /// The read routes.
    pub query_api: bool,
    /// The read-model projection.
    pub projector: bool,
    /// The NATS relays (integration events and jobs).
    pub relays: bool,
    /// The generation worker and its deadline sweeper.
    pub worker: bool,
}

impl Parts {
    /// Everything in one process on one port (`backforge serve`).
    pub const SERVE: Parts = Parts {
        command_api: true,
        query_api: true,
        projector: true,
        relays: true,
        worker: true,
    };
    /// `backforge command-api`.
    pub const COMMAND_API: Parts = Parts {
        command_api: true,
        ..Parts::NONE
    };
    /// `backforge query-api`.
    pub const QUERY_API: Parts = Parts {
        query_api: true,
        ..Parts::NONE
    };
    /// `backforge projector`: the projection and the relays that read the same feed.
    pub const PROJECTOR: Parts = Parts {
        projector: true,
        relays: true,
        ..Parts::NONE
    };
    /// `backforge worker`.
    pub const WORKER: Parts = Parts {
        worker: true,
        ..Parts::NONE
    };
    const NONE: Parts = Parts {
        command_api: false,
        query_api: false,
        projector: false,
        relays: false,
        worker: false,
    };

    fn serves_api(self) -> bool {
        self.command_api || self.query_api
    }

    fn uses_nats(self) -> bool {
        self.relays || self.worker
    }

    /// Where the process listens when `BACKFORGE_ADDR` is unset; `None`: it does not listen.
    fn default_addr(self) -> Option<&'static str> {
        match (self.command_api, self.query_api) {
            (false, true) => Some("127.0.0.1:8081"),
            (true, _) => Some("127.0.0.1:8080"),
            (false, false) => None,
        }
    }
}

/// Creates the database and every table set, in dependency order.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    event_store::setup::ensure_database(&settings.database_url).await?;
    event_store::setup::migrate(&settings.database_url).await?;
    command_api::migrate(&settings.database_url).await?;
    read_model::ensure(&settings.database_url).await?;
    worker::artifacts::migrate(&settings.database_url).await?;
    Ok(())
}

/// Migrates, then opens the event store with its commit listener.
pub async fn open_store(settings: &Settings) -> anyhow::Result<PgEventStore> {
    migrate(settings).await?;
    let pool = event_store::setup::pool(&settings.database_url, settings.pool_size)?;
    let mut store = PgEventStore::new(pool, Arc::new(domain::Upcasters::backforge()))
        .with_max_event_bytes(settings.max_event_bytes);
    if settings.group_commit {
        store = store.with_group_commit();
    }
    store.listen_for_commits(&settings.database_url);
    Ok(store)
}

/// One built process: its listener is bound and its background consumers run; the HTTP server
/// starts serving when `run_until_stopped` is polled.
pub struct App {
    port: Option<u16>,
    server: Option<Server>,
    store: PgEventStore,
    stop: StopHandle,
    stop_rx: watch::Receiver<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    metrics_server: Option<ServerHandle>,
}

/// Stops a running `App` from outside (a test's drop, another task) at once: the HTTP server
/// closes its listener and connections, and every background consumer is told to stop.
#[derive(Clone)]
pub struct StopHandle {
    server: Option<ServerHandle>,
    stop: Arc<watch::Sender<bool>>,
}

impl StopHandle {
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        if let Some(server) = &self.server {
            // The command is sent before the returned future is polled; dropping it is fine.
            drop(server.stop(false));
        }
    }
}

/// The background parts of a process: the projector and its NATS relays, and/or the worker.
struct Background {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    checkpoints: Option<watch::Receiver<read_model::Announced>>,
    nats: Option<async_nats::Client>,
    /// The health of every supervised consumer task, for `/health/ready`.
    consumers: Option<Consumers>,
    /// The worker's verify pool of the sandbox, for `/health/ready`.
    verifier: Option<Arc<worker::verify::Verifier>>,
}

/// What an in-process projector shares with the HTTP sides of its process.
struct Shared {
    /// The query side's held feature lists, which the projector carries forward.
    feature_lists: Arc<read_model::FeatureLists>,
    /// The command side's folded projects, when this process serves commands.
    project_states: Option<Arc<event_store::StateCache<domain::project::Project>>>,
}

async fn start_background(
    settings: &Settings,
    store: &PgEventStore,
    metrics: &Metrics,
    stop: &watch::Receiver<bool>,
    parts: Parts,
    functions: Option<Arc<sandbox::Functions>>,
    shared: &Shared,
) -> anyhow::Result<Background> {
    let mut background = Background {
        tasks: Vec::new(),
        checkpoints: None,
        nats: None,
        consumers: None,
        verifier: None,
    };
    if !parts.projector && !parts.uses_nats() {
        return Ok(background);
    }
    // Every consumer task is supervised: restarted with backoff if it dies, and reported.
    let consumers = Consumers::new(metrics.clone());
    background.consumers = Some(consumers.clone());
    if parts.projector {
        let mut projector = Projector::new(
            store.clone(),
            store.pool().clone(),
            settings.database_url.clone(),
            metrics.clone(),
            consumers.clone(),
        )
        .with_feature_lists(shared.feature_lists.clone());
        if let Some(states) = &shared.project_states {
            projector = projector.with_command_states(states.clone());
        }
        let projector = Arc::new(projector);
        background.checkpoints = Some(projector.checkpoints());
        let projector_stop = stop.clone();
        background.tasks.push(supervise(
            read_model::PROJECTION,
            consumers.clone(),
            stop.clone(),
            move || {
                let (projector, stop) = (projector.clone(), projector_stop.clone());
                async move { projector.run(stop).await }
            },
        ));
    }
    if !parts.uses_nats() {
        return Ok(background);
    }
    // Connects in the background: a NATS outage delays relays and jobs, never writes or reads.
    let nats = messaging::connect(&settings.nats_url).await?;
    let names = messaging::Names::new(&settings.nats_prefix);
    if parts.relays {
        for kind in [
            projector::relay::RelayKind::Events,
            projector::relay::RelayKind::Jobs,
        ] {
            let relay = Arc::new(
                projector::relay::Relay::new(
                    kind,
                    store.clone(),
                    settings.database_url.clone(),
                    nats.clone(),
                    names.clone(),
                    metrics.clone(),
                )
                .with_consumers(consumers.clone())
                .with_max_event_bytes(settings.max_event_bytes),
            );
            let relay_stop = stop.clone();
            background.tasks.push(supervise(
                kind.name(),
                consumers.clone(),
                stop.clone(),
                move || {
                    let (relay, stop) = (relay.clone(), relay_stop.clone());
                    async move { relay.run(stop).await }
                },
            ));
        }
    }
    if parts.worker {
        let worker_settings = worker::WorkerSettings::from_env()?;
        // The sandbox's verify pool: its own slots and uids, so a test suite never holds up a
        // function run (the command API's pool).
        let verifier = worker::verify::Verifier::new(
            &settings.sandbox,
            worker_settings.venv_dir.clone(),
            worker_settings.verify_timeout,
        );
        background.verifier = Some(verifier.clone());
        let worker = Arc::new(worker::Worker {
            store: store.clone(),
            nats: nats.clone(),
            names: names.clone(),
            settings: worker_settings,
            metrics: metrics.clone(),
            verifier,
        });
        let sweeper = Arc::new(worker::sweep::Sweeper::new(
            store.clone(),
            consumers.clone(),
            &worker.settings,
            settings.generation_queue_timeout,
        ));
        // AI jobs: their own consumer and sweeper, under the generation worker's rules.
        let client = worker::ai::client_from_env(
            settings.environment == runtime::settings::Environment::Production,
            |key| std::env::var(key).ok(),
        )?;
        let ai_worker = Arc::new(worker::ai::AiWorker {
            store: store.clone(),
            nats: nats.clone(),
            names: names.clone(),
            settings: worker.settings.clone(),
            metrics: metrics.clone(),
            client,
            limits: settings.limits.clone(),
            functions: functions.ok_or_else(|| {
                anyhow::anyhow!("the worker is started without its function pool")
            })?,
        });
        let ai_sweeper = Arc::new(worker::ai::sweep::AiSweeper::new(
            store.clone(),
            consumers.clone(),
            &worker.settings,
            settings.generation_queue_timeout,
        ));
        let ai_stop = stop.clone();
        background.tasks.push(supervise(
            worker::ai::AI_WORKER,
            consumers.clone(),
            stop.clone(),
            move || {
                let (ai_worker, stop) = (ai_worker.clone(), ai_stop.clone());
                async move { ai_worker.run(stop).await }
            },
        ));
        let ai_sweeper_stop = stop.clone();
        background.tasks.push(supervise(
            worker::ai::sweep::AI_SWEEPER,
            consumers.clone(),
            stop.clone(),
            move || {
                let (sweeper, stop) = (ai_sweeper.clone(), ai_sweeper_stop.clone());
                async move { sweeper.run(stop).await }
            },
        ));
        let worker_stop = stop.clone();
        background.tasks.push(supervise(
            "generation_worker",
            consumers.clone(),
            stop.clone(),
            move || {
                let (worker, stop) = (worker.clone(), worker_stop.clone());
                // On the worker's own multi-threaded runtime (issue 10, H2).
                async move { worker.run_isolated(stop).await }
            },
        ));
        let sweeper_stop = stop.clone();
        background.tasks.push(supervise(
            worker::sweep::SWEEPER,
            consumers.clone(),
            stop.clone(),
            move || {
                let (sweeper, stop) = (sweeper.clone(), sweeper_stop.clone());
                async move { sweeper.run(stop).await }
            },
        ));
    }
    background.nats = Some(nats);
    Ok(background)
}

/// The sandbox's function pool under the function limits (`BACKFORGE_SANDBOX_*`); nothing runs
/// until its self-test.
fn function_pool(settings: &SandboxSettings) -> Arc<sandbox::Functions> {
    let limits = sandbox::Limits {
        wall: settings.wall,
        cpu_seconds: settings.cpu_seconds,
        address_space_bytes: settings.memory_bytes,
        processes: settings.processes,
        tmp_bytes: settings.tmp_bytes,
        file_bytes: settings.file_bytes,
        output_bytes: settings.output_bytes,
        ..sandbox::Limits::default()
    };
    let state_dir =
        std::env::temp_dir().join(format!("backforge-sandbox-{}", uuid::Uuid::new_v4()));
    sandbox::Functions::new(
        sandbox::SandboxConfig {
            python: settings.python.clone().into(),
            uid_base: settings.uid_base,
            slots: settings.slots,
            queue: settings.queue,
            state_dir,
        },
        limits,
    )
}

/// Removes idempotency records past their 24 h life once an hour; they only take space.
fn purge_idempotency_keys(
    store: &PgEventStore,
    settings: &Settings,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let pool = store.pool().clone();
    let ttl = settings.idempotency_ttl;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
                _ = stop.changed() => return,
            }
            match command_api::idempotency::purge_expired(&pool, ttl).await {
                Ok(n) => tracing::info!(purged = n, "expired idempotency keys removed"),
                Err(error) => tracing::warn!(?error, "could not purge idempotency keys"),
            }
        }
    })
}

impl App {
    /// Migrates, opens the store, starts the background parts and binds the listener
    /// (`BACKFORGE_ADDR`; port 0 picks a free port). A process without an API listens only when
    /// `BACKFORGE_ADDR` is set, for `/health` and `/metrics`.
    pub async fn build(settings: Settings, parts: Parts) -> anyhow::Result<App> {
        let store = open_store(&settings).await?;
        let pool = store.pool().clone();
        let settings = Arc::new(settings);
        let metrics = Metrics::new();
        let (stop_tx, stop_rx) = watch::channel(false);
        let addr = match parts.default_addr() {
            Some(default) => Some(settings.addr_or(default)),
            None => settings.addr.clone(),
        };
        let serves_commands = parts.command_api && addr.is_some();
        // The function pool of the sandbox, one per process: the command API's runs and the
        // worker's checks of generated code share its slots and limits. Its start-up self-test
        // runs beside the start; until it passes, sandbox runs answer 503 sandbox-unavailable
        // naming the cause (the worker waits for it).
        let functions = (serves_commands || parts.worker).then(|| {
            let functions = function_pool(&settings.sandbox);
            let testing = functions.clone();
            tokio::spawn(async move { testing.self_test().await });
            functions
        });
        // The query side's feature lists; an in-process projector carries them forward.
        let feature_lists = Arc::new(read_model::FeatureLists::new(
            settings.feature_list_cache_bytes,
        ));
        // The command side's folded projects; an in-process projector shares their features.
        let project_states = command_api::project_states(&settings);
        let background = start_background(
            &settings,
            &store,
            &metrics,
            &stop_rx,
            parts,
            functions.clone(),
            &Shared {
                feature_lists: feature_lists.clone(),
                project_states: parts.command_api.then(|| project_states.clone()),
            },
        )
        .await?;
        let mut tasks = background.tasks;
        let sandbox = functions.filter(|_| serves_commands).map(|functions| {
            command_api::sandbox_routes::SandboxService::new(
                functions,
                settings.sandbox.executions_per_minute,
                metrics.clone(),
            )
        });
        let readiness = web::Data::new(http::Readiness {
            postgres: pool.clone(),
            nats: background.nats.clone(),
            consumers: background.consumers.clone(),
            serves_api: parts.serves_api(),
            sandbox: sandbox.clone(),
            verify_sandbox: background.verifier.clone(),
        });
        let metrics_data = web::Data::new(metrics.clone());
        let metrics_access = web::Data::new(http::MetricsAccess::main_port(&settings));
        let server = match addr {
            None => None,
            Some(addr) if !parts.serves_api() => {
                let routes = web::Data::new(http::shell_routes());
                let server = HttpServer::new(move || {
                    actix_web::App::new()
                        .app_data(readiness.clone())
                        .app_data(routes.clone())
                        .app_data(metrics_data.clone())
                        .app_data(metrics_access.clone())
                        .route("/health", web::get().to(http::health))
                        .route("/health/ready", web::get().to(http::ready))
                        .route("/metrics", web::get().to(http::metrics))
                        .default_service(web::to(http::unknown_route))
                })
                .workers(1)
                .bind(&addr)
                .with_context(|| format!("cannot listen on {addr}"))?;
                Some((addr, server.addrs(), server.disable_signals().run()))
            }
            Some(addr) => {
                metrics.describe(
                    "backforge_http_requests_total",
                    "HTTP requests by method, route and status",
                );
                metrics.describe(
                    "backforge_http_request_duration_seconds",
                    "HTTP request latency",
                );
                // One security-version cache per process, evicted by its own LISTEN.
                let security = runtime::security_cache::SecurityCache::new(
                    Arc::new(runtime::auth::PgSecurityLookup::new(pool.clone())),
                    settings.sv_cache_max_age,
                );
                security.listen(&settings.database_url);
                let command_state = if parts.command_api {
                    tasks.push(purge_idempotency_keys(&store, &settings, stop_rx.clone()));
                    let sandbox = sandbox.clone().ok_or_else(|| {
                        anyhow::anyhow!("the command API is served without its sandbox")
                    })?;
                    Some(web::Data::new(command_api::CommandState::new(
                        settings.clone(),
                        store.clone(),
                        security.clone(),
                        sandbox,
                        project_states.clone(),
                    )?))
                } else {
                    None
                };
                // The BACKFORGE_AI_* default model, recorded before the first request is served.
                if let Some(state) = &command_state {
                    command_api::ai_catalog::bootstrap(state).await?;
                }
                let query_state = parts.query_api.then(|| {
                    web::Data::new(QueryState {
                        store: store.clone(),
                        pool: pool.clone(),
                        settings: settings.clone(),
                        checkpoints: Checkpoints {
                            pool: pool.clone(),
                            wake: background.checkpoints.clone(),
                        },
                        feature_lists: feature_lists.clone(),
                    })
                });
                // The query API alone still needs the token verifier the command state registers.
                let verifier = web::Data::new(runtime::auth::Verifier {
                    keys: runtime::JwtKeys::new(&settings),
                    lookup: security,
                });
                let openapi = web::Data::new(http::openapi(parts.command_api, parts.query_api));
                let routes = web::Data::new(http::api_routes(&openapi));
                let body_limit = runtime::json::BodyLimit(settings.body_limit_bytes);
                let server = HttpServer::new(move || {
                    let mut api = web::scope("/api/v1")
                        .app_data(verifier.clone())
                        .app_data(body_limit)
                        .route(
                            "/openapi.json",
                            web::get().to(|doc: web::Data<utoipa::openapi::OpenApi>| async move {
                                actix_web::HttpResponse::Ok().json(doc.get_ref())
                            }),
                        );
                    // actix tries each route's regex in turn, the method guard only after it: the
                    // reads go first, in a scope only GET enters (a static prefix and a guard, no
                    // regex), so a write skips them cheaply and a read meets no write's pattern.
                    if let Some(state) = &query_state {
                        api = api.service(
                            web::scope("")
                                .guard(actix_web::guard::Get())
                                .configure(query_api::configure(state.clone())),
                        );
                    }
                    if let Some(state) = &command_state {
                        api = api.configure(command_api::configure(state.clone()));
                    }
                    actix_web::App::new()
                        .app_data(openapi.clone())
                        .app_data(routes.clone())
                        .app_data(readiness.clone())
                        .app_data(metrics_data.clone())
                        .app_data(metrics_access.clone())
                        .wrap(actix_web::middleware::from_fn(http::record))
                        .wrap(actix_web::middleware::from_fn(http::normalize_path))
                        .route("/health", web::get().to(http::health))
                        .route("/health/ready", web::get().to(http::ready))
                        .route("/metrics", web::get().to(http::metrics))
                        .service(api)
                        .default_service(web::to(http::unknown_route))
                })
                .bind(&addr)
                .with_context(|| format!("cannot listen on {addr}"))?
                .shutdown_timeout(10);
                Some((addr, server.addrs(), server.disable_signals().run()))
            }
        };
        let metrics_server = http::metrics_listener(&settings, &metrics)?;
        let port = match &server {
            Some((addr, bound, _)) => {
                tracing::info!(%addr, ?bound, ?parts, "backforge listening");
                bound.first().map(|a| a.port())
            }
            None => None,
        };
        let server = server.map(|(_, _, server)| server);
        Ok(App {
            port,
            stop: StopHandle {
                server: server.as_ref().map(Server::handle),
                stop: Arc::new(stop_tx),
            },
            server,
            store,
            stop_rx,
            tasks,
            metrics_server,
        })
    }

    /// The port the main listener is bound to; `None` when the process does not listen.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The event store this process writes through (for operator tools and tests).
    pub fn store(&self) -> &PgEventStore {
        &self.store
    }

    /// A handle that stops this app from elsewhere, as `shutdown` resolving would.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Serves until `shutdown` resolves, a `StopHandle` stops the app or the server fails; then
    /// stops the listener (in-flight requests finish, up to 10 s), tells every background
    /// consumer to stop and waits for them.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let App {
            server,
            stop,
            mut stop_rx,
            tasks,
            metrics_server,
            ..
        } = self;
        let stopped = async move {
            while !*stop_rx.borrow_and_update() {
                if stop_rx.changed().await.is_err() {
                    break;
                }
            }
        };
        let result = match server {
            Some(mut server) => {
                let handle = server.handle();
                let asked = tokio::select! {
                    result = &mut server => Some(result),
                    () = shutdown => {
                        tracing::info!("stopping");
                        // Sends the command at once; polling `server` below carries it out.
                        drop(handle.stop(true));
                        None
                    }
                    () = stopped => None,
                };
                match asked {
                    Some(result) => result,
                    None => server.await,
                }
                .context("the HTTP server failed")
            }
            None => {
                tokio::select! {
                    () = shutdown => tracing::info!("stopping"),
                    () = stopped => {}
                }
                Ok(())
            }
        };
        let _ = stop.stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
        if let Some(handle) = metrics_server {
            handle.stop(true).await;
        }
        result
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
