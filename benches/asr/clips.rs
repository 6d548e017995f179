//! The benchmark's speech: clinical dictation synthesised by espeak-ng, with
//! known reference texts, converted to 16 kHz mono by the server's own
//! resampler, and where in each clip its utterances start and end.

use std::ops::Range;
use std::process::Command;

use auscult::audio::StreamResampler;

pub const RATE: u32 = 16_000;
/// Silence before the speech: dictation starts soon after the session does.
const LEAD_SECS: f64 = 0.25;
/// Silence after it, shorter than the VAD's end-of-utterance pause, so the
/// last final comes from the flush that `stop` starts.
const TAIL_SECS: f64 = 0.5;
/// Samples per 10 ms frame, the unit speech is found in.
const LEVEL_FRAME: usize = (RATE / 100) as usize;
/// A 10 ms frame whose RMS is above this (dBFS) is speech.
const SPEECH_DB: f32 = -40.0;
/// Quiet frames in a row after speech that end an utterance: 500 ms, the
/// server's default endpoint (`AUSCULT_WHISPER_ENDPOINT_MS`), so that the
/// bench calls an utterance what the engine does; much longer than the
/// closures inside words. espeak-ng's pauses between sentences are about
/// 0.3 s at this level, so a clip is usually one utterance, ending where its
/// speech does, ~0.8 s before its audio.
const UTTERANCE_GAP_FRAMES: usize = 50;

/// Reference texts: plain clinical vocabulary, numbers avoided (Whisper
/// writes digits, which would count as errors against spelled-out words).
pub const TEXTS: &[(&str, &str)] = &[
    (
        "chest-pain",
        "The patient reports chest pain and shortness of breath since this morning.",
    ),
    (
        "exam",
        "Her blood pressure is normal and the lungs are clear. The heart sounds are regular with no murmur.",
    ),
    (
        "history",
        "He has had diabetes for many years and his blood sugar is well controlled. He takes his medicine every day.",
    ),
    (
        "allergies",
        "She has no known drug allergies. She has no fever and no cough. The abdomen is soft and not tender.",
    ),
    (
        "wound",
        "The wound is healing well and there is no sign of infection. We will change the dressing and see her again next week.",
    ),
    (
        "pneumonia",
        "The chest film shows a small pneumonia in the right lower lobe. We will start antibiotics and repeat the blood tests on Monday.",
    ),
    (
        "emergency",
        "The patient was seen in the emergency room. The pain improved after an hour and the heart rhythm was normal.",
    ),
    (
        "headache",
        "The patient is a young woman who presents with a headache for several days. The pain is worse in the morning and there is no weakness or numbness. The neurological exam is normal. We will treat the pain and ask her to come back if it gets worse.",
    ),
];

pub struct Clip {
    pub name: String,
    pub reference: String,
    /// Mono samples at [`RATE`], in [-1, 1].
    pub samples: Vec<f32>,
    /// Each utterance, from its first speech frame to the end of its last.
    pub utterances: Vec<Range<usize>>,
}

impl Clip {
    pub fn secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(RATE)
    }

    /// The first speech sample (after the leading silence).
    pub fn speech_start(&self) -> usize {
        self.utterances.first().map_or(0, |u| u.start)
    }

    pub fn speech_start_secs(&self) -> f64 {
        self.speech_start() as f64 / f64::from(RATE)
    }

    /// The clip as the `pcm_s16le` a client sends.
    pub fn s16le(&self) -> Vec<u8> {
        self.samples
            .iter()
            .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
            .collect()
    }
}

pub fn synthesize_all() -> anyhow::Result<Vec<Clip>> {
    TEXTS
        .iter()
        .map(|(name, text)| {
            let samples = espeak(text)?;
            let utterances = utterances(&samples);
            anyhow::ensure!(!utterances.is_empty(), "clip {name} has no speech");
            Ok(Clip {
                name: (*name).to_owned(),
                reference: (*text).to_owned(),
                samples,
                utterances,
            })
        })
        .collect()
}

/// The utterances in `samples`: runs of speech frames, split where
/// [`UTTERANCE_GAP_FRAMES`] quiet frames follow speech. Speech that runs to
/// the end of the clip ends its utterance there (the client's `stop` ends it).
pub fn utterances(samples: &[f32]) -> Vec<Range<usize>> {
    let threshold = 10f32.powf(SPEECH_DB / 20.0);
    let mut found = Vec::new();
    let mut current: Option<Range<usize>> = None;
    let mut quiet = 0;
    for (k, frame) in samples.chunks(LEVEL_FRAME).enumerate() {
        let rms = (frame.iter().map(|s| s * s).sum::<f32>() / frame.len() as f32).sqrt();
        let (start, end) = (k * LEVEL_FRAME, k * LEVEL_FRAME + frame.len());
        if rms > threshold {
            quiet = 0;
            match &mut current {
                Some(u) => u.end = end,
                None => current = Some(start..end),
            }
        } else if current.is_some() {
            quiet += 1;
            if quiet >= UTTERANCE_GAP_FRAMES {
                found.extend(current.take());
            }
        }
    }
    found.extend(current);
    found
}

fn espeak(text: &str) -> anyhow::Result<Vec<f32>> {
    let path = std::env::temp_dir().join(format!("auscult-asr-bench-{}.wav", std::process::id()));
    let status = Command::new("espeak-ng")
        .arg("-w")
        .arg(&path)
        .arg(text)
        .status()
        .map_err(|e| {
            anyhow::anyhow!("espeak-ng must be installed (Debian package espeak-ng): {e}")
        })?;
    anyhow::ensure!(status.success(), "espeak-ng failed");
    let bytes = std::fs::read(&path)?;
    std::fs::remove_file(&path)?;
    let wav = auscult::audio::wav::parse(&bytes)
        .ok_or_else(|| anyhow::anyhow!("espeak-ng wrote something that is not a WAV file"))?;
    anyhow::ensure!(
        wav.channels == 1 && wav.bits_per_sample == 16,
        "espeak-ng wrote {} channels of {} bits",
        wav.channels,
        wav.bits_per_sample
    );
    let end = (wav.data_offset + wav.data_len).min(bytes.len());
    let samples: Vec<f32> = bytes[wav.data_offset..end]
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    let mut resampler = StreamResampler::new(wav.sample_rate, RATE)?;
    let mut out = vec![0.0; (LEAD_SECS * f64::from(RATE)) as usize];
    resampler.push(&samples, &mut out);
    resampler.finish(&mut out);
    out.extend(std::iter::repeat_n(
        0.0,
        (TAIL_SECS * f64::from(RATE)) as usize,
    ));
    Ok(out)
}
