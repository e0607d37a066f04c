//! A generation's Alembic chain across regenerations: `backforge/model.json` in every ZIP, and on
//! a base generation, the base's migrations byte for byte plus one migration from its model to
//! this one's.

pub(crate) mod model;
mod upgrade;

use std::collections::BTreeMap;

use domain::ids::GenerationId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use model::{DbModel, MODEL_FORMAT, MODEL_PATH, from_initial_migration};

/// Where the migrations live in a ZIP.
pub const VERSIONS_DIR: &str = "alembic/versions/";
/// The first migration of every chain, as the target writes it, and its revision.
pub const INITIAL_PATH: &str = "alembic/versions/0001_initial.py";
pub const INITIAL_REVISION: &str = "0001";

/// What a generation builds on: its base generation's ZIP, reduced to what the upgrade needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    /// The base ZIP's migrations (`alembic/versions/*.py`), by path, copied byte for byte.
    pub migrations: BTreeMap<String, String>,
    /// The base ZIP's `backforge/model.json`; absent in ZIPs from before it existed.
    pub model: Option<String>,
}

impl Base {
    /// The base a ZIP holds.
    pub fn from_zip(zip: &[u8]) -> Result<Base, String> {
        let files = crate::read_zip(zip)?;
        let text = |path: &str, bytes: &[u8]| {
            String::from_utf8(bytes.to_vec()).map_err(|_| format!("{path} is not UTF-8"))
        };
        let mut migrations = BTreeMap::new();
        let mut model = None;
        for (path, bytes) in &files {
            if path == MODEL_PATH {
                model = Some(text(path, bytes)?);
            } else if path.starts_with(VERSIONS_DIR) && path.ends_with(".py") {
                migrations.insert(path.clone(), text(path, bytes)?);
            }
        }
        if migrations.is_empty() {
            return Err("the base ZIP holds no migration".into());
        }
        Ok(Base { migrations, model })
    }
}

/// Turns the target's tree (with its initial migration) into the generation's chain: without a
/// base, the initial migration and its model; with one (its ZIP and its generation id), the
/// base's migrations byte for byte and one migration from the base's model to this one. The new
/// revision is derived from the base generation's id and the new model, so the same project
/// version generated on the same base gives the same ZIP, and generations on different bases
/// never share a revision.
pub fn chain(
    files: &mut BTreeMap<String, Vec<u8>>,
    base: Option<(&Base, GenerationId)>,
) -> Result<(), String> {
    let initial = files
        .get(INITIAL_PATH)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .ok_or("the target wrote no initial migration; a generator bug")?;
    let model = from_initial_migration(initial, INITIAL_REVISION)
        .map_err(|e| format!("the initial migration cannot be read back ({e}); a generator bug"))?;
    let Some((base, base_id)) = base else {
        files.insert(MODEL_PATH.to_owned(), model.to_json().into_bytes());
        return Ok(());
    };
    let base_model = base_model(base)?;
    let revision = revision(base_id, &model);
    let new = DbModel {
        alembic_head: revision.clone(),
        ..model
    };
    files.remove(INITIAL_PATH);
    for (path, text) in &base.migrations {
        files.insert(path.clone(), text.clone().into_bytes());
    }
    let path = format!(
        "{VERSIONS_DIR}{:04}_{revision}.py",
        base.migrations.len() + 1
    );
    let migration = upgrade::upgrade(&base_model, &new, &revision);
    files.insert(path, crate::python_fastapi::reflow(&migration).into_bytes());
    files.insert(MODEL_PATH.to_owned(), new.to_json().into_bytes());
    Ok(())
}

/// 32 hex digits (the width of Alembic's version column) of the SHA-256 of the base
/// generation's id and the new model.
fn revision(base_id: GenerationId, model: &DbModel) -> String {
    let mut hash = Sha256::new();
    hash.update(base_id.to_string().as_bytes());
    hash.update(b"\n");
    hash.update(model.to_json().as_bytes());
    hex::encode(hash.finalize())[..32].to_owned()
}

/// The base's model: its `model.json`, or, for a ZIP from before the model existed, the model
/// its only migration (the generator's initial one) creates.
fn base_model(base: &Base) -> Result<DbModel, String> {
    if let Some(text) = &base.model {
        let model: DbModel = serde_json::from_str(text)
            .map_err(|e| format!("its {MODEL_PATH} is unreadable: {e}"))?;
        if model.format != MODEL_FORMAT {
            return Err(format!("its model has the unknown format {}", model.format));
        }
        return Ok(model);
    }
    let only_initial = base.migrations.len() == 1 && base.migrations.contains_key(INITIAL_PATH);
    if !only_initial {
        return Err(format!(
            "it has no {MODEL_PATH} and more migrations than {INITIAL_PATH}"
        ));
    }
    from_initial_migration(&base.migrations[INITIAL_PATH], INITIAL_REVISION)
        .map_err(|e| format!("its {INITIAL_PATH} is not one Backforge wrote: {e}"))
}
