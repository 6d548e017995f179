//! Energy-based voice-activity detection with an adaptive noise floor: gates
//! decoding so that silence and faint noise never reach Whisper.
//!
//! Audio is judged in 30 ms frames. A frame is loud when its level clears both
//! an absolute minimum and the running noise floor by a margin; speech starts
//! after a few loud frames in a row and ends after a long enough quiet pause.

/// Samples per 30 ms frame at 16 kHz.
pub const FRAME: usize = 480;
/// Frames below this level (dBFS, RMS) are never speech, however quiet the room.
const ABSOLUTE_MIN_DB: f32 = -45.0;
/// How far above the noise floor a frame must be to count as loud.
const MARGIN_DB: f32 = 10.0;
/// Loud frames in a row that start speech (90 ms).
const ONSET_FRAMES: u32 = 3;
/// Quiet frames in a row that end an utterance, unless set: 17 × 30 ms ≈ 500 ms.
const RELEASE_FRAMES: u32 = 17;

/// What one frame means for the utterance in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    Silence,
    /// Speech began; the caller should include the few frames before it.
    SpeechStart,
    Speech,
    /// The pause after speech was long enough: the utterance is over.
    SpeechEnd,
}

#[derive(Debug, Clone)]
pub struct Vad {
    /// Quiet frames in a row that end an utterance.
    release_frames: u32,
    /// Unknown until the first frame, which sets it: a stream that starts
    /// in steady noise must not read the noise as speech while the floor
    /// would otherwise climb to it.
    floor_db: Option<f32>,
    in_speech: bool,
    loud_run: u32,
    quiet_run: u32,
}

impl Default for Vad {
    fn default() -> Self {
        Vad {
            release_frames: RELEASE_FRAMES,
            floor_db: None,
            in_speech: false,
            loud_run: 0,
            quiet_run: 0,
        }
    }
}

impl Vad {
    /// A detector whose utterances end after `endpoint` of quiet.
    pub fn with_endpoint(endpoint: std::time::Duration) -> Self {
        let frame_ms = (FRAME * 1000 / 16_000) as u128;
        Vad {
            release_frames: (endpoint.as_millis().div_ceil(frame_ms)).max(1) as u32,
            ..Vad::default()
        }
    }

    /// The quiet that ends an utterance, in samples.
    pub fn endpoint_samples(&self) -> usize {
        self.release_frames as usize * FRAME
    }

    /// Judges one frame of `FRAME` samples (shorter at the very end is fine).
    pub fn push_frame(&mut self, frame: &[f32]) -> VadEvent {
        let level = level_db(frame);
        let floor = *self.floor_db.get_or_insert(level);
        let loud = level > ABSOLUTE_MIN_DB && level > floor + MARGIN_DB;
        self.track_floor(level, loud);
        if loud {
            self.loud_run += 1;
            self.quiet_run = 0;
        } else {
            self.loud_run = 0;
            self.quiet_run += 1;
        }
        match self.in_speech {
            false if self.loud_run >= ONSET_FRAMES => {
                self.in_speech = true;
                VadEvent::SpeechStart
            }
            false => VadEvent::Silence,
            true if self.quiet_run >= self.release_frames => {
                self.in_speech = false;
                VadEvent::SpeechEnd
            }
            true => VadEvent::Speech,
        }
    }

    /// The floor follows quiet frames down at once and creeps up slowly, so a
    /// steady noise becomes the floor within seconds while the gaps between
    /// words keep it from rising into speech.
    fn track_floor(&mut self, level: f32, loud: bool) {
        let floor = self.floor_db.get_or_insert(level);
        let rate = match (level < *floor, loud) {
            (true, _) => 0.5,
            (false, false) => 0.03,
            (false, true) => 0.002,
        };
        *floor += (level - *floor) * rate;
    }
}

/// RMS level in dBFS (full scale = 1.0).
pub fn level_db(frame: &[f32]) -> f32 {
    if frame.is_empty() {
        return -120.0;
    }
    let mean_square = frame.iter().map(|s| s * s).sum::<f32>() / frame.len() as f32;
    10.0 * mean_square.max(1e-12).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random generator for noise (xorshift).
    fn noise(len: usize, amplitude: f32, mut seed: u32) -> Vec<f32> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                amplitude * (seed as f32 / u32::MAX as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    /// Syllable-like bursts: a voiced tone with a 4 Hz on/off envelope.
    fn speech_like(secs: f32) -> Vec<f32> {
        let n = (secs * 16_000.0) as usize;
        (0..n)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                let envelope = if (t * 4.0).fract() < 0.7 { 1.0 } else { 0.05 };
                envelope
                    * 0.3
                    * ((2.0 * std::f32::consts::PI * 180.0 * t).sin()
                        + 0.5 * (2.0 * std::f32::consts::PI * 720.0 * t).sin())
            })
            .collect()
    }

    fn events(vad: &mut Vad, audio: &[f32]) -> Vec<VadEvent> {
        audio.chunks(FRAME).map(|f| vad.push_frame(f)).collect()
    }

    #[test]
    fn silence_never_starts_speech() {
        let mut vad = Vad::default();
        assert!(
            events(&mut vad, &vec![0.0; 16_000 * 10])
                .iter()
                .all(|e| *e == VadEvent::Silence)
        );
    }

    #[test]
    fn faint_noise_never_starts_speech() {
        for amplitude in [0.002, 0.01, 0.02] {
            let mut vad = Vad::default();
            let evs = events(&mut vad, &noise(16_000 * 10, amplitude, 7));
            assert!(
                evs.iter().all(|e| *e == VadEvent::Silence),
                "amplitude {amplitude}"
            );
        }
    }

    #[test]
    fn speech_starts_and_ends_after_the_pause() {
        let mut vad = Vad::default();
        let mut audio = noise(16_000, 0.003, 3);
        audio.extend(speech_like(3.0));
        audio.extend(noise(16_000 * 2, 0.003, 5));
        let evs = events(&mut vad, &audio);
        let start = evs
            .iter()
            .position(|e| *e == VadEvent::SpeechStart)
            .expect("speech starts");
        let end = evs
            .iter()
            .position(|e| *e == VadEvent::SpeechEnd)
            .expect("speech ends");
        let frame_secs = FRAME as f32 / 16_000.0;
        assert!(
            (start as f32 * frame_secs - 1.0).abs() < 0.2,
            "start at frame {start}"
        );
        // Speech runs to 4 s; the end comes one release pause later.
        assert!(
            (end as f32 * frame_secs - 4.0).abs() < 1.0,
            "end at frame {end}"
        );
        // Short gaps between syllables do not end the utterance.
        assert_eq!(
            evs.iter().filter(|e| **e == VadEvent::SpeechStart).count(),
            1
        );
    }

    #[test]
    fn speech_over_steady_noise_is_still_detected() {
        let mut vad = Vad::default();
        let mut audio = noise(16_000 * 5, 0.01, 11);
        let speech = speech_like(2.0);
        audio.extend(
            speech
                .iter()
                .zip(noise(speech.len(), 0.01, 13))
                .map(|(s, n)| s + n),
        );
        let evs = events(&mut vad, &audio);
        assert_eq!(
            evs.iter().filter(|e| **e == VadEvent::SpeechStart).count(),
            1
        );
    }
}
