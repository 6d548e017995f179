//! Whisper's token vocabulary: encodes prompt text into token ids and turns
//! generated token ids back into text segments with their timestamps.
//!
//! The vocabulary comes from the model's `tokenizer.json` (GPT-2 byte-level
//! BPE plus Whisper's special tokens). Timestamp tokens are not listed there:
//! they are the ids after `<|notimestamps|>`, one per 20 ms.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

pub const START_OF_TRANSCRIPT: &str = "<|startoftranscript|>";
/// Opens the previous-text prompt that goes before `<|startoftranscript|>`.
pub const START_OF_PREV: &str = "<|startofprev|>";
pub const NO_TIMESTAMPS: &str = "<|notimestamps|>";
/// Seconds per timestamp token step.
const TIMESTAMP_STEP: f64 = 0.02;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a Whisper tokenizer.json: {why}")]
    Invalid { path: String, why: String },
}

#[derive(Deserialize)]
struct TokenizerFile {
    model: BpeModel,
    added_tokens: Vec<AddedToken>,
    pre_tokenizer: Option<PreTokenizer>,
}

#[derive(Deserialize)]
struct BpeModel {
    vocab: HashMap<String, u32>,
    /// Absent only from hand-made files, which can then decode but not merge.
    #[serde(default)]
    merges: Vec<MergeEntry>,
}

/// Older `tokenizers` write a merge as `"a b"`, newer ones as `["a", "b"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum MergeEntry {
    Joined(String),
    Pair(String, String),
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
}

#[derive(Deserialize)]
struct PreTokenizer {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    add_prefix_space: bool,
    #[serde(default = "yes")]
    use_regex: bool,
}

fn yes() -> bool {
    true
}

/// One stretch of text between two timestamp tokens, in seconds from the
/// start of the decoded window.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// What joining two adjacent tokens gives, and how early BPE does it.
#[derive(Clone, Copy)]
struct Merge {
    rank: u32,
    id: u32,
}

pub struct Tokenizer {
    /// Bytes of each ordinary token, by id; `None` for special tokens.
    tokens: Vec<Option<Vec<u8>>>,
    timestamp_begin: usize,
    /// Special tokens (`<|startofprev|>`, language tags, ...) by name.
    specials: HashMap<String, u32>,
    /// The one-byte token of each byte: where BPE starts.
    byte_tokens: [Option<u32>; 256],
    /// Merges keyed by the ids of the two tokens they join. Working in ids
    /// means the string vocabulary need not be kept after loading.
    merges: HashMap<(u32, u32), Merge>,
    add_prefix_space: bool,
}

