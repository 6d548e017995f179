//! Arbitrary `meta.json` and `closed.json` contents and audio lengths of a
//! spool read back from disk (tests/properties/spool.rs).
#![no_main]

#[path = "../../tests/properties/spool.rs"]
#[allow(dead_code)]
mod spool;

type Input<'a> = (
    &'a [u8],
    Option<&'a [u8]>,
    u8,
    bool,
    (&'a str, &'a str, u16, u8),
);

libfuzzer_sys::fuzz_target!(|input: Input<'_>| {
    let (meta, closed, audio_len, same_folder, (session, encoding, rate, channels)) = input;
    let folder = if same_folder {
        None
    } else {
        Some("another-folder")
    };
    spool::load_and_seal(meta, closed, usize::from(audio_len), folder);
    // The same from its parts, so most inputs are close to a real spool.
    let encoding = if encoding.len() % 2 == 0 {
        "pcm_s16le"
    } else {
        encoding
    };
    let meta = spool::meta_json(
        session,
        "local",
        encoding,
        i64::from(rate) * 2,
        i64::from(channels % 4),
        16_000,
    );
    spool::load_and_seal(&meta, closed, usize::from(audio_len), folder);
});
