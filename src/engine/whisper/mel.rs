//! Whisper's log-mel front end: 16 kHz audio to the 80 × 3000 feature matrix
//! the encoder expects, computed like openai-whisper's `log_mel_spectrogram`.
//!
//! Periodic Hann window of 400 samples, hop 160, centred frames (reflect
//! padding), power spectrum, Slaney-normalised mel filterbank, then the global
//! clamp `log10(max(mel, 1e-10))`, `max(x, x.max() - 8)`, `(x + 4) / 4`.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

pub const SAMPLE_RATE: u32 = 16_000;
pub const N_MELS: usize = 80;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
/// Frames in one 30 s encoder window.
pub const N_FRAMES: usize = 3000;
/// Samples in one 30 s encoder window.
pub const N_SAMPLES: usize = N_FRAMES * HOP;
const N_BINS: usize = N_FFT / 2 + 1;

/// A reusable front end (window, filterbank and FFT plan are computed once).
pub struct LogMel {
    window: Vec<f32>,
    /// `N_MELS` rows of `N_BINS` weights.
    filters: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl LogMel {
    pub fn new() -> Self {
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * n as f32 / N_FFT as f32).cos())
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        LogMel {
            window,
            filters: mel_filters(SAMPLE_RATE as f32, N_FFT, N_MELS),
            fft,
        }
    }

    /// Features of the audio zero-padded (or truncated) to `frames` frames
    /// (at most 30 s), as a row-major `N_MELS × frames` matrix: the encoder
    /// takes windows shorter than 30 s, and costs less the shorter they are.
    pub fn features_for(&self, audio: &[f32], frames: usize) -> Vec<f32> {
        let frames = frames.clamp(1, N_FRAMES);
        let audio = &audio[..audio.len().min(frames * HOP)];
        // Frames past the audio (plus half a window) see only zero padding,
        // whose power is exactly zero: skip their FFTs.
        let live_frames = ((audio.len() + N_FFT / 2) / HOP + 1).min(frames);
        let mut power = vec![0.0f32; N_MELS * frames];
        let mut frame = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut bins = [0.0f32; N_BINS];
        for t in 0..live_frames {
            for (n, slot) in frame.iter_mut().enumerate() {
                *slot = sample_centered(audio, frames * HOP, t * HOP + n) * self.window[n];
            }
            self.fft
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                .expect("buffer sizes come from the plan");
            for (bin, c) in bins.iter_mut().zip(&spectrum) {
                *bin = c.norm_sqr();
            }
            for (m, weights) in self.filters.chunks_exact(N_BINS).enumerate() {
                power[m * frames + t] = weights.iter().zip(&bins).map(|(w, p)| w * p).sum();
            }
        }
        let mut log: Vec<f32> = power.into_iter().map(|p| p.max(1e-10).log10()).collect();
        let floor = log.iter().copied().fold(f32::NEG_INFINITY, f32::max) - 8.0;
        for x in &mut log {
            *x = (x.max(floor) + 4.0) / 4.0;
        }
        log
    }
}

impl Default for LogMel {
    fn default() -> Self {
        Self::new()
    }
}

/// Sample `i` of the audio zero-padded to `len` samples and then
/// reflect-padded by `N_FFT / 2` on both sides (torch.stft with `center=True`).
fn sample_centered(audio: &[f32], len: usize, i: usize) -> f32 {
    let pad = N_FFT / 2;
    let j = if i < pad {
        pad - i
    } else if i - pad >= len {
        2 * (len - 1) - (i - pad)
    } else {
        i - pad
    };
    audio.get(j).copied().unwrap_or(0.0)
}

fn hz_to_mel(hz: f32) -> f32 {
    // Slaney's scale (librosa's default): linear below 1 kHz, logarithmic above.
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f32.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz(mel: f32) -> f32 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f32.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        mel * f_sp
    }
}