impl Tokenizer {
    pub fn load(path: &Path) -> Result<Self, TokenizerError> {
        let shown = path.display().to_string();
        let raw = std::fs::read(path).map_err(|source| TokenizerError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: TokenizerFile =
            serde_json::from_slice(&raw).map_err(|e| TokenizerError::Invalid {
                path: shown.clone(),
                why: e.to_string(),
            })?;
        Self::from_file(file).map_err(|why| TokenizerError::Invalid { path: shown, why })
    }

    fn from_file(file: TokenizerFile) -> Result<Self, String> {
        let specials: HashMap<String, u32> = file
            .added_tokens
            .into_iter()
            .map(|t| (t.content, t.id))
            .collect();
        if !specials.contains_key(START_OF_TRANSCRIPT) {
            return Err("no <|startoftranscript|> token".into());
        }
        let no_timestamps = *specials
            .get(NO_TIMESTAMPS)
            .ok_or("no <|notimestamps|> token")?;
        let add_prefix_space = match file.pre_tokenizer {
            None => false,
            Some(p) if p.kind == "ByteLevel" && p.use_regex => p.add_prefix_space,
            Some(p) => return Err(format!("pre-tokenizer {} is not GPT-2's", p.kind)),
        };
        let vocab = &file.model.vocab;
        let byte_to_unicode = byte_encoder();
        Ok(Tokenizer {
            tokens: token_bytes(vocab, &specials, no_timestamps)?,
            timestamp_begin: no_timestamps as usize + 1,
            byte_tokens: std::array::from_fn(|b| {
                vocab.get(&byte_to_unicode[b].to_string()).copied()
            }),
            merges: merge_table(vocab, file.model.merges)?,
            specials,
            add_prefix_space,
        })
    }

    /// Token ids of `text` as Hugging Face `tokenizers` encodes it without
    /// special tokens, except that special-token names inside `text` stay
    /// plain text: a prompt cannot end the transcript or change the task.
    /// Cost grows with the square of the longest word, so callers should
    /// bound the text (Whisper keeps at most 223 prompt tokens anyway).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let text = if self.add_prefix_space && !text.is_empty() && !text.starts_with(' ') {
            Cow::Owned(format!(" {text}"))
        } else {
            Cow::Borrowed(text)
        };
        let mut ids = Vec::new();
        let mut rest: &str = &text;
        while !rest.is_empty() {
            let (word, tail) = rest.split_at(first_piece(rest));
            self.merge_word(word.as_bytes(), &mut ids);
            rest = tail;
        }
        ids
    }

    /// BPE on one pre-tokenized word, appended to `ids`: start from its
    /// bytes' tokens and keep joining the adjacent pair with the lowest merge
    /// rank, leftmost first, as `tokenizers` does. A byte with no token (only
    /// in hand-made files) is dropped, as `tokenizers` does without an
    /// unknown token.
    fn merge_word(&self, word: &[u8], ids: &mut Vec<u32>) {
        let start = ids.len();
        ids.extend(
            word.iter()
                .filter_map(|&b| self.byte_tokens[usize::from(b)]),
        );
        while let Some((_, at, id)) = ids[start..]
            .windows(2)
            .enumerate()
            .filter_map(|(at, pair)| {
                let merge = self.merges.get(&(pair[0], pair[1]))?;
                Some((merge.rank, at, merge.id))
            })
            .min()
        {
            ids[start + at] = id;
            ids.remove(start + at + 1);
        }
    }

    /// The vocabulary strings of `ids` (`Ġpatient`, `<|startofprev|>`), the
    /// form CTranslate2 takes prompts in. Ids with no string (timestamps,
    /// ids past the vocabulary) are left out.
    pub fn token_strings(&self, ids: &[u32]) -> Vec<String> {
        let byte_to_unicode = byte_encoder();
        ids.iter()
            .filter_map(|&id| match self.tokens.get(id as usize)? {
                Some(bytes) => Some(
                    bytes
                        .iter()
                        .map(|&b| byte_to_unicode[usize::from(b)])
                        .collect(),
                ),
                None => self
                    .specials
                    .iter()
                    .find(|&(_, &special)| special == id)
                    .map(|(name, _)| name.clone()),
            })
            .collect()
    }

    /// Splits a generated sequence into timestamped segments. Text after the
    /// last timestamp (an unfinished segment) ends at `window_secs`.
    pub fn segments(&self, ids: &[usize], window_secs: f64) -> Vec<Segment> {
        let mut segments = Vec::new();
        let mut start: Option<f64> = None;
        let mut text: Vec<u8> = Vec::new();
        for &id in ids {
            if id >= self.timestamp_begin {
                let time = (id - self.timestamp_begin) as f64 * TIMESTAMP_STEP;
                match start {
                    Some(begin) if !text.is_empty() => {
                        segments.push(segment(begin, time.max(begin), &text));
                        text.clear();
                        start = None;
                    }
                    _ => start = Some(time),
                }
            } else if let Some(Some(bytes)) = self.tokens.get(id) {
                text.extend_from_slice(bytes);
                start.get_or_insert(segments.last().map_or(0.0, |s: &Segment| s.end));
            }
        }
        if !text.is_empty() {
            let begin = start.unwrap_or(0.0);
            segments.push(segment(begin, window_secs.max(begin), &text));
        }
        segments.retain(|s| !s.text.is_empty());
        segments
    }
}

fn segment(start: f64, end: f64, text: &[u8]) -> Segment {
    Segment {
        start,
        end,
        text: String::from_utf8_lossy(text).trim().to_owned(),
    }
}

/// The bytes of each vocabulary token, by id, up to `<|notimestamps|>`.
fn token_bytes(
    vocab: &HashMap<String, u32>,
    specials: &HashMap<String, u32>,
    no_timestamps: u32,
) -> Result<Vec<Option<Vec<u8>>>, String> {
    let unicode_to_byte = byte_decoder();
    let mut tokens = vec![None; no_timestamps as usize + 1];
    for (text, &id) in vocab {
        let bytes: Option<Vec<u8>> = text
            .chars()
            .map(|c| unicode_to_byte.get(&c).copied())
            .collect();
        let slot = tokens
            .get_mut(id as usize)
            .ok_or("token id past <|notimestamps|>")?;
        *slot = Some(bytes.ok_or("token outside the byte-level alphabet")?);
    }
    for &id in specials.values() {
        if let Some(slot) = tokens.get_mut(id as usize) {
            *slot = None;
        }
    }
    Ok(tokens)
}

