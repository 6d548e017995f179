//! Property tests of the parsers: the properties the fuzz targets in `fuzz/`
//! check (README "Fuzzing"), on generated input. A fixed seed and no
//! persistence files, so every run tries the same cases; a counterexample is
//! kept as a named regression test at the end of this file instead.

#[path = "properties/audio.rs"]
mod audio;
#[path = "properties/keys.rs"]
mod keys;
#[path = "properties/range.rs"]
mod range;
#[path = "properties/text.rs"]
mod text;

use auscult::audio::Encoding;
use auscult::export::Segment;
use auscult::storage::keys::Chunk;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config() -> Config {
    Config {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x00a5_c017),
        failure_persistence: None,
        ..Config::default()
    }
}

/// Rates clients send, and any rate near the accepted range.
fn sample_rate() -> impl Strategy<Value = u32> {
    prop_oneof![
        prop::sample::select(vec![8_000u32, 11_025, 16_000, 22_050, 44_100, 48_000]),
        7_000u32..50_000,
    ]
}

fn encoding_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("pcm_s16le".to_owned()),
        Just("pcm_f32le".to_owned()),
        "[a-z0-9_]{0,10}",
    ]
}

/// Whole frames in every format (multiples of 8 bytes), and broken ones.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0usize..200).prop_flat_map(|n| prop::collection::vec(any::<u8>(), n * 8)),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

/// Times as finals carry them, and the broken ones a store might hold.
fn seconds() -> impl Strategy<Value = f64> {
    prop_oneof![
        0.0f64..4_000.0,
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-1.0),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_start_message_and_its_frames_decode_and_resample_to_the_promised_length(
        encoding in encoding_name(),
        rate in sample_rate(),
        channels in 0u16..4,
        frames in prop::collection::vec(frame(), 0..6),
    ) {
        let start = serde_json::json!({
            "type": "start",
            "sample_rate": rate,
            "encoding": encoding,
            "channels": channels,
        });
        let frames: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        audio::start_and_audio(start.to_string().as_bytes(), &frames);
    }

    #[test]
    fn fuzz_input_splits_into_json_and_frames_that_cover_it(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut input = br#"{"type":"start","sample_rate":16000,"encoding":"pcm_s16le"}"#.to_vec();
        let json_len = input.len();
        input.extend_from_slice(&data);
        let (json, frames) = audio::split_input(&input);
        prop_assert_eq!(json.len(), json_len);
        prop_assert!(frames.iter().map(|f| f.len()).sum::<usize>() <= data.len());
        audio::start_and_audio(json, &frames);
    }

    #[test]
    fn a_range_header_gives_a_span_inside_the_object_or_a_justified_answer(
        header in prop_oneof![
            "[ ]?(bytes|BYTES|items)[ ]?=[ ]?[0-9]{0,4}-[0-9]{0,4}[ ]?",
            "bytes=-?[0-9]{0,3}(,[0-9]-[0-9])?",
            "bytes=[0-9]{18,22}-[0-9]{0,22}",
            any::<String>(),
        ],
        size in prop_oneof![0u64..3_000, any::<u64>()],
    ) {
        range::range(&header, size);
    }

    #[test]
    fn cursors_decode_only_to_valid_ids_and_round_trip(
        text in prop_oneof![
            "[0-9a-fA-F]{0,48}",
            "[-+]?[0-9]{0,20}:[A-Za-z0-9._@/ -]{0,12}".prop_map(hex::encode),
            any::<String>(),
        ],
        started_at_ms in any::<i64>(),
        id in "[A-Za-z0-9._@-]{1,128}",
    ) {
        keys::cursor_text(&text);
        keys::cursor_round_trip(started_at_ms, &id);
    }

    #[test]
    fn ids_and_object_keys_never_escape_their_prefix(
        user in prop_oneof!["[A-Za-z0-9._@-]{1,16}", "[A-Za-z0-9./ \n-]{0,8}", "[a-z]{129}"],
        session in prop_oneof!["[A-Za-z0-9._@-]{1,16}", "[A-Za-z0-9./ \n-]{0,8}"],
        key in prop_oneof!["[a-z./]{0,12}", "(/?[a-z.]{0,3}){0,4}/?", any::<String>()],
        (seq, start_ms, end_ms) in (any::<u32>(), any::<u64>(), any::<u64>()),
    ) {
        keys::id(&user);
        keys::id(&session);
        let chunk = Chunk { seq, start_ms, end_ms };
        keys::session_keys(&user, &session, chunk);
        // The fuzz target's spelling of ids from arbitrary bytes.
        keys::session_keys(&keys::id_from(user.as_bytes()), &keys::id_from(session.as_bytes()), chunk);
        keys::object_key(&key);
        keys::object_key(&format!("{seq:06}-{start_ms}-{end_ms}.pcm"));
    }

    #[test]
    fn a_wav_header_points_inside_its_bytes_and_our_own_round_trips(
        raw in prop::collection::vec(any::<u8>(), 0..80),
        f32le in any::<bool>(),
        rate in sample_rate(),
        channels in 1u16..=2,
        data in prop::collection::vec(any::<u8>(), 0..300),
        extra in prop_oneof![Just(0u32), any::<u32>()],
        trailing in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let encoding = if f32le { Encoding::PcmF32le } else { Encoding::PcmS16le };
        audio::wav_parse(&raw);
        let mut file = auscult::audio::wav::header(
            &auscult::audio::AudioFormat::new(encoding.as_str(), 16_000, channels).unwrap(),
            u64::from(extra),
        );
        file.extend_from_slice(&raw);
        audio::wav_parse(&file);
        audio::wav_round_trip(encoding, rate, channels, &data, extra, &trailing);
    }

    #[test]
    fn redaction_leaves_no_entity_standing_as_a_whole_word(
        text in "[a-c1 ,.'-]{0,40}",
        contents in prop::collection::vec("[a-c1 ]{0,5}", 0..4),
    ) {
        text::redaction(&text, &contents);
    }

    #[test]
    fn exports_number_escape_and_order_their_cues(
        segments in prop::collection::vec(
            (seconds(), seconds(), "[a-z<>& \n\t-]{0,12}")
                .prop_map(|(start, end, text)| Segment { start, end, text }),
            0..8,
        ),
    ) {
        text::exports(&segments);
    }
}

/// The `redaction` fuzz target's first find (fixed in `protocol::replace_words`).
#[test]
fn an_entity_overlapping_a_kept_match_is_redacted_where_it_stands_alone() {
    text::redaction("Re\0e\0e;e", &["e\0e".to_owned()]);
    text::redaction("11 1 1", &["1 1".to_owned()]);
}
