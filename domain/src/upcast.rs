//! The upcaster registry: turns stored payloads of old schema versions into the latest one.
//!
//! Every read path (aggregate load, projector, replay, history API, NATS) passes stored events through
//! one [`Upcasters`] before decoding them, so old payloads stay readable forever.

use std::collections::HashMap;

use serde_json::Value;

/// One step: the payload of `event_type` at version `from` becomes version `from + 1`.
pub type UpcastFn = fn(Value) -> Result<Value, String>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpcastError {
    #[error("no upcaster from version {from} of `{event_type}`")]
    MissingStep { event_type: String, from: u32 },
    #[error("version {version} of `{event_type}` is newer than this build knows ({latest})")]
    FromTheFuture {
        event_type: String,
        version: u32,
        latest: u32,
    },
    #[error("upcasting `{event_type}` from version {from} failed: {reason}")]
    Failed {
        event_type: String,
        from: u32,
        reason: String,
    },
}

/// Registry of upcasting steps, keyed by event type and source version.
#[derive(Debug, Clone, Default)]
pub struct Upcasters {
    steps: HashMap<(String, u32), UpcastFn>,
    latest: HashMap<String, u32>,
}

impl Upcasters {
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry for Backforge's own events. When a payload changes shape, bump its version
    /// in the event enum and register the step here, with a golden file of the new version beside
    /// the old one under `domain/src/golden/`.
    pub fn backforge() -> Self {
        Self::new().register(
            "GenerationRequested",
            1,
            crate::generation::upcast_requested_v1,
        )
    }

    /// Registers the step `from → from + 1` of `event_type`.
    pub fn register(mut self, event_type: &str, from: u32, step: UpcastFn) -> Self {
        self.steps.insert((event_type.to_owned(), from), step);
        let latest = self.latest.entry(event_type.to_owned()).or_insert(1);
        *latest = (*latest).max(from + 1);
        self
    }

    /// The latest version this registry can produce for `event_type` (1 when it has no steps).
    pub fn latest_version(&self, event_type: &str) -> u32 {
        self.latest.get(event_type).copied().unwrap_or(1)
    }

    /// Brings `data` from `version` to the latest version, returning the payload and that version.
    pub fn upcast(
        &self,
        event_type: &str,
        version: u32,
        data: Value,
    ) -> Result<(Value, u32), UpcastError> {
        let latest = self.latest_version(event_type);
        if version > latest {
            return Err(UpcastError::FromTheFuture {
                event_type: event_type.to_owned(),
                version,
                latest,
            });
        }
        let mut data = data;
        let mut at = version;
        while at < latest {
            let step = self
                .steps
                .get(&(event_type.to_owned(), at))
                .ok_or_else(|| UpcastError::MissingStep {
                    event_type: event_type.to_owned(),
                    from: at,
                })?;
            data = step(data).map_err(|reason| UpcastError::Failed {
                event_type: event_type.to_owned(),
                from: at,
                reason,
            })?;
            at += 1;
        }
        Ok((data, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn add_mode(mut v: Value) -> Result<Value, String> {
        v.as_object_mut()
            .ok_or("not an object")?
            .insert("mode".into(), json!("manual"));
        Ok(v)
    }

    fn rename_title(mut v: Value) -> Result<Value, String> {
        let obj = v.as_object_mut().ok_or("not an object")?;
        let title = obj.remove("title").ok_or("no title")?;
        obj.insert("name".into(), title);
        Ok(v)
    }

    #[test]
    fn a_version_one_payload_passes_through_every_step_in_order() {
        let reg = Upcasters::new()
            .register("Thing", 1, rename_title)
            .register("Thing", 2, add_mode);
        let (v, at) = reg.upcast("Thing", 1, json!({"title": "x"})).unwrap();
        assert_eq!(at, 3);
        assert_eq!(v, json!({"name": "x", "mode": "manual"}));
    }

    #[test]
    fn a_latest_payload_is_returned_unchanged() {
        let reg = Upcasters::new().register("Thing", 1, rename_title);
        let (v, at) = reg.upcast("Thing", 2, json!({"name": "x"})).unwrap();
        assert_eq!((v, at), (json!({"name": "x"}), 2));
    }

    #[test]
    fn a_version_newer_than_the_build_is_refused() {
        let reg = Upcasters::new();
        let err = reg.upcast("Thing", 2, json!({})).unwrap_err();
        assert!(matches!(err, UpcastError::FromTheFuture { .. }));
    }

    #[test]
    fn a_failing_step_names_the_type_and_version() {
        let reg = Upcasters::new().register("Thing", 1, rename_title);
        let err = reg.upcast("Thing", 1, json!({})).unwrap_err();
        assert_eq!(
            err,
            UpcastError::Failed {
                event_type: "Thing".into(),
                from: 1,
                reason: "no title".into()
            }
        );
    }
}
