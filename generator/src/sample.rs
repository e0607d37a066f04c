//! Test data derived from a field's constraints: valid values of every kind, and strings that
//! violate exactly one rule (too long, too short, not matching the pattern).
//!
//! Patterns are sampled from their HIR (`regex-syntax`, the parser the domain validated them
//! with), then checked with the `regex` crate, which is the engine the generated app uses too
//! (Pydantic's default `rust-regex`). Sampling is deterministic: a small seeded generator picks
//! branches, repetition counts and characters, and a fixed sequence of seeds and "extra
//! repetitions" is tried, so a schema always yields the same values.
//!
//! Sampling is linear in the field's length and bounded: every step draws from a [`Work`]
//! budget proportional to `max_length` (plus the pattern's size), counting HIR nodes visited and
//! characters produced, copied or scanned by the regex. A schema whose values cannot be found
//! within it is refused, like one no value can satisfy; the budget is counted, not timed, so the
//! outcome is the same on every machine and the generation stays reproducible.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::rc::Rc;

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

/// Work units one phase of sampling may spend: a fixed allowance for short fields plus this many
/// per character of `max_length + 1` and of the pattern. A unit is one HIR node visited or one
/// character produced, copied or scanned, so a phase's time and memory are at most proportional
/// to it (regex matching is linear in the input for a pattern of bounded compiled size, which the
/// domain enforces when the pattern is written).
pub const WORK_PER_CHAR: u64 = 400;
pub const WORK_BASE: u64 = 2_000_000;

/// A counted budget of sampling work (see [`WORK_PER_CHAR`]). Exhausting it is not an error in
/// itself: each phase stops where it is and keeps what it found, or falls back to a plain value.
#[derive(Debug)]
pub struct Work {
    spent: Cell<u64>,
    limit: u64,
}

impl Work {
    /// The budget of one sampling phase of a field with these rules.
    pub fn for_rules(rules: &StringRules<'_>) -> Self {
        let chars = rules.max_len as u64 + 1 + rules.pattern.map_or(0, |p| p.len() as u64);
        Self {
            spent: Cell::new(0),
            limit: WORK_BASE.saturating_add(WORK_PER_CHAR.saturating_mul(chars)),
        }
    }

    /// Charges `units`; false once the budget is spent (and from then on).
    fn charge(&self, units: usize) -> bool {
        let spent = self.spent.get().saturating_add(units as u64);
        self.spent.set(spent);
        spent <= self.limit
    }

    fn exhausted(&self) -> bool {
        self.spent.get() > self.limit
    }

    pub fn spent(&self) -> u64 {
        self.spent.get()
    }

    #[cfg(test)]
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

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
    /// The characters each class node picks from, computed once per node (keyed by its address
    /// in `hir`, which does not move while the pattern lives).
    choices: RefCell<HashMap<usize, Rc<[char]>>>,
}

impl Pattern {
    pub fn new(pattern: &str) -> Result<Self, String> {
        let regex = Regex::new(pattern).map_err(|e| format!("does not compile: {e}"))?;
        let hir = regex_syntax::parse(pattern).map_err(|e| format!("does not parse: {e}"))?;
        Ok(Self {
            hir,
            regex,
            choices: RefCell::new(HashMap::new()),
        })
    }

    /// Search semantics, as the domain and the generated app use: a match anywhere counts.
    pub fn is_match(&self, s: &str, work: &Work) -> bool {
        work.charge(s.len());
        self.regex.is_match(s)
    }

    /// One string built from the HIR, or `None` if it would exceed `cap` characters, meets a
    /// class that matches nothing, or the budget runs out.
    fn generate(&self, seed: u64, extra: usize, cap: usize, work: &Work) -> Option<String> {
        let mut emitter = Emitter {
            pattern: self,
            rng: Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ extra as u64),
            extra,
            cap,
            work,
            out: String::new(),
            chars: 0,
        };
        emitter.emit(&self.hir)?;
        Some(emitter.out)
    }

    /// Every distinct string the sampler finds, in a fixed order, each no longer than `cap`
    /// characters, until the budget runs out.
    fn candidates<'p>(&'p self, cap: usize, work: &'p Work) -> impl Iterator<Item = String> + 'p {
        let mut seen: HashSet<u64> = HashSet::new();
        EXTRAS
            .iter()
            .flat_map(|&extra| (0..SEEDS).map(move |seed| (extra, seed)))
            .take_while(|_| !work.exhausted())
            .filter_map(move |(extra, seed)| self.generate(seed, extra, cap, work))
            .filter(move |s| seen.insert(fingerprint(s)))
    }

    fn choices(&self, class: &Class, work: &Work) -> Rc<[char]> {
        let key = std::ptr::from_ref(class) as usize;
        if let Some(found) = self.choices.borrow().get(&key) {
            return found.clone();
        }
        let ranges = match class {
            Class::Unicode(c) => c.ranges().len(),
            Class::Bytes(c) => c.ranges().len(),
        };
        work.charge(ranges * 160);
        let list: Rc<[char]> = class_choices(class).into();
        self.choices.borrow_mut().insert(key, list.clone());
        list
    }
}

