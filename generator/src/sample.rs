//! Test data derived from a field's constraints: valid values of every kind, and strings that
//! violate exactly one rule (too long, too short, not matching the pattern).
//!
//! Patterns are sampled from their HIR (`regex-syntax`, the parser the domain validated them
//! with), then checked with the `regex` crate, which is the engine the generated app uses too
//! (Pydantic's default `rust-regex`). Sampling is deterministic: a small seeded generator picks
//! branches, repetition counts and characters, and a fixed sequence of seeds and "extra
//! repetitions" is tried, so a schema always yields the same values.

use regex::Regex;
use regex_syntax::hir::{Class, Hir, HirKind};

/// The length and pattern rules of a string field (lengths count characters).
#[derive(Debug, Clone, Copy)]
pub struct StringRules<'a> {
    pub min_len: usize,
    pub max_len: usize,
    pub pattern: Option<&'a str>,
}

/// Words for strings without a pattern. Distinct first letters keep truncated variants distinct;
/// the accents, quotes and backslash exercise the escaping of generated tests and the app's
/// Unicode handling.
const WORDS: [&str; 6] = [
    "alpha",
    "bravo",
    "ch\u{e4}rlie",
    "delta's",
    "echo \"5\"",
    "foxtrot\\",
];

/// Repetitions beyond the minimum tried when sampling, smallest first.
const EXTRAS: [usize; 16] = [0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 64, 128, 256];
const SEEDS: u64 = 24;

/// SplitMix64: tiny, seedable and good enough to vary samples.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// A compiled pattern that can be sampled from.
pub struct Pattern {
    hir: Hir,
    regex: Regex,
}

impl Pattern {
    pub fn new(pattern: &str) -> Result<Self, String> {
        let regex = Regex::new(pattern).map_err(|e| format!("does not compile: {e}"))?;
        let hir = regex_syntax::parse(pattern).map_err(|e| format!("does not parse: {e}"))?;
        Ok(Self { hir, regex })
    }

    /// Search semantics, as the domain and the generated app use: a match anywhere counts.
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }

    /// One string built from the HIR, or `None` if it would exceed `cap` characters or meets a
    /// class that matches nothing.
    fn generate(&self, seed: u64, extra: usize, cap: usize) -> Option<String> {
        let mut out = String::new();
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ extra as u64);
        emit(&self.hir, &mut rng, extra, cap, &mut out)?;
        Some(out)
    }

    /// Every string the sampler finds, in a fixed order (duplicates included), each no longer
    /// than `cap` characters.
    fn candidates(&self, cap: usize) -> impl Iterator<Item = String> + '_ {
        EXTRAS.iter().flat_map(move |&extra| {
            (0..SEEDS).filter_map(move |seed| self.generate(seed, extra, cap))
        })
    }
}

fn emit(hir: &Hir, rng: &mut Rng, extra: usize, cap: usize, out: &mut String) -> Option<()> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(literal) => out.push_str(std::str::from_utf8(&literal.0).ok()?),
        HirKind::Class(class) => out.push(pick_char(class, rng)?),
        HirKind::Repetition(repetition) => {
            let min = repetition.min as usize;
            let room = match repetition.max {
                Some(max) => (max as usize - min).min(extra),
                None => extra,
            };
            // Mostly the full extra, sometimes less, so seeds vary the lengths too.
            let count = if rng.below(3) == 0 {
                min + rng.below(room as u64 + 1) as usize
            } else {
                min + room
            };
            for _ in 0..count {
                emit(&repetition.sub, rng, extra, cap, out)?;
                if out.chars().count() > cap {
                    return None;
                }
            }
        }
        HirKind::Capture(capture) => emit(&capture.sub, rng, extra, cap, out)?,
        HirKind::Concat(parts) => {
            for part in parts {
                emit(part, rng, extra, cap, out)?;
            }
        }
        HirKind::Alternation(branches) => {
            let branch = &branches[rng.below(branches.len() as u64) as usize];
            emit(branch, rng, extra, cap, out)?;
        }
    }
    (out.chars().count() <= cap).then_some(())
}

