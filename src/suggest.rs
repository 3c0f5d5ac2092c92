//! "Did you mean ...?" for every name a person types: playbook keys, module
//! names, handlers, variables, groups, hosts, built-in playbooks.

/// The candidate closest to `word`, if it is close enough to be a typo:
/// within a third of the longer word's length in edits (transpositions count
/// once, case is ignored), or very similar by Jaro-Winkler. `word` itself is
/// never suggested.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| {
            let lower = c.to_lowercase();
            let distance = strsim::damerau_levenshtein(&word_lower, &lower);
            let similarity = strsim::jaro_winkler(&word_lower, &lower);
            (c, distance, similarity)
        })
        .filter(|(c, distance, similarity)| {
            let limit = (c.chars().count().max(word.chars().count()) / 3).max(1);
            *distance <= limit || *similarity >= 0.9
        })
        .min_by(|a, b| a.1.cmp(&b.1).then(b.2.total_cmp(&a.2)))
        .map(|(c, _, _)| c)
}

/// `did you mean `X`?` for [`closest`].
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_letter_typos_of_short_and_long_words() {
        assert_eq!(closest("asert", ["assert", "shell"]), Some("assert"));
        assert_eq!(closest("nmae", ["name", "hosts"]), Some("name"));
        assert_eq!(closest("servrs", ["servers", "clients"]), Some("servers"));
        assert_eq!(closest("Shell", ["shell"]), Some("shell"));
        assert_eq!(closest("zzz", ["name", "hosts"]), None);
        assert_eq!(closest("name", ["name"]), None);
    }
}
