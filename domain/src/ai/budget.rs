//! Monthly AI budgets: the UTC month of an instant, the worst-case reservation of a request, the prompt-token estimate, admission and its `Retry-After`.
//!
//! Admission reserves what a request could cost at most before it is made, so concurrent requests
//! can never spend past a budget: spent + reserved + this reservation ≤ budget, else refused.
//! Completion later replaces the reservation with the actual cost (the command side's
//! `ai_budget` row does the arithmetic under a row lock; these are its rules).

use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use time::{Date, Month, OffsetDateTime, Time};

use super::money::PRICE_SCALE;
use super::prompt::{self, Prompt, PromptInput, SCHEMA_LANGUAGE};
use super::proposal;
use super::request::{ERROR_MAX_BYTES, MAX_ATTEMPTS, RequestAi};

/// The largest monthly budget accepted, in USD: far above any real spend, and far from overflow.
pub const MAX_BUDGET_USD: u64 = 1_000_000_000;

/// Tokens counted for each message's framing (role markers, separators) on top of its text.
pub const MESSAGE_FRAMING_TOKENS: u64 = 16;

/// The UTC calendar month `at` falls in, as its first day.
pub fn month_of(at: OffsetDateTime) -> Date {
    let utc = at.to_offset(time::UtcOffset::UTC);
    // Day 1 exists in every month.
    Date::from_calendar_date(utc.year(), utc.month(), 1).unwrap_or(utc.date())
}

/// The first instant of the UTC month after the one `at` falls in.
pub fn next_month_start(at: OffsetDateTime) -> OffsetDateTime {
    let month = month_of(at);
    let (year, next) = match month.month() {
        Month::December => (month.year() + 1, Month::January),
        m => (month.year(), m.next()),
    };
    let first = Date::from_calendar_date(year, next, 1).unwrap_or(Date::MAX);
    first.with_time(Time::MIDNIGHT).assume_utc()
}

/// `Retry-After` of a refusal at `now`: whole seconds to the start of the next UTC month, rounded
/// up (a client that waits exactly this long is in the next month), at least 1.
pub fn retry_after_seconds(now: OffsetDateTime) -> u64 {
    let left = next_month_start(now) - now;
    let whole = left.whole_seconds().max(0) as u64;
    let partial = u64::from(left.subsec_nanoseconds() > 0);
    (whole + partial).max(1)
}

/// A conservative count of the prompt tokens of `messages` (the text that will be sent: the
/// system and user messages and the JSON Schema of the structured answer). The rule: one token
/// per UTF-8 byte plus [`MESSAGE_FRAMING_TOKENS`] per message. Byte-level BPE tokenizers (every
/// provider's) never make a token of less than one byte, so the count is an upper bound — too
/// high is safe for a reservation, too low is not.
pub fn estimate_prompt_tokens<'a>(messages: impl IntoIterator<Item = &'a str>) -> u64 {
    messages
        .into_iter()
        .map(|text| (text.len() as u64).saturating_add(MESSAGE_FRAMING_TOKENS))
        .fold(0u64, u64::saturating_add)
}

/// The worst case of one request (docs/api.md): `(estimated prompt tokens + max_output_tokens) ×
/// prices × 3` — every one of [`MAX_ATTEMPTS`] attempts reading `prompt_tokens` at the input price
/// and writing `max_output_tokens` at the output price — rounded **up** to 6 places, so it is
/// never below the half-even sum the attempts can actually cost.
pub fn reservation(
    prompt_tokens: u64,
    max_output_tokens: u64,
    input_usd_per_mtok: Decimal,
    output_usd_per_mtok: Decimal,
) -> Decimal {
    let one = Decimal::from(prompt_tokens)
        .checked_mul(input_usd_per_mtok)
        .and_then(|a| {
            Decimal::from(max_output_tokens)
                .checked_mul(output_usd_per_mtok)
                .and_then(|b| a.checked_add(b))
        })
        .and_then(|sum| sum.checked_div(Decimal::from(1_000_000u32)))
        .and_then(|one| one.checked_mul(Decimal::from(MAX_ATTEMPTS)));
    let mut up = one
        .unwrap_or(Decimal::MAX)
        .round_dp_with_strategy(PRICE_SCALE, RoundingStrategy::AwayFromZero);
    up.rescale(PRICE_SCALE);
    up
}