/// Each merge's rank (its line in the file) and the token it makes, keyed by
/// the ids it joins. A pair listed twice keeps its last rank, as in
/// `tokenizers`.
fn merge_table(
    vocab: &HashMap<String, u32>,
    merges: Vec<MergeEntry>,
) -> Result<HashMap<(u32, u32), Merge>, String> {
    let id = |piece: &str| {
        vocab
            .get(piece)
            .copied()
            .ok_or_else(|| format!("merge piece {piece:?} is not in the vocabulary"))
    };
    let mut table = HashMap::with_capacity(merges.len());
    for (rank, entry) in merges.iter().enumerate() {
        let (left, right) = match entry {
            MergeEntry::Joined(joined) => joined
                .split_once(' ')
                .filter(|(_, right)| !right.contains(' '))
                .ok_or_else(|| format!("merge {joined:?} is not two pieces"))?,
            MergeEntry::Pair(left, right) => (left.as_str(), right.as_str()),
        };
        let merge = Merge {
            rank: rank as u32,
            id: id(&format!("{left}{right}"))?,
        };
        table.insert((id(left)?, id(right)?), merge);
    }
    Ok(table)
}

#[derive(Clone, Copy, PartialEq)]
enum CharClass {
    Space,
    Letter,
    Number,
    Other,
}

fn char_class(c: char) -> CharClass {
    if c.is_whitespace() {
        CharClass::Space
    } else if c.is_numeric() {
        CharClass::Number
    } else if is_letter(c) {
        CharClass::Letter
    } else {
        CharClass::Other
    }
}

/// `\p{L}` for characters that are not numbers. The standard library's
/// Alphabetic property also holds some marks and symbols; the ones Latin,
/// Greek and Cyrillic text can meet are taken out here. The vowel signs of
/// Indic, Arabic, Hebrew and Southeast Asian scripts stay in (a 230-range
/// table): `tokenizers` splits words there and this does not, which changes
/// the ids, never the text, of scripts the English model does not transcribe.
fn is_letter(c: char) -> bool {
    // Combining Greek and Latin letters, then circled and squared ones.
    let marks_and_symbols = matches!(c,
        '\u{345}' | '\u{363}'..='\u{36f}' | '\u{24b6}'..='\u{24e9}' | '\u{1f130}'..='\u{1f189}');
    c.is_alphabetic() && !marks_and_symbols
}

/// Length in bytes of the first word of non-empty `text` under GPT-2's split
/// pattern `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
/// written out because the `regex` crate has no lookahead. The lookahead
/// leaves the last space of a run to start the next word.
fn first_piece(text: &str) -> usize {
    const CONTRACTIONS: [&str; 7] = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];
    if let Some(contraction) = CONTRACTIONS.iter().find(|c| text.starts_with(**c)) {
        return contraction.len();
    }
    // ` ?` joins one space to the letters, digits or symbols after it.
    let body = text
        .strip_prefix(' ')
        .filter(|rest| {
            rest.chars()
                .next()
                .is_some_and(|c| char_class(c) != CharClass::Space)
        })
        .unwrap_or(text);
    let skipped = text.len() - body.len();
    let kind = body.chars().next().map_or(CharClass::Other, char_class);
    let run = body.find(|c| char_class(c) != kind).unwrap_or(body.len());
    if kind != CharClass::Space || run == body.len() {
        return skipped + run;
    }
    // Spaces before a word: `\s+(?!\S)` takes all but the last one; a single
    // one falls to `\s+`.
    match body[..run].char_indices().last() {
        Some((last, _)) if last > 0 => last,
        _ => run,
    }
}

/// GPT-2's `bytes_to_unicode`: the printable character that stands for each
/// byte in the vocabulary.
fn byte_encoder() -> [char; 256] {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in (0..=255u8).zip(&mut table) {
        *slot = if printable(b) {
            char::from(b)
        } else {
            next += 1;
            char::from_u32(next - 1).expect("valid code point")
        };
    }
    table
}

