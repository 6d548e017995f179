//! Test audio made in code: a sine with a small counter riding on it, so no two
//! nearby frames are equal and a gap or a duplicate shows up in a byte compare.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enc {
    S16,
    F32,
}

impl Enc {
    pub fn name(self) -> &'static str {
        match self {
            Enc::S16 => "pcm_s16le",
            Enc::F32 => "pcm_f32le",
        }
    }

    pub fn bytes_per_sample(self) -> usize {
        match self {
            Enc::S16 => 2,
            Enc::F32 => 4,
        }
    }

    /// The WAV `fmt` format tag: 1 PCM, 3 IEEE float.
    pub fn wav_format_tag(self) -> u16 {
        match self {
            Enc::S16 => 1,
            Enc::F32 => 3,
        }
    }
}

/// `secs` seconds of interleaved audio at `rate` with `channels` channels.
pub fn tone(enc: Enc, rate: u32, channels: u16, secs: f64) -> Vec<u8> {
    let frames = (f64::from(rate) * secs).round() as usize;
    let mut out = Vec::with_capacity(frames * usize::from(channels) * enc.bytes_per_sample());
    for i in 0..frames {
        let t = i as f64 / f64::from(rate);
        for c in 0..channels {
            let freq = 440.0 + 110.0 * f64::from(c);
            let counter = ((i * 31 + usize::from(c) * 7) % 1009) as f64 / 1009.0;
            let v = 0.5 * (2.0 * std::f64::consts::PI * freq * t).sin() + 0.01 * counter;
            match enc {
                Enc::S16 => out.extend_from_slice(&((v * 32767.0) as i16).to_le_bytes()),
                Enc::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
            }
        }
    }
    out
}

/// Bytes of `ms` milliseconds of audio in this format.
pub fn bytes_for_ms(enc: Enc, rate: u32, channels: u16, ms: u64) -> usize {
    (u64::from(rate) * ms / 1000) as usize * usize::from(channels) * enc.bytes_per_sample()
}
