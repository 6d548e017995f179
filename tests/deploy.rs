//! The deployment artifacts (README "Deployment"): the `Dockerfile` (clean
//! under hadolint, shaped as the issue asks, its health check run against the
//! real binary) and the `terraform/` module (formatted, initialised from the
//! local provider mirror, valid, clean under checkov, and applied against a
//! local moto_server, read back from moto with boto3, then destroyed). There
//! is no Docker engine here: the image itself is never built by these tests.
//! A missing tool fails its test and says how to install it.

mod common;
#[path = "deploy/readback.rs"]
mod readback;
#[path = "deploy/tools.rs"]
mod tools;

use std::collections::BTreeSet;

use common::process::{BIN, ServerProcess};
use serde_json::Value;
use tools::{MotoServer, Terraform, root, run, run_ok};

fn dockerfile() -> String {
    std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile at the top level")
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

fn last(instructions: &[String], keyword: &str) -> String {
    instructions
        .iter()
        .rfind(|i| i.starts_with(&format!("{keyword} ")))
        .unwrap_or_else(|| panic!("the Dockerfile has no {keyword}"))
        .clone()
}

#[tokio::test]
async fn the_dockerfile_is_clean_under_hadolint_and_every_ignored_rule_says_why() {
    let out = run("hadolint", &["Dockerfile"], &root(), &[]).await;
    assert!(
        out.status.success(),
        "hadolint Dockerfile:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = dockerfile();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("# hadolint ignore=") {
            let rules = line.trim_start().trim_start_matches("# hadolint ignore=");
            let reason = lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.trim_start().starts_with('#'))
                .any(|l| {
                    rules.split(',').all(|rule| l.contains(rule.trim()))
                        && !l.contains("hadolint ignore")
                });
            assert!(
                reason,
                "line {}: `{line}` without a comment above naming the rule and why",
                i + 1
            );
        }
    }
}

#[test]
fn the_dockerfile_builds_a_slim_non_root_image_that_drains_on_sigterm() {
    let all = instructions(&dockerfile());
    let froms: Vec<&String> = all.iter().filter(|i| i.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a builder and a runtime stage: {froms:?}");
    assert!(froms[0].ends_with("AS builder"), "{}", froms[0]);
    assert!(
        froms[1].contains("debian:") && froms[1].contains("-slim"),
        "{}",
        froms[1]
    );
    let builder_runs: String = all
        .iter()
        .filter(|i| i.starts_with("RUN "))
        .cloned()
        .collect();
    for needed in [
        "scripts/setup.sh",
        "ensure_build_deps",
        "scripts/fetch-model.sh",
        "--mount=type=cache",
        "cargo build --release --locked",
    ] {
        assert!(
            builder_runs.contains(needed),
            "the build never runs {needed}"
        );
    }
    let user = last(&all, "USER");
    let uid = user.trim_start_matches("USER ").split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|uid| uid != 0),
        "{user}: a numeric non-root user"
    );
    let env = all
        .iter()
        .filter(|i| i.starts_with("ENV "))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(env.contains("AUSCULT_LISTEN=0.0.0.0:8080"), "{env}");
    assert!(env.contains("AUSCULT_DATA_DIR=/var/lib/auscult"), "{env}");
    assert_eq!(last(&all, "VOLUME"), r#"VOLUME ["/var/lib/auscult"]"#);
    assert_eq!(last(&all, "EXPOSE"), "EXPOSE 8080 9090");
    assert_eq!(last(&all, "STOPSIGNAL"), "STOPSIGNAL SIGTERM");
    assert!(last(&all, "HEALTHCHECK").ends_with(r#"CMD ["/opt/auscult/auscult", "health"]"#));
}

/// Each path the builder copies from the context must be let through by the
/// allow-list `.dockerignore`, or the build (which cannot run here) fails.
#[test]
fn the_dockerignore_lets_through_exactly_what_the_build_copies() {
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).expect(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        patterns.first(),
        Some(&"*"),
        "an allow-list: everything ignored, then the build's inputs"
    );
    let allowed: BTreeSet<&str> = patterns
        .iter()
        .filter_map(|p| p.strip_prefix('!'))
        .map(|p| p.trim_end_matches('/'))
        .collect();
    let mut copied = BTreeSet::new();
    let all = instructions(&dockerfile());
    for copy in all
        .iter()
        .filter(|i| i.starts_with("COPY ") && !i.contains("--from="))
    {
        let words: Vec<&str> = copy.split_whitespace().skip(1).collect();
        for src in &words[..words.len() - 1] {
            assert!(
                allowed.contains(src),
                "COPY {src} is not let through by .dockerignore"
            );
            assert!(
                root().join(src).exists(),
                "COPY {src}: no such path in the repository"
            );
            copied.insert(*src);
        }
    }
    assert_eq!(
        copied, allowed,
        "the allow-list should let through what is copied, and no more"
    );
}

/// The image's HEALTHCHECK command, with the image's listen address, run
/// against the real binary: 0 while it serves, 1 once it is gone.
#[tokio::test]
async fn the_images_health_check_passes_on_a_serving_server_and_fails_on_a_stopped_one() {
    let healthcheck = last(&instructions(&dockerfile()), "HEALTHCHECK");
    let json = &healthcheck[healthcheck.find("CMD [").expect("exec form") + 4..];
    let argv: Vec<String> = serde_json::from_str(json).expect("HEALTHCHECK CMD as a JSON array");
    assert_eq!(argv[0], "/opt/auscult/auscult", "the image's binary");
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), &[]).await;
    let listen = format!("0.0.0.0:{}", server.port);
    let probe = || async {
        tokio::process::Command::new(BIN)
            .args(&argv[1..])
            .env_clear()
            .env("AUSCULT_LISTEN", &listen)
            .env("AUSCULT_DATA_DIR", data.path())
            .output()
            .await
            .expect("run auscult health")
    };
    let serving = probe().await;
    assert!(serving.status.success(), "{serving:?}");
    server.kill().await;
    let stopped = probe().await;
    assert_eq!(stopped.status.code(), Some(1), "{stopped:?}");
    assert!(
        String::from_utf8_lossy(&stopped.stderr).contains("unhealthy"),
        "{stopped:?}"
    );
}

