//! The `AUSCULT_TRANSCRIBE_*` settings of the Transcribe engines.

use std::time::Duration;

use super::{ConfigError, invalid, parse};

/// The `AUSCULT_TRANSCRIBE_*` settings, checked against what the service accepts.
pub(super) fn transcribe_settings<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<crate::engine::transcribe::TranscribeSettings, ConfigError> {
    let defaults = crate::engine::transcribe::TranscribeSettings::default();
    let text = |key: &str| {
        get(key)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let one_of = |key: &str, env: &'static str, allowed: &[&str], default: &str| {
        let v = text(key).unwrap_or_else(|| default.to_owned());
        let upper = v.to_uppercase();
        if allowed.contains(&upper.as_str()) {
            Ok(upper)
        } else {
            Err(invalid(
                env,
                format!("{v:?} is not one of {}", allowed.join(", ")),
            ))
        }
    };
    let specialty = one_of(
        "transcribe_specialty",
        "AUSCULT_TRANSCRIBE_SPECIALTY",
        crate::engine::transcribe::SPECIALTIES,
        &defaults.specialty,
    )?;
    let kind = one_of(
        "transcribe_type",
        "AUSCULT_TRANSCRIBE_TYPE",
        crate::engine::transcribe::TYPES,
        &defaults.kind,
    )?;
    let stability = match text("transcribe_stability") {
        None => None,
        Some(_) => Some(
            one_of(
                "transcribe_stability",
                "AUSCULT_TRANSCRIBE_STABILITY",
                &["LOW", "MEDIUM", "HIGH"],
                "",
            )?
            .to_lowercase(),
        ),
    };
    let pii = match text("transcribe_pii") {
        None => None,
        Some(_) => Some(
            one_of(
                "transcribe_pii",
                "AUSCULT_TRANSCRIBE_PII",
                &["IDENTIFY", "REDACT"],
                "",
            )?
            .to_lowercase(),
        ),
    };
    let keepalive_ms: u64 = parse(
        get("transcribe_keepalive_ms"),
        "AUSCULT_TRANSCRIBE_KEEPALIVE_MS",
        &defaults.keepalive.as_millis().to_string(),
    )?;
    if !(100..=10_000).contains(&keepalive_ms) {
        return Err(invalid(
            "AUSCULT_TRANSCRIBE_KEEPALIVE_MS",
            "must be 100–10000 (the service fails a stream after 15 s without audio)",
        ));
    }
    let max_attempts: u32 = parse(
        get("transcribe_max_attempts"),
        "AUSCULT_TRANSCRIBE_MAX_ATTEMPTS",
        &defaults.max_attempts.to_string(),
    )?;
    if max_attempts == 0 {
        return Err(invalid(
            "AUSCULT_TRANSCRIBE_MAX_ATTEMPTS",
            "must be at least 1",
        ));
    }
    let max_stream_secs: u64 = parse(
        get("transcribe_max_stream_secs"),
        "AUSCULT_TRANSCRIBE_MAX_STREAM_SECS",
        &defaults.max_stream.as_secs().to_string(),
    )?;
    if !(1..=4 * 3600).contains(&max_stream_secs) {
        return Err(invalid(
            "AUSCULT_TRANSCRIBE_MAX_STREAM_SECS",
            "must be 1–14400 (the service ends a stream after 4 hours)",
        ));
    }
    Ok(crate::engine::transcribe::TranscribeSettings {
        region: text("transcribe_region"),
        endpoint: text("transcribe_endpoint"),
        specialty,
        kind,
        vocabulary: text("transcribe_vocabulary"),
        speaker_labels: parse(
            get("transcribe_speaker_labels"),
            "AUSCULT_TRANSCRIBE_SPEAKER_LABELS",
            "false",
        )?,
        phi: parse(get("transcribe_phi"), "AUSCULT_TRANSCRIBE_PHI", "false")?,
        stability,
        pii,
        keepalive: Duration::from_millis(keepalive_ms),
        max_attempts,
        max_stream: Duration::from_secs(max_stream_secs),
        ..defaults
    })
}