/// A character of `class`: preferably a letter or digit, then printable ASCII, then anything that
/// is not a control character.
fn pick_char(class: &Class, rng: &mut Rng) -> Option<char> {
    let ranges: Vec<(char, char)> = match class {
        Class::Unicode(c) => c.ranges().iter().map(|r| (r.start(), r.end())).collect(),
        Class::Bytes(c) => c
            .ranges()
            .iter()
            .filter(|r| r.start().is_ascii())
            .map(|r| (char::from(r.start()), char::from(r.end().min(0x7f))))
            .collect(),
    };
    let contains = |c: char| ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
    let alnum: Vec<char> = ('0'..='9')
        .chain('A'..='Z')
        .chain('a'..='z')
        .filter(|&c| contains(c))
        .collect();
    if !alnum.is_empty() {
        return Some(alnum[rng.below(alnum.len() as u64) as usize]);
    }
    let printable: Vec<char> = (' '..='~').filter(|&c| contains(c)).collect();
    if !printable.is_empty() {
        return Some(printable[rng.below(printable.len() as u64) as usize]);
    }
    // Beyond ASCII: the first usable characters of the first ranges.
    let mut usable = Vec::new();
    for &(lo, hi) in &ranges {
        let mut c = lo;
        while usable.len() < 16 {
            if !c.is_control() && c != '\u{feff}' {
                usable.push(c);
            }
            if c == hi {
                break;
            }
            // Past the surrogate gap, the next character is U+E000.
            c = char::from_u32(c as u32 + 1).unwrap_or('\u{e000}');
            if c > hi {
                break;
            }
        }
        if usable.len() >= 16 {
            break;
        }
    }
    if usable.is_empty() {
        None
    } else {
        Some(usable[rng.below(usable.len() as u64) as usize])
    }
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

impl StringRules<'_> {
    fn fits(&self, s: &str) -> bool {
        (self.min_len..=self.max_len).contains(&char_len(s))
    }
}

/// Pads `s` with characters taken from itself and a few common ones, at the end or the start,
/// until it is `len` characters long, keeping only results the pattern still matches.
fn padded(pattern: &Pattern, s: &str, len: usize) -> Option<String> {
    let have = char_len(s);
    if have >= len {
        return None;
    }
    let mut pads: Vec<char> = Vec::new();
    pads.extend(s.chars().last());
    pads.extend(s.chars().next());
    pads.extend(['x', 'a', '0', 'A', ' ', '-']);
    for pad in pads {
        let fill: String = std::iter::repeat_n(pad, len - have).collect();
        for candidate in [format!("{s}{fill}"), format!("{fill}{s}")] {
            if pattern.is_match(&candidate) {
                return Some(candidate);
            }
        }
    }
    None
}

/// Up to `want` distinct valid values for a string field, in a fixed order; at least one, or why
/// none could be found.
pub fn valid_strings(rules: StringRules<'_>, want: usize) -> Result<Vec<String>, String> {
    if rules.min_len > rules.max_len {
        return Err(format!(
            "min_length {} exceeds max_length {}",
            rules.min_len, rules.max_len
        ));
    }
    let Some(source) = rules.pattern else {
        let target = |word: &str| char_len(word).clamp(rules.min_len.max(1), rules.max_len);
        let values: Vec<String> = WORDS
            .iter()
            .take(want)
            .map(|word| word.chars().cycle().take(target(word)).collect())
            .collect();
        return Ok(values);
    };
    let pattern = Pattern::new(source)?;
    let mut found: Vec<String> = Vec::new();
    let cap = rules.max_len;
    for candidate in pattern.candidates(cap) {
        if found.len() >= want {
            break;
        }
        let candidate = if char_len(&candidate) < rules.min_len {
            match padded(&pattern, &candidate, rules.min_len) {
                Some(p) => p,
                None => continue,
            }
        } else {
            candidate
        };
        // Empty values are valid but make poor test data; keep them only as a last resort.
        if rules.fits(&candidate)
            && pattern.is_match(&candidate)
            && !candidate.is_empty()
            && !candidate.contains('\0')
            && !found.contains(&candidate)
        {
            found.push(candidate);
        }
    }
    if found.is_empty() && rules.min_len == 0 && pattern.is_match("") {
        found.push(String::new());
    }
    if found.is_empty() {
        return Err(format!(
            "no string of {} to {} characters matching the pattern {source:?} could be sampled",
            rules.min_len, rules.max_len
        ));
    }
    Ok(found)
}

