//! The `auscult` binary: parses the command line and hands over to the library.

/// jemalloc for every allocation in the process: with its unprefixed
/// `malloc` the C++ of CTranslate2 allocates from it too. glibc's arenas held
/// on to the decode workers' freed buffers (414 MB peak at 8 Whisper streams
/// in `scripts/bench-asr.sh`, 306 MB with jemalloc).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    auscult::cli::main()
}
