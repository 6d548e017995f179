//! Config loading: defaults, file, environment, checks and redaction.

use secrecy::ExposeSecret;

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_are_embedded() {
    let c = Config::load_from(None, &env(&[])).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.database_url.expose_secret(), "sqlite://./data/auscult.db");
    assert_eq!(c.storage_url, "file://./data/objects");
    assert_eq!(c.engine, "whisper");
    assert_eq!(c.max_sessions, 100);
    assert_eq!(c.max_buffer_bytes, 60 * 1024 * 1024);
    assert_eq!(c.max_message_bytes, 1024 * 1024);
    assert_eq!(c.database_pool.max_connections, 10);
    assert_eq!(c.database_pool.acquire_timeout, Duration::from_secs(5));
    assert_eq!(c.login_idle, Duration::from_secs(15 * 60));
    assert!(c.allows_local_user());
}

#[test]
fn env_overrides_file_which_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.toml");
    std::fs::write(&path, "max_sessions = 7\nidle_timeout_secs = 9\n").unwrap();
    let c = Config::load_from(
        Some(&path),
        &env(&[
            ("AUSCULT_MAX_SESSIONS", "11"),
            ("AUSCULT_DATABASE_POOL_SIZE", "3"),
        ]),
    )
    .unwrap();
    assert_eq!(c.max_sessions, 11);
    assert_eq!(c.database_pool.max_connections, 3);
    assert_eq!(c.idle_timeout, Duration::from_secs(9));
}

#[test]
fn unknown_file_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.toml");
    std::fs::write(&path, "max_sesions = 7\n").unwrap();
    let err = Config::load_from(Some(&path), &env(&[])).unwrap_err();
    assert!(err.to_string().contains("max_sesions"), "{err}");
}

#[test]
fn public_listener_without_tokens_refuses_to_start() {
    let c = Config::load_from(None, &env(&[("AUSCULT_LISTEN", "0.0.0.0:8080")])).unwrap();
    assert!(c.validate_for_serve(false).is_err());
    assert!(c.validate_for_serve(true).is_ok(), "accounts authenticate");
    let c = Config::load_from(
        None,
        &env(&[
            ("AUSCULT_LISTEN", "0.0.0.0:8080"),
            ("AUSCULT_API_TOKENS", "u1:secret-token"),
        ]),
    )
    .unwrap();
    assert!(c.validate_for_serve(false).is_ok());
}

#[test]
fn secrets_are_redacted_in_summary_and_debug() {
    let c = Config::load_from(
        None,
        &env(&[
            ("AUSCULT_API_TOKENS", "alice:supersecret1"),
            ("AUSCULT_DATABASE_URL", "postgres://app:hunter22@db:5432/x"),
        ]),
    )
    .unwrap();
    let summary = c.redacted_summary();
    assert!(!summary.contains("supersecret1"));
    assert!(!summary.contains("hunter22"));
    assert!(summary.contains("postgres://app:****@db:5432/x"));
    let debug = format!("{c:?}");
    assert!(!debug.contains("supersecret1") && !debug.contains("hunter22"));
}

#[test]
fn riva_api_key_is_redacted_and_url_checked() {
    let c = Config::load_from(
        None,
        &env(&[
            ("AUSCULT_RIVA_URL", "https://grpc.example.com:443/"),
            ("AUSCULT_RIVA_API_KEY", "nvapi-topsecret"),
            ("AUSCULT_RIVA_PHRASES", "metoprolol, lisinopril"),
        ]),
    )
    .unwrap();
    assert_eq!(c.riva.url, "https://grpc.example.com:443");
    assert_eq!(c.riva.phrases, ["metoprolol", "lisinopril"]);
    let summary = c.redacted_summary();
    assert!(summary.contains("AUSCULT_RIVA_API_KEY=****"));
    assert!(!summary.contains("topsecret") && !format!("{c:?}").contains("topsecret"));
    assert!(Config::load_from(None, &env(&[("AUSCULT_RIVA_URL", "grpc://x:1")])).is_err());
}

