//! The end-to-end suite, one binary: each module tests one service against real PostgreSQL and NATS.

mod access;
mod auth;
mod consumers;
mod event_store;
mod generated_app;
mod generations;
mod generator_limits;
mod http_hygiene;
mod hostile_props;
mod idempotency;
mod nats;
mod pipeline;
mod poison;
mod processes;
mod projects;
mod read_side;
mod sign_in;
mod repo_docs;
mod readme_tour;
