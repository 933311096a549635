//! One Redis server or a Redis Cluster, behind one connection type.
//!
//! `redis://host:port/db` is one server; `redis+cluster://host:port,host:port,...` (any of the
//! cluster's nodes, the rest are discovered) is a cluster, reached with the redis crate's
//! cluster-async client, which follows MOVED/ASK redirections and re-learns the slot map when a
//! replica is promoted.
//!
//! Every key of one partition (its stream, dead letters and checkpoints) shares the hash tag
//! `{stream:p}` ([`crate::keys`]), so a partition lives in one slot and the commands about it
//! can go in one MULTI. What spans partitions cannot, on a cluster: the redis crate refuses a
//! pipeline whose commands name keys of different slots (`CROSSSLOT`). [`BusConn`] therefore
//! splits such a pipeline itself: the commands are grouped by slot, each group goes to its node
//! as a pipeline of its own (a transaction of its own when the pipeline was one), the groups run
//! concurrently, and the replies are put back in the pipeline's order. Callers write one
//! pipeline for both deployments.
//!
//! What that split gives up is atomicity *across* slots: a transaction over several partitions
//! becomes one transaction per partition. The two places where that matters, a producer's
//! batch and a consumer's settle, order their writes so that a crash between the parts repeats
//! work (the same messages, with the same ids, which consumers skip) and never loses it; see
//! [`crate::producer`] and `consumer::partition`.

use futures_util::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Arg, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};

use crate::error::{BusError, RedisContext};

/// The scheme of a cluster address.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Where the bus lives, as parsed from its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployment {
    /// One server: `redis://host:port/db`.
    Single(String),
    /// A cluster: the address of each seed node, `redis://[user:pass@]host:port`.
    Cluster(Vec<String>),
}

impl Deployment {
    /// Parses a bus address. A cluster address lists `host:port` seeds separated by commas,
    /// with optional `user:password@` before the first (used for every node); a database
    /// number is refused (a cluster has only database 0).
    pub fn parse(url: &str) -> Result<Deployment, BusError> {
        let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) else {
            url.into_connection_info().op("open client")?;
            return Ok(Deployment::Single(url.to_string()));
        };
        let bad = |why: String| BusError::Invalid(format!("redis cluster address: {why}"));
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (format!("{auth}@"), hosts),
            None => (String::new(), rest),
        };
        let hosts = hosts.trim_end_matches('/');
        if hosts.contains('/') || hosts.contains('?') {
            return Err(bad(format!(
                "{:?} has a path or query after the nodes; a cluster has only database 0 and takes no options",
                redact(url)
            )));
        }
        let mut nodes = Vec::new();
        for host in hosts.split(',') {
            let host = host.trim();
            let Some((name, port)) = host.rsplit_once(':') else {
                return Err(bad(format!("node {host:?} is not host:port")));
            };
            if name.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad(format!("node {host:?} is not host:port")));
            }
            let node = format!("redis://{auth}{host}");
            node.as_str().into_connection_info().map_err(|e| bad(format!("node {host:?}: {e}")))?;
            nodes.push(node);
        }
        Ok(Deployment::Cluster(nodes))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Deployment::Cluster(_))
    }
}

/// `url` with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    }
}

/// A cluster client whose connections have TCP_NODELAY set and time a request out after
/// `timeout` (see [`crate::connection`] on both).
pub(crate) fn cluster_client(nodes: &[String], timeout: std::time::Duration) -> Result<ClusterClient, BusError> {
    let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
    ClusterClientBuilder::new(nodes.iter().map(String::as_str))
        .tcp_settings(tcp)
        .response_timeout(timeout)
        .connection_timeout(std::time::Duration::from_secs(5))
        .build()
        .op("open cluster client")
}

