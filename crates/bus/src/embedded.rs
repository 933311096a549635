//! A private redis-server child process: what `tradeflow up` runs when no REDIS_URL is given,
//! and what every Redis test starts for itself (on a free loopback port, never 6379).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// Why the embedded server did not come up.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "cannot run {binary:?}: {reason}. Install Redis 7+ (scripts/setup.sh installs Debian's redis-server) or set TRADEFLOW_REDIS_SERVER to its path"
    )]
    Spawn { binary: String, reason: String },
    #[error("cannot prepare data directory {dir}: {reason}")]
    Dir { dir: String, reason: String },
    #[error("redis-server on port {port} did not answer within {secs} s; see {log}")]
    NotReady { port: u16, secs: u64, log: String },
    #[error("redis-server exited at start-up ({status}); see {log}")]
    Exited { status: String, log: String },
    #[error("no free loopback port: {0}")]
    Port(String),
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Data directory (AOF, log). Created if missing.
    pub dir: PathBuf,
    /// Port on 127.0.0.1; `None` picks a free one.
    pub port: Option<u16>,
    /// Keep an append-only file so a restart keeps the data.
    pub appendonly: bool,
    /// When the append-only file reaches the disk (docs/bus.md, Durability).
    pub fsync: Fsync,
}

/// Redis's `appendfsync`: when an acknowledged write is on the disk, not only in the
/// operating system's cache. Either way a crash of the redis-server process loses nothing it
/// acknowledged (the write(2) precedes the reply); a crash of the machine loses what was not
/// yet synced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fsync {
    /// fsync before the reply (group commit): a machine crash loses nothing acknowledged.
    Always,
    /// fsync once a second (Redis's default): a machine crash can lose up to about a second.
    #[default]
    Everysec,
}

impl Fsync {
    pub fn as_str(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
        }
    }

    pub fn parse(s: &str) -> Option<Fsync> {
        match s {
            "always" => Some(Fsync::Always),
            "everysec" => Some(Fsync::Everysec),
            _ => None,
        }
    }
}

/// A running redis-server child. Killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    opts: EmbeddedOptions,
}

/// Ports this process has handed out. Between the probe and the server's bind the port is
/// free again, so a second server started at the same moment (tests run in parallel) could be
/// handed the same one; the two would then answer as one. A port handed out here stays taken
/// for the process's life: a few dozen per test binary, out of thousands.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback port nobody listens on right now and this process has not handed out before.
pub fn free_port() -> Result<u16, EmbeddedError> {
    free_port_with(None)
}

/// A free port `p` whose `p + offset` is free too, both handed out together: a cluster node
/// listens on its port and on its cluster bus port, `p + 10000`.
pub fn free_port_pair(offset: u16) -> Result<u16, EmbeddedError> {
    free_port_with(Some(offset))
}

fn free_port_with(offset: Option<u16>) -> Result<u16, EmbeddedError> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut last = String::from("every probed port was taken");
    for _ in 0..200 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
        let p = match probe {
            Ok(addr) => addr.port(),
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let pair = match offset {
            None => None,
            Some(o) => match p.checked_add(o) {
                Some(q) if std::net::TcpListener::bind(("127.0.0.1", q)).is_ok() => Some(q),
                _ => continue,
            },
        };
        if p == 6379 || handed_out.contains(&p) || pair.is_some_and(|q| handed_out.contains(&q)) {
            continue;
        }
        handed_out.insert(p);
        handed_out.extend(pair);
        return Ok(p);
    }
    Err(EmbeddedError::Port(last))
}

/// The pid of the redis-server answering on `url`, from `INFO server`; `None` while nothing
/// answers. Telling our child from another server on the same port needs it: a PING alone
/// would be answered by whoever holds the port.
pub async fn server_pid(url: &str) -> Option<u32> {
    let client = redis::Client::open(url).ok()?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let mut c = client.get_multiplexed_async_connection_with_config(&config).await.ok()?;
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut c).await.ok()?;
    info.lines().find_map(|l| l.strip_prefix("process_id:")).and_then(|pid| pid.trim().parse().ok())
}

