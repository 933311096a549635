//! The shared handle on one Redis deployment: topology, key names, and connections.
//!
//! Two kinds of connection, on purpose:
//! - one shared auto-reconnecting multiplexed connection for every short command (XADD, XACK,
//!   scripts, XINFO); concurrent callers are pipelined onto it;
//! - a dedicated connection per blocking reader. A blocking XREADGROUP on the shared connection
//!   would stall every other command queued behind it, and redis-rs 1.x times a request out after
//!   500 ms by default, which would kill any BLOCK longer than that. Readers therefore get their
//!   own connection whose response timeout is BLOCK plus a margin.
//!
//! On a Redis Cluster both kinds are cluster connections ([`crate::cluster`]).
//!
//! Every connection has TCP_NODELAY set (redis-rs leaves Nagle's algorithm on by default): with
//! it on, a small write that follows another one not yet acknowledged waits for the peer's
//! delayed ACK, up to 40 ms on Linux, which showed up as a 35-40 ms tail in every latency
//! benchmark.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo};

use crate::backpressure::Backlogs;
use crate::cluster::{BusConn, Deployment, cluster_client};
use crate::error::{BusError, RedisContext};
use crate::keys::Keys;
use crate::topology::{StreamSpec, Topology};

/// Response timeout of short commands on the shared connection.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time a blocking read may take beyond its BLOCK before we call the connection dead.
const BLOCK_MARGIN: Duration = Duration::from_secs(5);

/// A client for `url` whose connections have TCP_NODELAY set (see the module's comment).
pub fn client(url: &str) -> Result<Client, BusError> {
    let info = url.into_connection_info().op("open client")?;
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    Client::open(info.set_tcp_settings(tcp)).op("open client")
}

/// How writes wait for replicas: after each producer transaction and each settle, `WAIT
/// replicas timeout_ms` on the node that took the writes (in the same round trip). 0 replicas
/// (the default) sends no WAIT. See docs/bus.md "Redis Cluster" for what it buys and costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replication {
    pub wait_replicas: u32,
    pub wait_timeout_ms: u64,
}

impl Replication {
    /// Appends the WAIT to a pipeline whose writes went to one node; returns whether it did.
    /// The reply is the pipeline's last.
    pub(crate) fn add_wait(&self, pipe: &mut redis::Pipeline) -> bool {
        if self.wait_replicas == 0 {
            return false;
        }
        pipe.cmd("WAIT").arg(self.wait_replicas).arg(self.wait_timeout_ms);
        true
    }

    /// Checks WAIT's reply (how many replicas acknowledged): a shortfall is counted and
    /// logged, not an error. The writes are applied on the master; failing them would only
    /// send them again to the same master. A master with no replica at all refuses writes
    /// when the servers run with `min-replicas-to-write` (docs/bus.md).
    pub(crate) fn check_wait(&self, reply: &redis::Value, metrics: Option<&crate::metrics::BusMetrics>, what: &str) {
        let acked = match reply {
            redis::Value::Int(n) => *n,
            _ => -1,
        };
        if acked < i64::from(self.wait_replicas) {
            if let Some(m) = metrics {
                m.replica_shortfall.inc();
            }
            tracing::warn!(
                acked,
                wanted = self.wait_replicas,
                timeout_ms = self.wait_timeout_ms,
                what,
                "replicas did not acknowledge the writes in time"
            );
        }
    }
}

/// What a connection reaches: one server (through its client) or a cluster's seeds.
#[derive(Clone)]
enum Target {
    Single(Client),
    Cluster(Vec<String>),
}

/// A connected bus: cheap to clone, shared by producers, consumers and inspection.
#[derive(Clone)]
pub struct Bus {
    target: Target,
    conn: BusConn,
    topology: Arc<Topology>,
    keys: Keys,
    replication: Replication,
    /// What the producers of this bus last learned of the partitions' backlogs.
    backlogs: Arc<Backlogs>,
}

