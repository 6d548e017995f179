//! Generates the Riva gRPC client and server from `proto/riva/` with `protox`
//! (pure Rust: no `protoc` needed on the build machine), and links the
//! prebuilt CTranslate2 of the default `whisper` feature.

use std::path::PathBuf;

/// The CTranslate2 release `ct2rs` 0.10's C++ bridge is compiled against;
/// scripts/fetch-ctranslate2.sh installs the same one.
const CTRANSLATE2_VERSION: &str = "4.8.4";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["riva/riva_asr.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    link_prebuilt_ctranslate2();
    Ok(())
}

/// With the `whisper` feature, ct2rs asks the linker for `libctranslate2`;
/// point it at the installed copy and record that folder (and `lib/` beside
/// the binary, for images that ship it there) as the run-time search path.
fn link_prebuilt_ctranslate2() {
    println!("cargo:rerun-if-env-changed=AUSCULT_CTRANSLATE2_DIR");
    let prebuilt = std::env::var_os("CARGO_FEATURE_WHISPER").is_some();
    let source = std::env::var_os("CARGO_FEATURE_WHISPER_SOURCE").is_some();
    if prebuilt && source {
        panic!(
            "the `whisper` (prebuilt CTranslate2) and `whisper-source` features exclude each other: \
             build from source with `--no-default-features --features whisper-source`"
        );
    }
    if !prebuilt {
        return;
    }
    let dir = std::env::var_os("AUSCULT_CTRANSLATE2_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(format!(".cache/auscult-ctranslate2/{CTRANSLATE2_VERSION}"))
        });
    let installed = std::fs::read_to_string(dir.join("VERSION")).unwrap_or_default();
    if installed.trim() != CTRANSLATE2_VERSION || !dir.join("libctranslate2.so").exists() {
        panic!(
            "CTranslate2 {CTRANSLATE2_VERSION} is not installed in {}: run scripts/fetch-ctranslate2.sh \
             (or set AUSCULT_CTRANSLATE2_DIR), or build it from source with \
             `--no-default-features --features whisper-source`",
            dir.display()
        );
    }
    // ct2rs's own build script finds the stub archives only through this.
    println!("cargo:rerun-if-env-changed=CMAKE_LIBRARY_PATH");
    let searched = std::env::var_os("CMAKE_LIBRARY_PATH").unwrap_or_default();
    if !std::env::split_paths(&searched).any(|p| p == dir) {
        panic!(
            "CMAKE_LIBRARY_PATH must include {0} for ct2rs to link the prebuilt CTranslate2: \
             export CMAKE_LIBRARY_PATH={0} (scripts/run.sh and scripts/test.sh do)",
            dir.display()
        );
    }
    println!("cargo:rerun-if-changed={}", dir.join("VERSION").display());
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}
