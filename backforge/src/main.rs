//! The one Backforge binary: `serve` runs everything in one process; the other subcommands run one
//! part each, migrate, replay the read models or act as an operator.

mod consumers;
mod generate;

/// mimalloc instead of glibc's allocator: the hot paths (event decoding, read-model documents,
/// HTTP bodies) make many short-lived small allocations, where glibc's malloc and its free-list
/// consolidation took about two thirds of replay's CPU in a profile (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use backforge::{App, Parts, migrate, open_store, shutdown_signal};
use clap::{Parser, Subcommand};
use runtime::{Settings, telemetry};

#[derive(Parser)]
#[command(
    name = "backforge",
    version,
    about = "Backforge: describe a backend, get one that runs"
)]
struct Cli {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Command API, query API and projector in one process on one port (BACKFORGE_ADDR, default 127.0.0.1:8080).
    Serve,
    /// The command API alone (default 127.0.0.1:8080).
    CommandApi,
    /// The query API alone (default 127.0.0.1:8081).
    QueryApi,
    /// The projector alone (read models and the NATS relays); serves /health and /metrics when BACKFORGE_ADDR is set.
    Projector,
    /// The generation worker alone; serves /health and /metrics when BACKFORGE_ADDR is set.
    Worker,
    /// Integration events.
    Events {
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Create the database if missing and run every migration, then exit.
    Migrate,
    /// Rebuild the read models from the whole event history into fresh tables and swap them in.
    Replay {
        /// Build the read models in this database instead (it is created if missing).
        #[arg(long)]
        into: Option<String>,
    },
    /// Internal: the generator's child process, started by the worker under a memory limit. Reads
    /// one generation job (JSON) on stdin and writes the ZIP to stdout.
    #[command(hide = true)]
    Generate,
    /// Rebuild the live records' command-side tables (uniqueness, references, schema versions)
    /// from the events; record writes wait while it runs.
    RebuildConstraints,
    /// Operator actions.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Feed consumers: list, park and unpark events a consumer must skip.
    Consumers {
        #[command(subcommand)]
        action: consumers::ConsumersAction,
    },
}

#[derive(Subcommand)]
enum EventsAction {
    /// Print live integration events (CloudEvents JSON, one per line).
    Tail {
        /// A NATS subject filter; default: every event of this installation (`<prefix>.events.>`).
        #[arg(long)]
        subject: Option<String>,
        /// Follow one project: its own events and those of its generations
        /// (`<prefix>.events.<project id>.>`).
        #[arg(long, conflicts_with = "subject")]
        project: Option<uuid::Uuid>,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// Make the registered user with this e-mail address a global admin.
    Grant { email: String },
}

fn main() {
    no_transparent_huge_pages();
    // A multi-threaded runtime, not actix's single-threaded `System`: the HTTP workers have
    // runtimes of their own either way, and everything else this process runs in the background
    // (the group-commit writer, the projector, the relays, the sweeper) would otherwise share one
    // thread, which became the ceiling of the command path and left the projector behind under
    // load.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(start()),
        Err(error) => {
            eprintln!("backforge: cannot start the async runtime: {error}");
            std::process::exit(1);
        }
    }
}

/// Turns transparent huge pages off for this process (and the children it starts) before the
/// runtime starts. mimalloc reserves a 1 GiB arena and commits it eagerly; on a kernel whose THP
/// mode is `always`, each 2 MiB of it that a small allocation touches becomes resident whole: an
/// idle `serve` held 79 MB instead of 50 (docs/benchmarks.md, "Sixth round"). Best effort: a kernel
/// without the call keeps its default.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("backforge: transparent huge pages stay on ({error})");
    }
}

async fn start() {
    let cli = Cli::parse();
    // Before settings and telemetry: the child needs neither, and its stdout is the archive.
    if let Action::Generate = cli.command {
        std::process::exit(generate::run());
    }
    // A `.env` file in the working directory fills in variables the environment does not set.
    let dotenv = dotenvy::dotenv();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(error) => {
            eprintln!("backforge: invalid configuration: {error:#}");
            std::process::exit(2);
        }
    };
    telemetry::init(settings.environment);
    match dotenv {
        Ok(path) => tracing::info!(path = %path.display(), "read settings from .env"),
        Err(error) if error.not_found() => {}
        Err(error) => tracing::warn!(%error, "could not read .env"),
    }
    settings.log_warnings();
    if let Err(error) = run(cli.command, settings).await {
        tracing::error!(error = ?error, "backforge stopped with an error");
        eprintln!("backforge: {error:#}");
        std::process::exit(1);
    }
}

