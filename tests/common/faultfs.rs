//! A FUSE mount that passes through to a temp directory and fails fsync on
//! demand (tests/faultfs/faultfs.py), for tests that need the kernel's own
//! fsync(2) errors rather than a mock: one mount and daemon per [`FaultFs`],
//! unmounted when it drops. A machine without python3, fusepy, libfuse2 or
//! FUSE fails the tests (never skips them).
//!
//! For a data directory on it, `tempfile::tempdir_in(&fs.mountpoint)` gives
//! the `TempDir` that `TestApp::spawn_in` takes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

const INSTALL_HINT: &str = "the fsync fault tests need python3 with fusepy, Debian's libfuse2 \
                            and fuse3, and /dev/fuse: scripts/test.sh installs them \
                            (ensure_faultfs in scripts/setup.sh)";

/// How long the daemon may take to mount, and to unmount and exit.
const MOUNT_WAIT: Duration = Duration::from_secs(10);
const EXIT_WAIT: Duration = Duration::from_secs(5);

pub struct FaultFs {
    /// Where the files are seen through FUSE: what the code under test uses.
    pub mountpoint: PathBuf,
    backing: PathBuf,
    /// The fault switches the daemon reads on every fsync.
    control: PathBuf,
    /// Holds backing/, control/, the mount point and the daemon's log side by
    /// side, so the control files and the log are outside the mount.
    dirs: TempDir,
    child: Child,
}

impl FaultFs {
    /// Mounts a fresh, empty backing directory and waits until the mount is live.
    pub fn mount() -> FaultFs {
        let dirs = tempfile::tempdir().expect("temp dir for faultfs");
        // Canonical, as /proc/self/mounts names the mount point.
        let base = std::fs::canonicalize(dirs.path()).expect("canonical temp dir");
        let [backing, control, mountpoint] =
            ["backing", "control", "mnt"].map(|name| base.join(name));
        for dir in [&backing, &control, &mountpoint] {
            std::fs::create_dir(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        // A file, not a pipe: nobody reads the daemon's output while it runs,
        // and a full pipe would hang every call on the mount.
        let log = File::create(base.join("faultfs.log")).expect("faultfs log file");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faultfs/faultfs.py");
        let child = Command::new("python3")
            .arg(&script)
            .args([&backing, &mountpoint, &control])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("faultfs log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start python3 {} ({e}): {INSTALL_HINT}", script.display()));
        // Built before waiting so a failed mount still stops the process.
        let mut fs = FaultFs {
            mountpoint,
            backing,
            control,
            dirs,
            child,
        };
        fs.wait_until_mounted();
        fs
    }

    // A plain sleep: the mount is waited for before the app under test
    // starts, so no task on the test's runtime is held up by it.
    #[allow(clippy::disallowed_methods)]
    fn wait_until_mounted(&mut self) {
        let deadline = Instant::now() + MOUNT_WAIT;
        loop {
            if self.is_mounted() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "faultfs exited ({status}) before mounting {}: {}\n{INSTALL_HINT}",
                    self.mountpoint.display(),
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "faultfs did not mount {} within {MOUNT_WAIT:?}: {}\n{INSTALL_HINT}",
                self.mountpoint.display(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the kernel lists a FUSE mount at the mount point.
    fn is_mounted(&self) -> bool {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let wanted = escape_mount_path(&self.mountpoint);
        mounts.lines().any(|line| {
            let mut fields = line.split(' ');
            let (_, point, fstype) = (fields.next(), fields.next(), fields.next());
            point == Some(wanted.as_str()) && fstype.is_some_and(|t| t.starts_with("fuse"))
        })
    }

    /// The directory behind the mount, for checking what really reached disk
    /// (modes, contents) without going through FUSE.
    pub fn backing_path(&self) -> &Path {
        &self.backing
    }

    /// While on, every fsync/fdatasync of a file on the mount fails with EIO.
    pub fn fail_fsync(&self, on: bool) {
        self.set_fault("fail_fsync", on.then_some(""));
    }

    /// Fails fsync/fdatasync with EIO only for the files whose path (from the
    /// mount's root, e.g. `/spool/abc/audio.wav`) contains `part`.
    pub fn fail_fsync_matching(&self, part: &str) {
        self.set_fault("fail_fsync", Some(part));
    }

    /// While on, fsync of a directory on the mount fails with EIO.
    pub fn fail_fsyncdir(&self, on: bool) {
        self.set_fault("fail_fsyncdir", on.then_some(""));
    }

    /// Writes (or, for `None`, removes) the control file the daemon reads on
    /// every fsync. Written aside and renamed in, so a racing fsync never sees
    /// it half written (an empty file would fail every path).
    fn set_fault(&self, name: &str, paths: Option<&str>) {
        let file = self.control.join(name);
        match paths {
            Some(paths) => {
                let tmp = self.control.join(format!(".{name}.tmp"));
                std::fs::write(&tmp, paths)
                    .and_then(|()| std::fs::rename(&tmp, &file))
                    .unwrap_or_else(|e| panic!("set faultfs {}: {e}", file.display()));
            }
            None => match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("clear faultfs {}: {e}", file.display()),
            },
        }
    }

    /// What the daemon printed (errors, tracebacks).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dirs.path().join("faultfs.log")).unwrap_or_default()
    }
}

impl Drop for FaultFs {
    // Drop cannot await; the app under test has stopped by the time the
    // mount goes (it is declared first, so dropped last).
    #[allow(clippy::disallowed_methods)]
    fn drop(&mut self) {
        // SIGTERM: libfuse unmounts (lazily, as root, so files the test still
        // holds open do not block it) and exits. Only a live child is
        // signalled: a reaped one's pid may already belong to another process.
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + EXIT_WAIT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A daemon that died without unmounting leaves a dead mount ("transport
        // endpoint is not connected") that removing the temp dir would trip on.
        if self.is_mounted() {
            let fusermount = Command::new("fusermount")
                .args(["-u", "-z"])
                .arg(&self.mountpoint)
                .stderr(Stdio::null())
                .status();
            if !fusermount.is_ok_and(|s| s.success()) {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(&self.mountpoint)
                    .status();
            }
        }
    }
}

/// A path as /proc/self/mounts writes it: space, tab, newline and backslash
/// octal-escaped.
fn escape_mount_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}
