//! A per-session streaming resampler (rubato's FFT resampler) that accepts mono
//! frames of any size and carries its state across them, so frame boundaries
//! leave no trace in the output. The startup delay is trimmed, so output sample
//! `n` lines up with input time `n / output_rate`.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler, ResamplerConstructionError};

/// Input frames per FFT chunk: 10 ms at 48 kHz, rounded by rubato to fit the ratio.
const CHUNK_FRAMES: usize = 480;

pub struct StreamResampler {
    /// `None` when input and output rates are equal (pass-through).
    inner: Option<Inner>,
    input_rate: u32,
    output_rate: u32,
}

struct Inner {
    fft: Fft<f32>,
    /// Input waiting for a whole chunk; `pending[start..]` is live.
    pending: Vec<f32>,
    start: usize,
    out_buf: Vec<f32>,
    /// Output frames still to drop to cancel the resampler's delay.
    to_trim: usize,
    frames_in: u64,
    frames_out: u64,
}

impl StreamResampler {
    pub fn new(input_rate: u32, output_rate: u32) -> Result<Self, ResamplerConstructionError> {
        let inner = if input_rate == output_rate {
            None
        } else {
            let fft = Fft::<f32>::new(
                input_rate as usize,
                output_rate as usize,
                CHUNK_FRAMES,
                1,
                FixedSync::Input,
            )?;
            let out_buf = vec![0.0; fft.output_frames_max()];
            let to_trim = fft.output_delay();
            Some(Inner {
                pending: Vec::with_capacity(fft.input_frames_max() * 2),
                start: 0,
                out_buf,
                to_trim,
                frames_in: 0,
                frames_out: 0,
                fft,
            })
        };
        Ok(StreamResampler {
            inner,
            input_rate,
            output_rate,
        })
    }

    pub fn input_rate(&self) -> u32 {
        self.input_rate
    }

    pub fn output_rate(&self) -> u32 {
        self.output_rate
    }

    /// Resamples `input`, appending every output sample that is ready to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let Some(inner) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            return;
        };
        inner.frames_in += input.len() as u64;
        if inner.start > 0 && inner.start >= inner.pending.len() / 2 {
            inner.pending.drain(..inner.start);
            inner.start = 0;
        }
        inner.pending.extend_from_slice(input);
        loop {
            let need = inner.fft.input_frames_next();
            let live = inner.pending.len() - inner.start;
            if live < need {
                break;
            }
            let used = inner.process(need, None, out);
            inner.start += used;
        }
    }

    /// Flushes the tail: the remaining input is padded with silence and the
    /// output is cut to exactly `ceil(frames_in × ratio)` samples in total.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        let Some(inner) = self.inner.as_mut() else {
            return;
        };
        // In integers: in floating point, exact multiples such as 2141 samples
        // at 8564 Hz (4000 out) round up to one sample too many.
        let expected = (u128::from(inner.frames_in) * u128::from(self.output_rate))
            .div_ceil(u128::from(self.input_rate)) as u64;
        let live = inner.pending.len() - inner.start;
        if live > 0 {
            let need = inner.fft.input_frames_next();
            inner.pending.resize(inner.start + need, 0.0);
            inner.process(need, Some(live), out);
            inner.start = inner.pending.len();
        }
        // Pump silence until the delayed tail is out.
        while inner.frames_out < expected {
            inner.process(0, Some(0), out);
        }
        let excess = (inner.frames_out - expected) as usize;
        out.truncate(out.len().saturating_sub(excess));
        inner.frames_out = expected;
        inner.pending.clear();
        inner.start = 0;
    }
}

