//! Audio: the PCM formats clients send, decoding to mono float, streaming
//! resampling to an engine's rate, and the WAV container the audio is stored in.

pub mod pcm;
pub mod resample;
pub mod wav;

pub use pcm::{AudioFormat, Encoding, FormatError};
pub use resample::StreamResampler;

/// Lowest and highest input sample rate accepted from clients.
pub const MIN_SAMPLE_RATE: u32 = 8_000;
pub const MAX_SAMPLE_RATE: u32 = 48_000;
