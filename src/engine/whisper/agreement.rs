//! The LocalAgreement-2 commit policy (whisper_streaming, Macháček et al.
//! 2023): a word is committed once two consecutive hypotheses of the growing
//! window agree on it and on everything before it.
//!
//! Hypotheses cover the whole window, so each one first drops what is already
//! committed: words that end before the last committed time, and an n-gram
//! repeating the committed tail.

/// A hypothesis word with its times in seconds from the stream start.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedWord {
    pub text: String,
    pub start: f64,
    pub end: f64,
    /// The model put a timestamp right after this word.
    pub ends_segment: bool,
}

/// Slack when comparing a new word's start with the last committed end.
const TIME_SLACK: f64 = 0.1;
const MAX_NGRAM: usize = 5;

#[derive(Debug, Default)]
pub struct Agreement {
    /// Committed words not yet emitted as a final.
    committed: Vec<TimedWord>,
    /// The uncommitted tail of the previous hypothesis.
    tentative: Vec<TimedWord>,
    last_committed_end: f64,
}

impl Agreement {
    /// Takes the next hypothesis of the window; returns how many words it newly
    /// committed (now at the end of [`committed`](Self::committed)).
    pub fn insert(&mut self, hypothesis: Vec<TimedWord>) -> usize {
        let fresh = self.strip_committed(hypothesis);
        let agreed = fresh
            .iter()
            .zip(&self.tentative)
            .take_while(|(a, b)| same_word(&a.text, &b.text))
            .count();
        let mut fresh = fresh.into_iter();
        for word in fresh.by_ref().take(agreed) {
            self.last_committed_end = word.end;
            self.committed.push(word);
        }
        self.tentative = fresh.collect();
        agreed
    }

    pub fn committed(&self) -> &[TimedWord] {
        &self.committed
    }

    pub fn tentative(&self) -> &[TimedWord] {
        &self.tentative
    }

    /// Ends the current result with `words`, a decode of all of its audio
    /// since the last cut: it replaces what was committed or tentative.
    pub fn finish_with(&mut self, words: Vec<TimedWord>) -> Vec<TimedWord> {
        self.committed.clear();
        self.tentative.clear();
        if let Some(last) = words.last() {
            self.last_committed_end = self.last_committed_end.max(last.end);
        }
        words
    }

    /// Hands over the first `n` committed words (a window is cut after them);
    /// the rest stay committed.
    pub fn take_committed(&mut self, n: usize) -> Vec<TimedWord> {
        let n = n.min(self.committed.len());
        let rest = self.committed.split_off(n);
        std::mem::replace(&mut self.committed, rest)
    }

    /// Ends the current result with what it has: the committed words, then
    /// the tentative ones.
    pub fn take_final(&mut self) -> Vec<TimedWord> {
        let mut words = std::mem::take(&mut self.committed);
        words.append(&mut self.tentative);
        self.finish_with(words)
    }

    fn strip_committed(&self, hypothesis: Vec<TimedWord>) -> Vec<TimedWord> {
        let mut fresh: Vec<TimedWord> = hypothesis
            .into_iter()
            .filter(|w| w.start > self.last_committed_end - TIME_SLACK)
            .collect();
        let Some(first) = fresh.first() else {
            return fresh;
        };
        if (first.start - self.last_committed_end).abs() < 1.0 && !self.committed.is_empty() {
            let limit = MAX_NGRAM.min(self.committed.len()).min(fresh.len());
            for n in (1..=limit).rev() {
                let tail = &self.committed[self.committed.len() - n..];
                if tail
                    .iter()
                    .zip(&fresh[..n])
                    .all(|(a, b)| same_word(&a.text, &b.text))
                {
                    fresh.drain(..n);
                    break;
                }
            }
        }
        fresh
    }
}

/// Words match ignoring case and surrounding punctuation.
fn same_word(a: &str, b: &str) -> bool {
    normalize(a) == normalize(b)
}

pub fn normalize(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words one per half second starting at `from`.
    fn hyp(from: f64, text: &str) -> Vec<TimedWord> {
        text.split_whitespace()
            .enumerate()
            .map(|(i, w)| TimedWord {
                text: w.into(),
                start: from + i as f64 * 0.5,
                end: from + i as f64 * 0.5 + 0.4,
                ends_segment: false,
            })
            .collect()
    }

    fn texts(words: &[TimedWord]) -> String {
        words
            .iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn commits_only_what_two_hypotheses_agree_on() {
        let mut a = Agreement::default();
        assert_eq!(a.insert(hyp(0.0, "the patient")), 0);
        assert_eq!(texts(a.tentative()), "the patient");
        assert_eq!(a.insert(hyp(0.0, "the patient reports")), 2);
        assert_eq!(texts(a.committed()), "the patient");
        assert_eq!(texts(a.tentative()), "reports");
        assert_eq!(a.insert(hyp(0.0, "the patient reports chest pain")), 1);
        assert_eq!(texts(a.committed()), "the patient reports");
        assert_eq!(texts(a.tentative()), "chest pain");
    }

    #[test]
    fn a_revised_word_is_not_committed() {
        let mut a = Agreement::default();
        a.insert(hyp(0.0, "the patient reports chess"));
        assert_eq!(a.insert(hyp(0.0, "the patient reports chest pain")), 3);
        assert_eq!(texts(a.committed()), "the patient reports");
        assert_eq!(
            a.insert(hyp(0.0, "the patient reports chest pain today")),
            2
        );
        assert_eq!(texts(a.committed()), "the patient reports chest pain");
    }

    #[test]
    fn case_and_punctuation_do_not_break_agreement() {
        let mut a = Agreement::default();
        a.insert(hyp(0.0, "The patient,"));
        assert_eq!(a.insert(hyp(0.0, "the Patient reports")), 2);
    }

    #[test]
    fn committed_words_are_not_committed_twice_after_a_final() {
        let mut a = Agreement::default();
        a.insert(hyp(0.0, "the patient reports"));
        a.insert(hyp(0.0, "the patient reports chest"));
        assert_eq!(texts(&a.take_committed(usize::MAX)), "the patient reports");
        assert!(a.committed().is_empty());
        // The window still starts at 0: old words are dropped by time.
        assert_eq!(a.insert(hyp(0.0, "the patient reports chest pain")), 1);
        assert_eq!(a.insert(hyp(0.0, "the patient reports chest pain now")), 1);
        assert_eq!(texts(a.committed()), "chest pain");
    }

    #[test]
    fn a_repeated_committed_tail_is_dropped_even_with_shifted_times() {
        let mut a = Agreement::default();
        a.insert(hyp(0.0, "the patient reports"));
        a.insert(hyp(0.0, "the patient reports"));
        // The last committed word ends at 1.4; a re-decode shifts "reports" later.
        a.insert(hyp(1.35, "reports chest pain"));
        assert_eq!(a.insert(hyp(1.35, "reports chest pain")), 2);
        assert_eq!(texts(a.committed()), "the patient reports chest pain");
    }

    #[test]
    fn the_final_of_an_utterance_includes_the_tentative_tail() {
        let mut a = Agreement::default();
        a.insert(hyp(0.0, "no known allergies"));
        a.insert(hyp(0.0, "no known allergies to"));
        assert_eq!(texts(&a.take_final()), "no known allergies to");
        assert!(a.tentative().is_empty());
    }
}