async fn run(command: Action, settings: Settings) -> anyhow::Result<()> {
    match command {
        Action::Serve => serve(settings, Parts::SERVE).await,
        Action::CommandApi => serve(settings, Parts::COMMAND_API).await,
        Action::QueryApi => serve(settings, Parts::QUERY_API).await,
        Action::Projector => serve(settings, Parts::PROJECTOR).await,
        Action::Worker => serve(settings, Parts::WORKER).await,
        Action::Events {
            action: EventsAction::Tail { subject, project },
        } => tail_events(settings, subject, project).await,
        // Handled in `main` before settings load; here only for completeness.
        Action::Generate => std::process::exit(generate::run()),
        Action::Migrate => {
            migrate(&settings).await?;
            println!("migrations applied");
            Ok(())
        }
        Action::Replay { into } => replay(settings, into).await,
        Action::Consumers { action } => consumers::run(settings, action).await,
        Action::RebuildConstraints => {
            migrate(&settings).await?;
            let store = open_store(&settings).await?;
            let pool = event_store::setup::pool(&settings.database_url, 2)?;
            let rebuilt = command_api::record_constraints::rebuild(&pool, &store).await?;
            println!(
                "rebuilt {} live records, {} unique keys and {} references",
                rebuilt.records, rebuilt.unique_keys, rebuilt.references
            );
            Ok(())
        }
        Action::Admin {
            action: AdminAction::Grant { email },
        } => {
            let store = open_store(&settings).await?;
            if command_api::admin::grant_admin(&store, &email).await? {
                println!("{email} is now an admin");
            } else {
                println!("{email} was an admin already");
            }
            Ok(())
        }
    }
}

/// Runs `parts` until Ctrl-C or SIGTERM.
async fn serve(settings: Settings, parts: Parts) -> anyhow::Result<()> {
    App::build(settings, parts)
        .await?
        .run_until_stopped(shutdown_signal())
        .await
}

async fn tail_events(
    settings: Settings,
    subject: Option<String>,
    project: Option<uuid::Uuid>,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(std::time::Duration::from_secs(3))
        .connect(&settings.nats_url)
        .await
        .with_context(|| format!("cannot reach NATS at {}", settings.nats_url))?;
    let names = messaging::Names::new(&settings.nats_prefix);
    let subject = match (subject, project) {
        (Some(subject), _) => subject,
        (None, Some(project)) => names.project_events(project),
        (None, None) => names.all_events(),
    };
    let mut subscription = client.subscribe(subject.clone()).await?;
    eprintln!("listening on {subject}; Ctrl-C to stop");
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            message = subscription.next() => {
                let Some(message) = message else { return Ok(()) };
                println!("{}", String::from_utf8_lossy(&message.payload));
            }
            _ = &mut stop => return Ok(()),
        }
    }
}

async fn replay(settings: Settings, into: Option<String>) -> anyhow::Result<()> {
    let store = open_store(&settings).await?;
    let target = match &into {
        Some(url) => {
            event_store::setup::ensure_database(url).await?;
            read_model::ensure(url).await?;
            event_store::setup::pool(url, 4)?
        }
        None => store.pool().clone(),
    };
    // On stderr, drawn only when it is a terminal: a piped or scripted replay prints the summary.
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "[{bar:30}] {pos}/{len} events, {msg} ({elapsed})",
        )?
        .progress_chars("=> "),
    );
    let report = projector::replay::replay(&store, &target, |done, total, rate| {
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(format!("{rate:.0} events/s"));
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "replayed {} events in {:.2} s ({:.0} events/s); read models swapped in",
        report.events,
        report.seconds,
        report.events_per_second()
    );
    Ok(())
}
