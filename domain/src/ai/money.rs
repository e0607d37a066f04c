//! Exact money: prices read from JSON text (never `f64`), an answer's cost, decimal-string serde.

use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::value::RawValue;

/// Decimal places a price may have (docs/api.md: at most 6) and a cost is rounded to.
pub const PRICE_SCALE: u32 = 6;

/// The largest price accepted, in USD per million tokens: far above any real model, and small
/// enough that no token count a `u64` holds can overflow the cost.
pub const MAX_PRICE_USD_PER_MTOK: u64 = 1_000_000;

/// Why a price was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("a price is a decimal number (as a JSON number or string), got `{0}`")]
    NotADecimal(String),
    #[error("a price has at most 6 decimal places")]
    TooPrecise,
    #[error("a price is not negative")]
    Negative,
    #[error("a price is at most 1000000 USD per million tokens")]
    TooLarge,
}

/// A price from its decimal text (`"2.5"`, `"0.000150"`, `"1e-3"`): at most 6 decimal places once
/// trailing zeros are dropped, not negative, at most [`MAX_PRICE_USD_PER_MTOK`].
pub fn parse_price(text: &str) -> Result<Decimal, PriceError> {
    let text = text.trim();
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str(text)
    };
    let value = parsed
        .map_err(|_| PriceError::NotADecimal(text.chars().take(40).collect()))?
        .normalize();
    if value.scale() > PRICE_SCALE {
        return Err(PriceError::TooPrecise);
    }
    if value.is_sign_negative() && !value.is_zero() {
        return Err(PriceError::Negative);
    }
    if value > Decimal::from(MAX_PRICE_USD_PER_MTOK) {
        return Err(PriceError::TooLarge);
    }
    Ok(value)
}

/// The cost of one answer: `(input × input price + output × output price) / 1,000,000`, rounded
/// half-even to 6 places. Prices are checked by [`parse_price`], so this cannot overflow; if it
/// ever did, the cost saturates rather than reading as free.
pub fn cost(
    input_tokens: u64,
    output_tokens: u64,
    input_usd_per_mtok: Decimal,
    output_usd_per_mtok: Decimal,
) -> Decimal {
    let total = Decimal::from(input_tokens)
        .checked_mul(input_usd_per_mtok)
        .and_then(|a| {
            Decimal::from(output_tokens)
                .checked_mul(output_usd_per_mtok)
                .and_then(|b| a.checked_add(b))
        })
        .and_then(|sum| sum.checked_div(Decimal::from(1_000_000u32)));
    let mut rounded = total
        .unwrap_or(Decimal::MAX)
        .round_dp_with_strategy(PRICE_SCALE, RoundingStrategy::MidpointNearestEven);
    // Always six places, so every recorded cost reads alike (`"0.008755"`, `"1.000000"`).
    rounded.rescale(PRICE_SCALE);
    rounded
}

/// Serde for a price: written as a decimal string, read from a JSON number or string by its text
/// (through [`RawValue`], so a number never passes through `f64`). Reading needs serde_json's
/// own deserializer from text (`from_str`, `from_slice`, `from_reader`), which is how every
/// request body and event is read.
pub mod price {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        let text = if text.starts_with('"') {
            serde_json::from_str::<String>(text).map_err(D::Error::custom)?
        } else {
            text.to_owned()
        };
        parse_price(&text).map_err(D::Error::custom)
    }
}

/// Serde for a recorded amount (a cost): a decimal string both ways, exact.
pub mod decimal_string {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        let text = String::deserialize(deserializer)?;
        Decimal::from_str(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_read_exactly_and_refused_past_six_places() {
        assert_eq!(parse_price("2.5").unwrap().to_string(), "2.5");
        assert_eq!(parse_price("0.000150").unwrap().to_string(), "0.00015");
        assert_eq!(parse_price("1e-3").unwrap().to_string(), "0.001");
        assert_eq!(parse_price("3.0000000").unwrap().to_string(), "3");
        assert_eq!(parse_price("0.0000001"), Err(PriceError::TooPrecise));
        assert_eq!(parse_price("-1"), Err(PriceError::Negative));
        assert_eq!(parse_price("1000001"), Err(PriceError::TooLarge));
        assert!(matches!(
            parse_price("abc"),
            Err(PriceError::NotADecimal(_))
        ));
    }

    #[test]
    fn cost_is_rounded_half_even_to_six_places() {
        let p = |s| parse_price(s).unwrap();
        // 1 × 0.5 / 1e6 = 0.0000005 → 0.000000 (half to even); 3 × 0.5 → 0.0000015 → 0.000002.
        assert_eq!(cost(1, 0, p("0.5"), p("0")).to_string(), "0.000000");
        assert_eq!(cost(3, 0, p("0.5"), p("0")).to_string(), "0.000002");
        assert_eq!(cost(1234, 567, p("2.5"), p("10")).to_string(), "0.008755");
        assert_eq!(
            cost(u64::MAX, u64::MAX, p("1000000"), p("1000000")).to_string(),
            "36893488147419103230.000000"
        );
    }
}
