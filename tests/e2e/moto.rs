//! A moto server (AWS emulator) on a free loopback port, for tests that drive the real
//! AWS SDK end to end. Why not a unit test: the point is the SDK calls, waiters,
//! pagination and error shapes against something that answers like AWS.
//!
//! moto missing is a failure, never a skip: `pip install 'moto[server]'`.
//! The AWS settings go to the child `fleetform` processes only (`Command::env`), never
//! into this process's environment, so tests can run in parallel with their own servers.

#![allow(dead_code)] // shared with reconciler/benches/plan.rs, which uses a subset

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
}

fn free_port() -> u16 {
    // Bind port 0, read the port the kernel chose, release it for moto.
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    l.local_addr().expect("local addr").port()
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("fleetform-moto-{port}.log"));
        let out = std::fs::File::create(&log).expect("moto log file");
        let err = out.try_clone().expect("moto log file");
        let child = match Command::new("moto_server")
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
        let mut moto = Moto { child, port, endpoint: format!("http://127.0.0.1:{port}"), log };
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
    }
}