/// A connection to wherever the bus lives. Cheap to clone (every kind is a handle on a
/// multiplexed connection); every command and pipeline of the bus goes through one.
#[derive(Clone)]
pub enum BusConn {
    /// The shared auto-reconnecting connection to one server.
    Single(ConnectionManager),
    /// A dedicated connection to one server (blocking readers).
    Direct(MultiplexedConnection),
    /// A cluster.
    Cluster(ClusterConnection),
}

impl BusConn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, BusConn::Cluster(_))
    }
}

impl ConnectionLike for BusConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            BusConn::Single(c) => c.req_packed_command(cmd),
            BusConn::Direct(c) => c.req_packed_command(cmd),
            BusConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            BusConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            BusConn::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            BusConn::Cluster(c) => Box::pin(by_slot(c.clone(), pipeline, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            BusConn::Single(c) => c.get_db(),
            BusConn::Direct(c) => c.get_db(),
            BusConn::Cluster(c) => c.get_db(),
        }
    }
}

/// The key a command is about, for routing: the first key for the commands the bus sends.
/// `None` for commands without one (MULTI, EXEC, WAIT, PING), which go with the command
/// before them.
pub fn key_of(cmd: &Cmd) -> Option<&[u8]> {
    let mut args = cmd.args_iter().filter_map(|a| match a {
        Arg::Simple(b) => Some(b),
        _ => None,
    });
    let name = args.next()?.to_ascii_uppercase();
    match name.as_slice() {
        b"MULTI" | b"EXEC" | b"DISCARD" | b"WAIT" | b"PING" | b"INFO" | b"CONFIG" | b"CLUSTER" | b"DBSIZE" => None,
        // XINFO GROUPS key, XGROUP CREATE key group ...
        b"XINFO" | b"XGROUP" => args.nth(1),
        // EVAL script numkeys key ...
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" => {
            let numkeys = args.nth(1)?;
            if numkeys == b"0" { None } else { args.next() }
        }
        // XREAD [COUNT n] [BLOCK ms] STREAMS key ...
        b"XREAD" | b"XREADGROUP" => args.skip_while(|a| !a.eq_ignore_ascii_case(b"STREAMS")).nth(1),
        _ => args.next(),
    }
}

/// The slot of `key`.
pub fn slot_of(key: &[u8]) -> Slot {
    Slot::for_key(key)
}

/// Groups of a pipeline's command indices by slot, in order of first appearance; a command
/// without a key joins the group of the command before it.
fn slot_groups(pipeline: &Pipeline) -> Vec<(Option<Slot>, Vec<usize>)> {
    let mut groups: Vec<(Option<Slot>, Vec<usize>)> = Vec::new();
    let mut last: Option<usize> = None;
    for (i, cmd) in pipeline.cmd_iter().enumerate() {
        let g = match key_of(cmd).map(slot_of) {
            Some(slot) => match groups.iter().position(|(s, _)| *s == Some(slot)) {
                Some(g) => g,
                None => {
                    // Unkeyed commands gathered before the first key belong to it.
                    if let Some(g) = groups.iter().position(|(s, _)| s.is_none()) {
                        groups[g].0 = Some(slot);
                        g
                    } else {
                        groups.push((Some(slot), Vec::new()));
                        groups.len() - 1
                    }
                }
            },
            None => match last {
                Some(g) => g,
                None => {
                    groups.push((None, Vec::new()));
                    groups.len() - 1
                }
            },
        };
        groups[g].1.push(i);
        last = Some(g);
    }
    groups
}

