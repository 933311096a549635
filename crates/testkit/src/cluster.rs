//! A Redis Cluster for one test: three masters and three replicas, each a redis-server on a
//! free loopback port (its cluster bus port, +10000, free too) with its own directory, joined
//! by `redis-cli --cluster create`. A short `cluster-node-timeout` (1 s) lets a test kill a
//! master and see its replica promoted within a few seconds.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Value;
use tradeflow_bus::embedded::{free_port_pair, server_pid};

/// How long a node may be unreachable before the cluster fails it over.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// Where Redis puts a node's cluster bus: its port plus this.
const BUS_PORT_OFFSET: u16 = 10_000;

struct Node {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// Six redis-server processes in one cluster; all killed, and their data removed, on drop.
pub struct TestCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

async fn query(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let mut c = client.get_multiplexed_async_connection_with_config(&config).await?;
    cmd.query_async(&mut c).await
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => s.clone(),
        other => format!("{other:?}"),
    }
}

impl TestCluster {
    /// Starts and joins the cluster, waiting until every slot is served and every replica is in
    /// sync. Panics with the reason if it cannot (a test precondition).
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`start`](Self::start) with extra `redis-server` arguments for every node
    /// (`["--min-replicas-to-write", "1"]`).
    pub async fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::Builder::new().prefix("tradeflow-cluster-").tempdir().expect("temp dir");
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        for i in 0..6 {
            let node_dir = dir.path().join(format!("node{i}"));
            let node = Node::start(node_dir, extra).await;
            ports.push(node.port);
            nodes.push(node);
        }
        let cluster = TestCluster { nodes, _dir: dir };
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for p in &ports {
            create.arg(format!("127.0.0.1:{p}"));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_healthy(Duration::from_secs(30)).await;
        cluster
    }

    /// `redis+cluster://` naming the first three nodes as seeds.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes.iter().take(3).map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// Every node's port.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    fn live(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.child.is_some())
    }

    /// Waits until every live node reports `cluster_state:ok` and sees each of the 16,384 slots
    /// served by a live master, and every live replica's link to its master is up.
    pub async fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.health().await {
                Ok(()) => return,
                Err(why) => last = why,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let view = match self.live().next() {
            Some(n) => match query(n.port, redis::cmd("CLUSTER").arg("NODES")).await {
                Ok(v) => format!("CLUSTER NODES on {}:\n{}", n.port, text(&v)),
                Err(e) => format!("CLUSTER NODES on {}: {e}", n.port),
            },
            None => "no live node".into(),
        };
        panic!("cluster not healthy after {timeout:?}: {last}; our nodes: {:?}; {view}", self.ports());
    }

    async fn health(&self) -> Result<(), String> {
        let live: Vec<u16> = self.live().map(|n| n.port).collect();
        for &port in &live {
            let info = query(port, redis::cmd("CLUSTER").arg("INFO")).await.map_err(|e| format!("{port}: {e}"))?;
            if !text(&info).contains("cluster_state:ok") {
                return Err(format!("{port}: not cluster_state:ok"));
            }
            let repl = text(&query(port, redis::cmd("INFO").arg("replication")).await.map_err(|e| e.to_string())?);
            if repl.contains("role:slave") && !repl.contains("master_link_status:up") {
                return Err(format!("{port}: replica link down"));
            }
            if repl.contains("role:slave") && repl.contains("master_sync_in_progress:1") {
                return Err(format!("{port}: replica syncing"));
            }
        }
        let masters = self.masters().await?;
        if masters.iter().any(|(_, _, p)| !live.contains(p)) {
            return Err(format!("a slot range is served by a dead master: {masters:?}"));
        }
        let served: u32 = masters.iter().map(|(a, b, _)| u32::from(*b) - u32::from(*a) + 1).sum();
        if served != 16_384 {
            return Err(format!("{served} of 16384 slots served"));
        }
        Ok(())
    }

    /// (first slot, last slot, master port) of every slot range, as a live node sees them.
    pub async fn masters(&self) -> Result<Vec<(u16, u16, u16)>, String> {
        let port = self.live().map(|n| n.port).next().ok_or("no live node")?;
        let v = query(port, redis::cmd("CLUSTER").arg("SLOTS")).await.map_err(|e| e.to_string())?;
        let Value::Array(ranges) = v else { return Err(format!("CLUSTER SLOTS: {v:?}")) };
        let mut out = Vec::new();
        for r in ranges {
            let Value::Array(items) = r else { continue };
            let (Some(Value::Int(a)), Some(Value::Int(b)), Some(Value::Array(master))) =
                (items.first(), items.get(1), items.get(2))
            else {
                continue;
            };
            let Some(Value::Int(port)) = master.get(1) else { continue };
            out.push((*a as u16, *b as u16, *port as u16));
        }
        Ok(out)
    }

    /// The port of the master now serving `key`.
    pub async fn master_of(&self, key: &str) -> u16 {
        let port = self.live().map(|n| n.port).next().expect("a live node");
        let slot = match query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).await {
            Ok(Value::Int(s)) => s as u16,
            other => panic!("CLUSTER KEYSLOT {key}: {other:?}"),
        };
        let masters = self.masters().await.expect("CLUSTER SLOTS");
        masters.iter().find(|(a, b, _)| (*a..=*b).contains(&slot)).map(|m| m.2).expect("slot served")
    }

    /// SIGKILLs the node on `port`.
    pub fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).expect("a node of this cluster");
        if let Some(mut c) = node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the node on `port` again with its data and cluster state (it rejoins as a
    /// replica of whoever took its slots).
    pub fn restart(&mut self, port: u16, extra: &[&str]) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).expect("a node of this cluster");
        if node.child.is_none() {
            node.spawn(extra);
        }
    }
}

impl Node {
    /// A node on a port pair handed out to it alone, answering as our own child. The pair is
    /// free when probed but can be bound by someone else before redis-server binds it; then our
    /// child exits and another pair is tried. Without the pid check, a PING answered by whoever
    /// holds the port would pass, and the cluster would be created with a stranger in it.
    async fn start(dir: PathBuf, extra: &[&str]) -> Node {
        std::fs::create_dir_all(&dir).expect("node dir");
        let mut why = Vec::new();
        for _ in 0..5 {
            let port = match free_port_pair(BUS_PORT_OFFSET) {
                Ok(p) => p,
                Err(e) => panic!("no free port pair for a cluster node: {e}"),
            };
            let mut node = Node { port, dir: dir.clone(), child: None };
            node.spawn(extra);
            match node.wait_ours().await {
                Ok(()) => return node,
                Err(e) => why.push(e),
            }
            if let Some(mut c) = node.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = std::fs::remove_file(dir.join("nodes.conf"));
        }
        panic!("a cluster node did not start on any of 5 port pairs: {why:?}");
    }

    /// Waits until our child answers on its port, or says why not.
    async fn wait_ours(&mut self) -> Result<(), String> {
        let url = format!("redis://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let Some(child) = self.child.as_mut() else { return Err("not spawned".into()) };
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("port {}: redis-server exited ({status})", self.port));
            }
            if server_pid(&url).await == Some(child.id()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("port {}: our redis-server did not answer within 10 s", self.port))
    }

    fn spawn(&mut self, extra: &[&str]) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--appendonly", "yes", "--save", "", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
