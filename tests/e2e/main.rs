//! The end-to-end suite, one binary: each module tests one service against real PostgreSQL and NATS.

mod auth;
mod event_store;
mod projects;