/// A stable 64-bit digest of a candidate (SipHash with fixed keys), to skip repeats cheaply.
fn fingerprint(s: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    s.hash(&mut hasher);
    hasher.finish()
}

/// Builds one string from a pattern's HIR, keeping its length in characters as it goes.
struct Emitter<'a> {
    pattern: &'a Pattern,
    rng: Rng,
    extra: usize,
    cap: usize,
    work: &'a Work,
    out: String,
    chars: usize,
}

impl Emitter<'_> {
    fn push_str(&mut self, s: &str) -> Option<()> {
        let n = s.chars().count();
        if self.chars + n > self.cap || !self.work.charge(n) {
            return None;
        }
        self.out.push_str(s);
        self.chars += n;
        Some(())
    }

    fn emit(&mut self, hir: &Hir) -> Option<()> {
        if !self.work.charge(1) {
            return None;
        }
        match hir.kind() {
            HirKind::Empty | HirKind::Look(_) => {}
            HirKind::Literal(literal) => self.push_str(std::str::from_utf8(&literal.0).ok()?)?,
            HirKind::Class(class) => {
                let choices = self.pattern.choices(class, self.work);
                if choices.is_empty() {
                    return None;
                }
                let c = choices[self.rng.below(choices.len() as u64) as usize];
                self.push_str(c.encode_utf8(&mut [0; 4]))?;
            }
            HirKind::Repetition(repetition) => {
                let min = repetition.min as usize;
                let room = match repetition.max {
                    Some(max) => (max as usize - min).min(self.extra),
                    None => self.extra,
                };
                // Mostly the full extra, sometimes less, so seeds vary the lengths too.
                let count = if self.rng.below(3) == 0 {
                    min + self.rng.below(room as u64 + 1) as usize
                } else {
                    min + room
                };
                for _ in 0..count {
                    self.emit(&repetition.sub)?;
                }
            }
            HirKind::Capture(capture) => self.emit(&capture.sub)?,
            HirKind::Concat(parts) => {
                for part in parts {
                    self.emit(part)?;
                }
            }
            HirKind::Alternation(branches) => {
                let branch = &branches[self.rng.below(branches.len() as u64) as usize];
                self.emit(branch)?;
            }
        }
        Some(())
    }
}

/// The characters a class picks from: its letters and digits, else its printable ASCII, else
/// up to 16 characters beyond ASCII that are not control characters.
fn class_choices(class: &Class) -> Vec<char> {
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
        return alnum;
    }
    let printable: Vec<char> = (' '..='~').filter(|&c| contains(c)).collect();
    if !printable.is_empty() {
        return printable;
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
    usable
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
fn padded(pattern: &Pattern, s: &str, len: usize, work: &Work) -> Option<String> {
    let have = char_len(s);
    if have >= len {
        return None;
    }
    let mut pads: Vec<char> = Vec::new();
    pads.extend(s.chars().last());
    pads.extend(s.chars().next());
    pads.extend(['x', 'a', '0', 'A', ' ', '-']);
    for pad in pads {
        if !work.charge(2 * len) {
            return None;
        }
        let fill: String = std::iter::repeat_n(pad, len - have).collect();
        for candidate in [format!("{s}{fill}"), format!("{fill}{s}")] {
            if pattern.is_match(&candidate, work) {
                return Some(candidate);
            }
        }
    }
    None
}

/// Everything the generated tests need of one string field, found within bounded work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringSamples {
    /// Up to `want` distinct valid values, in a fixed order (at least one).
    pub valid: Vec<String>,
    /// Longer than `max_len`, matching the pattern when the sampler found such a string.
    pub too_long: String,
    /// Whether `too_long` also breaks the pattern.
    pub too_long_mismatches: bool,
    /// Shorter than `min_len` (only when `min_len > 0`), and whether it also breaks the pattern.
    pub too_short: Option<(String, bool)>,
    /// Within the lengths but not matching the pattern, when such a string was found.
    pub mismatch: Option<String>,
    /// Units of work spent, over all phases (each phase has its own [`Work`] budget).
    pub work: u64,
}

