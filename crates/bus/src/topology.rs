//! `streams.toml`: the whole stream topology, read and validated at start-up.
//!
//! Every problem in the file is collected and reported at once, each with the key path it was
//! found at (`streams."inf.signals".partitions: must be at least 1, got 0`), so an operator fixes
//! a broken file in one pass instead of one error per restart.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use toml::{Table, Value};

/// A validated stream topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// Prefix of every Redis key, so several deployments can share one Redis.
    pub namespace: String,
    pub fleet: FleetSpec,
    /// Streams by logical name (`md.candles`, ...).
    pub streams: BTreeMap<String, StreamSpec>,
    /// Policy of consumer groups that `[groups.<name>]` sets; a group not listed takes
    /// [`GroupSpec::default`].
    pub groups: BTreeMap<String, GroupSpec>,
}

/// How the consumers of one group read, on every stream the group consumes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupSpec {
    /// After a read that did not fill `read_count`, wait this long before reading again, so
    /// that entries accumulate into larger batches: fewer reads, acknowledgements and (for the
    /// audit writer) transactions, at the cost of this much delay. Zero (the default): read
    /// again at once, blocking until an entry arrives — what a stage on the trading path wants.
    pub linger: Duration,
    /// Most messages one handler batch holds (a pack is never split); `None` (the default):
    /// the stream's `read_count`. A stage on the trading path wants small batches (its outputs
    /// wait for their batch); the audit writer wants large ones (one transaction each).
    pub batch_max: Option<usize>,
}

/// How the members of a fleet find each other and share partitions.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSpec {
    /// How often a member renews its membership and its partition leases.
    pub heartbeat: Duration,
    /// How long a silent member keeps its partitions; bounds fail-over time.
    pub lease_ttl: Duration,
}

/// One logical stream and the policy of its consumers.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSpec {
    pub name: String,
    pub description: String,
    /// What the partition key is (documentation: `symbol`, `account`, ...).
    pub key: String,
    pub partitions: u32,
    /// Approximate MAXLEN of each partition (`XADD MAXLEN ~`).
    pub maxlen: u64,
    pub groups: Vec<String>,
    /// Handler attempts before an entry is dead-lettered.
    pub max_deliveries: u32,
    /// Backoff before the first retry; doubles per attempt up to `retry_backoff_max`.
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// Entries pending longer than this under another consumer are claimed.
    pub claim_idle: Duration,
    /// Approximate MAXLEN of each dead-letter partition.
    pub dlq_maxlen: u64,
    /// XREADGROUP COUNT.
    pub read_count: usize,
    /// XREADGROUP BLOCK.
    pub block: Duration,
    /// Most messages packed into one entry (see [`crate::pack`]); 1 turns packing off.
    pub pack_max: usize,
    /// Trim entries that every group of the stream has acknowledged (see [`crate::retention`]),
    /// so that a partition holds its backlog rather than `maxlen` entries of history.
    pub trim_acked: bool,
    /// How long an acknowledged entry stays anyway, for readers without a group (the edge's
    /// live feed, which reads with plain XREAD).
    pub trim_grace: Duration,
    /// Unread entries (the largest backlog of any group) at which a partition is full: under
    /// [`Overflow::Block`] its producers wait until it falls below (see
    /// [`crate::backpressure`]). Below `maxlen`, so that `MAXLEN ~` never trims what a group
    /// has not read; default 90 % of `maxlen`.
    pub high_water: u64,
    /// What a full partition does to its producers.
    pub overflow: Overflow,
}

/// What happens when a partition's backlog reaches its `high_water`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Producers wait until the backlog falls below `high_water`: nothing unread is trimmed.
    #[default]
    Block,
    /// Producers never wait; `MAXLEN ~` trims the oldest entries, read or not, and the unread
    /// ones are counted in `tradeflow_bus_dropped_total`. For streams where fresh data beats
    /// complete data.
    DropOldest,
}