/// The worst case of `request` as it will be sent: its prompt rendered exactly as the worker
/// renders it (the recorded templates, the project at the request's version, the schema
/// language's rules) with a repair's `errors` at their recorded maximum
/// ([`super::request::ERROR_MAX_BYTES`]), plus the kind's JSON Schema, estimated by
/// [`estimate_prompt_tokens`], at the model's cap and prices. A prompt that cannot be rendered
/// is never sent (the request fails with no attempt), so it reserves only its output side.
pub fn request_reservation(request: &RequestAi) -> Decimal {
    let project = &request.project;
    let input = PromptInput {
        project: serde_json::to_value(project).unwrap_or(serde_json::Value::Null),
        spec: None,
        schema_language: SCHEMA_LANGUAGE.to_owned(),
        prompt: request.user_prompt.clone(),
        feature: request
            .feature_id
            .and_then(|id| project.feature(id))
            .and_then(|f| serde_json::to_value(f).ok()),
        function: request
            .function_id
            .and_then(|id| project.function(id))
            .and_then(|f| serde_json::to_value(f).ok()),
        errors: Some(vec!["x".repeat(ERROR_MAX_BYTES)]),
    };
    let template = Prompt {
        name: request.prompt.name.clone(),
        version: request.prompt.version,
        purpose: request.kind,
        system: request.system.clone(),
        template: request.template.clone(),
    };
    let schema = proposal::json_schema(request.kind).to_string();
    let prompt_tokens = match prompt::render(&template, &input) {
        Ok(rendered) => estimate_prompt_tokens([
            rendered.system.as_str(),
            rendered.user.as_str(),
            schema.as_str(),
        ]),
        Err(_) => 0,
    };
    let config = &request.model_config;
    reservation(
        prompt_tokens,
        u64::from(config.max_output_tokens),
        config.input_usd_per_mtok,
        config.output_usd_per_mtok,
    )
}

/// Where a user's month stands: what completed requests cost and what running ones hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthSpend {
    pub spent_usd: Decimal,
    pub reserved_usd: Decimal,
}

/// Why a request was not admitted: the numbers its answer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the monthly AI budget of {budget_usd} USD is exhausted: {spent_usd} spent and {reserved_usd} reserved by running requests this month, and this request may cost up to {reservation_usd}"
)]
pub struct BudgetExceeded {
    pub budget_usd: Decimal,
    pub spent_usd: Decimal,
    pub reserved_usd: Decimal,
    pub reservation_usd: Decimal,
}

/// Admission: with no budget every request is admitted; otherwise spent + reserved + this
/// reservation must not exceed the budget.
pub fn admit(
    budget_usd: Option<Decimal>,
    month: MonthSpend,
    reservation_usd: Decimal,
) -> Result<(), BudgetExceeded> {
    let Some(budget_usd) = budget_usd else {
        return Ok(());
    };
    let total = month
        .spent_usd
        .checked_add(month.reserved_usd)
        .and_then(|held| held.checked_add(reservation_usd));
    match total {
        Some(total) if total <= budget_usd => Ok(()),
        _ => Err(BudgetExceeded {
            budget_usd,
            spent_usd: month.spent_usd,
            reserved_usd: month.reserved_usd,
            reservation_usd,
        }),
    }
}

/// Why a budget was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("a budget is a decimal number of USD (a JSON number or string), or null for none")]
    NotADecimal,
    #[error("a budget has at most 6 decimal places")]
    TooPrecise,
    #[error("a budget is not negative")]
    Negative,
    #[error("a budget is at most 1000000000 USD")]
    TooLarge,
}

/// A monthly budget from its decimal text: not negative, at most 6 places, at most
/// [`MAX_BUDGET_USD`]. Shared by the admin route and `BACKFORGE_AI_MONTHLY_BUDGET_USD`.
pub fn parse_budget(text: &str) -> Result<Decimal, BudgetError> {
    let text = text.trim();
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str(text)
    };
    let value = parsed.map_err(|_| BudgetError::NotADecimal)?.normalize();
    if value.scale() > PRICE_SCALE {
        return Err(BudgetError::TooPrecise);
    }
    if value.is_sign_negative() && !value.is_zero() {
        return Err(BudgetError::Negative);
    }
    if value > Decimal::from(MAX_BUDGET_USD) {
        return Err(BudgetError::TooLarge);
    }
    let mut value = value.abs();
    value.rescale(PRICE_SCALE);
    Ok(value)
}

/// Serde for an optional budget: `null`, a JSON number or a decimal string, read by its text
/// (never through `f64`). A missing field is an error (use it with `deserialize_with`).
pub fn deserialize_budget<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    let raw = Box::<RawValue>::deserialize(d)?;
    let text = raw.get().trim();
    if text == "null" {
        return Ok(None);
    }
    let text = if text.starts_with('"') {
        serde_json::from_str::<String>(text).map_err(D::Error::custom)?
    } else {
        text.to_owned()
    };
    parse_budget(&text).map(Some).map_err(D::Error::custom)
}