/// A string longer than `rules.max_len` that would otherwise be valid (it matches the pattern),
/// or, when the pattern cannot produce one, any string of `max_len + 1` characters.
pub fn too_long(rules: StringRules<'_>) -> String {
    let len = rules.max_len + 1;
    if let Some(source) = rules.pattern {
        if let Ok(pattern) = Pattern::new(source) {
            if let Some(s) = longer_match(&pattern, rules, len) {
                return s;
            }
        }
    }
    "x".repeat(len)
}

fn longer_match(pattern: &Pattern, rules: StringRules<'_>, len: usize) -> Option<String> {
    let cap = len.saturating_mul(2).saturating_add(64);
    let mut best: Option<String> = None;
    let samples = valid_strings(rules, 3).unwrap_or_default();
    for s in samples.iter().cloned().chain(pattern.candidates(cap)) {
        let candidate = if char_len(&s) >= len {
            s
        } else {
            match padded(pattern, &s, len) {
                Some(p) => p,
                None => continue,
            }
        };
        if pattern.is_match(&candidate)
            && char_len(&candidate) >= len
            && best
                .as_ref()
                .is_none_or(|b| char_len(&candidate) < char_len(b))
        {
            let exact = char_len(&candidate) == len;
            best = Some(candidate);
            if exact {
                break;
            }
        }
    }
    best
}

/// A string shorter than `rules.min_len` (which must be positive), matching the pattern when it can.
pub fn too_short(rules: StringRules<'_>) -> String {
    let len = rules.min_len.saturating_sub(1);
    if let Some(source) = rules.pattern {
        if let Ok(pattern) = Pattern::new(source) {
            let found = pattern
                .candidates(len)
                .chain(std::iter::once(String::new()))
                .find(|s| char_len(s) <= len && pattern.is_match(s));
            if let Some(s) = found {
                return s;
            }
        }
    }
    "x".repeat(len)
}

/// A string within the length limits that the pattern does not match, or `None` when every
/// such string matches (a pattern like `a*` accepts everything under search semantics).
pub fn mismatch(rules: StringRules<'_>) -> Option<String> {
    let pattern = Pattern::new(rules.pattern?).ok()?;
    let mut candidates: Vec<String> = Vec::new();
    let pool = ['!', '~', ' ', '-', '0', 'a', 'Z', '\u{e9}', '_', '.'];
    for &c in &pool {
        for len in [rules.min_len.max(1), rules.min_len.max(3), rules.max_len] {
            candidates.push(std::iter::repeat_n(c, len).collect());
        }
    }
    for sample in valid_strings(rules, 3).unwrap_or_default() {
        let chars: Vec<char> = sample.chars().collect();
        for i in 0..chars.len() {
            for &c in &pool {
                let mut mutated = chars.clone();
                mutated[i] = c;
                candidates.push(mutated.into_iter().collect());
            }
        }
        candidates.push(format!("{sample}!"));
        candidates.push(format!("!{sample}"));
        candidates.push(chars[..chars.len().saturating_sub(1)].iter().collect());
    }
    candidates.push(String::new());
    candidates
        .into_iter()
        .find(|s| rules.fits(s) && !pattern.is_match(s))
}

// ---------------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------------

/// Up to `want` distinct integers in `[min, max]`, near 1 where the range allows.
pub fn valid_integers(min: Option<i64>, max: Option<i64>, want: usize) -> Vec<i64> {
    let lo = min.unwrap_or(i64::MIN);
    let hi = max.unwrap_or(i64::MAX);
    let span = (hi as i128 - lo as i128) as u128;
    let count = (want as u128).min(span + 1) as i64;
    let start = 1i64.clamp(lo, hi.saturating_sub(count - 1).max(lo));
    (0..count).map(|i| start + i).collect()
}

/// A decimal as an integer count of `10^-scale` units, to stay exact up to 38 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Scaled(pub i128);