/// Samples a string field: its valid values and each kind of invalid one. Each of the four
/// phases gets its own [`Work`] budget, so the whole costs at most four of them.
pub fn string_samples(rules: StringRules<'_>, want: usize) -> Result<StringSamples, String> {
    let pattern = rules.pattern.map(Pattern::new).transpose()?;
    let pattern = pattern.as_ref();
    let budget = || Work::for_rules(&rules);
    let breaks = |s: &str, work: &Work| pattern.is_some_and(|p| !p.is_match(s, work));

    let work = budget();
    let valid = valid_with(pattern, rules, want, &work)?;
    let mut spent = work.spent();

    let work = budget();
    let too_long = too_long_with(pattern, rules, &valid, &work);
    let too_long_mismatches = breaks(&too_long, &work);
    spent += work.spent();

    let too_short = (rules.min_len > 0).then(|| {
        let work = budget();
        let short = too_short_with(pattern, rules, &work);
        let mismatches = breaks(&short, &work);
        spent += work.spent();
        (short, mismatches)
    });

    let mismatch = pattern.and_then(|pattern| {
        let work = budget();
        let found = mismatch_with(pattern, rules, &valid, &work);
        spent += work.spent();
        found
    });
    Ok(StringSamples {
        valid,
        too_long,
        too_long_mismatches,
        too_short,
        mismatch,
        work: spent,
    })
}

/// Up to `want` distinct valid values for a string field, in a fixed order; at least one, or why
/// none could be found.
fn valid_with(
    pattern: Option<&Pattern>,
    rules: StringRules<'_>,
    want: usize,
    work: &Work,
) -> Result<Vec<String>, String> {
    if rules.min_len > rules.max_len {
        return Err(format!(
            "min_length {} exceeds max_length {}",
            rules.min_len, rules.max_len
        ));
    }
    let Some(pattern) = pattern else {
        let target = |word: &str| char_len(word).clamp(rules.min_len.max(1), rules.max_len);
        let values: Vec<String> = WORDS
            .iter()
            .take(want)
            .map(|word| {
                work.charge(target(word));
                word.chars().cycle().take(target(word)).collect()
            })
            .collect();
        return Ok(values);
    };
    let mut found: Vec<String> = Vec::new();
    for candidate in pattern.candidates(rules.max_len, work) {
        if found.len() >= want || work.exhausted() {
            break;
        }
        let candidate = if char_len(&candidate) < rules.min_len {
            match padded(pattern, &candidate, rules.min_len, work) {
                Some(p) => p,
                None => continue,
            }
        } else {
            candidate
        };
        // Empty values are valid but make poor test data; keep them only as a last resort.
        work.charge(candidate.len() * (found.len() + 2));
        if rules.fits(&candidate)
            && !candidate.is_empty()
            && !candidate.contains('\0')
            && !found.contains(&candidate)
            && pattern.is_match(&candidate, work)
        {
            found.push(candidate);
        }
    }
    if found.is_empty() && rules.min_len == 0 && pattern.is_match("", work) {
        found.push(String::new());
    }
    if found.is_empty() {
        let source = rules.pattern.unwrap_or_default();
        if work.exhausted() {
            return Err(format!(
                "no string of {} to {} characters matching the pattern {source:?} was found \
                 within the sampler's work limit",
                rules.min_len, rules.max_len
            ));
        }
        return Err(format!(
            "no string of {} to {} characters matching the pattern {source:?} could be sampled",
            rules.min_len, rules.max_len
        ));
    }
    Ok(found)
}

/// A string longer than `rules.max_len` that would otherwise be valid (it matches the pattern),
/// or, when the pattern cannot produce one within the budget, any string of `max_len + 1`
/// characters.
fn too_long_with(
    pattern: Option<&Pattern>,
    rules: StringRules<'_>,
    valid: &[String],
    work: &Work,
) -> String {
    let len = rules.max_len + 1;
    if let Some(pattern) = pattern {
        if let Some(s) = longer_match(pattern, valid, len, work) {
            return s;
        }
    }
    work.charge(len);
    "x".repeat(len)
}

