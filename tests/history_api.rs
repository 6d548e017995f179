//! The history API through the real app: two users stream sessions, then
//! list and page them, read one, export its transcript in every format,
//! download its audio whole and in ranges, and delete it; neither ever sees
//! the other's. The main scenario runs against both storage pairs.

mod common;

use auscult::protocol::CloseReason;
use common::*;
use serde_json::Value;

const TOKENS: &str = "alice:token-alice,bob:token-bob";
const ALICE: &str = "token-alice";
const BOB: &str = "token-bob";

/// Declares each scenario once per pair, as `embedded::<name>` and `cloud::<name>`.
macro_rules! both_pairs {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::common::Backend::embedded().await).await;
                }
            )*
        }
        mod cloud {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::common::Backend::cloud().await).await;
                }
            )*
        }
    };
}

both_pairs!(two_users_each_see_export_download_and_delete_only_their_own_sessions);

/// A session streamed through the app.
struct Recorded {
    id: String,
    user: &'static str,
}

/// Streams `secs` of 16 kHz mono as the owner of `token` and stops; with the
/// scripted engine that is one word per 250 ms, four words per final.
async fn record(app: &TestApp, token: &str, secs: f64) -> Recorded {
    let mut ws = app.connect_ws_as(token).await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, secs);
    ws.send_audio(&audio, bytes_for_ms(Enc::S16, 16_000, 1, 100))
        .await;
    let end = ws.stop_and_collect().await;
    assert_eq!(end.closed_reason(), CloseReason::ClientStop);
    let user = if token == ALICE { "alice" } else { "bob" };
    Recorded {
        id: ready.session_id,
        user,
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no sessions in {page}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn two_users_each_see_export_download_and_delete_only_their_own_sessions(backend: Backend) {
    let app = TestApp::spawn_on(&backend, &[("AUSCULT_API_TOKENS", TOKENS)]).await;
    let alice = ApiClient::new(&app, ALICE);
    let bob = ApiClient::new(&app, BOB);
    let a1 = record(&app, ALICE, 1.2).await;
    let b1 = record(&app, BOB, 0.8).await;
    let a2 = record(&app, ALICE, 2.3).await;
    let a3 = record(&app, ALICE, 0.6).await;
    for r in [&a1, &b1, &a2, &a3] {
        backend.stored(r.user, &r.id).await;
    }

    // Newest first, two at a time, then the rest.
    let first = alice.get_json("/v1/sessions?limit=2").await;
    assert_eq!(ids(&first), [a3.id.as_str(), a2.id.as_str()]);
    let next = first["next"].as_str().expect("a next cursor").to_owned();
    let second = alice
        .get_json(&format!("/v1/sessions?limit=2&before={next}"))
        .await;
    assert_eq!(ids(&second), [a1.id.as_str()]);
    assert!(second["next"].is_null(), "{second}");
    let all = alice.get_json("/v1/sessions").await;
    assert_eq!(ids(&all), [a3.id.as_str(), a2.id.as_str(), a1.id.as_str()]);
    assert!(all["next"].is_null());
    assert_eq!(ids(&bob.get_json("/v1/sessions").await), [b1.id.as_str()]);

    check_session(&alice, &backend, &a2).await;
    check_transcripts(&alice, &backend, &a2).await;
    check_audio(&alice, &backend, &a2).await;
    check_isolation(&bob, &alice, &a2).await;

    // Deleting removes every object and row; once gone it is gone.
    let prefix = session_prefix("alice", &a1.id);
    assert!(backend.list(&prefix).await.len() >= 3, "stored objects");
    let deleted = alice.delete(&format!("/v1/sessions/{}", a1.id)).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    assert!(backend.row(&a1.id).await.is_none(), "the row is gone");
    assert_eq!(backend.list(&prefix).await, Vec::<String>::new());
    let again = alice.delete(&format!("/v1/sessions/{}", a1.id)).await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (404, "unknown_session")
    );
    let get = alice.get(&format!("/v1/sessions/{}", a1.id)).await;
    assert_eq!(get.status, 404);
    assert_eq!(
        ids(&alice.get_json("/v1/sessions").await),
        [a3.id.as_str(), a2.id.as_str()]
    );
    // Nobody else's session went with it.
    assert!(backend.row(&b1.id).await.is_some());
    assert!(
        !backend
            .list(&session_prefix("bob", &b1.id))
            .await
            .is_empty()
    );
    assert!(backend.row(&a2.id).await.is_some());
    app.stop().await;
}

