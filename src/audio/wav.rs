//! The WAV container: a fixed-size header written in front of the spool so the
//! spool file itself becomes `audio.wav` once its sizes are patched at close.

use super::pcm::{AudioFormat, Encoding};

/// Header length for a format: 44 bytes for PCM; 58 for IEEE float (fmt
/// extension + `fact` chunk, as the WAV spec asks for non-PCM data).
pub fn header_len(encoding: Encoding) -> usize {
    match encoding {
        Encoding::PcmS16le => 44,
        Encoding::PcmF32le => 58,
    }
}

/// Builds the header for `data_len` bytes of audio in `format`.
pub fn header(format: &AudioFormat, data_len: u64) -> Vec<u8> {
    // WAV sizes are 32-bit; sessions are capped far below 4 GiB by max duration.
    let data_len = u32::try_from(data_len).unwrap_or(u32::MAX);
    let channels = format.channels;
    let bps = format.encoding.bytes_per_sample() as u16;
    let block_align = channels * bps;
    let byte_rate = format.sample_rate * u32::from(block_align);
    let hlen = header_len(format.encoding) as u32;
    let mut h = Vec::with_capacity(hlen as usize);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(hlen - 8).saturating_add(data_len).to_le_bytes());
    h.extend_from_slice(b"WAVE");
    h.extend_from_slice(b"fmt ");
    match format.encoding {
        Encoding::PcmS16le => {
            h.extend_from_slice(&16u32.to_le_bytes());
            h.extend_from_slice(&1u16.to_le_bytes());
        }
        Encoding::PcmF32le => {
            h.extend_from_slice(&18u32.to_le_bytes());
            h.extend_from_slice(&3u16.to_le_bytes());
        }
    }
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&format.sample_rate.to_le_bytes());
    h.extend_from_slice(&byte_rate.to_le_bytes());
    h.extend_from_slice(&block_align.to_le_bytes());
    h.extend_from_slice(&(bps * 8).to_le_bytes());
    if format.encoding == Encoding::PcmF32le {
        h.extend_from_slice(&0u16.to_le_bytes()); // cbSize
        h.extend_from_slice(b"fact");
        h.extend_from_slice(&4u32.to_le_bytes());
        let frames = data_len / u32::from(block_align.max(1));
        h.extend_from_slice(&frames.to_le_bytes());
    }
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    debug_assert_eq!(h.len(), hlen as usize);
    h
}

/// A parsed WAV header: the format and where the sample data starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedWav {
    pub format_tag: u16,
    pub channels: u16,
    pub sample_rate: u32,
    pub bits_per_sample: u16,
    pub data_offset: usize,
    pub data_len: usize,
}

/// Parses a WAV file's chunks (enough for our own files and common ones).
pub fn parse(bytes: &[u8]) -> Option<ParsedWav> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut pos = 12;
    let mut fmt = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
        let body = pos + 8;
        if id == b"fmt " && body + 16 <= bytes.len() {
            let b = &bytes[body..];
            fmt = Some((
                u16::from_le_bytes([b[0], b[1]]),
                u16::from_le_bytes([b[2], b[3]]),
                u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                u16::from_le_bytes([b[14], b[15]]),
            ));
        }
        if id == b"data" {
            let (format_tag, channels, sample_rate, bits_per_sample) = fmt?;
            let data_len = len.min(bytes.len() - body);
            return Some(ParsedWav {
                format_tag,
                channels,
                sample_rate,
                bits_per_sample,
                data_offset: body,
                data_len,
            });
        }
        pos = body + len + (len & 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_header_round_trips() {
        let f = AudioFormat::new("pcm_s16le", 48_000, 2).unwrap();
        let mut file = header(&f, 8);
        file.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let p = parse(&file).unwrap();
        assert_eq!(
            (p.format_tag, p.channels, p.sample_rate, p.bits_per_sample),
            (1, 2, 48_000, 16)
        );
        assert_eq!(
            &file[p.data_offset..p.data_offset + p.data_len],
            &[1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(p.data_offset, 44);
    }

    #[test]
    fn float_header_has_fact_chunk_and_fixed_length() {
        let f = AudioFormat::new("pcm_f32le", 8_000, 1).unwrap();
        let h = header(&f, 400);
        assert_eq!(h.len(), header_len(Encoding::PcmF32le));
        let mut file = h;
        file.extend(std::iter::repeat_n(0u8, 400));
        let p = parse(&file).unwrap();
        assert_eq!((p.format_tag, p.bits_per_sample, p.data_len), (3, 32, 400));
        assert_eq!(
            u32::from_le_bytes(file[4..8].try_into().unwrap()) as usize,
            file.len() - 8
        );
    }
}