fn longer_match(pattern: &Pattern, valid: &[String], len: usize, work: &Work) -> Option<String> {
    let cap = len.saturating_mul(2).saturating_add(64);
    let mut best: Option<(String, usize)> = None;
    let samples = valid.iter().take(3).cloned();
    for s in samples.chain(pattern.candidates(cap, work)) {
        if work.exhausted() {
            break;
        }
        let candidate = if char_len(&s) >= len {
            s
        } else {
            match padded(pattern, &s, len, work) {
                Some(p) => p,
                None => continue,
            }
        };
        let n = char_len(&candidate);
        if n >= len
            && best.as_ref().is_none_or(|(_, b)| n < *b)
            && pattern.is_match(&candidate, work)
        {
            best = Some((candidate, n));
            if n == len {
                break;
            }
        }
    }
    best.map(|(s, _)| s)
}

/// A string shorter than `rules.min_len` (which must be positive), matching the pattern when it
/// can.
fn too_short_with(pattern: Option<&Pattern>, rules: StringRules<'_>, work: &Work) -> String {
    let len = rules.min_len.saturating_sub(1);
    if let Some(pattern) = pattern {
        let found = pattern
            .candidates(len, work)
            .chain(std::iter::once(String::new()))
            .find(|s| char_len(s) <= len && pattern.is_match(s, work));
        if let Some(s) = found {
            return s;
        }
    }
    work.charge(len);
    "x".repeat(len)
}

/// Characters substituted into valid values to break a pattern.
const MISMATCH_POOL: [char; 10] = ['!', '~', ' ', '-', '0', 'a', 'Z', '\u{e9}', '_', '.'];
/// Positions of a valid value that get substituted: this many at each end.
const MISMATCH_POSITIONS: usize = 4;

/// A string within the length limits that the pattern does not match, or `None` when every
/// string tried matches (a pattern like `a*` accepts everything under search semantics) or the
/// budget runs out. Candidates are built one at a time, so memory stays at one string.
fn mismatch_with(
    pattern: &Pattern,
    rules: StringRules<'_>,
    valid: &[String],
    work: &Work,
) -> Option<String> {
    let repeated = MISMATCH_POOL.iter().flat_map(move |&c| {
        [rules.min_len.max(1), rules.min_len.max(3), rules.max_len]
            .into_iter()
            .map(move |len| Candidate::Repeat(c, len))
    });
    // Per valid value, as before the budget existed: substitutions at a few positions at each
    // end, then one character more at either end, then one less.
    let mutated = valid.iter().take(3).flat_map(|sample| {
        let n = char_len(sample);
        let positions: Vec<usize> = if n <= 2 * MISMATCH_POSITIONS {
            (0..n).collect()
        } else {
            (0..MISMATCH_POSITIONS)
                .chain(n - MISMATCH_POSITIONS..n)
                .collect()
        };
        let substituted = positions.into_iter().flat_map(move |i| {
            MISMATCH_POOL
                .iter()
                .map(move |&c| Candidate::Replace(sample, i, c))
        });
        substituted.chain([
            Candidate::Append(sample),
            Candidate::Prepend(sample),
            Candidate::DropLast(sample),
        ])
    });
    repeated
        .chain(mutated)
        .chain(std::iter::once(Candidate::Repeat('!', 0)))
        .take_while(|_| !work.exhausted())
        .map(|candidate| candidate.build(work))
        .find(|s| rules.fits(s) && !pattern.is_match(s, work))
}

