//! Micro-benchmarks of the per-frame hot path: streaming resampling, PCM
//! decode and downmix, protocol encode/decode, spool append.
//!
//! Throughput is reported in input samples per second; the real-time factor
//! per core is that divided by the input rate (e.g. 48k→16k at 30 Melem/s is
//! 625× real time). `scripts/bench.sh` prints those factors.

use std::hint::black_box;

use auscult::audio::{AudioFormat, StreamResampler};
use auscult::protocol::{AckMsg, ClientMsg, ServerMsg, TranscriptMsg, Word};
use auscult::session::spool::{Spool, SpoolMeta};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn tone(rate: u32, secs: f32) -> Vec<f32> {
    let n = (rate as f32 * secs) as usize;
    (0..n)
        .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.5)
        .collect()
}

/// 10 s of audio pushed in 100 ms frames through one streaming resampler.
fn resample(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample_100ms_frames");
    for (from, to) in [(48_000u32, 16_000u32), (44_100, 16_000), (8_000, 16_000)] {
        let input = tone(from, 10.0);
        let frame = from as usize / 10;
        group.throughput(Throughput::Elements(input.len() as u64));
        group.bench_function(format!("{from}_to_{to}"), |b| {
            let mut out = Vec::with_capacity(to as usize * 11);
            b.iter(|| {
                let mut r = StreamResampler::new(from, to).unwrap();
                out.clear();
                for chunk in input.chunks(frame) {
                    r.push(black_box(chunk), &mut out);
                }
                r.finish(&mut out);
                black_box(out.len())
            });
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_100ms_frame");
    for (encoding, channels) in [
        ("pcm_s16le", 1u16),
        ("pcm_s16le", 2),
        ("pcm_f32le", 1),
        ("pcm_f32le", 2),
    ] {
        let format = AudioFormat::new(encoding, 48_000, channels).unwrap();
        let bytes = vec![7u8; format.frame_bytes() * 4_800];
        group.throughput(Throughput::Elements(4_800));
        group.bench_function(format!("{encoding}_{channels}ch"), |b| {
            let mut out = Vec::with_capacity(4_800);
            b.iter(|| {
                out.clear();
                format.decode_mono_into(black_box(&bytes), &mut out);
                black_box(out.len())
            });
        });
    }
    group.finish();
}

fn protocol(c: &mut Criterion) {
    let mut group = c.benchmark_group("protocol");
    let ack = ServerMsg::Ack(AckMsg {
        received_bytes: 960_000,
        durable_bytes: 960_000,
        engine_lag_ms: Some(120),
    });
    group.bench_function("encode_ack", |b| {
        b.iter(|| black_box(black_box(&ack).to_json()))
    });
    let transcript = ServerMsg::Transcript(TranscriptMsg {
        result_id: "r-12".into(),
        is_partial: false,
        start: 1.2,
        end: 3.85,
        text: "the patient reports chest pain since yesterday".into(),
        words: (0..7)
            .map(|i| Word {
                word: "word".into(),
                start: i as f64,
                end: i as f64 + 0.4,
                confidence: Some(0.9),
            })
            .collect(),
    });
    group.bench_function("encode_final_with_words", |b| {
        b.iter(|| black_box(black_box(&transcript).to_json()))
    });
    let start = r#"{"type":"start","sample_rate":48000,"encoding":"pcm_s16le","channels":1,"language":"en-US","resume":{"session_id":"0193","offset_bytes":123456}}"#;
    group.bench_function("decode_start", |b| {
        b.iter(|| black_box(serde_json::from_str::<ClientMsg>(black_box(start)).unwrap()))
    });
    group.bench_function("decode_stop", |b| {
        b.iter(|| {
            black_box(serde_json::from_str::<ClientMsg>(black_box(r#"{"type":"stop"}"#)).unwrap())
        })
    });
    group.finish();
}

fn spool_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let format = AudioFormat::new("pcm_s16le", 16_000, 1).unwrap();
    let frame = vec![1u8; 3_200];
    let mut group = c.benchmark_group("spool");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    let mut n = 0u32;
    let mut fresh_spool = move || {
        n += 1;
        let meta = SpoolMeta {
            session_id: format!("bench-{n}"),
            user_id: "bench".into(),
            engine: "loadtest".into(),
            language: "en-US".into(),
            format,
            engine_rate: 16_000,
            started_at_ms: 0,
        };
        Spool::create(dir.path(), &meta).unwrap()
    };
    // Only the appends are timed; every 4096 appends (13 MB) the spool is replaced
    // so the benchmark never fills the disk.
    group.bench_function("append_100ms_16k_frame", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let mut spool = fresh_spool();
                let batch = (iters - done).min(4096);
                let t = std::time::Instant::now();
                for _ in 0..batch {
                    spool.append(black_box(&frame)).unwrap();
                }
                total += t.elapsed();
                done += batch;
                let _ = std::fs::remove_dir_all(spool.dir());
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, resample, decode, protocol, spool_append);
criterion_main!(benches);