#[test]
fn config_check_shows_every_setting() {
    let summary = Config::load_from(None, &env(&[]))
        .unwrap()
        .redacted_summary();
    for (_, name) in ENV_KEYS {
        assert!(
            summary.lines().any(|l| l.starts_with(&format!("{name}="))),
            "{name} missing from config check"
        );
    }
}

#[test]
fn file_values_of_every_type_are_read_and_nested_tables_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.toml");
    std::fs::write(
        &path,
        "max_sessions = 7\nstorage_url = \"s3://b/p\"\ns3_sse = \"aws:kms\"\n",
    )
    .unwrap();
    let c = Config::load_from(Some(&path), &env(&[])).unwrap();
    assert_eq!(c.max_sessions, 7);
    assert_eq!(c.storage_url, "s3://b/p");
    assert_eq!(c.s3.sse, crate::storage::object::Sse::Kms { key_id: None });
    std::fs::write(&path, "[s3]\nregion = \"x\"\n").unwrap();
    assert!(Config::load_from(Some(&path), &env(&[])).is_err());
}

#[test]
fn the_session_stale_time_must_exceed_the_heartbeat_interval() {
    let err = Config::load_from(
        None,
        &env(&[
            ("AUSCULT_CHUNK_FLUSH_SECS", "10"),
            ("AUSCULT_SESSION_STALE_SECS", "10"),
        ]),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("AUSCULT_SESSION_STALE_SECS"),
        "{err}"
    );
}

#[test]
fn kms_settings_are_checked() {
    let kms = Config::load_from(
        None,
        &env(&[
            ("AUSCULT_S3_SSE", "aws:kms"),
            ("AUSCULT_S3_KMS_KEY_ID", "alias/auscult"),
        ]),
    )
    .unwrap();
    assert_eq!(
        kms.s3.sse,
        crate::storage::object::Sse::Kms {
            key_id: Some("alias/auscult".into())
        }
    );
    assert!(Config::load_from(None, &env(&[("AUSCULT_S3_SSE", "rot13")])).is_err());
    assert!(
        Config::load_from(
            None,
            &env(&[("AUSCULT_S3_SSE", "AES256"), ("AUSCULT_S3_KMS_KEY_ID", "k")])
        )
        .is_err()
    );
}

#[test]
fn malformed_tokens_are_rejected() {
    assert!(Config::load_from(None, &env(&[("AUSCULT_API_TOKENS", "nocolon")])).is_err());
    assert!(Config::load_from(None, &env(&[("AUSCULT_API_TOKENS", "../x:longenough")])).is_err());
}

#[test]
fn transcribe_settings_are_checked_against_what_the_service_accepts() {
    let c = Config::load_from(
        None,
        &env(&[
            ("AUSCULT_TRANSCRIBE_SPECIALTY", "cardiology"),
            ("AUSCULT_TRANSCRIBE_TYPE", "conversation"),
            ("AUSCULT_TRANSCRIBE_PHI", "true"),
            ("AUSCULT_TRANSCRIBE_STABILITY", "High"),
        ]),
    )
    .unwrap();
    assert_eq!(c.transcribe.specialty, "CARDIOLOGY");
    assert_eq!(c.transcribe.kind, "CONVERSATION");
    assert!(c.transcribe.phi);
    assert_eq!(c.transcribe.stability.as_deref(), Some("high"));
    assert_eq!(c.transcribe.keepalive, Duration::from_secs(5));
    for bad in [
        ("AUSCULT_TRANSCRIBE_SPECIALTY", "DENTISTRY"),
        ("AUSCULT_TRANSCRIBE_TYPE", "SONG"),
        ("AUSCULT_TRANSCRIBE_PII", "hide"),
        ("AUSCULT_TRANSCRIBE_KEEPALIVE_MS", "15000"),
        ("AUSCULT_TRANSCRIBE_MAX_ATTEMPTS", "0"),
    ] {
        assert!(Config::load_from(None, &env(&[bad])).is_err(), "{bad:?}");
    }
}