/// `text` (JSON number text, possibly with an exponent) in units of `10^-scale`, when it is
/// exactly representable at that scale and within 38 digits.
pub fn to_scaled(text: &str, scale: u8) -> Option<Scaled> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int_part}{frac_part}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // value = digits * 10^(exponent - frac_len); in units: digits * 10^(exponent - frac_len + scale)
    let shift = exponent - frac_part.len() as i32 + i32::from(scale);
    let mut digits = digits.trim_start_matches('0').to_owned();
    if digits.is_empty() {
        return Some(Scaled(0));
    }
    if shift < 0 {
        let drop = (-shift) as usize;
        if drop > digits.len() {
            return None;
        }
        let (keep, dropped) = digits.split_at(digits.len() - drop);
        if dropped.bytes().any(|b| b != b'0') {
            return None;
        }
        digits = if keep.is_empty() {
            "0".into()
        } else {
            keep.to_owned()
        };
    } else {
        digits.push_str(&"0".repeat(shift as usize));
    }
    if digits.len() > 38 {
        return None;
    }
    let n: i128 = digits.parse().ok()?;
    Some(Scaled(if negative { -n } else { n }))
}

/// `10^n` for `n <= 38`.
pub fn pow10(n: u8) -> i128 {
    10i128.pow(u32::from(n))
}

