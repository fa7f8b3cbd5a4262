//! A moto server (AWS emulator) on a free loopback port, for tests that drive the real
//! AWS SDK end to end. Why not a unit test: the point is the SDK calls, waiters,
//! pagination and error shapes against something that answers like AWS.
//!
//! moto missing is a failure, never a skip: `pip install 'moto[server]'`.
//! The AWS settings go to the child `fleetform` processes only (`Command::env`), never
//! into this process's environment, so tests can run in parallel with their own servers.
//!
//! `Moto::start_with_iam` is the same server able to hold callers to their IAM policies
//! (moto's `INITIAL_NO_AUTH_ACTION_COUNT`), logging every authorization decision; see
//! tests/e2e/moto_iam.py and tests/e2e/aws_iam.rs.

#![allow(dead_code)] // shared with reconciler/benches/plan.rs, which uses a subset

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// moto answers in well under a second once up; a cold Python start takes a few.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
pub const REGION: &str = "us-west-2";

pub struct Moto {
    child: Child,
    pub port: u16,
    pub endpoint: String,
    log: PathBuf,
    /// `start_with_iam` only: moto's authorization decisions, one JSON object a line.
    decisions: Option<PathBuf>,
}

/// The credentials of one identity on the server: an IAM user's access key, or a role
/// session's (with its token).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Credentials {
    pub key: String,
    pub secret: String,
    #[serde(default)]
    pub token: Option<String>,
}

/// One authorization decision moto made while enforcing IAM: who, which IAM action, the
/// resource moto evaluated it against, and `allow`, `deny`, `error ...` or `bad signature ...`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Decision {
    pub principal: String,
    pub action: String,
    pub resource: Option<String>,
    pub decision: String,
}

impl Decision {
    /// The role of an assumed-role caller (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
    pub fn role(&self) -> Option<&str> {
        self.principal.split_once(":assumed-role/")?.1.split('/').next()
    }
    pub fn allowed(&self) -> bool {
        self.decision == "allow"
    }
}

/// The test-support script beside this file (moto with its decisions logged; IAM and STS
/// calls through boto3).
const MOTO_IAM_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/e2e/moto_iam.py");

fn free_port() -> u16 {
    // Bind port 0, read the port the kernel chose, release it for moto.
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    l.local_addr().expect("local addr").port()
}

impl Moto {
    pub fn start() -> Moto {
        Moto::spawn(Command::new("moto_server"), None)
    }

    /// A server that can enforce IAM. It starts open, as `start` does (moto's
    /// `INITIAL_NO_AUTH_ACTION_COUNT` unset: no request is authenticated), so a test sets
    /// up as it likes; after `enforce_iam` every request is authenticated (SigV4 against
    /// the caller's key) and authorized against the caller's IAM policies, and every
    /// decision is logged (`decisions`). Runs moto through tests/e2e/moto_iam.py with the
    /// `python3` on PATH, which must be the one with moto (`.ci/venv/bin` first).
    pub fn start_with_iam() -> Moto {
        let decisions = std::env::temp_dir().join(format!("fleetform-moto-authz-{}-{:?}.jsonl", std::process::id(), std::thread::current().id()));
        std::fs::write(&decisions, "").expect("moto decision log");
        let mut c = Command::new("python3");
        c.args([MOTO_IAM_PY, "serve"]).env("FLEETFORM_MOTO_AUTHZ_LOG", &decisions).env_remove("INITIAL_NO_AUTH_ACTION_COUNT");
        Moto::spawn(c, Some(decisions))
    }