/// `GET /v1/sessions/{id}` says what the row and manifest say.
async fn check_session(api: &ApiClient, backend: &Backend, r: &Recorded) {
    let stored = backend.stored(r.user, &r.id).await;
    let s = api.get_json(&format!("/v1/sessions/{}", r.id)).await;
    assert_eq!(s["id"], r.id.as_str());
    assert_eq!(s["status"], "stored");
    assert_eq!(s["close_reason"], "client_stop");
    assert_eq!(s["engine"], "scripted");
    assert_eq!(s["language"], "en-US");
    assert_eq!(s["encoding"], "pcm_s16le");
    assert_eq!(s["channels"], 1);
    assert_eq!(s["input_rate"], 16_000);
    assert_eq!(s["received_bytes"], stored.wav.data.len() as u64);
    assert_eq!(s["started_at_ms"], stored.manifest["started_at_ms"]);
    assert_eq!(s["ended_at_ms"], stored.manifest["ended_at_ms"]);
    assert_eq!(s["duration_s"], stored.manifest["duration_s"]);
    let keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    assert!(
        !keys.iter().any(|k| k.ends_with("_key") || *k == "user_id"),
        "storage internals stay inside: {keys:?}"
    );
}

/// A cue of an SRT or VTT file.
#[derive(Debug)]
struct Cue {
    start_ms: u64,
    end_ms: u64,
    text: String,
}

/// `HH:MM:SS<sep>mmm` to milliseconds; panics on anything else.
fn timestamp(s: &str, sep: char) -> u64 {
    let b = s.as_bytes();
    let shape = b.len() == 12
        && b[2] == b':'
        && b[5] == b':'
        && b[8] == sep as u8
        && [0, 1, 3, 4, 6, 7, 9, 10, 11]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    assert!(shape, "timestamp {s:?} is not HH:MM:SS{sep}mmm");
    let n = |r: std::ops::Range<usize>| s[r].parse::<u64>().unwrap();
    assert!(n(3..5) < 60 && n(6..8) < 60, "timestamp {s:?} out of range");
    ((n(0..2) * 60 + n(3..5)) * 60 + n(6..8)) * 1000 + n(9..12)
}

fn timing(line: &str, sep: char) -> (u64, u64) {
    let (start, end) = line
        .split_once(" --> ")
        .unwrap_or_else(|| panic!("{line:?} is not a timing line"));
    (timestamp(start, sep), timestamp(end, sep))
}

/// Parses SRT strictly: numbered blocks from 1, a timing line, text lines, a blank line.
fn parse_srt(doc: &str) -> Vec<Cue> {
    if doc.is_empty() {
        return Vec::new();
    }
    assert!(doc.ends_with("\n\n"), "SRT ends with a blank line: {doc:?}");
    doc.trim_end_matches('\n')
        .split("\n\n")
        .enumerate()
        .map(|(i, block)| {
            let mut lines = block.lines();
            assert_eq!(
                lines.next(),
                Some((i + 1).to_string().as_str()),
                "cue number"
            );
            let (start_ms, end_ms) = timing(lines.next().expect("timing line"), ',');
            let text = lines.collect::<Vec<_>>().join("\n");
            assert!(!text.is_empty(), "cue {} has text", i + 1);
            Cue {
                start_ms,
                end_ms,
                text,
            }
        })
        .collect()
}