#[tokio::test]
async fn the_module_is_formatted_initialises_from_the_local_mirror_and_validates() {
    run_ok(
        "terraform",
        &["fmt", "-check", "-recursive", "-diff", "-no-color"],
        &root().join("terraform"),
        &[],
    )
    .await;
    let tf = Terraform::init().await;
    let lock = std::fs::read_to_string(tf.path(".terraform.lock.hcl")).unwrap();
    assert!(
        lock.contains(r#"provider "registry.terraform.io/hashicorp/aws""#)
            && lock.contains("5.100."),
        "{lock}"
    );
    let valid = tf.ok(&["validate", "-json"]).await;
    let valid: Value = serde_json::from_str(&valid).unwrap();
    assert_eq!(valid["valid"], true, "{valid:#}");
    assert_eq!(valid["warning_count"], 0, "{valid:#}");
}

#[tokio::test]
async fn checkov_fails_no_check_of_the_module_and_every_skip_gives_its_reason() {
    // --skip-download: no calls to the vendor's platform (there is no network).
    let out = run(
        "checkov",
        &["-d", "terraform", "--skip-download", "-o", "json"],
        &root(),
        &[],
    )
    .await;
    let report = String::from_utf8_lossy(&out.stdout);
    let parsed: Value = serde_json::from_str(&report).unwrap_or_else(|e| {
        panic!(
            "checkov's JSON ({e}): {report}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // One report per framework that found something (a list), or just one.
    let reports = match parsed {
        Value::Array(reports) => reports,
        one => vec![one],
    };
    let mut failed = Vec::new();
    let mut skipped = 0;
    for report in &reports {
        for check in report["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            failed.push(format!(
                "{} {} ({})",
                check["check_id"], check["resource"], check["file_path"]
            ));
        }
        for check in report["results"]["skipped_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let reason = check["check_result"]["suppress_comment"]
                .as_str()
                .unwrap_or_default();
            assert!(
                reason.trim().len() > 10,
                "skip of {} on {} without its reason",
                check["check_id"],
                check["resource"]
            );
            skipped += 1;
        }
    }
    assert!(failed.is_empty(), "checkov failed checks: {failed:#?}");
    assert!(out.status.success(), "checkov exited {}", out.status);
    let terraform = reports
        .iter()
        .find(|r| r["check_type"] == "terraform")
        .expect("checkov scanned no terraform");
    let summary = &terraform["summary"];
    assert_eq!(summary["parsing_errors"], 0, "{summary}");
    assert!(summary["passed"].as_u64() > Some(100), "{summary}");
    assert_eq!(summary["skipped"].as_u64(), Some(skipped), "{summary}");
}

/// `terraform apply` against moto, what moto then says exists, and `terraform
/// destroy`. Around moto's gaps (the harness's, never the module's):
/// application-autoscaling's tag calls come from tests/deploy/moto_server.py;
/// ECS services never reach a steady state there, so `wait_for_steady_state`
/// is off; AWS-managed policies are loaded (MOTO_IAM_LOAD_MANAGED_POLICIES);
/// the HTTPS listener's certificate is made in moto's ACM first. What moto
/// accepts but does not report back (the service's deployment settings, the
/// ALB's scheme) is checked in the saved plan instead.
#[tokio::test(flavor = "multi_thread")]
async fn the_module_applies_against_moto_reads_back_as_intended_and_destroys() {
    let moto = MotoServer::start().await;
    let tf = Terraform::init().await;
    let aws = root().join("tests/deploy/aws.py");
    let aws = aws.to_str().unwrap();
    let certificate = run_ok(
        "python3",
        &[aws, &moto.endpoint, "certificate", "auscult.example.org"],
        &root(),
        &[],
    )
    .await;
    let vars = readback::test_variables(&moto.endpoint, certificate.trim());
    std::fs::write(tf.path("test.auto.tfvars.json"), vars.to_string()).unwrap();

    tf.ok(&["plan", "-input=false", "-no-color", "-out=tfplan"])
        .await;
    let plan: Value = serde_json::from_str(&tf.ok(&["show", "-json", "tfplan"]).await).unwrap();
    readback::check_plan(&plan);

    tf.ok(&["apply", "-input=false", "-no-color", "tfplan"])
        .await;
    std::fs::write(tf.path("outputs.json"), tf.ok(&["output", "-json"]).await).unwrap();
    let outputs = tf.path("outputs.json");
    let facts = run_ok(
        "python3",
        &[aws, &moto.endpoint, "read", outputs.to_str().unwrap()],
        &root(),
        &[],
    )
    .await;
    let facts: Value = serde_json::from_str(&facts).unwrap();
    readback::check_service(&facts);
    readback::check_load_balancer(&facts);
    readback::check_database(&facts);
    readback::check_storage(&facts);
    readback::check_roles(&facts);

    tf.ok(&["destroy", "-auto-approve", "-input=false", "-no-color"])
        .await;
    let left = tf.ok(&["state", "list"]).await;
    assert!(
        left.trim().is_empty(),
        "left in the state after destroy: {left}"
    );
}
