//! The AI catalog's read models: `ai_models` (one row per model, the default rule applied in feed order) and `ai_prompt_versions` (one row per template version).
//!
//! An event that makes its model the default takes the default from every other model, as the
//! command side's rows do in commit order (the feed's order). Rows carry their stream's version,
//! so an event already applied changes nothing.

use deadpool_postgres::Transaction;
use domain::AnyEvent;
use domain::ai::models::AiModelEvent;
use domain::ai::templates::PromptEvent;
use read_model::tables::{AI_MODELS, AI_PROMPT_VERSIONS};
use tokio_postgres::types::Json;

use crate::apply::ApplyError;

/// Applies one catalog event (`version`: its stream version); other events are not the
/// catalog's and change nothing.
pub(crate) async fn apply(
    tx: &Transaction<'_>,
    schema: &str,
    version: i64,
    event: &AnyEvent,
) -> Result<(), ApplyError> {
    match event {
        AnyEvent::AiModel(event) => apply_model(tx, schema, version, event).await,
        AnyEvent::Prompt(event) => apply_prompt(tx, schema, event).await,
        _ => Ok(()),
    }
}

async fn apply_model(
    tx: &Transaction<'_>,
    schema: &str,
    version: i64,
    event: &AiModelEvent,
) -> Result<(), ApplyError> {
    let name = match event {
        AiModelEvent::AiModelRegistered { name, .. }
        | AiModelEvent::AiModelUpdated { name, .. }
        | AiModelEvent::AiModelRetired { name, .. } => name.as_str(),
    };
    let applied: Option<i64> = tx
        .query_opt(
            &format!("SELECT version FROM {schema}.{AI_MODELS} WHERE name = $1"),
            &[&name],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    if applied.is_some_and(|applied| applied >= version) {
        return Ok(());
    }
    if event.default_after() == Some(true) {
        tx.execute(
            &format!(
                "UPDATE {schema}.{AI_MODELS} SET is_default = false WHERE is_default AND name <> $1"
            ),
            &[&name],
        )
        .await?;
    }
    match event {
        AiModelEvent::AiModelRegistered {
            config,
            is_default,
            registered_at,
            ..
        } => {
            tx.execute(
                &format!(
                    "INSERT INTO {schema}.{AI_MODELS}
                         (name, config, is_default, retired, version, created_at, updated_at)
                     VALUES ($1, $2, $3, false, $4, $5, $5) ON CONFLICT (name) DO NOTHING"
                ),
                &[&name, &Json(config), is_default, &version, registered_at],
            )
            .await?;
        }
        AiModelEvent::AiModelUpdated {
            config,
            is_default,
            updated_at,
            ..
        } => {
            tx.execute(
                &format!(
                    "UPDATE {schema}.{AI_MODELS} SET config = $2,
                         is_default = COALESCE($3, is_default), version = $4, updated_at = $5
                     WHERE name = $1"
                ),
                &[&name, &Json(config), is_default, &version, updated_at],
            )
            .await?;
        }
        AiModelEvent::AiModelRetired { retired_at, .. } => {
            tx.execute(
                &format!(
                    "UPDATE {schema}.{AI_MODELS} SET retired = true, is_default = false,
                         version = $2, updated_at = $3
                     WHERE name = $1"
                ),
                &[&name, &version, retired_at],
            )
            .await?;
        }
    }
    Ok(())
}

async fn apply_prompt(
    tx: &Transaction<'_>,
    schema: &str,
    event: &PromptEvent,
) -> Result<(), ApplyError> {
    // The purpose is fixed at creation: a revision takes it from version 1's row.
    let (name, version, system, template, at) = match event {
        PromptEvent::PromptTemplateCreated {
            name,
            version,
            system,
            template,
            created_at,
            purpose,
        } => {
            tx.execute(
                &format!(
                    "INSERT INTO {schema}.{AI_PROMPT_VERSIONS}
                         (name, version, purpose, system, template, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name, version) DO NOTHING"
                ),
                &[
                    &name.as_str(),
                    &version_i32(*version),
                    &purpose.as_str(),
                    system,
                    template,
                    created_at,
                ],
            )
            .await?;
            return Ok(());
        }
        PromptEvent::PromptTemplateRevised {
            name,
            version,
            system,
            template,
            revised_at,
        } => (name, version, system, template, revised_at),
    };
    tx.execute(
        &format!(
            "INSERT INTO {schema}.{AI_PROMPT_VERSIONS}
                 (name, version, purpose, system, template, created_at)
             SELECT $1, $2, purpose, $3, $4, $5 FROM {schema}.{AI_PROMPT_VERSIONS}
             WHERE name = $1 AND version = 1
             ON CONFLICT (name, version) DO NOTHING"
        ),
        &[&name.as_str(), &version_i32(*version), system, template, at],
    )
    .await?;
    Ok(())
}

fn version_i32(version: u32) -> i32 {
    i32::try_from(version).unwrap_or(i32::MAX)
}