/// Parses WebVTT: the `WEBVTT` line, then blocks of a timing line and text.
fn parse_vtt(doc: &str) -> Vec<Cue> {
    let body = doc
        .strip_prefix("WEBVTT\n")
        .unwrap_or_else(|| panic!("no WEBVTT header: {doc:?}"));
    body.split("\n\n")
        .map(|b| b.trim_matches('\n'))
        .filter(|b| !b.is_empty())
        .map(|block| {
            let mut lines = block.lines();
            let (start_ms, end_ms) = timing(lines.next().expect("timing line"), '.');
            let text = lines.collect::<Vec<_>>().join("\n");
            assert!(!text.is_empty(), "a cue has text");
            Cue {
                start_ms,
                end_ms,
                text,
            }
        })
        .collect()
}

/// Cue times are ordered and never end before they start.
fn assert_valid_timing(cues: &[Cue], what: &str) {
    let mut previous = 0;
    for cue in cues {
        assert!(
            cue.end_ms >= cue.start_ms,
            "{what}: {cue:?} ends before it starts"
        );
        assert!(
            cue.start_ms >= previous,
            "{what}: {cue:?} starts before the cue before it"
        );
        previous = cue.start_ms;
    }
}

/// Every format: JSON is the stored document; TXT, SRT and VTT carry the
/// stored finals' text and times.
async fn check_transcripts(api: &ApiClient, backend: &Backend, r: &Recorded) {
    let stored = backend.stored(r.user, &r.id).await;
    let row = backend.row(&r.id).await.expect("row");
    let finals: Vec<(f64, f64, String)> = stored.transcript["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["start"].as_f64().unwrap(),
                s["end"].as_f64().unwrap(),
                s["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        finals.len() >= 3,
        "the session has several finals: {finals:?}"
    );
    let row_texts: Vec<&str> = row.segments.iter().map(|(_, _, t)| t.as_str()).collect();
    let texts: Vec<&str> = finals.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(texts, row_texts, "transcript.json and the rows agree");
    let ms = |secs: f64| (secs * 1000.0).round() as u64;

    let download = async |format: &str, ext: &str, content_type: &str| {
        let path = format!("/v1/sessions/{}/transcript?format={format}", r.id);
        let answer = api.get(&path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        assert!(
            answer
                .header("content-type")
                .unwrap()
                .starts_with(content_type),
            "{path}: {:?}",
            answer.header("content-type")
        );
        assert_eq!(
            answer.header("content-disposition"),
            Some(format!("attachment; filename=\"{}.{ext}\"", r.id).as_str())
        );
        answer
    };

    let json = download("json", "json", "application/json").await;
    let transcript_key = format!("{}transcript.json", session_prefix(r.user, &r.id));
    assert_eq!(
        json.body,
        backend.get_object(&transcript_key).await.unwrap()
    );
    let default = api.get(&format!("/v1/sessions/{}/transcript", r.id)).await;
    assert_eq!(default.body, json.body, "json is the default");

    let txt = download("txt", "txt", "text/plain").await.text();
    let lines: Vec<&str> = txt.lines().collect();
    assert_eq!(lines.len(), finals.len(), "{txt}");
    for (line, (start, _, text)) in lines.iter().zip(&finals) {
        let secs = *start as u64;
        assert_eq!(*line, format!("[{:02}:{:02}] {text}", secs / 60, secs % 60));
    }

    for (format, cues) in [
        (
            "srt",
            parse_srt(&download("srt", "srt", "application/x-subrip").await.text()),
        ),
        (
            "vtt",
            parse_vtt(&download("vtt", "vtt", "text/vtt").await.text()),
        ),
    ] {
        assert_valid_timing(&cues, format);
        assert_eq!(cues.len(), finals.len(), "{format}: one cue per final");
        for (cue, (start, end, text)) in cues.iter().zip(&finals) {
            assert_eq!(&cue.text, text, "{format} text");
            assert_eq!(
                (cue.start_ms, cue.end_ms),
                (ms(*start), ms(*end)),
                "{format} times"
            );
        }
    }

    let bad = api
        .get(&format!("/v1/sessions/{}/transcript?format=pdf", r.id))
        .await;
    assert_eq!((bad.status, bad.error_code().as_str()), (400, "bad_format"));
}

/// The audio whole and in ranges equals the stored `audio.wav`.
async fn check_audio(api: &ApiClient, backend: &Backend, r: &Recorded) {
    let key = format!("{}audio.wav", session_prefix(r.user, &r.id));
    let stored = backend.get_object(&key).await.expect("audio.wav");
    let size = stored.len();
    let path = format!("/v1/sessions/{}/audio", r.id);

    let whole = api.get(&path).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-type"), Some("audio/wav"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        whole.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert!(
        whole.body == stored,
        "the whole file is the stored audio.wav"
    );

    for (range, from, to) in [
        ("bytes=0-99", 0, 100),
        ("bytes=1000-", 1000, size),
        ("bytes=-50", size - 50, size),
        ("bytes=10-99999999", 10, size),
        ("bytes=0-0", 0, 1),
    ] {
        let part = api.get_with(&path, &[("range", range)]).await;
        assert_eq!(part.status, 206, "{range}");
        assert_eq!(
            part.header("content-range"),
            Some(format!("bytes {from}-{}/{size}", to - 1).as_str()),
            "{range}"
        );
        assert_eq!(
            part.header("content-length"),
            Some((to - from).to_string().as_str())
        );
        assert!(part.body == stored[from..to], "{range} gives those bytes");
    }

    let beyond = format!("bytes={size}-");
    let unsatisfiable = api.get_with(&path, &[("range", &beyond)]).await;
    assert_eq!(unsatisfiable.status, 416);
    assert_eq!(
        unsatisfiable.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );
    assert_eq!(unsatisfiable.error_code(), "range_not_satisfiable");
    // Ranges this server does not serve in part give the whole file.
    for ignored in ["bytes=50-10", "bytes=0-1,5-9", "lines=1-2"] {
        let answer = api.get_with(&path, &[("range", ignored)]).await;
        assert_eq!(answer.status, 200, "{ignored}");
        assert!(answer.body == stored, "{ignored}");
    }
}

/// Another user gets 404 `unknown_session` on every endpoint, as for an id
/// that does not exist, and the session is untouched.
async fn check_isolation(intruder: &ApiClient, owner: &ApiClient, r: &Recorded) {
    let too_long = "x".repeat(129);
    for id in [
        r.id.as_str(),
        "no-such-session",
        ".hidden",
        "bad%20id",
        &too_long,
    ] {
        for path in [
            format!("/v1/sessions/{id}"),
            format!("/v1/sessions/{id}/transcript"),
            format!("/v1/sessions/{id}/transcript?format=srt"),
            format!("/v1/sessions/{id}/audio"),
        ] {
            let answer = intruder.get(&path).await;
            assert_eq!(
                (answer.status, answer.error_code().as_str()),
                (404, "unknown_session"),
                "GET {path}"
            );
            let ranged = intruder.get_with(&path, &[("range", "bytes=0-1")]).await;
            assert_eq!(ranged.status, 404, "ranged GET {path}");
        }
        let delete = intruder.delete(&format!("/v1/sessions/{id}")).await;
        assert_eq!(
            (delete.status, delete.error_code().as_str()),
            (404, "unknown_session"),
            "DELETE {id}"
        );
    }
    assert!(
        !ids(&intruder.get_json("/v1/sessions").await).contains(&r.id),
        "not in the intruder's list"
    );
    let still = owner.get_json(&format!("/v1/sessions/{}", r.id)).await;
    assert_eq!(still["status"], "stored", "the owner still has it");
}

#[tokio::test]
async fn a_session_still_recording_cannot_be_deleted_or_downloaded_until_stored() {
    let app = TestApp::spawn_env(&[("AUSCULT_API_TOKENS", TOKENS)]).await;
    let alice = ApiClient::new(&app, ALICE);
    let mut ws = app.connect_ws_as(ALICE).await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    let audio = tone(Enc::S16, 16_000, 1, 0.5);
    ws.send_audio(&audio, bytes_for_ms(Enc::S16, 16_000, 1, 100))
        .await;
    ws.wait_durable(audio.len() as u64).await;
    let id = ready.session_id.clone();
    wait_for_status(app.data_path(), &id, "live").await;

    let live = alice.get_json(&format!("/v1/sessions/{id}")).await;
    assert_eq!(live["status"], "live");
    assert!(live["ended_at_ms"].is_null() && live["duration_s"].is_null());
    for answer in [
        alice.delete(&format!("/v1/sessions/{id}")).await,
        alice.get(&format!("/v1/sessions/{id}/transcript")).await,
        alice.get(&format!("/v1/sessions/{id}/audio")).await,
    ] {
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (409, "session_live")
        );
    }

    ws.stop_and_collect().await;
    wait_for_status(app.data_path(), &id, "stored").await;
    let deleted = alice.delete(&format!("/v1/sessions/{id}")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    assert!(session_row(app.data_path(), &id).await.is_none());
    assert!(stored_session_ids(app.data_path(), "alice").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_session_without_speech_exports_empty_documents_and_an_empty_wav() {
    let app = TestApp::spawn_env(&[("AUSCULT_API_TOKENS", TOKENS)]).await;
    let alice = ApiClient::new(&app, ALICE);
    let mut ws = app.connect_ws_as(ALICE).await;
    let ready = ws.start(16_000, Enc::S16, 1).await;
    ws.stop_and_collect().await;
    let id = ready.session_id;
    let stored = app.stored("alice", &id).await;
    assert!(stored.transcript_segments().is_empty());

    let export = async |format: &str| {
        let answer = alice
            .get(&format!("/v1/sessions/{id}/transcript?format={format}"))
            .await;
        assert_eq!(answer.status, 200, "{format}");
        answer.text()
    };
    assert_eq!(export("txt").await, "");
    assert_eq!(export("srt").await, "");
    assert_eq!(export("vtt").await, "WEBVTT\n");

    let audio = format!("/v1/sessions/{id}/audio");
    let whole = alice.get(&audio).await;
    assert_eq!(whole.status, 200);
    assert!(whole.body == stored.audio_file, "the header-only WAV");
    let tail = alice.get_with(&audio, &[("range", "bytes=-0")]).await;
    assert_eq!(tail.status, 416);
    app.stop().await;
}

#[tokio::test]
async fn bad_paging_parameters_are_400_with_stable_codes() {
    let app = TestApp::spawn_env(&[("AUSCULT_API_TOKENS", TOKENS)]).await;
    let alice = ApiClient::new(&app, ALICE);
    for (query, code) in [
        ("limit=0", "bad_limit"),
        ("limit=101", "bad_limit"),
        ("limit=-1", "bad_limit"),
        ("limit=ten", "bad_limit"),
        ("before=not-a-cursor", "bad_cursor"),
        ("before=", "bad_cursor"),
        ("limit=1&limit=2", "bad_query"),
    ] {
        let answer = alice.get(&format!("/v1/sessions?{query}")).await;
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (400, code),
            "{query}"
        );
    }
    for ok in ["limit=1", "limit=100"] {
        let page = alice.get_json(&format!("/v1/sessions?{ok}")).await;
        assert_eq!(ids(&page), Vec::<String>::new());
        assert!(page["next"].is_null());
    }
    app.stop().await;
}

#[tokio::test]
async fn the_api_refuses_callers_without_valid_credentials() {
    let app = TestApp::spawn_env(&[("AUSCULT_API_TOKENS", TOKENS)]).await;
    let nobody = ApiClient::anonymous(&app);
    let eve = ApiClient::new(&app, "token-eve-000");
    for path in [
        "/v1/engines",
        "/v1/sessions",
        "/v1/sessions/s1",
        "/v1/sessions/s1/transcript",
        "/v1/sessions/s1/audio",
    ] {
        let answer = nobody.get(path).await;
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (401, "missing_credentials"),
            "{path}"
        );
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
        let answer = eve.get(path).await;
        assert_eq!(
            (answer.status, answer.error_code().as_str()),
            (401, "invalid_token"),
            "{path}"
        );
    }
    let delete = nobody.delete("/v1/sessions/s1").await;
    assert_eq!(delete.status, 401);
    app.stop().await;
}