/// `value` written as a decimal with exactly `scale` places (`-12.50`).
pub fn format_scaled(value: Scaled, scale: u8) -> String {
    let negative = value.0 < 0;
    let magnitude = value.0.unsigned_abs().to_string();
    let scale = usize::from(scale);
    let text = if scale == 0 {
        magnitude
    } else {
        let padded = format!("{magnitude:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        format!("{int}.{frac}")
    };
    if negative { format!("-{text}") } else { text }
}

/// The unscaled range a `NUMERIC(precision, scale)` column with optional bounds accepts.
pub fn decimal_range(
    precision: u8,
    scale: u8,
    min: Option<&str>,
    max: Option<&str>,
) -> (Scaled, Scaled) {
    let limit = pow10(precision) - 1;
    let lo = min
        .and_then(|m| to_scaled(m, scale))
        .map_or(Scaled(-limit), |m| m.max(Scaled(-limit)));
    let hi = max
        .and_then(|m| to_scaled(m, scale))
        .map_or(Scaled(limit), |m| m.min(Scaled(limit)));
    (lo, hi)
}

/// Up to `want` distinct decimals in range, near 1.25 where the range allows, with their scale.
pub fn valid_decimals(
    precision: u8,
    scale: u8,
    lo: Scaled,
    hi: Scaled,
    want: usize,
) -> Vec<Scaled> {
    // 1.25 (or 1.2, or 1) in units of 10^-scale, limited by the precision.
    let one = pow10(scale);
    let preferred = (one + one / 4).min(pow10(precision) - 1);
    let span = hi.0.abs_diff(lo.0);
    let count = (want as u128).min(span.saturating_add(1)) as i128;
    let step = if scale > 0 { one / 10 + 1 } else { 1 };
    let step = if lo
        .0
        .checked_add(step * (count - 1))
        .is_some_and(|top| top <= hi.0)
    {
        step
    } else {
        1
    };
    let start = preferred.clamp(lo.0, (hi.0 - step * (count - 1)).max(lo.0));
    (0..count).map(|i| Scaled(start + i * step)).collect()
}

/// Up to `want` distinct finite floats in `[min, max]`, near 1.5 where the range allows.
pub fn valid_floats(min: Option<f64>, max: Option<f64>, want: usize) -> Vec<f64> {
    let lo = min.unwrap_or(-1e15);
    let hi = max.unwrap_or(1e15);
    if lo == hi {
        return vec![lo];
    }
    let mut values = Vec::new();
    for candidate in [1.5, 2.5, 3.25, 4.75, 5.5, 6.125] {
        if values.len() >= want {
            break;
        }
        if (lo..=hi).contains(&candidate) {
            values.push(candidate);
        }
    }
    let mut i = 0.0;
    while values.len() < want && i < 64.0 {
        // Fractions of the range, written exactly as f64 can.
        let candidate = lo + (hi - lo) * (0.25 + i / 256.0);
        if candidate.is_finite() && (lo..=hi).contains(&candidate) && !values.contains(&candidate) {
            values.push(candidate);
        }
        i += 1.0;
    }
    if values.is_empty() {
        values.push(lo);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(pattern: &str, min_len: usize, max_len: usize) -> StringRules<'_> {
        StringRules {
            min_len,
            max_len,
            pattern: Some(pattern),
        }
    }

    /// Patterns of every construct the domain accepts, with lengths that leave room.
    const PATTERNS: &[&str] = &[
        "^[A-Z]{3}-[0-9]{4}$",
        "^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$",
        "[0-9]+",
        "^\\d{5}(-\\d{4})?$",
        "^(red|green|blue)$",
        "^[^@\\s]+@[^@\\s]+$",
        "(?i)^hello world$",
        "^\\p{Greek}{2,5}$",
        "^\\w+$",
        "^.{3}$",
        "abc",
        "^$|^x$",
        "^[\\u{4e00}-\\u{4e10}]{2}$",
        "^(?:ab|cd)*ef$",
        "^(a(b(c)?)?)+$",
        "^[[:upper:]][[:lower:]]+$",
        "^[a-z&&[^aeiou]]{4}$",
        "^\\+?[0-9 ]{7,15}$",
        "^https?://[a-z]+\\.(com|org)(/[a-z]*)*$",
        "^[A-Z]{2}\\d{2}[A-Z0-9]{4,30}$",
        "^(?-u:[a-f0-9]){8}$",
        "^\\S+$",
        "x{0,3}y{2}",
        "^\\.\\*\\\\$",
        "^[\"']quoted[\"']$",
        "^\\p{Lu}\\p{Ll}*$",
        "^[^a-zA-Z0-9]{2}$",
        "^[\\x{1F600}-\\x{1F64F}]$",
        "^(?s:.)$",
        "^v[0-9]+\\.[0-9]+\\.[0-9]+(-[a-z]+)?$",
    ];

    #[test]
    fn every_sampled_value_matches_its_pattern_and_fits_its_lengths() {
        for pattern in PATTERNS {
            let rules = rules(pattern, 0, 255);
            let values = valid_strings(rules, 5).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            let regex = Regex::new(pattern).unwrap();
            assert!(!values.is_empty());
            for value in &values {
                assert!(regex.is_match(value), "{pattern}: {value:?}");
                assert!(rules.fits(value), "{pattern}: {value:?}");
            }
            let mut distinct = values.clone();
            distinct.dedup();
            assert_eq!(distinct.len(), values.len(), "{pattern}: duplicates");
        }
    }

    #[test]
    fn patterns_with_many_strings_yield_several_distinct_values() {
        for pattern in [
            "^[A-Z]{3}-[0-9]{4}$",
            "[0-9]+",
            "^\\w+$",
            "^(red|green|blue)$",
        ] {
            assert!(
                valid_strings(rules(pattern, 0, 255), 3).unwrap().len() >= 3,
                "{pattern}"
            );
        }
        assert_eq!(
            valid_strings(rules("^abc$", 0, 255), 3).unwrap(),
            vec!["abc".to_owned()]
        );
    }

    #[test]
    fn a_minimum_length_is_reached_by_longer_repetitions_or_padding() {
        for (pattern, min, max) in [
            ("^[a-z]+$", 20, 30),
            ("[0-9]", 10, 12),
            ("^[A-Z]{2,}-[0-9]+$", 25, 40),
            ("^x(yz)*$", 9, 9),
        ] {
            let values = valid_strings(rules(pattern, min, max), 3)
                .unwrap_or_else(|e| panic!("{pattern}: {e}"));
            for value in values {
                assert!((min..=max).contains(&value.chars().count()), "{value:?}");
                assert!(Regex::new(pattern).unwrap().is_match(&value));
            }
        }
    }

    #[test]
    fn an_unsatisfiable_combination_is_an_error() {
        assert!(valid_strings(rules("^[A-Z]{3}$", 5, 10), 1).is_err());
        assert!(valid_strings(rules("^[A-Z]{30}$", 0, 10), 1).is_err());
        assert!(valid_strings(rules("a^b", 0, 10), 1).is_err());
        assert!(valid_strings(rules("^x(yz)*$", 8, 8), 1).is_err());
    }

    #[test]
    fn strings_without_a_pattern_respect_both_lengths() {
        for (min, max) in [(0, 1), (1, 1), (3, 3), (0, 255), (50, 60), (10_000, 10_000)] {
            let values = valid_strings(
                StringRules {
                    min_len: min,
                    max_len: max,
                    pattern: None,
                },
                6,
            )
            .unwrap();
            assert_eq!(values.len(), 6);
            for value in &values {
                assert!((min.max(1)..=max).contains(&value.chars().count()));
            }
            let mut distinct = values.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), 6, "{min}..{max}: {values:?}");
        }
    }

    #[test]
    fn too_long_too_short_and_mismatch_break_exactly_one_rule() {
        for pattern in PATTERNS {
            let regex = Regex::new(pattern).unwrap();
            let r = rules(pattern, 0, 12);
            if valid_strings(r, 1).is_err() {
                continue;
            }
            let long = too_long(r);
            assert!(long.chars().count() > 12, "{pattern}");
            if let Some(bad) = mismatch(r) {
                assert!(!regex.is_match(&bad), "{pattern}: {bad:?}");
                assert!(r.fits(&bad), "{pattern}: {bad:?}");
            }
        }
        let r = rules("^[a-z]+$", 0, 10);
        assert_eq!(too_long(r).chars().count(), 11);
        assert!(Regex::new("^[a-z]+$").unwrap().is_match(&too_long(r)));
        let r = rules("^[a-z]+$", 4, 10);
        let short = too_short(r);
        assert!(short.chars().count() < 4);
        assert!(Regex::new("^[a-z]+$").unwrap().is_match(&short));
        assert_eq!(mismatch(rules("a*", 0, 10)), None);
        assert_eq!(
            mismatch(rules("^[0-9]{3}$", 3, 3)).unwrap().chars().count(),
            3
        );
    }

    #[test]
    fn sampling_is_deterministic() {
        for pattern in PATTERNS {
            assert_eq!(
                valid_strings(rules(pattern, 0, 100), 4).ok(),
                valid_strings(rules(pattern, 0, 100), 4).ok()
            );
        }
    }

    #[test]
    fn decimals_are_exact_at_their_scale() {
        assert_eq!(to_scaled("12.5", 2), Some(Scaled(1250)));
        assert_eq!(to_scaled("-0.01", 2), Some(Scaled(-1)));
        assert_eq!(to_scaled("1e2", 0), Some(Scaled(100)));
        assert_eq!(to_scaled("1e-7", 7), Some(Scaled(1)));
        assert_eq!(to_scaled("0.125", 2), None);
        assert_eq!(to_scaled("0", 2), Some(Scaled(0)));
        assert_eq!(format_scaled(Scaled(1250), 2), "12.50");
        assert_eq!(format_scaled(Scaled(-5), 2), "-0.05");
        assert_eq!(format_scaled(Scaled(7), 0), "7");
        assert_eq!(format_scaled(Scaled(pow10(38) - 1), 0), "9".repeat(38));
    }

    #[test]
    fn sampled_numbers_stay_in_range_and_distinct() {
        for (min, max) in [
            (None, None),
            (Some(0), Some(0)),
            (Some(5), Some(6)),
            (Some(i64::MAX - 1), None),
            (None, Some(i64::MIN + 2)),
            (Some(-10), Some(-3)),
        ] {
            let values = valid_integers(min, max, 4);
            assert!(!values.is_empty());
            for v in &values {
                assert!(min.is_none_or(|m| *v >= m) && max.is_none_or(|m| *v <= m));
            }
        }
        for (precision, scale, min, max) in [
            (12u8, 2u8, Some("0"), None),
            (4, 2, Some("-99.99"), Some("99.99")),
            (1, 1, None, None),
            (5, 0, Some("3"), Some("3")),
            (38, 10, None, None),
            (3, 0, Some("-5"), Some("-2")),
        ] {
            let (lo, hi) = decimal_range(precision, scale, min, max);
            let values = valid_decimals(precision, scale, lo, hi, 4);
            assert!(!values.is_empty());
            for v in &values {
                assert!(*v >= lo && *v <= hi, "{precision},{scale}: {v:?}");
            }
        }
        for (min, max) in [
            (None, None),
            (Some(0.0), Some(1.0)),
            (Some(0.1), Some(0.1)),
            (Some(-1e300), Some(-1e299)),
        ] {
            for v in valid_floats(min, max, 4) {
                assert!(min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m));
            }
        }
    }
}