fn binary() -> String {
    std::env::var("TRADEFLOW_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

impl RedisServer {
    /// Starts the server and waits until it answers PING.
    pub async fn start(mut opts: EmbeddedOptions) -> Result<Self, EmbeddedError> {
        let bad_dir =
            |e: std::io::Error| EmbeddedError::Dir { dir: opts.dir.display().to_string(), reason: e.to_string() };
        std::fs::create_dir_all(&opts.dir).map_err(bad_dir)?;
        // redis-server changes into `--dir` before it opens `--logfile`: a relative data
        // directory (`up`'s default `./data`) would send it looking for `data/redis/redis.log`
        // under `data/redis` and make it exit at start-up.
        opts.dir = opts.dir.canonicalize().map_err(bad_dir)?;
        // A port picked by `free_port` can be taken by someone else before redis binds it:
        // try a few.
        let mut last = None;
        for _ in 0..5 {
            let port = match opts.port {
                Some(p) => p,
                None => free_port()?,
            };
            let mut server = Self { child: None, port, opts: opts.clone() };
            match server.spawn().await {
                Ok(()) => return Ok(server),
                Err(e) if opts.port.is_none() && matches!(e, EmbeddedError::Exited { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(EmbeddedError::Port("no attempt made".into())))
    }

    async fn spawn(&mut self) -> Result<(), EmbeddedError> {
        let bin = binary();
        let log = self.log_path();
        let mut cmd = Command::new(&bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.opts.dir)
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg(if self.opts.appendonly { "yes" } else { "no" })
            .arg("--appendfsync")
            .arg(self.opts.fsync.as_str())
            .arg("--logfile")
            .arg(&log)
            .arg("--daemonize")
            .arg("no")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| EmbeddedError::Spawn { binary: bin.clone(), reason: e.to_string() })?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(10)).await
    }

    async fn wait_ready(&mut self, within: Duration) -> Result<(), EmbeddedError> {
        let deadline = Instant::now() + within;
        let url = self.url();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(EmbeddedError::Exited {
                    status: status.to_string(),
                    log: self.log_path().display().to_string(),
                });
            }
            // Ready when our child answers: another server holding the port would answer too,
            // until our child gives up binding it and exits (caught above).
            let ours = self.child.as_ref().and_then(|c| c.id());
            if ours.is_some() && server_pid(&url).await == ours {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(EmbeddedError::NotReady {
                    port: self.port,
                    secs: within.as_secs(),
                    log: self.log_path().display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.opts.dir.join("redis.log")
    }

    /// SIGKILL: no AOF rewrite, no goodbye; what a crash looks like.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Graceful stop: SHUTDOWN (flushes the AOF), then waits for the exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(client) = redis::Client::open(self.url().as_str())
                && let Ok(mut c) = client.get_multiplexed_async_connection().await
            {
                let _ = redis::cmd("SHUTDOWN").query_async::<redis::Value>(&mut c).await;
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
    }

    /// Starts the server again on the same port and data directory (after `kill` or `stop`).
    pub async fn restart(&mut self) -> Result<(), EmbeddedError> {
        self.kill().await;
        self.spawn().await
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_handed_out_are_never_handed_out_again_nor_their_pairs() {
        let mut seen = BTreeSet::new();
        for _ in 0..40 {
            let p = free_port_pair(10_000).expect("a free pair");
            assert!(seen.insert(p), "{p} handed out twice");
            assert!(seen.insert(p + 10_000), "{} handed out twice", p + 10_000);
            let q = free_port().expect("a free port");
            assert!(seen.insert(q), "{q} handed out twice");
        }
    }

    #[tokio::test]
    async fn a_server_whose_port_is_held_by_another_does_not_pass_for_started() {
        let base = tempfile::Builder::new().prefix("embedded-held-").tempdir().expect("temp dir");
        let opts = |name: &str, port| EmbeddedOptions {
            dir: base.path().join(name),
            port,
            appendonly: false,
            fsync: Fsync::Everysec,
        };
        let mut first = RedisServer::start(opts("first", None)).await.expect("first server");
        // The second is told the first's port: the first answers PING there, but it is not
        // the second's child, so the start must fail (the child cannot bind and exits).
        match RedisServer::start(opts("second", Some(first.port()))).await {
            Err(EmbeddedError::Exited { .. }) => {}
            Err(other) => panic!("expected the child's exit, got {other}"),
            Ok(s) => panic!("a server on port {} passed for ours while another held it", s.port()),
        }
        first.stop().await;
    }

    #[tokio::test]
    async fn starts_with_a_relative_data_directory() {
        // Under the current directory (the crate's, in `cargo test`), named relatively.
        let base = tempfile::Builder::new().prefix(".embedded-test-").tempdir_in(".").expect("temp dir");
        let name = base.path().file_name().expect("a name").to_owned();
        let relative = Path::new(&name).join("redis");
        assert!(relative.is_relative());
        let mut server = RedisServer::start(EmbeddedOptions {
            dir: relative.clone(),
            port: None,
            appendonly: true,
            fsync: Fsync::Always,
        })
        .await
        .unwrap_or_else(|e| panic!("start with --dir {}: {e}", relative.display()));
        assert!(server.dir().is_absolute(), "{}", server.dir().display());
        assert!(server.log_path().is_file(), "{} was written", server.log_path().display());
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let fsync: Vec<String> =
            redis::cmd("CONFIG").arg("GET").arg("appendfsync").query_async(&mut conn).await.unwrap();
        assert_eq!(fsync, ["appendfsync", "always"], "the fsync setting reaches the server");
        server.stop().await;
    }
}
