//! Properties of the audio path: a `start` message and the frames after it,
//! taken through the steps a session takes them, and the WAV header.
//!
//! Shared by `tests/properties.rs` and the `start_and_audio` and `wav` fuzz
//! targets, so both check the same things.

use auscult::audio::{AudioFormat, Encoding, StreamResampler, wav};
use auscult::protocol::ClientMsg;

/// The rate every engine is fed.
pub const ENGINE_RATE: u32 = 16_000;

/// Splits fuzz input into its leading JSON value and the frames after it.
///
/// Each frame is one length byte and its bytes: below 0x80 the length is
/// that many 8-byte units (whole frames in every format), from 0x80 it is
/// the low seven bits in bytes (mostly broken frames). Input that does not
/// start with a JSON value is all JSON, with no frames.
pub fn split_input(data: &[u8]) -> (&[u8], Vec<&[u8]>) {
    let mut values = serde_json::Deserializer::from_slice(data).into_iter::<serde_json::Value>();
    if !matches!(values.next(), Some(Ok(_))) {
        return (data, Vec::new());
    }
    let (json, mut rest) = data.split_at(values.byte_offset());
    let mut frames = Vec::new();
    while let Some((&n, tail)) = rest.split_first() {
        let len = if n < 0x80 {
            usize::from(n) * 8
        } else {
            usize::from(n & 0x7f)
        };
        let (frame, after) = tail.split_at(len.min(tail.len()));
        frames.push(frame);
        rest = after;
    }
    (json, frames)
}

/// Parses `json` as a client message; a `start` has its format validated,
/// then every frame is checked, decoded to mono and resampled to the engine
/// rate, as a session does with its own buffers for each frame and the tail.
pub fn start_and_audio(json: &[u8], frames: &[&[u8]]) {
    let Ok(ClientMsg::Start(start)) = serde_json::from_slice::<ClientMsg>(json) else {
        return;
    };
    let format = AudioFormat::new(&start.encoding, start.sample_rate, start.channels);
    let valid = Encoding::parse(&start.encoding).is_some()
        && (auscult::audio::MIN_SAMPLE_RATE..=auscult::audio::MAX_SAMPLE_RATE)
            .contains(&start.sample_rate)
        && (1..=2).contains(&start.channels);
    assert_eq!(
        format.is_ok(),
        valid,
        "format accepted iff valid: {start:?}"
    );
    let Ok(format) = format else { return };

    let mut resampler = StreamResampler::new(format.sample_rate, ENGINE_RATE)
        .expect("every accepted rate can be resampled to the engine rate");
    let sample_bytes = format.encoding.bytes_per_sample();
    let channels = usize::from(format.channels);
    let (mut fed, mut produced) = (0u64, 0u64);
    let mut mono = Vec::new();
    for frame in frames {
        let whole = !frame.is_empty() && frame.len().is_multiple_of(sample_bytes * channels);
        assert_eq!(
            format.check_frame(frame.len()).is_ok(),
            whole,
            "a {}-byte frame of {format:?}",
            frame.len()
        );
        if !whole {
            continue;
        }
        mono.clear();
        format.decode_mono_into(frame, &mut mono);
        assert_eq!(mono.len(), frame.len() / sample_bytes / channels);
        assert!(
            mono.iter().all(|s| (-1.0..=1.0).contains(s)),
            "decoded samples lie in [-1, 1] (so none is NaN)"
        );
        let mut out = Vec::new();
        resampler.push(&mono, &mut out);
        assert!(
            out.iter().all(|s| s.is_finite()),
            "resampled output is finite"
        );
        fed += mono.len() as u64;
        produced += out.len() as u64;
        // The startup delay is trimmed, so output never runs ahead of the input.
        assert!(
            produced <= resampled_len(fed, format.sample_rate),
            "{produced} samples out after {fed} in at {} Hz",
            format.sample_rate
        );
    }
    let mut tail = Vec::new();
    resampler.finish(&mut tail);
    assert!(
        tail.iter().all(|s| s.is_finite()),
        "the flushed tail is finite"
    );
    produced += tail.len() as u64;
    // `finish` promises exactly ceil(frames_in × ratio) samples in total.
    assert_eq!(
        produced,
        resampled_len(fed, format.sample_rate),
        "{fed} samples at {} Hz",
        format.sample_rate
    );
}

/// `ceil(samples × ENGINE_RATE / rate)`, in exact integer arithmetic.
pub fn resampled_len(samples: u64, rate: u32) -> u64 {
    (samples * u64::from(ENGINE_RATE)).div_ceil(u64::from(rate))
}

/// Whatever `bytes` are, a parsed header points inside them.
pub fn wav_parse(bytes: &[u8]) {
    let Some(p) = wav::parse(bytes) else { return };
    // RIFF, size, WAVE, then at least the `data` chunk's own id and size.
    assert!(p.data_offset >= 20, "{p:?}");
    assert!(
        p.data_offset <= bytes.len(),
        "{p:?} of {} bytes",
        bytes.len()
    );
    assert!(
        p.data_len <= bytes.len() - p.data_offset,
        "{p:?} of {} bytes",
        bytes.len()
    );
}

/// Our own header for `data` (claiming `extra` bytes more than follow, as a
/// spool not yet patched does, with `trailing` bytes after) parses back to
/// the format and the data.
pub fn wav_round_trip(
    encoding: Encoding,
    rate: u32,
    channels: u16,
    data: &[u8],
    extra: u32,
    trailing: &[u8],
) {
    let Ok(format) = AudioFormat::new(encoding.as_str(), rate, channels) else {
        return;
    };
    let claimed = data.len() as u64 + u64::from(extra);
    let mut file = wav::header(&format, claimed);
    assert_eq!(file.len(), wav::header_len(encoding));
    if extra == 0 && trailing.is_empty() {
        let riff = u32::from_le_bytes(file[4..8].try_into().unwrap()) as usize;
        assert_eq!(
            riff,
            file.len() - 8 + data.len(),
            "RIFF size of a sealed file"
        );
    }
    file.extend_from_slice(data);
    file.extend_from_slice(trailing);
    let p = wav::parse(&file).expect("our own header parses");
    let tag = match encoding {
        Encoding::PcmS16le => 1,
        Encoding::PcmF32le => 3,
    };
    assert_eq!(
        (p.format_tag, p.channels, p.sample_rate, p.bits_per_sample),
        (tag, channels, rate, 8 * encoding.bytes_per_sample() as u16)
    );
    assert_eq!(p.data_offset, wav::header_len(encoding));
    let present = (data.len() + trailing.len()) as u64;
    assert_eq!(p.data_len as u64, claimed.min(present));
    assert_eq!(
        &file[p.data_offset..p.data_offset + data.len().min(p.data_len)],
        &data[..data.len().min(p.data_len)]
    );
}
