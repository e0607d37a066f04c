//! Defaults checked against their field's type, dates, and exact decimal literals.

use std::cmp::Ordering;

use serde_json::{Number, Value};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime};

use super::FieldKind;

/// Why `value` is not a valid default for a field of `kind`.
pub(super) fn check_default(kind: &FieldKind, value: &Value) -> Result<(), String> {
    match kind {
        FieldKind::String {
            min_length,
            max_length,
            pattern,
        } => {
            let s = value.as_str().ok_or("must be a string")?;
            let length = s.chars().count();
            if let Some(min) = min_length {
                if length < *min as usize {
                    return Err(format!("must be at least {min} characters"));
                }
            }
            if length > *max_length as usize {
                return Err(format!("must be at most {max_length} characters"));
            }
            if let Some(pattern) = pattern {
                // The pattern was checked already; an error here cannot happen and would have
                // been reported at `pattern`.
                if let Ok(re) = regex::Regex::new(pattern) {
                    if !re.is_match(s) {
                        return Err(format!("does not match the pattern {pattern}"));
                    }
                }
            }
            Ok(())
        }
        FieldKind::Text { max_length } => {
            let s = value.as_str().ok_or("must be a string")?;
            match max_length {
                Some(max) if s.chars().count() > *max as usize => {
                    Err(format!("must be at most {max} characters"))
                }
                _ => Ok(()),
            }
        }
        FieldKind::Integer { min, max } => {
            let n = value.as_i64().ok_or("must be a 64-bit integer")?;
            in_range(n, *min, *max)
        }
        FieldKind::Decimal {
            precision,
            scale,
            min,
            max,
        } => {
            let n = value.as_number().ok_or("must be a number")?;
            let lit = DecimalLit::parse(&n.to_string()).ok_or("must be a decimal number")?;
            if let Some(problem) = lit.fit_problem(*precision, *scale) {
                return Err(problem);
            }
            let bound =
                |b: &Option<Number>| b.as_ref().and_then(|b| DecimalLit::parse(&b.to_string()));
            if let Some(min_lit) = bound(min) {
                if lit < min_lit {
                    return Err(format!(
                        "must be at least {}",
                        min.as_ref().map_or_else(String::new, Number::to_string)
                    ));
                }
            }
            if let Some(max_lit) = bound(max) {
                if lit > max_lit {
                    return Err(format!(
                        "must be at most {}",
                        max.as_ref().map_or_else(String::new, Number::to_string)
                    ));
                }
            }
            Ok(())
        }
        FieldKind::Float { min, max } => {
            let n = value.as_f64().ok_or("must be a number")?;
            in_range(n, *min, *max)
        }
        FieldKind::Boolean => value
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| "must be true or false".into()),
        FieldKind::Date => {
            let s = value.as_str().ok_or("must be a string")?;
            parse_date(s)
                .map(|_| ())
                .ok_or_else(|| "must be a date written YYYY-MM-DD".into())
        }
        FieldKind::Datetime => {
            let s = value.as_str().ok_or("must be a string")?;
            OffsetDateTime::parse(s, &Rfc3339)
                .map(|_| ())
                .map_err(|_| "must be an RFC 3339 date-time such as 2025-01-31T12:00:00Z".into())
        }
        FieldKind::Uuid => {
            let s = value.as_str().ok_or("must be a string")?;
            // Only the hyphenated form: it is the one every generated target reads back.
            if s.len() == 36 && uuid::Uuid::parse_str(s).is_ok() {
                Ok(())
            } else {
                Err("must be a UUID such as 123e4567-e89b-12d3-a456-426614174000".into())
            }
        }
        FieldKind::Json => Ok(()),
        FieldKind::Enum { values } => {
            let s = value.as_str().ok_or("must be a string")?;
            if values.iter().any(|v| v == s) {
                Ok(())
            } else {
                Err(format!("must be one of the values: {}", values.join(", ")))
            }
        }
        FieldKind::Reference { .. } => Err("reference fields take no default".into()),
    }
}

pub(super) fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    n: T,
    min: Option<T>,
    max: Option<T>,
) -> Result<(), String> {
    if let Some(min) = min {
        if n < min {
            return Err(format!("must be at least {min}"));
        }
    }
    if let Some(max) = max {
        if n > max {
            return Err(format!("must be at most {max}"));
        }
    }
    Ok(())
}

/// A calendar date written exactly `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    let bytes = s.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let year: i32 = s[0..4].parse().ok()?;
    let month: u8 = s[5..7].parse().ok()?;
    let day: u8 = s[8..10].parse().ok()?;
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

/// A decimal literal split into its digits, to check precision and scale and to compare bounds
/// exactly (an `f64` cannot hold 38 digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DecimalLit {
    pub(super) negative: bool,
    /// Integer digits without leading zeros (empty for zero).
    pub(super) int: String,
    /// Fraction digits without trailing zeros.
    pub(super) frac: String,
}

impl DecimalLit {
    /// Parses JSON number text: `-12.50`, `1e-7`, `3E+2`.
    pub(super) fn parse(text: &str) -> Option<Self> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        // JSON numbers stay within a few hundred digits of the point; refuse anything wilder.
        if exponent.abs() > 400 {
            return None;
        }
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int_part.is_empty() || !all_digits(int_part) || !all_digits(frac_part) {
            return None;
        }
        let digits = format!("{int_part}{frac_part}");
        let point = int_part.len() as i64 + exponent;
        let (int, frac) = if point <= 0 {
            (
                String::new(),
                format!("{}{digits}", "0".repeat((-point) as usize)),
            )
        } else if point as usize >= digits.len() {
            let zeros = "0".repeat(point as usize - digits.len());
            (format!("{digits}{zeros}"), String::new())
        } else {
            let (i, f) = digits.split_at(point as usize);
            (i.to_owned(), f.to_owned())
        };
        let int = int.trim_start_matches('0').to_owned();
        let frac = frac.trim_end_matches('0').to_owned();
        let negative = negative && !(int.is_empty() && frac.is_empty());
        Some(Self {
            negative,
            int,
            frac,
        })
    }

    /// Why the value does not fit a `NUMERIC(precision, scale)` column.
    pub(super) fn fit_problem(&self, precision: u8, scale: u8) -> Option<String> {
        let int_max = usize::from(precision.saturating_sub(scale));
        if self.frac.len() > usize::from(scale) {
            Some(format!("must have at most {scale} decimal places"))
        } else if self.int.len() > int_max {
            Some(format!(
                "must have at most {int_max} digits before the decimal point (precision {precision}, scale {scale})"
            ))
        } else {
            None
        }
    }

    pub(super) fn cmp_magnitude(&self, other: &Self) -> Ordering {
        // Without leading zeros, a longer integer part is larger; without trailing zeros, fraction
        // digits compare as strings.
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl Ord for DecimalLit {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for DecimalLit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