impl Inner {
    /// Runs one chunk from `pending[start..start+need]` (or silence when `need` is 0),
    /// appending trimmed output. Returns the number of input frames consumed.
    fn process(&mut self, need: usize, partial: Option<usize>, out: &mut Vec<f32>) -> usize {
        let frames = self.fft.input_frames_next();
        let zeros;
        let input: &[f32] = if need == 0 {
            zeros = vec![0.0; frames];
            &zeros
        } else {
            &self.pending[self.start..self.start + need]
        };
        let out_len = self.out_buf.len();
        let (Ok(buf_in), Ok(mut buf_out)) = (
            InterleavedSlice::new(input, 1, input.len()),
            InterleavedSlice::new_mut(&mut self.out_buf, 1, out_len),
        ) else {
            return need;
        };
        let indexing = partial.map(|p| Indexing {
            partial_len: Some(p),
            ..Indexing::default()
        });
        // Sizes come from the resampler itself, so processing cannot fail on them.
        let Ok((_, produced)) =
            self.fft
                .process_into_buffer(&buf_in, &mut buf_out, indexing.as_ref())
        else {
            return need;
        };
        let trim = self.to_trim.min(produced);
        self.to_trim -= trim;
        out.extend_from_slice(&self.out_buf[trim..produced]);
        self.frames_out += (produced - trim) as u64;
        need
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rubato::audioadapter::Adapter;

    fn sine(rate: u32, hz: f32, secs: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    fn one_shot(input: &[f32], from: u32, to: u32) -> Vec<f32> {
        let mut fft = Fft::<f32>::new(
            from as usize,
            to as usize,
            CHUNK_FRAMES,
            1,
            FixedSync::Input,
        )
        .unwrap();
        let adapter = InterleavedSlice::new(input, 1, input.len()).unwrap();
        let out = fft.process_all(&adapter, input.len(), None).unwrap();
        (0..out.frames())
            .map(|i| out.read_sample(0, i).unwrap())
            .collect()
    }

    fn streamed(input: &[f32], from: u32, to: u32, sizes: &[usize]) -> Vec<f32> {
        let mut r = StreamResampler::new(from, to).unwrap();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < input.len() {
            let n = sizes[i % sizes.len()].min(input.len() - pos);
            r.push(&input[pos..pos + n], &mut out);
            pos += n;
            i += 1;
        }
        r.finish(&mut out);
        out
    }

    #[test]
    fn sine_48k_to_16k_in_odd_frames_matches_one_shot() {
        let input = sine(48_000, 440.0, 2.0);
        let reference = one_shot(&input, 48_000, 16_000);
        let out = streamed(&input, 48_000, 16_000, &[1, 7, 333, 4801, 97, 1024, 3]);
        assert_eq!(out.len(), reference.len());
        assert_eq!(out.len(), 32_000);
        let max_diff = out
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            max_diff < 1e-5,
            "streamed output differs from one-shot by {max_diff}"
        );
    }

    #[test]
    fn output_is_a_clean_sine_with_no_clicks_at_frame_boundaries() {
        let input = sine(48_000, 440.0, 1.0);
        let out = streamed(&input, 48_000, 16_000, &[333]);
        let expected = sine(16_000, 440.0, 1.0);
        // Skip the filter's edges; inside, the resampled sine must match the ideal one.
        let max_err = out[200..15_800]
            .iter()
            .zip(&expected[200..15_800])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err < 1e-3, "max deviation from ideal sine {max_err}");
    }

    #[test]
    fn upsampling_8k_and_odd_rates_produce_the_right_length() {
        for (from, to) in [
            (8_000, 16_000),
            (44_100, 16_000),
            (11_025, 16_000),
            (47_999, 16_000),
        ] {
            let input = sine(from, 300.0, 1.5);
            let out = streamed(&input, from, to, &[160, 77]);
            let expected = (input.len() as f64 * to as f64 / from as f64).ceil() as usize;
            assert_eq!(out.len(), expected, "{from}->{to}");
        }
    }

    /// Found checking the `start_and_audio` fuzz target's length property.
    #[test]
    fn an_exact_multiple_of_the_rate_ratio_gets_no_extra_sample() {
        let input = sine(8_564, 300.0, 0.25);
        let out = streamed(&input[..2_141], 8_564, 16_000, &[160]);
        assert_eq!(out.len(), 4_000);
    }

    #[test]
    fn equal_rates_pass_through() {
        let input = sine(16_000, 300.0, 0.1);
        assert_eq!(streamed(&input, 16_000, 16_000, &[100]), input);
    }
}
