//! PCM encodings and decoding interleaved client frames to mono `f32`.

use super::{MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
use crate::protocol::ErrorCode;

/// A PCM sample encoding a client may declare in `start.encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Encoding {
    #[serde(rename = "pcm_s16le")]
    PcmS16le,
    #[serde(rename = "pcm_f32le")]
    PcmF32le,
}

impl Encoding {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pcm_s16le" => Some(Encoding::PcmS16le),
            "pcm_f32le" => Some(Encoding::PcmF32le),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::PcmS16le => "pcm_s16le",
            Encoding::PcmF32le => "pcm_f32le",
        }
    }

    pub fn bytes_per_sample(self) -> usize {
        match self {
            Encoding::PcmS16le => 2,
            Encoding::PcmF32le => 4,
        }
    }
}

/// The audio format of one session, as declared by the client and validated.
/// Read back (a spool's `meta.json`) it is checked by [`AudioFormat::new`]
/// again, so a file on disk cannot carry a format a client could not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "UncheckedFormat")]
pub struct AudioFormat {
    pub encoding: Encoding,
    pub sample_rate: u32,
    pub channels: u16,
}

/// An [`AudioFormat`] as written, before [`AudioFormat::new`] checked it.
#[derive(serde::Deserialize)]
struct UncheckedFormat {
    encoding: Encoding,
    sample_rate: u32,
    channels: u16,
}

impl TryFrom<UncheckedFormat> for AudioFormat {
    type Error = FormatError;

    fn try_from(f: UncheckedFormat) -> Result<Self, FormatError> {
        AudioFormat::new(f.encoding.as_str(), f.sample_rate, f.channels)
    }
}

/// A rejected format, with the stable error code the client gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FormatError {
    pub code: ErrorCode,
    pub message: String,
}

impl AudioFormat {
    /// Validates the client's declared format.
    pub fn new(encoding: &str, sample_rate: u32, channels: u16) -> Result<Self, FormatError> {
        let encoding = Encoding::parse(encoding).ok_or_else(|| FormatError {
            code: ErrorCode::UnsupportedEncoding,
            message: "encoding must be pcm_s16le or pcm_f32le".to_owned(),
        })?;
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
            return Err(FormatError {
                code: ErrorCode::UnsupportedSampleRate,
                message: format!(
                    "sample rate {sample_rate} is outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE}"
                ),
            });
        }
        if !(1..=2).contains(&channels) {
            return Err(FormatError {
                code: ErrorCode::UnsupportedChannels,
                message: format!("{channels} channels: only 1 or 2 are supported"),
            });
        }
        Ok(AudioFormat {
            encoding,
            sample_rate,
            channels,
        })
    }

    /// Bytes of one frame (one sample for every channel).
    pub fn frame_bytes(&self) -> usize {
        self.encoding.bytes_per_sample() * usize::from(self.channels)
    }

    pub fn bytes_per_second(&self) -> u64 {
        self.frame_bytes() as u64 * u64::from(self.sample_rate)
    }

    /// Seconds of audio in `bytes` of this format.
    pub fn duration_secs(&self, bytes: u64) -> f64 {
        bytes as f64 / self.bytes_per_second() as f64
    }

    /// Checks that a binary frame holds a whole number of frames.
    pub fn check_frame(&self, len: usize) -> Result<(), FormatError> {
        let unit = self.frame_bytes();
        if len == 0 {
            return Err(FormatError {
                code: ErrorCode::BadFrame,
                message: "empty audio frame".to_owned(),
            });
        }
        if !len.is_multiple_of(unit) {
            return Err(FormatError {
                code: ErrorCode::BadFrame,
                message: format!(
                    "frame of {len} bytes is not a whole number of {unit}-byte samples ({} × {} channel(s))",
                    self.encoding.bytes_per_sample(),
                    self.channels
                ),
            });
        }
        Ok(())
    }

    /// Decodes interleaved PCM (already checked with [`AudioFormat::check_frame`]) to
    /// mono `f32` in [-1, 1], appending to `out`. Stereo is averaged.
    ///
    /// One straight loop per encoding and channel count (the hot path of every
    /// frame; the compiler vectorizes these).
    pub fn decode_mono_into(&self, bytes: &[u8], out: &mut Vec<f32>) {
        out.reserve(bytes.len() / self.frame_bytes());
        match (self.encoding, self.channels) {
            (Encoding::PcmS16le, 1) => out.extend(bytes.chunks_exact(2).map(|b| s16(b[0], b[1]))),
            (Encoding::PcmS16le, _) => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| (s16(b[0], b[1]) + s16(b[2], b[3])) * 0.5),
            ),
            (Encoding::PcmF32le, 1) => {
                out.extend(bytes.chunks_exact(4).map(|b| f32s(b[0], b[1], b[2], b[3])))
            }
            (Encoding::PcmF32le, _) => out.extend(
                bytes
                    .chunks_exact(8)
                    .map(|b| (f32s(b[0], b[1], b[2], b[3]) + f32s(b[4], b[5], b[6], b[7])) * 0.5),
            ),
        }
    }
}

