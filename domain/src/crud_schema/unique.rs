//! An entity's unique constraints and the canonical key of a record's values under each — what the command side's `record_unique` rows hold.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::EntitySchema;
use super::record::RecordValues;

/// One unique constraint: a field's own `unique`, or a composite group of the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueConstraint {
    /// Its member fields, sorted by name: the same constraint however the schema lists them.
    pub fields: Vec<String>,
}

impl UniqueConstraint {
    /// The constraint's key: its fields joined with `,` (`email`, `code,customer`). Field names
    /// cannot hold a comma, so two constraints never share a key.
    pub fn key(&self) -> String {
        self.fields.join(",")
    }

    /// The SHA-256 of the canonical encoding of `values` under this constraint, or `None` when a
    /// member is null or absent: as in SQL, a null member reserves nothing.
    ///
    /// `values` must be normalised ([`EntitySchema::check_record`]): a decimal at its field's
    /// scale, a date-time in UTC, a UUID lower-case, so equal values have one encoding. The
    /// encoding is the JSON array of the members' values in the constraint's order, which is
    /// unambiguous whatever the values hold.
    pub fn value_hash(&self, values: &RecordValues) -> Option<[u8; 32]> {
        let mut members = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            match values.get(field) {
                None | Some(Value::Null) => return None,
                Some(value) => members.push(value),
            }
        }
        let encoded = serde_json::to_vec(&members).ok()?;
        Some(Sha256::digest(&encoded).into())
    }
}

impl EntitySchema {
    /// Every unique constraint: each `unique` field's, then each composite group's.
    pub fn unique_constraints(&self) -> Vec<UniqueConstraint> {
        let single = self
            .fields
            .iter()
            .filter(|f| f.unique)
            .map(|f| vec![f.name.clone()]);
        single
            .chain(self.unique.iter().cloned())
            .map(|mut fields| {
                fields.sort_unstable();
                UniqueConstraint { fields }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crud_schema::RecordWrite;
    use crate::error::Pointer;
    use crate::limits::Limits;

    fn schema() -> EntitySchema {
        let raw = json!({
            "entity": "item",
            "fields": [
                {"name": "sku", "type": "string", "unique": true},
                {"name": "price", "type": "decimal", "precision": 8, "scale": 2, "unique": true},
                {"name": "shop", "type": "uuid"},
                {"name": "code", "type": "string"}
            ],
            "unique": [["shop", "code"]]
        });
        match EntitySchema::parse(&raw, &Pointer::root(), &Limits::default()) {
            Ok(schema) => schema,
            Err(errors) => panic!("the test's schema is invalid: {errors:?}"),
        }
    }

    fn hash(body: Value, key: &str) -> Option<[u8; 32]> {
        let s = schema();
        let values = s.check_record(&body, RecordWrite::Patch).ok()?;
        let constraint = s
            .unique_constraints()
            .into_iter()
            .find(|c| c.key() == key)?;
        constraint.value_hash(&values)
    }

    #[test]
    fn given_a_schema_then_single_and_composite_constraints_are_keyed_by_their_sorted_fields() {
        let keys: Vec<String> = schema()
            .unique_constraints()
            .iter()
            .map(|c| c.key())
            .collect();
        assert_eq!(keys, ["sku", "price", "code,shop"]);
    }

    #[test]
    fn given_decimals_written_differently_at_the_same_scale_then_they_collide() {
        assert!(hash(json!({"price": "12.3"}), "price").is_some());
        assert_eq!(
            hash(json!({"price": "12.3"}), "price"),
            hash(json!({"price": "12.30"}), "price")
        );
        assert_eq!(
            hash(json!({"price": 12.3}), "price"),
            hash(json!({"price": "12.30"}), "price")
        );
        assert_ne!(
            hash(json!({"price": "12.3"}), "price"),
            hash(json!({"price": "12.31"}), "price")
        );
    }

    #[test]
    fn given_uuids_in_either_case_then_they_collide() {
        let shop = "123e4567-e89b-12d3-a456-426614174000";
        assert_eq!(
            hash(json!({"shop": shop, "code": "a"}), "code,shop"),
            hash(
                json!({"shop": shop.to_uppercase(), "code": "a"}),
                "code,shop"
            )
        );
    }

    #[test]
    fn given_a_null_member_then_nothing_is_reserved() {
        assert_eq!(hash(json!({"sku": null}), "sku"), None);
        assert_eq!(hash(json!({"shop": null, "code": "a"}), "code,shop"), None);
    }

    #[test]
    fn given_strings_then_case_matters_and_member_boundaries_cannot_be_forged() {
        assert_ne!(
            hash(json!({"sku": "A"}), "sku"),
            hash(json!({"sku": "a"}), "sku")
        );
        let shop = "123e4567-e89b-12d3-a456-426614174000";
        assert_ne!(
            hash(json!({"shop": shop, "code": "a,b"}), "code,shop"),
            hash(json!({"shop": shop, "code": "a"}), "code,shop")
        );
    }
}