/// librosa's `filters.mel(sr, n_fft, n_mels)` with Slaney area normalisation.
fn mel_filters(rate: f32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f32> = (0..n_bins)
        .map(|k| k as f32 * rate / n_fft as f32)
        .collect();
    let top = hz_to_mel(rate / 2.0);
    let points: Vec<f32> = (0..n_mels + 2)
        .map(|i| mel_to_hz(top * i as f32 / (n_mels + 1) as f32))
        .collect();
    let mut filters = vec![0.0; n_mels * n_bins];
    for m in 0..n_mels {
        let (lo, mid, hi) = (points[m], points[m + 1], points[m + 2]);
        let norm = 2.0 / (hi - lo);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let rising = (f - lo) / (mid - lo);
            let falling = (hi - f) / (hi - mid);
            filters[m * n_bins + k] = rising.min(falling).max(0.0) * norm;
        }
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, secs: f32, amplitude: f32) -> Vec<f32> {
        let n = (secs * SAMPLE_RATE as f32) as usize;
        (0..n)
            .map(|i| {
                amplitude
                    * (2.0 * std::f32::consts::PI * freq * i as f32 / SAMPLE_RATE as f32).sin()
            })
            .collect()
    }

    fn column(features: &[f32], t: usize) -> Vec<f32> {
        (0..N_MELS).map(|m| features[m * N_FRAMES + t]).collect()
    }

    #[test]
    fn a_1khz_sine_peaks_in_the_mel_band_around_1khz() {
        let features = LogMel::new().features_for(&sine(1000.0, 2.0, 0.5), N_FRAMES);
        assert_eq!(features.len(), N_MELS * N_FRAMES);
        let col = column(&features, 100);
        let peak = (0..N_MELS)
            .max_by(|&a, &b| col[a].total_cmp(&col[b]))
            .unwrap();
        // Independently: the Slaney scale puts 1 kHz at mel 15; with 80 bands
        // spread over 0..mel(8 kHz) = 45.25, band centres are (m + 1) * 45.25 / 81,
        // so 1 kHz sits between the centres of bands 26 (968 Hz) and 27 (1005 Hz).
        assert!(peak == 26 || peak == 27, "peak band {peak}");
        // Bands far from 1 kHz are near the clamp floor (8 log10 units below max).
        assert!(
            col[5] < col[peak] - 1.5 && col[60] < col[peak] - 1.5,
            "{:?}",
            col
        );
    }

    #[test]
    fn a_higher_tone_peaks_in_a_higher_band() {
        let mel = LogMel::new();
        let peak_of = |freq| {
            let col = column(&mel.features_for(&sine(freq, 1.0, 0.5), N_FRAMES), 50);
            (0..N_MELS)
                .max_by(|&a, &b| col[a].total_cmp(&col[b]))
                .unwrap()
        };
        assert!(peak_of(300.0) < peak_of(1000.0));
        assert!(peak_of(1000.0) < peak_of(4000.0));
    }

    #[test]
    fn silence_sits_at_the_clamp_floor() {
        let features = LogMel::new().features_for(&vec![0.0; SAMPLE_RATE as usize], N_FRAMES);
        // All-zero power: log10(1e-10) = -10 everywhere, so (x + 4) / 4 = -1.5.
        assert!(features.iter().all(|&x| (x + 1.5).abs() < 1e-6));
    }

    #[test]
    fn a_short_window_matches_the_start_of_the_full_one() {
        let mel = LogMel::new();
        let audio = sine(440.0, 2.0, 0.5);
        let full = mel.features_for(&audio, N_FRAMES);
        let frames = 300;
        let short = mel.features_for(&audio, frames);
        assert_eq!(short.len(), N_MELS * frames);
        // Away from the end (where the reflection differs) the frames agree.
        for m in 0..N_MELS {
            for t in 0..frames - 2 {
                let (a, b) = (short[m * frames + t], full[m * N_FRAMES + t]);
                assert!((a - b).abs() < 1e-4, "band {m} frame {t}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn padding_after_the_audio_is_clamped_to_max_minus_8() {
        let features = LogMel::new().features_for(&sine(440.0, 1.0, 0.5), N_FRAMES);
        let max = features.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let late = column(&features, 2000);
        for x in late {
            assert!((x - (max - 2.0)).abs() < 1e-5, "{x} vs {}", max - 2.0);
        }
    }
}