/// A mono `f32` sample in [-1, 1] as 16-bit PCM (what remote engines take).
#[inline]
pub fn to_s16(sample: f32) -> i16 {
    (sample.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// The samples of s16le bytes (a trailing odd byte is ignored).
pub fn s16le_samples(bytes: &[u8]) -> impl Iterator<Item = i16> + '_ {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
}

#[inline]
fn s16(lo: u8, hi: u8) -> f32 {
    f32::from(i16::from_le_bytes([lo, hi])) / 32768.0
}

/// A float sample; NaN or out-of-range values must not poison the engine.
#[inline]
fn f32s(a: u8, b: u8, c: u8, d: u8) -> f32 {
    let v = f32::from_le_bytes([a, b, c, d]);
    if v.is_finite() {
        v.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unsupported_formats_with_stable_codes() {
        assert_eq!(
            AudioFormat::new("mp3", 16000, 1).unwrap_err().code,
            ErrorCode::UnsupportedEncoding
        );
        assert_eq!(
            AudioFormat::new("pcm_s16le", 7999, 1).unwrap_err().code,
            ErrorCode::UnsupportedSampleRate
        );
        assert_eq!(
            AudioFormat::new("pcm_s16le", 48001, 1).unwrap_err().code,
            ErrorCode::UnsupportedSampleRate
        );
        assert_eq!(
            AudioFormat::new("pcm_s16le", 16000, 3).unwrap_err().code,
            ErrorCode::UnsupportedChannels
        );
        assert!(AudioFormat::new("pcm_f32le", 44100, 2).is_ok());
    }

    #[test]
    fn frame_checks_whole_samples_times_channels() {
        let f = AudioFormat::new("pcm_s16le", 16000, 2).unwrap();
        assert!(f.check_frame(8).is_ok());
        assert_eq!(f.check_frame(6).unwrap_err().code, ErrorCode::BadFrame);
        assert_eq!(f.check_frame(0).unwrap_err().code, ErrorCode::BadFrame);
    }

    #[test]
    fn decodes_s16_stereo_to_mono_average() {
        let f = AudioFormat::new("pcm_s16le", 16000, 2).unwrap();
        let bytes: Vec<u8> = [16384i16, 0, -32768, -32768]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let mut out = Vec::new();
        f.decode_mono_into(&bytes, &mut out);
        assert_eq!(out, vec![0.25, -1.0]);
    }

    #[test]
    fn decodes_f32_and_sanitizes_non_finite() {
        let f = AudioFormat::new("pcm_f32le", 16000, 1).unwrap();
        let bytes: Vec<u8> = [0.5f32, f32::NAN, 3.0]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let mut out = Vec::new();
        f.decode_mono_into(&bytes, &mut out);
        assert_eq!(out, vec![0.5, 0.0, 1.0]);
    }
}
