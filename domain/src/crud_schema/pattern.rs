//! Which regular expressions a string field may carry: cheap to match and possible to sample.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

use super::*;

/// Why `pattern` cannot be used: it must compile with the `regex` crate and use only constructs a
/// generator can sample test data from.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.chars().count() > PATTERN_MAX_CHARS {
        return Err(format!("must be at most {PATTERN_MAX_CHARS} characters"));
    }
    let compiled = regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_COMPILED_MAX_BYTES)
        .nest_limit(PATTERN_NEST_MAX)
        .build();
    if let Err(regex::Error::CompiledTooBig(_)) = compiled {
        return Err(format!(
            "is too costly: it compiles to more than {} KiB; bound the length with min_length \
             and max_length rather than with large counted repetitions such as {{100}}",
            PATTERN_COMPILED_MAX_BYTES / 1024
        ));
    }
    if let Err(error) = compiled {
        let text = error.to_string();
        // The regex crate draws a caret diagram over several lines; its last line says what is wrong.
        let reason = text
            .lines()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or(&text);
        return Err(format!("is not a valid regular expression: {reason}"));
    }
    let hir = regex_syntax::parse(pattern)
        .map_err(|error| format!("is not a valid regular expression: {error}"))?;
    samplable(&hir)?;
    let steps = expansion(&hir);
    if steps > PATTERN_EXPANSION_MAX {
        return Err(format!(
            "repeats too much: building one matching value takes {steps} steps, at most \
             {PATTERN_EXPANSION_MAX} are allowed; use fewer or smaller nested repetitions"
        ));
    }
    Ok(())
}

/// HIR nodes visited to build one value with every repetition at its minimum count (at least
/// once), saturating: the work the generator's sampler cannot avoid for this pattern.
pub(super) fn expansion(hir: &Hir) -> u64 {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) | HirKind::Class(_) => 1,
        HirKind::Literal(literal) => 1 + literal.0.len() as u64,
        HirKind::Repetition(repetition) => u64::from(repetition.min.max(1))
            .saturating_mul(expansion(&repetition.sub))
            .saturating_add(1),
        HirKind::Capture(capture) => expansion(&capture.sub).saturating_add(1),
        HirKind::Concat(parts) | HirKind::Alternation(parts) => parts
            .iter()
            .fold(1u64, |sum, part| sum.saturating_add(expansion(part))),
    }
}

/// Only literals, classes, repetitions, alternations, groups and `^`/`$` can be sampled from
/// without a solver; word boundaries and multi-line anchors constrain the context of a match.
pub(super) fn samplable(hir: &Hir) -> Result<(), String> {
    match hir.kind() {
        HirKind::Empty | HirKind::Literal(_) => Ok(()),
        HirKind::Class(class) => {
            let empty = match class {
                Class::Unicode(c) => c.ranges().is_empty(),
                Class::Bytes(c) => c.ranges().is_empty(),
            };
            if empty {
                Err("contains a character class that matches nothing".into())
            } else {
                Ok(())
            }
        }
        HirKind::Look(Look::Start | Look::End) => Ok(()),
        HirKind::Look(Look::StartLF | Look::EndLF | Look::StartCRLF | Look::EndCRLF) => Err(
            "uses multi-line anchors, which cannot be sampled; use ^ and $ without the m flag"
                .into(),
        ),
        HirKind::Look(_) => {
            Err("uses word boundaries (\\b, \\B, \\< or \\>), which cannot be sampled".into())
        }
        HirKind::Repetition(repetition) => samplable(&repetition.sub),
        HirKind::Capture(capture) => samplable(&capture.sub),
        HirKind::Concat(parts) | HirKind::Alternation(parts) => {
            parts.iter().try_for_each(samplable)
        }
    }
}