/// [`byte_encoder`] inverted.
fn byte_decoder() -> HashMap<char, u8> {
    (0..=255u8)
        .zip(byte_encoder())
        .map(|(b, c)| (c, b))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::OnceLock;

    use super::super::FETCH_SCRIPT;
    use super::*;

    const END_OF_TEXT: &str = "<|endoftext|>";

    /// Look-ups only the tests need: the engine names its special tokens by
    /// string and never decodes plain text.
    impl Tokenizer {
        /// The id of a special token such as [`START_OF_PREV`] or `<|en|>`.
        fn special(&self, name: &str) -> Option<u32> {
            self.specials.get(name).copied()
        }

        /// The text of `ids` with special and timestamp tokens left out, neither
        /// trimmed nor split into segments.
        fn text_of(&self, ids: &[u32]) -> String {
            let bytes: Vec<u8> = ids
                .iter()
                .filter_map(|&id| self.tokens.get(id as usize)?.as_deref())
                .flatten()
                .copied()
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    fn tiny_tokenizer() -> Tokenizer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let json = r#"{"model":{"vocab":{"the":0,"\u0120patient":1,"\u0120reports":2,".":3}},
            "added_tokens":[{"id":4,"content":"<|endoftext|>"},{"id":5,"content":"<|startoftranscript|>"},
            {"id":6,"content":"<|notimestamps|>"}]}"#;
        std::fs::write(&path, json).unwrap();
        Tokenizer::load(&path).unwrap()
    }

    #[test]
    fn splits_text_at_timestamp_tokens() {
        let tok = tiny_tokenizer();
        // Timestamps start at id 7: id 7 + n is n * 20 ms.
        let ids = [7, 0, 1, 7 + 60, 7 + 60, 2, 3, 7 + 100, 4];
        let segments = tok.segments(&ids, 5.0);
        assert_eq!(
            segments,
            vec![
                Segment {
                    start: 0.0,
                    end: 1.2,
                    text: "the patient".into()
                },
                Segment {
                    start: 1.2,
                    end: 2.0,
                    text: "reports.".into()
                },
            ]
        );
    }

    #[test]
    fn an_unfinished_segment_ends_at_the_window_end() {
        let tok = tiny_tokenizer();
        let segments = tok.segments(&[7 + 50, 1, 2], 3.5);
        assert_eq!(
            segments,
            vec![Segment {
                start: 1.0,
                end: 3.5,
                text: "patient reports".into()
            }]
        );
    }

    #[test]
    fn the_byte_decoder_covers_every_byte_once() {
        let map = byte_decoder();
        assert_eq!(map.len(), 256);
        assert_eq!(map[&'\u{120}'], b' ');
        assert_eq!(map[&'a'], b'a');
    }

    /// The model's own tokenizer.json: these tests fail, never skip, without it.
    fn whisper_tokenizer() -> &'static Tokenizer {
        static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
        TOKENIZER.get_or_init(|| {
            let dir = std::env::var_os("AUSCULT_WHISPER_MODEL_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/whisper-tiny.en")
                });
            let path = dir.join("tokenizer.json");
            assert!(path.is_file(), "no {}: run {FETCH_SCRIPT}", path.display());
            Tokenizer::load(&path).unwrap()
        })
    }

    #[test]
    fn encoding_then_decoding_gives_back_the_text() {
        let tok = whisper_tokenizer();
        for text in [
            "The patient's BP is 120/80 mmHg, temp 38.5 °C.",
            " Denies chest pain;  no SOB.\nHx of T2DM (dx 2019) — on metformin 500 mg b.i.d.",
            "She'll see Dr. Müller re: the 3rd dose… SpO₂ 92%, “can't breathe”  ",
            "\t\tnaïve café 'S 'll x\u{345}y ⓐ \u{a0} 🩺 नमस्ते 心电图\r\n",
        ] {
            let ids = tok.encode(text);
            assert!(!ids.is_empty());
            assert_eq!(tok.text_of(&ids), text);
        }
    }

    #[test]
    fn encodes_like_hugging_face_tokenizers() {
        let tok = whisper_tokenizer();
        // Expected ids from the reference implementation, Python `tokenizers`
        // 0.23.3: `Tokenizer.from_file("models/whisper-tiny.en/tokenizer.json")
        // .encode(s, add_special_tokens=False).ids`.
        let cases: [(&str, &[u32]); 5] = [
            (
                "The patient's BP is 120/80 mmHg, temp 38.5 °C.",
                &[
                    464, 5827, 338, 20997, 318, 7982, 14, 1795, 8085, 39, 70, 11, 20218, 4353, 13,
                    20, 22074, 34, 13,
                ],
            ),
            (
                " Patient reports chest pain since 2019.",
                &[35550, 3136, 7721, 2356, 1201, 13130, 13],
            ),
            (
                "Hx of T2DM  on metformin 500mg b.i.d.;\n\tno SOB,   denies 'S' 'll...'s  ",
                &[
                    39, 87, 286, 309, 17, 23127, 220, 319, 1138, 687, 259, 5323, 11296, 275, 13,
                    72, 13, 67, 15089, 198, 197, 3919, 311, 9864, 11, 220, 220, 18866, 705, 50, 6,
                    705, 297, 986, 6, 82, 220, 220,
                ],
            ),
            (
                "Dr. Müller: “we'll re-check ’em”  naïve café, SpO₂ 92%… 🩺",
                &[
                    6187, 13, 40790, 6051, 25, 564, 250, 732, 1183, 302, 12, 9122, 564, 247, 368,
                    447, 251, 220, 41492, 40304, 11, 1338, 46, 158, 224, 224, 10190, 4, 1399,
                    12520, 102, 118,
                ],
            ),
            (
                "ⓐⒷ x\u{345}y \u{a0} a\r\n\n b",
                &[
                    158, 241, 238, 158, 240, 115, 2124, 137, 227, 88, 5624, 257, 201, 628, 275,
                ],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(tok.encode(text), expected, "{text:?}");
        }
    }

    #[test]
    fn splits_words_like_gpt2() {
        let text = "Hx of T2DM  on 500mg b.i.d.;\n\tno SOB,   denies 'S' 'll...'s  ";
        let mut words = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (word, tail) = rest.split_at(first_piece(rest));
            words.push(word);
            rest = tail;
        }
        // The pieces `tokenizers`' ByteLevel `pre_tokenize_str` gives.
        let expected = [
            "Hx", " of", " T", "2", "DM", " ", " on", " 500", "mg", " b", ".", "i", ".", "d", ".;",
            "\n", "\t", "no", " SOB", ",", "  ", " denies", " '", "S", "'", " '", "ll", "...'",
            "s", "  ",
        ];
        assert_eq!(words, expected);
    }

    #[test]
    fn special_tokens_are_found_by_name() {
        let tok = whisper_tokenizer();
        assert_eq!(tok.special(START_OF_PREV), Some(50360));
        assert_eq!(tok.special(START_OF_TRANSCRIPT), Some(50257));
        assert_eq!(tok.special(NO_TIMESTAMPS), Some(50362));
        assert_eq!(tok.special(END_OF_TEXT), Some(50256));
        assert_eq!(tok.special("<|nosuchtoken|>"), None);
    }

    #[test]
    fn special_token_names_in_text_stay_plain_text() {
        let tok = whisper_tokenizer();
        let ids = tok.encode("<|endoftext|><|startoftranscript|>");
        assert!(ids.iter().all(|&id| id < 50256), "{ids:?}");
        assert_eq!(tok.text_of(&ids), "<|endoftext|><|startoftranscript|>");
    }

    #[test]
    fn token_strings_are_the_vocabulary_form() {
        let tok = whisper_tokenizer();
        let mut ids = vec![50360];
        ids.extend(tok.encode(" Patient reports 38.5 °C"));
        assert_eq!(
            tok.token_strings(&ids),
            [
                "<|startofprev|>",
                "ĠPatient",
                "Ġreports",
                "Ġ38",
                ".",
                "5",
                "ĠÂ°",
                "C"
            ]
        );
        // Timestamp tokens have no vocabulary string.
        assert!(tok.token_strings(&[50363]).is_empty());
    }

    #[test]
    fn merges_may_be_joined_strings_or_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let json = r#"{"model":{"vocab":{"a":0,"b":1,"c":2,"ab":3,"abc":4},
            "merges":[["a","b"],"ab c"]},
            "added_tokens":[{"id":5,"content":"<|startoftranscript|>"},
            {"id":6,"content":"<|notimestamps|>"}]}"#;
        std::fs::write(&path, json).unwrap();
        let tok = Tokenizer::load(&path).unwrap();
        assert_eq!(tok.encode("abc"), [4]);
        assert_eq!(tok.encode("cab"), [2, 3]);
        assert_eq!(tok.encode("ba"), [1, 0]);
    }

    #[test]
    fn a_merge_outside_the_vocabulary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let json = r#"{"model":{"vocab":{"a":0,"b":1},"merges":["a b"]},
            "added_tokens":[{"id":5,"content":"<|startoftranscript|>"},
            {"id":6,"content":"<|notimestamps|>"}]}"#;
        std::fs::write(&path, json).unwrap();
        assert!(matches!(
            Tokenizer::load(&path),
            Err(TokenizerError::Invalid { .. })
        ));
    }
}
