//! Arbitrary bytes as a WAV file, and the same bytes as the format and data
//! of a header we write and read back (tests/properties/audio.rs).
#![no_main]

use auscult::audio::Encoding;
use libfuzzer_sys::arbitrary::Unstructured;

#[path = "../../tests/properties/audio.rs"]
#[allow(dead_code)]
mod audio;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    audio::wav_parse(data);
    let mut u = Unstructured::new(data);
    let Ok((f32le, rate, channels, extra, trailing)) = u.arbitrary::<(bool, u32, u16, u32, u8)>()
    else {
        return;
    };
    let encoding = if f32le {
        Encoding::PcmF32le
    } else {
        Encoding::PcmS16le
    };
    // Rates and channels mostly in range, so most inputs reach the round trip.
    let rate = 8_000 + rate % 41_000;
    let channels = 1 + channels % 3;
    let rest = u.take_rest();
    let (data, tail) = rest.split_at(rest.len().saturating_sub(usize::from(trailing % 8)));
    audio::wav_round_trip(encoding, rate, channels, data, extra % 4, tail);
    audio::wav_round_trip(encoding, rate, channels, data, extra, tail);
});