/// Serde for an optional budget as recorded: a decimal string, or `null`.
pub mod optional_decimal {
    use super::*;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_str(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| Decimal::from_str(&t).map_err(D::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::super::money::cost;
    use super::*;
    use time::macros::datetime;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn a_month_is_the_utc_calendar_month_of_the_instant() {
        // Given an instant late on the last day of a month in a zone east of UTC
        let at = datetime!(2026-03-01 00:30 +01:00);
        // Then its month is UTC's: still February
        assert_eq!(month_of(at), time::macros::date!(2026 - 02 - 01));
        assert_eq!(
            month_of(datetime!(2026-12-31 23:59:59 UTC)),
            time::macros::date!(2026 - 12 - 01)
        );
    }

    #[test]
    fn the_next_month_starts_at_midnight_utc_and_december_rolls_the_year() {
        assert_eq!(
            next_month_start(datetime!(2026-12-07 08:50 UTC)),
            datetime!(2027-01-01 00:00 UTC)
        );
        assert_eq!(
            next_month_start(datetime!(2026-02-28 23:00 UTC)),
            datetime!(2026-03-01 00:00 UTC)
        );
    }

    #[test]
    fn retry_after_counts_whole_seconds_up_to_the_next_month() {
        // Given one and a half seconds before the month ends
        let now = datetime!(2026-04-30 23:59:58.5 UTC);
        // Then a client that waits the answer is in May
        assert_eq!(retry_after_seconds(now), 2);
        assert_eq!(
            retry_after_seconds(datetime!(2026-04-01 00:00 UTC)),
            30 * 86_400
        );
    }

    #[test]
    fn the_prompt_estimate_counts_every_byte_and_each_message_framing() {
        assert_eq!(estimate_prompt_tokens(["", ""]), 2 * MESSAGE_FRAMING_TOKENS);
        // "é" is two UTF-8 bytes: two tokens at most.
        assert_eq!(estimate_prompt_tokens(["abc", "é"]), 3 + 2 + 32);
    }

    #[test]
    fn the_reservation_is_three_worst_attempts_rounded_up() {
        // Given 1000 prompt tokens, 4000 output tokens at 2.5 / 10 USD per million
        // Then 3 × (1000 × 2.5 + 4000 × 10) / 1e6 = 0.1275
        assert_eq!(
            reservation(1000, 4000, d("2.5"), d("10")).to_string(),
            "0.127500"
        );
        // A fraction below the sixth place is rounded up, never half-even down
        assert_eq!(reservation(1, 0, d("0.1"), d("0")).to_string(), "0.000001");
        // And never below the attempts' own half-even costs
        let worst = cost(1, 0, d("0.5"), d("0")) * Decimal::from(3);
        assert!(reservation(1, 0, d("0.5"), d("0")) >= worst);
    }

    #[test]
    fn admission_holds_spent_plus_reserved_plus_this_within_the_budget() {
        let month = MonthSpend {
            spent_usd: d("1.000000"),
            reserved_usd: d("0.500000"),
        };
        // Exactly at the budget is admitted
        assert_eq!(admit(Some(d("2")), month, d("0.5")), Ok(()));
        // One millionth over is refused, naming the numbers
        let refused = admit(Some(d("2")), month, d("0.500001")).unwrap_err();
        assert_eq!(refused.spent_usd, d("1"));
        assert_eq!(refused.reserved_usd, d("0.5"));
        assert!(refused.to_string().contains("0.500001"));
        // No budget admits anything
        assert_eq!(admit(None, month, d("1000")), Ok(()));
        // A zero budget admits nothing that costs
        assert!(
            admit(
                Some(Decimal::ZERO),
                MonthSpend {
                    spent_usd: Decimal::ZERO,
                    reserved_usd: Decimal::ZERO
                },
                d("0.000001")
            )
            .is_err()
        );
    }

    #[test]
    fn budgets_are_exact_decimals_within_bounds() {
        assert_eq!(parse_budget("10").unwrap().to_string(), "10.000000");
        assert_eq!(parse_budget("0.25").unwrap().to_string(), "0.250000");
        assert_eq!(parse_budget("0").unwrap().to_string(), "0.000000");
        assert_eq!(parse_budget("-1"), Err(BudgetError::Negative));
        assert_eq!(parse_budget("0.0000001"), Err(BudgetError::TooPrecise));
        assert_eq!(parse_budget("1000000001"), Err(BudgetError::TooLarge));
        assert_eq!(parse_budget("ten"), Err(BudgetError::NotADecimal));
        #[derive(Deserialize)]
        struct Body {
            #[serde(deserialize_with = "deserialize_budget")]
            b: Option<Decimal>,
        }
        let read = |json: &str| serde_json::from_str::<Body>(json).map(|b| b.b);
        assert_eq!(read(r#"{"b": 0.1}"#).unwrap(), Some(d("0.100000")));
        assert_eq!(read(r#"{"b": "12.5"}"#).unwrap(), Some(d("12.500000")));
        assert_eq!(read(r#"{"b": null}"#).unwrap(), None);
        assert!(read(r#"{}"#).is_err());
        assert!(read(r#"{"b": true}"#).is_err());
    }
}