impl Bus {
    /// Connects to `url` with the given topology: `redis://host:port/db` for one server,
    /// `redis+cluster://host:port,host:port,...` for a Redis Cluster ([`crate::cluster`]).
    pub async fn connect(url: &str, topology: Topology) -> Result<Self, BusError> {
        let (target, conn) = match Deployment::parse(url)? {
            Deployment::Single(url) => {
                let client = client(&url)?;
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(COMMAND_TIMEOUT))
                    .set_connection_timeout(Some(Duration::from_secs(5)))
                    .set_number_of_retries(3);
                let conn = client.get_connection_manager_with_config(config).await.op("connect")?;
                (Target::Single(client), BusConn::Single(conn))
            }
            Deployment::Cluster(nodes) => {
                let conn =
                    cluster_client(&nodes, COMMAND_TIMEOUT)?.get_async_connection().await.op("connect cluster")?;
                (Target::Cluster(nodes), BusConn::Cluster(conn))
            }
        };
        let keys = Keys::new(&topology);
        Ok(Self {
            target,
            conn,
            topology: Arc::new(topology),
            keys,
            replication: Replication::default(),
            backlogs: Arc::default(),
        })
    }

    /// This bus with writes waiting for replicas as `replication` says.
    pub fn with_replication(mut self, replication: Replication) -> Self {
        self.replication = replication;
        self
    }

    pub fn replication(&self) -> Replication {
        self.replication
    }

    /// Whether the bus runs on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn backlogs(&self) -> &Backlogs {
        &self.backlogs
    }

    /// The shared connection for short commands.
    pub fn conn(&self) -> BusConn {
        self.conn.clone()
    }

    /// A new dedicated connection for blocking reads of up to `block`.
    pub async fn blocking_connection(&self, block: Duration) -> Result<BusConn, BusError> {
        match &self.target {
            Target::Single(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_response_timeout(Some(block + BLOCK_MARGIN))
                    .set_connection_timeout(Some(Duration::from_secs(5)));
                let conn =
                    client.get_multiplexed_async_connection_with_config(&config).await.op("connect blocking reader")?;
                Ok(BusConn::Direct(conn))
            }
            Target::Cluster(nodes) => {
                let conn = cluster_client(nodes, block + BLOCK_MARGIN)?
                    .get_async_connection()
                    .await
                    .op("connect blocking reader")?;
                Ok(BusConn::Cluster(conn))
            }
        }
    }

    /// Runs the commands of `body` as one MULTI/EXEC, followed in the same round trip by the
    /// WAIT for replicas when the bus has one ([`Replication`]). The commands' replies are
    /// dropped; a refused command fails the whole. Every key of `body` must share one slot on
    /// a cluster (a partition's keys do).
    pub(crate) async fn transact(
        &self,
        mut body: redis::Pipeline,
        metrics: Option<&crate::metrics::BusMetrics>,
        what: &'static str,
    ) -> Result<(), BusError> {
        let mut conn = self.conn();
        if self.replication.wait_replicas == 0 {
            body.atomic();
            let _: () = body.query_async(&mut conn).await.op(what)?;
            return Ok(());
        }
        // Spelled out: WAIT inside MULTI would not wait.
        let mut pipe = redis::pipe();
        pipe.cmd("MULTI").ignore();
        for c in body.cmd_iter() {
            pipe.add_command(c.clone()).ignore();
        }
        pipe.cmd("EXEC");
        self.replication.add_wait(&mut pipe);
        let (exec, acked): (redis::Value, redis::Value) = pipe.query_async(&mut conn).await.op(what)?;
        // A command that failed inside the transaction is an element of EXEC's array, which the
        // pipeline does not look into.
        match &exec {
            redis::Value::Array(items) => {
                if let Some(e) = items.iter().find_map(|v| match v {
                    redis::Value::ServerError(e) => Some(e),
                    _ => None,
                }) {
                    return Err(BusError::Redis { op: what, source: e.clone().into() });
                }
            }
            other => return Err(BusError::Reply { op: what, reason: format!("transaction not applied: {other:?}") }),
        }
        self.replication.check_wait(&acked, metrics, what);
        Ok(())
    }

    /// The spec of a stream, checking that `group` is one of its groups.
    pub fn stream_group(&self, stream: &str, group: &str) -> Result<&StreamSpec, BusError> {
        let spec = self.topology.stream(stream)?;
        if !spec.groups.iter().any(|g| g == group) {
            return Err(BusError::UnknownGroup {
                stream: stream.to_string(),
                group: group.to_string(),
                known: spec.groups.join(", "),
            });
        }
        Ok(spec)
    }

    /// Creates every partition and every consumer group of the topology. Idempotent: existing
    /// streams and groups are left as they are. Returns how many groups were created.
    pub async fn init(&self) -> Result<usize, BusError> {
        let pairs: Vec<(&str, &str)> = self
            .topology
            .streams
            .values()
            .flat_map(|s| s.groups.iter().map(move |g| (s.name.as_str(), g.as_str())))
            .collect();
        self.create_groups(&pairs).await
    }

    /// Creates the partitions of `stream` and its group `group` where missing.
    pub async fn ensure_group(&self, stream: &str, group: &str) -> Result<usize, BusError> {
        self.stream_group(stream, group)?;
        self.create_groups(&[(stream, group)]).await
    }

    async fn create_groups(&self, pairs: &[(&str, &str)]) -> Result<usize, BusError> {
        let mut pipe = redis::pipe();
        // Keep per-command errors as values so BUSYGROUP (already exists) can be told apart.
        pipe.ignore_errors();
        for (stream, group) in pairs {
            let spec = self.topology.stream(stream)?;
            for p in 0..spec.partitions {
                // `0`: a group created after messages were produced still sees them.
                pipe.cmd("XGROUP")
                    .arg("CREATE")
                    .arg(self.keys.partition(stream, p))
                    .arg(group)
                    .arg("0")
                    .arg("MKSTREAM");
            }
        }
        let mut conn = self.conn();
        let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await.op("XGROUP CREATE")?;
        let mut created = 0;
        for r in replies {
            match r {
                redis::Value::ServerError(e) if e.code() == "BUSYGROUP" => {}
                redis::Value::ServerError(e) => {
                    return Err(BusError::Reply { op: "XGROUP CREATE", reason: format!("{e:?}") });
                }
                _ => created += 1,
            }
        }
        Ok(created)
    }

    /// Round-trip check, for readiness probes.
    pub async fn ping(&self) -> Result<(), BusError> {
        let mut conn = self.conn();
        let _: String = redis::cmd("PING").query_async(&mut conn).await.op("PING")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::{EmbeddedOptions, RedisServer};

    /// With WAIT after EXEC, a command refused inside the transaction still fails it, and a
    /// missing replica is a shortfall counted, not an error.
    #[tokio::test]
    async fn a_transaction_followed_by_wait_reports_failures_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut server = RedisServer::start(EmbeddedOptions {
            dir: dir.path().to_path_buf(),
            port: None,
            appendonly: false,
            fsync: Default::default(),
        })
        .await
        .unwrap();
        let topology = Topology::parse("[streams.\"x\"]\ndescription=\"d\"\nkey=\"k\"\ngroups=[\"g\"]\n", "t").unwrap();
        let bus = Bus::connect(&server.url(), topology)
            .await
            .unwrap()
            .with_replication(Replication { wait_replicas: 1, wait_timeout_ms: 1 });
        let metrics = crate::metrics::BusMetrics::unregistered();
        let mut ok = redis::pipe();
        ok.cmd("SET").arg("a").arg("1").ignore();
        bus.transact(ok, Some(&metrics), "test").await.unwrap();
        assert_eq!(metrics.replica_shortfall.get(), 1, "no replica answered");
        let mut bad = redis::pipe();
        // XACK on a string: refused when run, inside EXEC.
        bad.cmd("SET").arg("b").arg("1").ignore();
        bad.cmd("XACK").arg("a").arg("g").arg("1-0").ignore();
        let e = bus.transact(bad, Some(&metrics), "test").await.unwrap_err();
        assert!(e.to_string().contains("WRONGTYPE"), "{e}");
        server.stop().await;
    }
}