#[test]
fn a_password_in_the_query_of_a_url_is_redacted_too() {
    let c = Config::load_from(
        None,
        &env(&[(
            "AUSCULT_DATABASE_URL",
            "postgresql://app@db/auscult?sslmode=require&password=hunter22&PGPASSWORD=x2y",
        )]),
    )
    .unwrap();
    let summary = c.redacted_summary();
    assert!(
        !summary.contains("hunter22") && !summary.contains("x2y"),
        "{summary}"
    );
    assert!(
        summary
            .contains("postgresql://app@db/auscult?sslmode=require&password=****&PGPASSWORD=****"),
        "{summary}"
    );
    assert_eq!(redact_url("s3://bucket/prefix"), "s3://bucket/prefix");
    assert_eq!(
        redact_url("https://u:p@h/x?token=abc&a=b"),
        "https://u:****@h/x?token=****&a=b"
    );
}

#[test]
fn network_settings_are_parsed_and_checked() {
    let c = Config::load_from(
        None,
        &env(&[
            (
                "AUSCULT_ALLOWED_HOSTS",
                "auscult.example.org, *.clinic.example",
            ),
            ("AUSCULT_TRUSTED_PROXIES", "10.0.0.0/16,127.0.0.1"),
            ("AUSCULT_ADMIN_LISTEN", "127.0.0.1:9090"),
            ("AUSCULT_MAX_SESSIONS", "700"),
        ]),
    )
    .unwrap();
    assert_eq!(c.network.allowed_hosts.len(), 2);
    assert_eq!(c.network.trusted_proxies.len(), 2);
    assert_eq!(
        c.network.admin_listen,
        Some("127.0.0.1:9090".parse().unwrap())
    );
    assert_eq!(
        c.network.max_connections, 1400,
        "twice the sessions when more than 1024"
    );
    assert_eq!(c.network.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.start_timeout, Duration::from_secs(10));
    assert_eq!(c.max_sessions_per_user, 10);
    let summary = c.redacted_summary();
    assert!(summary.contains("AUSCULT_ALLOWED_HOSTS=auscult.example.org,*.clinic.example"));
    assert!(summary.contains("AUSCULT_TRUSTED_PROXIES=10.0.0.0/16,127.0.0.1/32"));
    let defaults = Config::load_from(None, &env(&[])).unwrap();
    assert_eq!(defaults.network.admin_listen, None);
    assert_eq!(defaults.network.max_connections, 1024);
    for bad in [
        ("AUSCULT_TRUSTED_PROXIES", "10.0.0.0/40"),
        ("AUSCULT_ALLOWED_HOSTS", "not a host"),
        ("AUSCULT_ADMIN_LISTEN", "nowhere"),
        ("AUSCULT_MAX_CONNECTIONS", "50"),
        ("AUSCULT_HEADER_READ_TIMEOUT_SECS", "0"),
        ("AUSCULT_START_TIMEOUT_SECS", "0"),
        ("AUSCULT_MAX_SESSIONS_PER_USER", "0"),
    ] {
        let err = Config::load_from(None, &env(&[bad])).unwrap_err();
        assert!(err.to_string().contains(bad.0), "{bad:?}: {err}");
    }
}

#[test]
fn socketio_transports_default_to_both_and_can_be_narrowed_or_turned_off() {
    let load = |v: Option<&str>| {
        let pairs: Vec<(&str, &str)> = v
            .map(|v| vec![("AUSCULT_SOCKETIO_TRANSPORTS", v)])
            .unwrap_or_default();
        Config::load_from(None, &env(&pairs)).map(|c| c.network.socketio)
    };
    let both = load(None).unwrap();
    assert!(both.polling && both.websocket);
    assert_eq!(both.describe(), "polling,websocket");
    let ws = load(Some("websocket")).unwrap();
    assert!(!ws.polling && ws.websocket && ws.enabled());
    assert_eq!(load(Some(" polling , websocket ")).unwrap(), both);
    assert!(!load(Some("off")).unwrap().enabled());
    let err = load(Some("polling,carrier-pigeon"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("AUSCULT_SOCKETIO_TRANSPORTS"), "{err}");
}