impl Overflow {
    pub fn as_str(self) -> &'static str {
        match self {
            Overflow::Block => "block",
            Overflow::DropOldest => "drop_oldest",
        }
    }

    pub fn parse(s: &str) -> Option<Overflow> {
        match s {
            "block" => Some(Overflow::Block),
            "drop_oldest" => Some(Overflow::DropOldest),
            _ => None,
        }
    }
}

/// The `high_water` a stream takes when it sets none: 90 % of `maxlen`, so a group can fall
/// well behind before its producers wait, and `MAXLEN ~` (which trims whole nodes of about 100
/// entries) still has room above the mark for the batch that crossed it.
pub fn default_high_water(maxlen: u64) -> u64 {
    (maxlen - maxlen / 10).max(1)
}

impl StreamSpec {
    /// Backoff before delivery number `deliveries + 1`, after `deliveries` failed attempts.
    pub fn backoff_after(&self, deliveries: u32) -> Duration {
        let exp = deliveries.saturating_sub(1).min(20);
        self.retry_backoff.saturating_mul(1 << exp).min(self.retry_backoff_max)
    }
}

/// One problem found in a topology file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `streams."inf.signals".partitions`; empty for the whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Why a topology could not be loaded: every problem, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{source_name} is not valid TOML: {reason}")]
    Syntax { source_name: String, reason: String },
    #[error("{source_name} has {} problem(s):\n{}", problems.len(), ProblemList(problems))]
    Invalid { source_name: String, problems: Vec<Problem> },
}

impl TopologyError {
    /// The individual problems (empty for read and syntax errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            TopologyError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// Defaults every stream inherits unless it sets the key itself.
struct Defaults {
    partitions: u32,
    maxlen: u64,
    max_deliveries: u32,
    retry_backoff_ms: u64,
    retry_backoff_max_ms: u64,
    claim_idle_ms: u64,
    dlq_maxlen: u64,
    read_count: u64,
    block_ms: u64,
    pack_max: u64,
    trim_acked: bool,
    trim_grace_ms: u64,
    /// `None`: [`default_high_water`] of the stream's own `maxlen`.
    high_water: Option<u64>,
    overflow: Overflow,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            partitions: 8,
            maxlen: 1_000_000,
            max_deliveries: 5,
            retry_backoff_ms: 200,
            retry_backoff_max_ms: 10_000,
            claim_idle_ms: 30_000,
            dlq_maxlen: 100_000,
            read_count: 512,
            block_ms: 1_000,
            pack_max: 64,
            trim_acked: true,
            trim_grace_ms: 10_000,
            high_water: None,
            overflow: Overflow::Block,
        }
    }
}

const TOP_KEYS: &[&str] = &["namespace", "fleet", "defaults", "streams", "groups"];
const GROUP_KEYS: &[&str] = &["linger_ms", "batch_max"];
const FLEET_KEYS: &[&str] = &["heartbeat_ms", "lease_ttl_ms"];
const POLICY_KEYS: &[&str] = &[
    "partitions",
    "maxlen",
    "max_deliveries",
    "retry_backoff_ms",
    "retry_backoff_max_ms",
    "claim_idle_ms",
    "dlq_maxlen",
    "read_count",
    "block_ms",
    "pack_max",
    "trim_acked",
    "trim_grace_ms",
    "high_water",
    "overflow",
];
const STREAM_ONLY_KEYS: &[&str] = &["description", "key", "groups"];

