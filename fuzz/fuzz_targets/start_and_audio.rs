//! Arbitrary bytes as a client's `start` message and the audio frames after
//! it, through format validation, the frame check, mono decoding and the
//! streaming resampler (tests/properties/audio.rs has the properties).
#![no_main]

#[path = "../../tests/properties/audio.rs"]
#[allow(dead_code)]
mod audio;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (json, frames) = audio::split_input(data);
    audio::start_and_audio(json, &frames);
});
