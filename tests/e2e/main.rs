//! The end-to-end suite, one binary: each module tests one service against real PostgreSQL and NATS.

mod access;
mod application;
mod auth;
mod consumers;
mod contracts;
mod crate_table;
mod deploy_files;
mod event_store;
mod generated_app;
mod generations;
mod generator_limits;
mod group_commit;
mod hostile_props;
mod http_hygiene;
mod idempotency;
mod nats;
mod pipeline;
mod poison;
mod processes;
mod projects;
mod read_side;
mod readme_tour;
mod repo_docs;
mod sandbox_execute;
mod security_cache;
mod sign_in;
