//! A private PostgreSQL cluster for one test: `initdb` into a temp dir, `postgres` on a free
//! loopback port (never the machine's 5432) with its socket in that dir, fsync off. Killed and
//! removed on drop.
//!
//! initdb and postgres refuse to run as root: when the test runs as root they run as the
//! `postgres` system user (the Debian package creates it), with the temp dir handed to it.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The cluster's superuser; initdb is told to create it whoever runs initdb.
const SUPERUSER: &str = "postgres";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A private PostgreSQL server with its data, for one test.
pub struct TestPostgres {
    child: Child,
    port: u16,
    bindir: PathBuf,
    // Declared after `child`; the server is stopped in `drop` before the dir goes.
    dir: tempfile::TempDir,
}

impl TestPostgres {
    /// initdb, start and wait until it accepts connections (a second or two). Panics with the
    /// reason if it cannot (a test precondition), telling to run scripts/setup.sh when there
    /// are no PostgreSQL binaries.
    pub fn start() -> Self {
        let bindir = match find_bindir() {
            Some(d) => d,
            None => panic!(
                "no PostgreSQL server binaries (initdb, postgres) on PATH, under /usr/lib/postgresql/*/bin \
                 or at `pg_config --bindir`: run scripts/setup.sh"
            ),
        };
        let run_as = if euid() == Some(0) {
            match passwd_ids("postgres") {
                Some(ids) => Some(ids),
                None => panic!(
                    "running as root, and initdb/postgres refuse root: no `postgres` system user to run them as \
                     (run scripts/setup.sh, which installs Debian's postgresql package)"
                ),
            }
        } else {
            None
        };
        let dir = match tempfile::Builder::new().prefix("tradeflow-pg-").tempdir() {
            Ok(d) => d,
            Err(e) => panic!("test postgres: cannot create a temp dir: {e}"),
        };
        if let Some((uid, gid)) = run_as
            && let Err(e) = std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
        {
            panic!("test postgres: chown {} to postgres: {e}", dir.path().display());
        }
        let data = dir.path().join("data");

        let mut initdb = Command::new(bindir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C", "-N"])
            .stdin(Stdio::null());
        prepare(&mut initdb, dir.path(), run_as);
        match initdb.output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "test postgres: initdb failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("test postgres: cannot run {}: {e}", bindir.join("initdb").display()),
        }

        // A free port can be taken between probing and binding: try a few.
        let mut last_log = String::new();
        for attempt in 0..5 {
            let port = free_port();
            let log_path = dir.path().join(format!("postgres-{attempt}.log"));
            let (log, log2) = match File::create(&log_path).and_then(|f| Ok((f.try_clone()?, f))) {
                Ok(files) => files,
                Err(e) => panic!("test postgres: create {}: {e}", log_path.display()),
            };
            let mut cmd = Command::new(bindir.join("postgres"));
            cmd.arg("-D")
                .arg(&data)
                .arg("-p")
                .arg(port.to_string())
                .arg("-k")
                .arg(dir.path())
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
                .args(["-c", "shared_buffers=32MB", "-c", "max_connections=40"])
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2);
            prepare(&mut cmd, dir.path(), run_as);
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => panic!("test postgres: cannot run {}: {e}", bindir.join("postgres").display()),
            };
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_log = read_to_string(&log_path);
                    if last_log.contains("could not bind") || last_log.contains("already in use") {
                        break; // next attempt, another port
                    }
                    panic!("test postgres exited at start ({status}):\n{last_log}");
                }
                if is_ready(&data) {
                    return TestPostgres { child, port, bindir, dir };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "test postgres did not accept connections within {START_TIMEOUT:?}:\n{}",
                        read_to_string(&log_path)
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("test postgres: no free port after 5 attempts:\n{last_log}");
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication, no password).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The url of database `db` on this server.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates database `name` (letters, digits, `_`) and returns its url.
    pub fn fresh_database(&self, name: &str) -> String {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            panic!("test postgres: database name {name:?}: use letters, digits and _");
        }
        let psql = self.bindir.join("psql");
        let psql = if psql.is_file() { psql } else { PathBuf::from("psql") };
        let out = Command::new(psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", SUPERUSER, "-d", "postgres"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(format!("CREATE DATABASE \"{name}\""))
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => self.url_for(name),
            Ok(out) => panic!("test postgres: CREATE DATABASE {name}: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => panic!("test postgres: cannot run psql: {e}"),
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown, the postmaster takes its backends down with it.
        let quit = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if quit.is_ok_and(|s| s.success()) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` in `dir`, in the C locale, as `run_as` (uid, gid) if given.
fn prepare(cmd: &mut Command, dir: &Path, run_as: Option<(u32, u32)>) {
    cmd.current_dir(dir).env("LC_ALL", "C").env_remove("PGDATA").env_remove("PGPORT").env_remove("PGHOST");
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid);
    }
}

/// The postmaster writes `ready` on line 8 of postmaster.pid once it accepts connections.
fn is_ready(data: &Path) -> bool {
    read_to_string(&data.join("postmaster.pid")).lines().nth(7).is_some_and(|l| l.trim() == "ready")
}

fn read_to_string(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// Shared with the Redis servers: a port handed out once per process, never to two servers.
fn free_port() -> u16 {
    match tradeflow_bus::embedded::free_port() {
        Ok(p) => p,
        Err(e) => panic!("test postgres: {e}"),
    }
}

/// A directory with `initdb` and `postgres`: next to an `initdb` on PATH (symlinks resolved),
/// `pg_config --bindir`, then the newest /usr/lib/postgresql/<version>/bin.
fn find_bindir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                if let Some(parent) =
                    std::fs::canonicalize(&initdb).ok().and_then(|p| p.parent().map(Path::to_path_buf))
                {
                    candidates.push(parent);
                }
                candidates.push(dir);
            }
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").stderr(Stdio::null()).output()
        && out.status.success()
    {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    candidates.extend(versions.into_iter().map(|(_, p)| p));
    candidates.into_iter().find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
}

/// The effective uid, from /proc/self/status.
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// (uid, gid) of `user` from /etc/passwd.
fn passwd_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != user {
            return None;
        }
        let _password = f.next()?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}
