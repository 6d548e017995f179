//! The audio each load session sends: a WAV file looped, or a generated tone
//! that differs per session, so stored audio can be checked byte for byte.

use crate::Args;

pub struct Source {
    /// One "loop" of audio in the session's encoding (mono).
    pattern: Vec<u8>,
    pub bytes_per_frame: usize,
    pub total_bytes: usize,
    pub bytes_per_second: usize,
    pub encoding: String,
    pub rate: u32,
}

impl Source {
    pub fn new(args: &Args) -> Result<Self, String> {
        let bytes_per_sample = match args.encoding.as_str() {
            "pcm_s16le" => 2,
            "pcm_f32le" => 4,
            other => return Err(format!("unsupported --encoding {other}")),
        };
        let (rate, samples): (u32, Vec<f32>) = match &args.wav {
            Some(path) => {
                let bytes =
                    std::fs::read(path).map_err(|e| format!("--wav {}: {e}", path.display()))?;
                let (rate, samples) =
                    read_wav_s16_mono(&bytes).ok_or("--wav must be a 16-bit PCM mono WAV")?;
                (rate, samples)
            }
            None => {
                // 2 s of a 220 Hz + 330 Hz tone; sessions are told apart by a per-session byte offset.
                let n = args.rate as usize * 2;
                let r = args.rate as f32;
                let t = |i: usize| i as f32 / r;
                (
                    args.rate,
                    (0..n)
                        .map(|i| {
                            0.3 * (std::f32::consts::TAU * 220.0 * t(i)).sin()
                                + 0.2 * (std::f32::consts::TAU * 330.0 * t(i)).sin()
                        })
                        .collect(),
                )
            }
        };
        let pattern: Vec<u8> = match bytes_per_sample {
            2 => samples
                .iter()
                .flat_map(|s| ((s * 32767.0) as i16).to_le_bytes())
                .collect(),
            _ => samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
        };
        let bytes_per_second = rate as usize * bytes_per_sample;
        let bytes_per_frame =
            (bytes_per_second * args.frame_ms as usize / 1000).max(bytes_per_sample);
        let bytes_per_frame = bytes_per_frame - bytes_per_frame % bytes_per_sample;
        let total = (bytes_per_second as f64 * args.duration_secs) as usize;
        Ok(Source {
            pattern,
            bytes_per_frame,
            total_bytes: total - total % bytes_per_sample,
            bytes_per_second,
            encoding: args.encoding.clone(),
            rate,
        })
    }

    /// The session's bytes from `offset`, `len` long (the pattern, shifted per session, looped).
    pub fn bytes(&self, session: usize, offset: usize, len: usize) -> Vec<u8> {
        let unit = if self.encoding == "pcm_s16le" { 2 } else { 4 };
        let n = self.pattern.len();
        let mut pos = ((session * 997 * unit) % n + offset) % n;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let take = (n - pos).min(len - out.len());
            out.extend_from_slice(&self.pattern[pos..pos + take]);
            pos = 0;
        }
        out
    }

    pub fn matches(&self, session: usize, data: &[u8]) -> bool {
        data == self.bytes(session, 0, data.len()).as_slice()
    }
}

fn read_wav_s16_mono(bytes: &[u8]) -> Option<(u32, Vec<f32>)> {
    let rate = u32::from_le_bytes(bytes.get(24..28)?.try_into().ok()?);
    let channels = u16::from_le_bytes(bytes.get(22..24)?.try_into().ok()?);
    let bits = u16::from_le_bytes(bytes.get(34..36)?.try_into().ok()?);
    if channels != 1 || bits != 16 {
        return None;
    }
    let data = wav_data(bytes)?;
    Some((
        rate,
        data.chunks_exact(2)
            .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
            .collect(),
    ))
}

/// The `data` chunk of a RIFF/WAVE file.
pub fn wav_data(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
        if &bytes[pos..pos + 4] == b"data" {
            return bytes.get(pos + 8..(pos + 8 + len).min(bytes.len()));
        }
        pos += 8 + len + (len & 1);
    }
    None
}
