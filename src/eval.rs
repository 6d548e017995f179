//! Transcript accuracy: word error rate, as the tests and the ASR benchmark measure it.

/// Lower-case words with surrounding punctuation removed ("Breath." → "breath").
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level edits (substitutions, insertions, deletions) turning `reference` into `hypothesis`.
pub fn word_edits(reference: &str, hypothesis: &str) -> usize {
    let r = words(reference);
    let h = words(hypothesis);
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let next = (diagonal + usize::from(rw != hw))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[h.len()]
}

/// Word error rate: edits over the number of reference words (0.0 is perfect).
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    word_edits(reference, hypothesis) as f64 / words(reference).len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_case_and_punctuation() {
        assert_eq!(
            word_error_rate(
                "the patient reports chest pain",
                "The patient reports chest pain."
            ),
            0.0
        );
    }

    #[test]
    fn counts_substitutions_deletions_and_insertions() {
        assert_eq!(word_error_rate("a b c d", "a x c"), 0.5);
        assert_eq!(word_error_rate("a b", "a b c d"), 1.0);
        assert_eq!(word_edits("a b c", ""), 3);
    }
}
