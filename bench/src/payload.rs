//! The event both workloads write: a ~200-byte JSON body and a small metadata object.

use domain::EventMetadata;
use serde_json::{Value, json};
use uuid::Uuid;

/// The stored type name of the benchmark event.
pub const EVENT_TYPE: &str = "BenchFeatureDescribed";

/// A body shaped like a real domain event, about 200 bytes as JSON.
pub fn data(seq: u64) -> Value {
    json!({
        "project_id": Uuid::new_v4(),
        "feature_id": Uuid::new_v4(),
        "name": format!("feature-{seq:08}"),
        "kind": "crud_entity",
        "description": "Orders placed by customers, with line items and a status.",
        "seq": seq,
    })
}

/// Metadata as a command handler would attach it: actor, correlation id, request id.
pub fn metadata() -> EventMetadata {
    EventMetadata {
        actor: Some(Uuid::new_v4()),
        correlation_id: Some(Uuid::new_v4()),
        causation_id: None,
        request_id: Some(format!("req-{}", Uuid::new_v4().simple())),
        traceparent: None,
        project_id: None,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_about_two_hundred_bytes() {
        let len = serde_json::to_string(&data(1))
            .map(|s| s.len())
            .unwrap_or(0);
        assert!((180..=260).contains(&len), "body is {len} bytes");
    }
}
