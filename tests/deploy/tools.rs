//! The deployment tools as child processes: hadolint, checkov, terraform
//! (with a CLI configuration that installs the AWS provider from the local
//! filesystem mirror only) and a moto_server for `terraform apply`. A tool
//! that is missing fails the test with how to install it; nothing skips.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

pub const INSTALL_HINT: &str = "scripts/test.sh installs hadolint and checkov \
    (ensure_deploy_tools in scripts/setup.sh: `source scripts/setup.sh && ensure_deploy_tools` \
    puts them on PATH); terraform ≥ 1.11 and the hashicorp/aws provider in a local mirror \
    ($AUSCULT_TF_PLUGIN_MIRROR, default /opt/tf-plugins) must be installed beforehand";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `program args` in `dir` with `env`; panics (with the hint) when the
/// program cannot be started.
pub async fn run(program: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): {INSTALL_HINT}"))
}

/// Like [`run`], and panics with the output unless the program exits 0.
pub async fn run_ok(program: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> String {
    let out = run(program, args, dir, env).await;
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}):\n{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A copy of `terraform/` in a temporary folder (so `.terraform`, state and
/// plans never land in the checkout, and tests do not share them) with a CLI
/// configuration that knows only the local provider mirror.
pub struct Terraform {
    pub dir: tempfile::TempDir,
    cli_config: PathBuf,
}

impl Terraform {
    pub async fn init() -> Terraform {
        let mirror =
            std::env::var("AUSCULT_TF_PLUGIN_MIRROR").unwrap_or_else(|_| "/opt/tf-plugins".into());
        let provider = Path::new(&mirror).join("registry.terraform.io/hashicorp/aws");
        assert!(
            provider.is_dir(),
            "no hashicorp/aws provider in the mirror {mirror} (set AUSCULT_TF_PLUGIN_MIRROR): {INSTALL_HINT}"
        );
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(root().join("terraform")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "tf") {
                std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        // Never a network registry: the mirror, and direct installation of nothing.
        let cli_config = dir.path().join("cli.tfrc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = {mirror:?}\n    \
                 include = [\"registry.terraform.io/hashicorp/aws\"]\n  }}\n  direct {{\n    \
                 exclude = [\"*/*\"]\n  }}\n}}\n"
            ),
        )
        .unwrap();
        let tf = Terraform { dir, cli_config };
        tf.ok(&["init", "-backend=false", "-input=false", "-no-color"])
            .await;
        tf
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("TF_CLI_CONFIG_FILE", self.cli_config.to_str().unwrap()),
            ("TF_IN_AUTOMATION", "1"),
            ("CHECKPOINT_DISABLE", "1"),
        ]
    }

    pub async fn ok(&self, args: &[&str]) -> String {
        run_ok("terraform", args, self.dir.path(), &self.env()).await
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A moto_server of this test's own (tests/deploy/moto_server.py: stock moto
/// plus application-autoscaling's tag calls), killed on drop.
pub struct MotoServer {
    child: Child,
    pub endpoint: String,
}

impl MotoServer {
    pub async fn start() -> MotoServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port for moto_server")
            .port();
        let child = Command::new("python3")
            .arg(root().join("tests/deploy/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // The execution role attaches AmazonECSTaskExecutionRolePolicy and
            // the RDS monitoring role AmazonRDSEnhancedMonitoringRole: moto has
            // AWS-managed policies only when asked to load them.
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start moto_server ({e}): pip install 'moto[server]>=5.2.5'")
            });
        let mut moto = MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..300 {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto_server exited ({status}): pip install 'moto[server]>=5.2.5' (scripts/test.sh does)"
                );
            }
            if auscult::probe::check(addr, "/moto-api/", Duration::from_secs(1)).is_ok() {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not answer on {addr} within 30 s");
    }
}
