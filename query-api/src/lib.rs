//! The query API: every read of `docs/api.md` from the read models, plus history and time travel folded
//! from the event store. It never writes.

pub mod ai_catalog;
pub mod ai_requests;
pub mod ai_usage;
pub mod extract;
pub mod functions;
pub mod generations;
pub mod openapi;
pub mod params;
pub mod records;
pub mod routes;

use std::sync::Arc;

use actix_web::web;
use event_store::PgEventStore;
use runtime::Settings;

pub use read_model::{Checkpoints, FeatureLists};

/// Everything the read handlers share.
pub struct QueryState {
    pub store: PgEventStore,
    pub pool: deadpool_postgres::Pool,
    pub settings: Arc<Settings>,
    pub checkpoints: Checkpoints,
    /// Feature lists of projects read recently (shared with an in-process projector).
    pub feature_lists: Arc<FeatureLists>,
}

/// Registers the read routes (under the caller's `/api/v1` scope).
pub fn configure(state: web::Data<QueryState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state)
            .service(routes::profile)
            .service(routes::list_projects)
            .service(routes::get_project)
            .service(routes::history)
            .service(routes::list_features)
            .service(routes::get_feature)
            .service(functions::list_functions)
            .service(functions::get_function)
            .service(records::list_records)
            .service(records::get_record)
            .service(records::record_history)
            .service(generations::list_generations)
            .service(generations::get_generation)
            .service(generations::download_generation)
            .service(generations::download_project)
            .service(ai_catalog::list_models)
            .service(ai_catalog::list_prompts)
            .service(ai_catalog::get_prompt)
            .service(ai_requests::get_ai_request)
            .service(ai_requests::list_ai_requests)
            .service(ai_usage::my_usage)
            .service(ai_usage::all_usage);
    }
}

pub use openapi::{QueryApiDoc, document};