    fn spawn(mut command: Command, decisions: Option<PathBuf>) -> Moto {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("fleetform-moto-{port}.log"));
        let out = std::fs::File::create(&log).expect("moto log file");
        let err = out.try_clone().expect("moto log file");
        let child = match command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "moto_server is not installed, and the AWS tests need it (they never skip): pip install 'moto[server]'"
            ),
            Err(e) => panic!("cannot start moto_server: {e}"),
        };
        let mut moto = Moto { child, port, endpoint: format!("http://127.0.0.1:{port}"), log, decisions };
        let t = Instant::now();
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited ({status}) before answering: {}", moto.log_text());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if t.elapsed() > STARTUP_TIMEOUT {
                panic!("moto_server did not answer on port {port} within {STARTUP_TIMEOUT:?}: {}", moto.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// From now on, authenticate and authorize every request: moto's `/moto-api/reset-auth`
    /// sets `INITIAL_NO_AUTH_ACTION_COUNT` to 0 (what moto's own server-mode decorator does).
    pub fn enforce_iam(&self) {
        assert!(self.decisions.is_some(), "enforce_iam needs a server from Moto::start_with_iam");
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("moto");
        write!(
            s,
            "POST /moto-api/reset-auth HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\n\r\n0",
            self.port
        )
        .expect("moto reset-auth");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("moto reset-auth answer");
        assert!(resp.starts_with("HTTP/1.1 200"), "moto did not turn IAM enforcement on: {resp}");
    }

    /// Every authorization decision since the server started enforcing IAM, in order.
    pub fn decisions(&self) -> Vec<Decision> {
        let path = self.decisions.as_ref().expect("decisions need a server from Moto::start_with_iam");
        let text = std::fs::read_to_string(path).expect("moto decision log");
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("moto decision `{l}`: {e}"))).collect()
    }

    /// The decision log itself (one JSON object a line: `Decision` and the request's
    /// parameters), for tests/e2e/iam_eval.py.
    pub fn decision_log(&self) -> &std::path::Path {
        self.decisions.as_deref().expect("the decision log needs a server from Moto::start_with_iam")
    }

    /// `python3 tests/e2e/moto_iam.py <args>` against this server, as `admin` when given;
    /// returns its standard output.
    pub fn iam_script(&self, args: &[&str], admin: Option<&Credentials>) -> String {
        let mut c = Command::new("python3");
        c.arg(MOTO_IAM_PY).args(args).env("AWS_ENDPOINT_URL", &self.endpoint).env("AWS_REGION", REGION);
        if let Some(a) = admin {
            c.env("ADMIN_KEY", &a.key).env("ADMIN_SECRET", &a.secret);
        }
        let Output { status, stdout, stderr } = c.output().expect("running python3 (the one with moto: .ci/venv/bin first on PATH)");
        assert!(status.success(), "moto_iam.py {}: {}", args.join(" "), String::from_utf8_lossy(&stderr));
        String::from_utf8_lossy(&stdout).to_string()
    }

    /// `configure`, then as `who` instead of the dummy credentials.
    pub fn configure_as(&self, c: &mut Command, who: &Credentials) {
        self.configure(c);
        c.env("AWS_ACCESS_KEY_ID", &who.key).env("AWS_SECRET_ACCESS_KEY", &who.secret);
        if let Some(token) = &who.token {
            c.env("AWS_SESSION_TOKEN", token);
        }
    }

    /// An SdkConfig for this server with `who`'s credentials.
    pub async fn sdk_config_as(&self, who: &Credentials) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(&who.key, &who.secret, who.token.clone(), None, "moto"))
            .load()
            .await
    }

    /// The standard AWS environment pointing at this server, for a child process.
    pub fn configure(&self, c: &mut Command) {
        for v in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE", "FLEETFORM_CLUSTER"] {
            c.env_remove(v);
        }
        c.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    }

    /// `fleetform <args>` against this server.
    pub fn fleetform(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fleetform"));
        c.args(args);
        self.configure(&mut c);
        c
    }

    /// Run `fleetform <args>`; returns (exit code, stdout + stderr) and echoes both.
    pub fn run(&self, args: &[&str], extra_env: &[(&str, &str)]) -> (i32, String) {
        let mut c = self.fleetform(args);
        for (k, v) in extra_env {
            c.env(k, v);
        }
        let Output { status, stdout, stderr } = c.output().expect("running fleetform");
        let text = format!("{}{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
        println!("$ fleetform {}\n{text}[exit {}]\n", args.join(" "), status.code().unwrap_or(-1));
        (status.code().unwrap_or(-1), text)
    }

    /// An SdkConfig for this server, for tests that call AWS directly.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        if let Some(d) = &self.decisions {
            let _ = std::fs::remove_file(d);
        }
    }
}
