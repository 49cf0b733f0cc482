//! "Did you mean": the one place that picks the closest known name to a mistyped one.
//!
//! Owns: the similarity measure (Jaro-Winkler) and the threshold under which nothing is
//! suggested. Used by config errors (keys, signals, conditions, dependencies) and by the
//! CLI's unknown-process errors. Must not: phrase the suggestion; callers word it.
//! Invariant: the answer is one of the candidates, and only when it is at least
//! [`THRESHOLD`] similar to the input; ties keep the first candidate.

/// The least Jaro-Winkler similarity worth suggesting.
pub const THRESHOLD: f64 = 0.8;

/// The candidate closest to `input`, if it is close enough to be what was meant.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &'a str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(input, candidate);
        if score >= THRESHOLD && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_the_closest_candidate_only_when_close() {
        assert_eq!(closest("comand", ["command", "cwd"]), Some("command"));
        assert_eq!(closest("SIGTREM", ["SIGTERM", "SIGINT"]), Some("SIGTERM"));
        assert_eq!(closest("xyz", ["command", "cwd"]), None);
        assert_eq!(closest("web", []), None);
    }
}
