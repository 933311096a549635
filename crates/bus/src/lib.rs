//! tradeflow's message bus on Redis Streams.
//!
//! - [`topology`]: `streams.toml`, validated with every problem reported at once;
//! - [`envelope`]: the MessagePack envelope and its codec; [`pack`]: several in one entry;
//! - [`producer`]: pipelined, batched XADD onto partitions ([`keys::partition_of`]);
//! - [`backpressure`]: producers wait at a partition's high-water mark instead of letting
//!   `MAXLEN` trim unread entries;
//! - [`consumer`]: consumer groups, fleets with partition leases, retries, dead letters,
//!   checkpoints and graceful shutdown;
//! - [`retention`]: trimming what every group has acknowledged;
//! - [`dlq`], [`inspect`]: what operators look at and act on;
//! - [`embedded`]: a private redis-server child for `tradeflow up` and tests.
//!
//! Stage logic never sees any of this: it implements [`consumer::Handler`].

pub mod backpressure;
pub mod checkpoint;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod control;
pub mod dlq;
pub mod embedded;
pub mod envelope;
pub mod error;
pub mod fleet;
pub mod inspect;
pub mod keys;
pub mod metrics;
pub mod pack;
pub mod producer;
pub mod reply;
pub mod retention;
pub mod tap;
pub mod topology;

pub use connection::Bus;
pub use consumer::{Consumer, Delivery, Handler, HandlerFactory, Outcome, StageHandler, StageLogic, Tick};
pub use envelope::{DecodeError, Envelope, EnvelopeHead, EnvelopeRef};
pub use error::BusError;
pub use metrics::BusMetrics;
pub use producer::{Outgoing, Producer};
pub use topology::Topology;
