//! Property tests of the parsers: the properties the fuzz targets in `fuzz/`
//! check (README "Fuzzing"), on generated input. A fixed seed and no
//! persistence files, so every run tries the same cases; a counterexample is
//! kept as a named regression test at the end of this file instead.

#[path = "properties/audio.rs"]
mod audio;
#[path = "properties/headers.rs"]
mod headers;
#[path = "properties/keys.rs"]
mod keys;
#[path = "properties/range.rs"]
mod range;
#[path = "properties/spool.rs"]
mod spool;
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

/// Addresses as proxies write them (v4, v6, mapped, with ports) and junk.
fn forwarded_hop() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<[u8; 4]>()).prop_map(|b| std::net::Ipv4Addr::from(b).to_string()),
        (any::<[u8; 4]>()).prop_map(|b| format!("10.0.{}.{}", b[0], b[1])),
        (any::<[u16; 8]>()).prop_map(|b| std::net::Ipv6Addr::from(b).to_string()),
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(b, p)| format!("{}:{p}", std::net::Ipv4Addr::from(b))),
        Just("::ffff:10.0.0.7".to_owned()),
        "[a-z0-9.:\\[\\] ]{0,12}",
    ]
}

fn cidr_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("10.0.0.0/16".to_owned()),
        Just("127.0.0.1".to_owned()),
        (any::<[u8; 4]>(), 0u8..40)
            .prop_map(|(b, p)| format!("{}/{p}", std::net::Ipv4Addr::from(b))),
        (any::<[u16; 8]>(), 0u8..140)
            .prop_map(|(b, p)| format!("{}/{p}", std::net::Ipv6Addr::from(b))),
        "[0-9a-f.:/]{0,16}",
    ]
}

fn host_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "(localhost|[a-z]{1,6}\\.localhost|127\\.0\\.0\\.[0-9]{1,3}|\\[::1\\]|evil\\.test|auscult\\.example\\.org)(:[0-9]{1,5})?",
        "[A-Za-z0-9.:\\[\\]_-]{0,20}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn forwarded_headers_are_believed_only_from_a_trusted_proxy_and_only_as_far_as_it_goes(
        hops in prop::collection::vec(prop::collection::vec(forwarded_hop(), 0..4), 0..3),
        proto in "(https|http|HTTPS|[a-z]{0,5})",
        forwarded_host in host_text(),
        own_host in host_text(),
        peer in prop_oneof![forwarded_hop(), Just("10.0.0.5".to_owned()), Just("127.0.0.1".to_owned())],
        trusted in prop::collection::vec(cidr_text(), 0..3),
    ) {
        let values: Vec<String> = hops.iter().map(|h| h.join(", ")).collect();
        let mut pairs: Vec<(&str, &str)> = values.iter().map(|v| ("x-forwarded-for", v.as_str())).collect();
        pairs.extend([("x-forwarded-proto", proto.as_str()), ("x-forwarded-host", forwarded_host.as_str()), ("host", own_host.as_str())]);
        let headers = headers::header_map(&pairs);
        let trusted: Vec<_> = trusted.iter().filter_map(|c| headers::cidr(c)).collect();
        headers::forwarded(&headers, peer.parse().ok(), &trusted);
    }

    #[test]
    fn hosts_split_cleanly_and_a_loopback_server_answers_only_to_loopback(
        host in host_text(),
        patterns in prop::collection::vec("(\\*\\.)?[a-z.]{1,12}(:[0-9]{1,4})?", 0..3),
        local in prop_oneof![Just(None), Just(Some("127.0.0.1")), Just(Some("10.0.1.5"))],
    ) {
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        headers::hosts(&host, &patterns, local.map(|l| l.parse().unwrap()));
    }

    #[test]
    fn a_token_is_valid_only_when_it_is_one_and_an_origin_only_when_allowed(
        tokens in prop::collection::vec(("[a-z]{1,6}", "[A-Za-z0-9-]{8,14}"), 0..3),
        origins in prop::collection::vec("https?://[a-z.]{1,10}(:[0-9]{2})?", 0..2),
        presented in prop_oneof!["[A-Za-z0-9-]{0,14}", any::<String>()],
        bearer in prop_oneof![Just("Bearer "), Just("bearer "), Just("Basic "), Just("")],
        in_query in any::<bool>(),
        origin in prop_oneof![Just(None), "https?://[a-z.]{1,10}(:[0-9]{2})?/?".prop_map(Some), any::<String>().prop_map(Some)],
        host in prop_oneof![Just(None), "[a-z.]{1,10}(:[0-9]{2})?".prop_map(Some)],
    ) {
        let tokens: Vec<(&str, &str)> = tokens.iter().map(|(u, t)| (u.as_str(), t.as_str())).collect();
        let origins: Vec<&str> = origins.iter().map(String::as_str).collect();
        let Some(configured) = headers::authenticator(&tokens, &origins) else { return Ok(()); };
        let header = format!("{bearer}{presented}");
        let (authorization, query) = if in_query { (None, Some(presented.as_str())) } else { (Some(header.as_str()), None) };
        headers::credentials(&configured, authorization, query, origin.as_deref(), host.as_deref());
        // The configured tokens themselves are valid (the last user named for a token wins).
        for (_, token) in &configured.tokens {
            let h = headers::header_map(&[("authorization", &format!("Bearer {token}"))]);
            let expected = configured.tokens.iter().rev().find(|(_, t)| t == token).map(|(u, _)| u.clone()).unwrap();
            prop_assert_eq!(configured.auth.check_token(&h, None), auscult::transport::auth::TokenCheck::Valid(expected));
        }
    }

    #[test]
    fn a_spool_read_back_is_accepted_only_as_a_client_could_have_described_it(
        session in prop_oneof!["[A-Za-z0-9._@-]{1,12}", "[a-z./ ]{0,6}"],
        user in prop_oneof!["[A-Za-z0-9._@-]{1,12}", Just("../x".to_owned())],
        encoding in encoding_name(),
        rate in prop_oneof![Just(16_000i64), -1i64..60_000],
        channels in -1i64..4,
        engine_rate in prop_oneof![Just(16_000i64), -1i64..60_000],
        audio_len in 0usize..200,
        same_folder in any::<bool>(),
        closed in prop_oneof![
            Just(None),
            Just(Some(br#"{"close_reason":"client_stop","ended_at_ms":5}"#.to_vec())),
            Just(Some(br#"{"close_reason":"nonsense","ended_at_ms":5}"#.to_vec())),
            prop::collection::vec(any::<u8>(), 0..20).prop_map(Some),
        ],
        junk in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let meta = spool::meta_json(&session, &user, &encoding, rate, channels, engine_rate);
        let folder = if same_folder { None } else { Some("another-folder") };
        spool::load_and_seal(&meta, closed.as_deref(), audio_len, folder);
        spool::load_and_seal(&junk, None, audio_len, None);
    }
}

/// A `meta.json` with no channels used to divide by zero in recovery.
#[test]
fn a_spool_with_zero_channels_is_refused_not_divided_by() {
    let meta = spool::meta_json("s-0", "local", "pcm_s16le", 16_000, 0, 16_000);
    spool::load_and_seal(&meta, None, 51, None);
}

/// The `redaction` fuzz target's first find (fixed in `protocol::replace_words`).
#[test]
fn an_entity_overlapping_a_kept_match_is_redacted_where_it_stands_alone() {
    text::redaction("Re\0e\0e;e", &["e\0e".to_owned()]);
    text::redaction("11 1 1", &["1 1".to_owned()]);
}