/// Sends `pipeline` to a cluster split by slot (see the module's comment). `offset` and
/// `count` are what [`Pipeline::query_async`] asks for: all replies of a plain pipeline, or
/// the one EXEC reply of a transaction, which is rebuilt from the per-slot transactions'.
async fn by_slot(
    mut conn: ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    let groups = slot_groups(pipeline);
    if groups.len() <= 1 {
        return conn.req_packed_commands(pipeline, offset, count).await;
    }
    let atomic = pipeline.is_transaction();
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let subs: Vec<Pipeline> = groups
        .iter()
        .map(|(_, members)| {
            let mut p = redis::pipe();
            if atomic {
                p.atomic();
            }
            for &i in members {
                p.add_command(cmds[i].clone());
            }
            p
        })
        .collect();
    let replies = try_join_all(subs.iter().map(|p| {
        let mut c = conn.clone();
        async move {
            if atomic {
                c.req_packed_commands(p, p.len() + 1, 1).await
            } else {
                c.req_packed_commands(p, 0, p.len()).await
            }
        }
    }))
    .await?;
    let mut out = vec![Value::Nil; cmds.len()];
    for ((_, members), mut reply) in groups.iter().zip(replies) {
        if atomic {
            match reply.pop() {
                Some(Value::Array(items)) => reply = items,
                // Aborted (Nil) or refused: the caller's pipeline reports it as it would for one
                // server.
                other => return Ok(vec![other.unwrap_or(Value::Nil)]),
            }
        }
        for (&i, v) in members.iter().zip(reply) {
            out[i] = v;
        }
    }
    Ok(if atomic { vec![Value::Array(out)] } else { out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_into_one_server_or_cluster_seeds() {
        assert_eq!(
            Deployment::parse("redis://127.0.0.1:6390/2").unwrap(),
            Deployment::Single("redis://127.0.0.1:6390/2".into())
        );
        assert_eq!(
            Deployment::parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").unwrap(),
            Deployment::Cluster(vec!["redis://127.0.0.1:7000".into(), "redis://127.0.0.1:7001".into()])
        );
        assert_eq!(
            Deployment::parse("redis+cluster://u:secret@h1:7000,h2:7001/").unwrap(),
            Deployment::Cluster(vec!["redis://u:secret@h1:7000".into(), "redis://u:secret@h2:7001".into()])
        );
        for bad in ["redis+cluster://", "redis+cluster://h1", "redis+cluster://h1:x", "redis+cluster://h1:7000/3"] {
            assert!(Deployment::parse(bad).is_err(), "{bad}");
        }
        let e = Deployment::parse("redis+cluster://u:secret@h1:7000/3").unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn commands_are_routed_by_their_first_key() {
        let k = |c: &Cmd| key_of(c).map(|k| String::from_utf8_lossy(k).into_owned());
        assert_eq!(k(redis::cmd("XADD").arg("tf:{a:1}").arg("*")), Some("tf:{a:1}".into()));
        assert_eq!(k(redis::cmd("XINFO").arg("GROUPS").arg("tf:{a:1}")), Some("tf:{a:1}".into()));
        assert_eq!(k(redis::cmd("EVAL").arg("return 1").arg(2).arg("tf:{a:1}").arg("x")), Some("tf:{a:1}".into()));
        assert_eq!(k(redis::cmd("EVAL").arg("return 1").arg(0).arg("x")), None);
        assert_eq!(
            k(redis::cmd("XREAD").arg("COUNT").arg(5).arg("STREAMS").arg("tf:{a:1}").arg("0")),
            Some("tf:{a:1}".into())
        );
        assert_eq!(k(&redis::cmd("EXEC")), None);
    }

    #[test]
    fn a_pipeline_splits_by_slot_and_unkeyed_commands_follow_their_neighbour() {
        let mut p = redis::pipe();
        p.cmd("MULTI")
            .cmd("XADD")
            .arg("tf:{a:0}")
            .cmd("XADD")
            .arg("tf:{b:0}")
            .cmd("XLEN")
            .arg("tf:{a:0}")
            .cmd("EXEC")
            .cmd("SET")
            .arg("tf:{a:0}:ckpt:g");
        let groups: Vec<Vec<usize>> = slot_groups(&p).into_iter().map(|(_, m)| m).collect();
        assert_eq!(groups, vec![vec![0, 1, 3, 4, 5], vec![2]]);
    }
}
