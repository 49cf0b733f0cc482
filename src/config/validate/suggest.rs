//! "Did you mean": the closest of a few candidates to a misspelt word.
//!
//! Owns: the similarity measure (Jaro-Winkler, `strsim`) and its threshold.
//! Must not: know what the candidates are (keys, names, conditions, signals).
//! Invariants: returns a candidate only when it is close enough to be what was meant.

/// The closest candidate, if it is close enough to be what was meant.
pub(crate) fn suggest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(input, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
