//! Runs a documented command (the built `tradeflow` binary, or a script of `scripts/`) the way
//! a user would, with a time limit: the smoke tests of `bench_smoke.rs` and `scripts_smoke.rs`.
//! Each command gets a process group of its own, so a script's children go with it when the
//! time is up.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tradeflow");

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root")
}

/// `tradeflow` with a clean environment for a benchmark: no REDIS_URL (a private redis-server),
/// no configuration or topology from the caller's environment, temporary files under `tmp`.
pub fn tradeflow(tmp: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("REDIS_URL")
        .env_remove("TRADEFLOW_CONFIG")
        .env_remove("TRADEFLOW_STREAMS")
        .env_remove("TRADEFLOW_TOKEN")
        .env("TMPDIR", tmp)
        .current_dir(tmp);
    cmd
}

pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Finished {
    /// Asserts exit 0; returns stdout parsed as one JSON value.
    #[track_caller]
    pub fn json(&self) -> Value {
        self.success();
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }

    #[track_caller]
    pub fn success(&self) {
        assert!(self.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", self.status, self.stdout, self.stderr);
    }
}

/// Starts `cmd` (stdout and stderr captured) in a process group of its own.
pub fn spawn(cmd: &mut Command) -> std::process::Child {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// Signals the process group of `pid`.
pub fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill").args([&format!("-{signal}"), "--", &format!("-{pid}")]).status();
}

/// Runs `cmd` to its end; past `limit`, its process group is stopped (SIGTERM, then SIGKILL)
/// and the test fails with what it printed.
#[track_caller]
pub fn run(cmd: &mut Command, limit: Duration) -> Finished {
    let started = Instant::now();
    let mut child = spawn(cmd);
    finish(&mut child, started, limit, &format!("{cmd:?}"))
}

/// Waits for a spawned child as [`run`] does.
#[track_caller]
pub fn finish(child: &mut std::process::Child, started: Instant, limit: Duration, what: &str) -> Finished {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > limit {
            signal_group(child.id(), "TERM");
            std::thread::sleep(Duration::from_secs(3));
            signal_group(child.id(), "KILL");
            let _ = child.wait();
            panic!(
                "{what} did not finish within {} s\nstdout:\n{}\nstderr:\n{}",
                limit.as_secs(),
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    // The pipes close when the last process holding them exits: a child of the command still
    // running after it (left behind) is a failure too.
    let closed = Instant::now();
    while !(out.is_finished() && err.is_finished()) {
        if closed.elapsed() > Duration::from_secs(10) {
            signal_group(child.id(), "KILL");
            panic!("{what} exited ({status:?}) but left a process holding its output for 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    Finished { status, stdout: out, stderr: err, took }
}

/// A figure of a report: present, a number, at least `min`.
#[track_caller]
pub fn figure(report: &Value, key: &str, min: f64) -> f64 {
    let v = report.get(key).unwrap_or_else(|| panic!("no `{key}` in {report}"));
    let n = v.as_f64().unwrap_or_else(|| panic!("`{key}` is {v}, not a measured number, in {report}"));
    assert!(n >= min, "`{key}` = {n}, expected at least {min}, in {report}");
    n
}

/// What is left in a directory (a benchmark's TMPDIR must be empty once it has exited).
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read the temporary directory")
        .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