impl Topology {
    /// Reads and validates a topology file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TopologyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| TopologyError::Read { path: path.display().to_string(), reason: e.to_string() })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates topology text; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, TopologyError> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| TopologyError::Syntax {
            source_name: source_name.to_string(),
            reason: e.to_string(),
        })?;
        let mut r = Reader::default();
        let topology = r.topology(&table);
        if r.problems.is_empty() {
            Ok(topology)
        } else {
            Err(TopologyError::Invalid { source_name: source_name.to_string(), problems: r.problems })
        }
    }

    /// Replaces the namespace (from config or `TRADEFLOW_NAMESPACE`), validating it.
    pub fn with_namespace(mut self, namespace: &str) -> Result<Self, TopologyError> {
        let mut r = Reader::default();
        r.check_name("namespace", namespace);
        if !r.problems.is_empty() {
            return Err(TopologyError::Invalid { source_name: "namespace override".into(), problems: r.problems });
        }
        self.namespace = namespace.to_string();
        Ok(self)
    }

    /// The policy of consumer group `name` (the defaults when `[groups]` does not list it).
    pub fn group(&self, name: &str) -> GroupSpec {
        self.groups.get(name).cloned().unwrap_or_default()
    }

    /// The streams consumer group `group` reads, by name. A stage's group bears the stage's
    /// name (`inference`, `ensemble`, `risk`, `exec`, `audit`), so this is where the edge, the
    /// CLI and the audit worker learn what each stage consumes: `streams.toml`, nowhere else.
    pub fn streams_read_by(&self, group: &str) -> Vec<&str> {
        self.streams.values().filter(|s| s.groups.iter().any(|g| g == group)).map(|s| s.name.as_str()).collect()
    }

    /// The stream of that logical name, or an error naming the streams that exist.
    pub fn stream(&self, name: &str) -> Result<&StreamSpec, crate::BusError> {
        self.streams.get(name).ok_or_else(|| crate::BusError::UnknownStream {
            name: name.to_string(),
            known: self.streams.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
}

/// Walks a TOML table, collecting problems instead of stopping at the first.
#[derive(Default)]
struct Reader {
    problems: Vec<Problem>,
}

fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

impl Reader {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { path: path.into(), message: message.into() });
    }

    fn unknown_keys(&mut self, prefix: &str, table: &Table, allowed: &[&[&str]]) {
        for key in table.keys() {
            if !allowed.iter().any(|set| set.contains(&key.as_str())) {
                let expected: Vec<&str> = allowed.iter().flat_map(|s| s.iter().copied()).collect();
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                self.problem(path, format!("unknown key; expected one of: {}", expected.join(", ")));
            }
        }
    }

    fn sub_table<'t>(&mut self, table: &'t Table, key: &str, path: &str) -> Option<&'t Table> {
        match table.get(key) {
            None => None,
            Some(Value::Table(t)) => Some(t),
            Some(other) => {
                self.problem(path, format!("expected a table, got {}", type_name(other)));
                None
            }
        }
    }

    /// An integer in `min..=max`, or `default` when absent.
    fn int(&mut self, table: &Table, key: &str, path: &str, min: u64, max: u64, default: u64) -> u64 {
        match table.get(key) {
            None => default,
            Some(Value::Integer(i)) => {
                let i = *i;
                if i < min as i64 {
                    self.problem(path, format!("must be at least {min}, got {i}"));
                    default
                } else if i as u64 > max {
                    self.problem(path, format!("must be at most {max}, got {i}"));
                    default
                } else {
                    i as u64
                }
            }
            Some(other) => {
                self.problem(path, format!("expected an integer, got {}", type_name(other)));
                default
            }
        }
    }

    fn bool(&mut self, table: &Table, key: &str, path: &str, default: bool) -> bool {
        match table.get(key) {
            None => default,
            Some(Value::Boolean(b)) => *b,
            Some(other) => {
                self.problem(path, format!("expected true or false, got {}", type_name(other)));
                default
            }
        }
    }

    fn overflow(&mut self, table: &Table, path: &str, default: Overflow) -> Overflow {
        match self.string(table, "overflow", path) {
            None => default,
            Some(s) => Overflow::parse(&s).unwrap_or_else(|| {
                self.problem(path, format!("unknown value {s:?}; expected \"block\" or \"drop_oldest\""));
                default
            }),
        }
    }

    fn string(&mut self, table: &Table, key: &str, path: &str) -> Option<String> {
        match table.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.problem(path, format!("expected a string, got {}", type_name(other)));
                None
            }
        }
    }

    /// Names end up inside Redis keys and hash tags: keep them to a safe alphabet.
    fn check_name(&mut self, path: &str, name: &str) {
        if name.is_empty() {
            self.problem(path, "must not be empty");
        } else if name.len() > 64 {
            self.problem(path, format!("must be at most 64 characters, got {}", name.len()));
        } else if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
            self.problem(path, format!("{name:?} contains {c:?}; use only letters, digits, '.', '_' and '-'"));
        }
    }

    fn topology(&mut self, table: &Table) -> Topology {
        self.unknown_keys("", table, &[TOP_KEYS]);
        let namespace = self.string(table, "namespace", "namespace").unwrap_or_else(|| "tf".into());
        self.check_name("namespace", &namespace);

        let fleet = self.fleet(table);
        let defaults = self.defaults(table);

        let mut streams = BTreeMap::new();
        match self.sub_table(table, "streams", "streams") {
            None if !table.contains_key("streams") => self.problem("streams", "missing; define at least one stream"),
            None => {}
            Some(t) if t.is_empty() => self.problem("streams", "is empty; define at least one stream"),
            Some(t) => {
                for (name, value) in t {
                    let path = format!("streams.{}", quoted(name));
                    self.check_name(&path, name);
                    match value {
                        Value::Table(st) => {
                            let spec = self.stream(name, st, &path, &defaults);
                            streams.insert(name.clone(), spec);
                        }
                        other => self.problem(path, format!("expected a table, got {}", type_name(other))),
                    }
                }
            }
        }
        let groups = self.group_specs(table, &streams);
        Topology { namespace, fleet, streams, groups }
    }

    /// `[groups.<name>]`: each must name a group some stream lists.
    fn group_specs(&mut self, table: &Table, streams: &BTreeMap<String, StreamSpec>) -> BTreeMap<String, GroupSpec> {
        let mut out = BTreeMap::new();
        let Some(t) = self.sub_table(table, "groups", "groups") else {
            return out;
        };
        for (name, value) in t {
            let path = format!("groups.{}", quoted(name));
            if !streams.values().any(|s| s.groups.contains(name)) {
                self.problem(&path, format!("no stream lists group {name:?} in its groups"));
            }
            match value {
                Value::Table(gt) => {
                    self.unknown_keys(&path, gt, &[GROUP_KEYS]);
                    let linger_ms = self.int(gt, "linger_ms", &format!("{path}.linger_ms"), 0, 10_000, 0);
                    let batch_max = gt
                        .contains_key("batch_max")
                        .then(|| self.int(gt, "batch_max", &format!("{path}.batch_max"), 1, 1_000_000, 0) as usize);
                    out.insert(name.clone(), GroupSpec { linger: Duration::from_millis(linger_ms), batch_max });
                }
                other => self.problem(path, format!("expected a table, got {}", type_name(other))),
            }
        }
        out
    }

    fn fleet(&mut self, table: &Table) -> FleetSpec {
        let empty = Table::new();
        let t = self.sub_table(table, "fleet", "fleet").unwrap_or(&empty);
        self.unknown_keys("fleet", t, &[FLEET_KEYS]);
        let heartbeat_ms = self.int(t, "heartbeat_ms", "fleet.heartbeat_ms", 50, 60_000, 1_000);
        let lease_ttl_ms = self.int(t, "lease_ttl_ms", "fleet.lease_ttl_ms", 150, 600_000, 5_000);
        if lease_ttl_ms < 2 * heartbeat_ms {
            self.problem(
                "fleet.lease_ttl_ms",
                format!(
                    "must be at least twice fleet.heartbeat_ms ({}), got {lease_ttl_ms}; a lease would expire between two renewals",
                    heartbeat_ms
                ),
            );
        }
        FleetSpec { heartbeat: Duration::from_millis(heartbeat_ms), lease_ttl: Duration::from_millis(lease_ttl_ms) }
    }

    fn defaults(&mut self, table: &Table) -> Defaults {
        let base = Defaults::default();
        let Some(t) = self.sub_table(table, "defaults", "defaults") else {
            return base;
        };
        self.unknown_keys("defaults", t, &[POLICY_KEYS]);
        self.policy(t, "defaults", &base)
    }

    /// The policy keys shared by `[defaults]` and each stream.
    fn policy(&mut self, t: &Table, prefix: &str, base: &Defaults) -> Defaults {
        let p = |k: &str| format!("{prefix}.{k}");
        let d = Defaults {
            partitions: self.int(t, "partitions", &p("partitions"), 1, 1024, base.partitions as u64) as u32,
            maxlen: self.int(t, "maxlen", &p("maxlen"), 1, i64::MAX as u64, base.maxlen),
            max_deliveries: self.int(t, "max_deliveries", &p("max_deliveries"), 1, 1000, base.max_deliveries as u64)
                as u32,
            retry_backoff_ms: self.int(
                t,
                "retry_backoff_ms",
                &p("retry_backoff_ms"),
                1,
                3_600_000,
                base.retry_backoff_ms,
            ),
            retry_backoff_max_ms: self.int(
                t,
                "retry_backoff_max_ms",
                &p("retry_backoff_max_ms"),
                1,
                3_600_000,
                base.retry_backoff_max_ms,
            ),
            claim_idle_ms: self.int(t, "claim_idle_ms", &p("claim_idle_ms"), 100, 86_400_000, base.claim_idle_ms),
            dlq_maxlen: self.int(t, "dlq_maxlen", &p("dlq_maxlen"), 1, i64::MAX as u64, base.dlq_maxlen),
            read_count: self.int(t, "read_count", &p("read_count"), 1, 10_000, base.read_count),
            block_ms: self.int(t, "block_ms", &p("block_ms"), 1, 60_000, base.block_ms),
            pack_max: self.int(t, "pack_max", &p("pack_max"), 1, 10_000, base.pack_max),
            trim_acked: self.bool(t, "trim_acked", &p("trim_acked"), base.trim_acked),
            trim_grace_ms: self.int(t, "trim_grace_ms", &p("trim_grace_ms"), 0, 86_400_000, base.trim_grace_ms),
            high_water: match t.contains_key("high_water") {
                true => {
                    let before = self.problems.len();
                    let hw = self.int(t, "high_water", &p("high_water"), 1, i64::MAX as u64, 1);
                    // An invalid value is reported once, not again against maxlen.
                    if self.problems.len() > before { base.high_water } else { Some(hw) }
                }
                false => base.high_water,
            },
            overflow: self.overflow(t, &p("overflow"), base.overflow),
        };
        if d.retry_backoff_max_ms < d.retry_backoff_ms {
            self.problem(
                p("retry_backoff_max_ms"),
                format!("must be at least retry_backoff_ms ({}), got {}", d.retry_backoff_ms, d.retry_backoff_max_ms),
            );
        }
        d
    }

    fn stream(&mut self, name: &str, t: &Table, path: &str, defaults: &Defaults) -> StreamSpec {
        self.unknown_keys(path, t, &[STREAM_ONLY_KEYS, POLICY_KEYS]);
        let description = self.string(t, "description", &format!("{path}.description")).unwrap_or_default();
        if description.trim().is_empty() {
            self.problem(format!("{path}.description"), "missing; say what the stream carries");
        }
        let key = self.string(t, "key", &format!("{path}.key")).unwrap_or_default();
        if key.trim().is_empty() {
            self.problem(format!("{path}.key"), "missing; name the partition key (e.g. \"symbol\")");
        }
        let groups = self.groups(t, &format!("{path}.groups"));
        let d = self.policy(t, path, defaults);
        let high_water = match d.high_water {
            // Checked against the stream's own maxlen: a `[defaults]` high_water must fit
            // every stream that inherits it.
            Some(hw) if hw >= d.maxlen => {
                let from = if t.contains_key("high_water") { "" } else { " (from [defaults])" };
                self.problem(
                    format!("{path}.high_water"),
                    format!(
                        "must be less than maxlen ({}), got {hw}{from}; MAXLEN would trim unread entries before producers wait",
                        d.maxlen
                    ),
                );
                default_high_water(d.maxlen)
            }
            Some(hw) => hw,
            None => default_high_water(d.maxlen),
        };
        StreamSpec {
            name: name.to_string(),
            description,
            key,
            partitions: d.partitions,
            maxlen: d.maxlen,
            groups,
            max_deliveries: d.max_deliveries,
            retry_backoff: Duration::from_millis(d.retry_backoff_ms),
            retry_backoff_max: Duration::from_millis(d.retry_backoff_max_ms),
            claim_idle: Duration::from_millis(d.claim_idle_ms),
            dlq_maxlen: d.dlq_maxlen,
            read_count: d.read_count as usize,
            block: Duration::from_millis(d.block_ms),
            pack_max: d.pack_max as usize,
            trim_acked: d.trim_acked,
            trim_grace: Duration::from_millis(d.trim_grace_ms),
            high_water,
            overflow: d.overflow,
        }
    }

    fn groups(&mut self, t: &Table, path: &str) -> Vec<String> {
        let mut groups = Vec::new();
        match t.get("groups") {
            None => self.problem(path, "missing; list the consumer groups (e.g. [\"audit\"])"),
            Some(Value::Array(items)) => {
                if items.is_empty() {
                    self.problem(path, "must list at least one consumer group");
                }
                for (i, item) in items.iter().enumerate() {
                    let ipath = format!("{path}[{i}]");
                    match item {
                        Value::String(g) => {
                            self.check_name(&ipath, g);
                            if groups.contains(g) {
                                self.problem(ipath, format!("group {g:?} is listed twice"));
                            } else {
                                groups.push(g.clone());
                            }
                        }
                        other => self.problem(ipath, format!("expected a string, got {}", type_name(other))),
                    }
                }
            }
            Some(other) => self.problem(path, format!("expected an array of strings, got {}", type_name(other))),
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [streams."test.events"]
        description = "test"
        key = "k"
        groups = ["g"]
    "#;

    #[test]
    fn minimal_file_takes_defaults() {
        let t = Topology::parse(MINIMAL, "t").unwrap();
        assert_eq!(t.namespace, "tf");
        let s = &t.streams["test.events"];
        assert_eq!(s.partitions, 8);
        assert_eq!(s.max_deliveries, 5);
        assert_eq!(t.fleet.lease_ttl, Duration::from_secs(5));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let t = Topology::parse(MINIMAL, "t").unwrap();
        let s = &t.streams["test.events"];
        assert_eq!(s.backoff_after(1), Duration::from_millis(200));
        assert_eq!(s.backoff_after(2), Duration::from_millis(400));
        assert_eq!(s.backoff_after(30), Duration::from_secs(10));
    }

    #[test]
    fn group_policy_is_read_and_checked() {
        let text = format!("{MINIMAL}\n[groups.g]\nlinger_ms = 100\nbatch_max = 4096\n");
        let t = Topology::parse(&text, "t").unwrap();
        assert_eq!(t.group("g").linger, Duration::from_millis(100));
        assert_eq!(t.group("g").batch_max, Some(4096));
        assert_eq!(t.group("other").linger, Duration::ZERO);
        assert_eq!(t.group("other").batch_max, None);

        let bad = format!("{MINIMAL}\n[groups.g]\nlinger_ms = 20000\nbatch_max = 0\nspeed = 1\n[groups.nobody]\n");
        let problems: Vec<String> =
            Topology::parse(&bad, "t").unwrap_err().problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            problems,
            [
                "groups.\"g\".speed: unknown key; expected one of: linger_ms, batch_max",
                "groups.\"g\".linger_ms: must be at most 10000, got 20000",
                "groups.\"g\".batch_max: must be at least 1, got 0",
                "groups.\"nobody\": no stream lists group \"nobody\" in its groups",
            ]
        );
    }

    #[test]
    fn trim_acked_defaults_on_and_is_checked() {
        let t = Topology::parse(MINIMAL, "t").unwrap();
        assert!(t.streams["test.events"].trim_acked);
        assert_eq!(t.streams["test.events"].trim_grace, Duration::from_secs(10));
        let off = format!("[defaults]\ntrim_acked = false\n{MINIMAL}");
        assert!(!Topology::parse(&off, "t").unwrap().streams["test.events"].trim_acked);
        let bad = format!("{MINIMAL}trim_acked = \"yes\"\n");
        let problems: Vec<String> =
            Topology::parse(&bad, "t").unwrap_err().problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(problems, ["streams.\"test.events\".trim_acked: expected true or false, got a string"]);
    }

    #[test]
    fn high_water_defaults_below_maxlen_and_overflow_to_block() {
        let t = Topology::parse(MINIMAL, "t").unwrap();
        let s = &t.streams["test.events"];
        assert_eq!(s.high_water, 900_000, "90 % of the default maxlen");
        assert_eq!(s.overflow, Overflow::Block);
        let small = format!("{MINIMAL}maxlen = 200\n");
        assert_eq!(Topology::parse(&small, "t").unwrap().streams["test.events"].high_water, 180);
        assert_eq!(default_high_water(1), 1);
        let set = format!("[defaults]\noverflow = \"drop_oldest\"\n{MINIMAL}maxlen = 200\nhigh_water = 50\n");
        let s = &Topology::parse(&set, "t").unwrap().streams["test.events"];
        assert_eq!((s.high_water, s.overflow), (50, Overflow::DropOldest));
    }

    #[test]
    fn high_water_and_overflow_problems_are_all_reported() {
        let text = r#"
            [defaults]
            high_water = 5000
            overflow = "spill"

            [streams."a"]
            description = "a"
            key = "k"
            groups = ["g"]
            maxlen = 100
            high_water = 100
            overflow = 3

            [streams."b"]
            description = "b"
            key = "k"
            groups = ["g"]
            maxlen = 1000

            [streams."c"]
            description = "c"
            key = "k"
            groups = ["g"]
            high_water = 0
        "#;
        let problems: Vec<String> =
            Topology::parse(text, "t").unwrap_err().problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            problems,
            [
                "defaults.overflow: unknown value \"spill\"; expected \"block\" or \"drop_oldest\"",
                "streams.\"a\".overflow: expected a string, got an integer",
                "streams.\"a\".high_water: must be less than maxlen (100), got 100; MAXLEN would trim unread entries before producers wait",
                "streams.\"b\".high_water: must be less than maxlen (1000), got 5000 (from [defaults]); MAXLEN would trim unread entries before producers wait",
                "streams.\"c\".high_water: must be at least 1, got 0",
            ]
        );
    }

    #[test]
    fn the_project_streams_toml_is_valid_and_complete() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../streams.toml");
        let t = Topology::load(path).unwrap();
        for name in [
            "md.candles",
            "md.news",
            "inf.signals",
            "ens.decisions",
            "risk.orders",
            "exec.fills",
            "audit.events",
            "ctl.commands",
            "sys.events",
        ] {
            assert!(t.streams.contains_key(name), "streams.toml lacks {name}");
        }
    }
}