/// One mismatch candidate, built only when it is tried.
enum Candidate<'a> {
    Repeat(char, usize),
    Replace(&'a str, usize, char),
    Append(&'a str),
    Prepend(&'a str),
    DropLast(&'a str),
}

impl Candidate<'_> {
    fn build(&self, work: &Work) -> String {
        let s = match *self {
            Candidate::Repeat(c, len) => std::iter::repeat_n(c, len).collect(),
            Candidate::Replace(s, i, c) => s
                .chars()
                .enumerate()
                .map(|(j, x)| if j == i { c } else { x })
                .collect(),
            Candidate::Append(s) => format!("{s}!"),
            Candidate::Prepend(s) => format!("!{s}"),
            Candidate::DropLast(s) => {
                let n = char_len(s);
                s.chars().take(n.saturating_sub(1)).collect()
            }
        };
        work.charge(2 * s.len());
        s
    }
}

#[cfg(test)]
pub fn valid_strings(rules: StringRules<'_>, want: usize) -> Result<Vec<String>, String> {
    string_samples(rules, want).map(|s| s.valid)
}

#[cfg(test)]
pub fn too_long(rules: StringRules<'_>) -> String {
    let pattern = rules.pattern.and_then(|p| Pattern::new(p).ok());
    let work = Work::for_rules(&rules);
    let valid = valid_with(pattern.as_ref(), rules, 3, &work).unwrap_or_default();
    too_long_with(pattern.as_ref(), rules, &valid, &Work::for_rules(&rules))
}

#[cfg(test)]
pub fn too_short(rules: StringRules<'_>) -> String {
    let pattern = rules.pattern.and_then(|p| Pattern::new(p).ok());
    too_short_with(pattern.as_ref(), rules, &Work::for_rules(&rules))
}

#[cfg(test)]
pub fn mismatch(rules: StringRules<'_>) -> Option<String> {
    let pattern = Pattern::new(rules.pattern?).ok()?;
    let work = Work::for_rules(&rules);
    let valid = valid_with(Some(&pattern), rules, 3, &work).unwrap_or_default();
    mismatch_with(&pattern, rules, &valid, &Work::for_rules(&rules))
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

    /// Issue 10 (H2): the string schemas that cost seconds and gigabytes, and a long text.
    fn hostile() -> [StringRules<'static>; 4] {
        [
            StringRules {
                min_len: 10_000,
                max_len: 10_000,
                pattern: Some("[abc]"),
            },
            StringRules {
                min_len: 0,
                max_len: 10_000,
                pattern: Some("^(?:(?:(?:a{10}){10}){10}){10}$"),
            },
            // A `text` field at the domain's largest max_length.
            StringRules {
                min_len: 0,
                max_len: 1_000_000,
                pattern: None,
            },
            // Repetitions that produce nothing cost node visits, not characters.
            StringRules {
                min_len: 1,
                max_len: 10_000,
                pattern: Some("^(?:(?:(?:(?:){0,1000}){0,1000}){0,1000})x$"),
            },
        ]
    }

    #[test]
    fn hostile_schemas_cost_at_most_four_linear_budgets() {
        for rules in hostile() {
            let bound = 4 * Work::for_rules(&rules).limit();
            let samples = string_samples(rules, 6);
            let work = samples.as_ref().map_or(0, |s| s.work);
            assert!(
                work <= bound,
                "{rules:?}: {work} units of work, bound {bound}"
            );
            // What the budget buys is linear in max_length: 4 x (2M + 400 x chars).
            assert!(bound <= 4 * (2_000_000 + 400 * (rules.max_len as u64 + 64)));
            if let Ok(samples) = samples {
                for value in &samples.valid {
                    assert!(rules.fits(value), "{rules:?}");
                }
                assert_eq!(samples.too_long.chars().count(), rules.max_len + 1);
            }
        }
    }

    #[test]
    fn the_three_schemas_of_the_issue_are_sampled() {
        let [abc, nested, text, _] = hostile();
        let samples = string_samples(abc, 6).unwrap();
        assert_eq!(samples.valid.len(), 3, "a, b and c padded to 10,000");
        assert!(samples.valid.iter().all(|v| v.chars().count() == 10_000));
        assert!(samples.mismatch.is_some());
        let samples = string_samples(nested, 6).unwrap();
        assert_eq!(samples.valid, vec!["a".repeat(10_000)]);
        assert!(
            samples.too_long_mismatches,
            "no 10,001-character value matches"
        );
        assert!(samples.mismatch.is_some());
        let samples = string_samples(text, 6).unwrap();
        assert_eq!(samples.valid.len(), 6);
        assert!(samples.valid.iter().all(|v| v.len() < 20));
    }

    #[test]
    fn sampling_work_grows_linearly_with_the_length() {
        let work = |len: usize, pattern: &'static str| {
            string_samples(
                StringRules {
                    min_len: len,
                    max_len: len,
                    pattern: Some(pattern),
                },
                6,
            )
            .unwrap()
            .work
        };
        for pattern in ["[abc]", "^[a-z]+$", "^[a-z]+-?[0-9]*$"] {
            let (small, large) = (work(1_000, pattern), work(10_000, pattern));
            assert!(
                large <= 12 * small,
                "{pattern}: {small} units at 1,000 characters, {large} at 10,000"
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
