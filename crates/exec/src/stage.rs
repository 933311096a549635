//! The execution stage: the ordered messages of `risk.orders` for the accounts of one
//! partition in; fills, position and account snapshots out.
//!
//! Each paper account has its [`PaperBook`]; a message whose sequence number the book has
//! already applied is a duplicate (a redelivery, or risk re-sending after a restart) and
//! changes nothing, so an order never fills twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tradeflow_core::execution::ExecEvent;
use tradeflow_core::order::RiskMessage;

use crate::paper::{PaperBook, PaperConfig};

const SNAPSHOT_VERSION: u16 = 1;

/// What the executor needs to know of an account.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecAccount {
    pub id: String,
    pub starting_balance: f64,
    pub paper: PaperConfig,
}

/// Why a message cannot be executed (it goes to the DLQ with this text).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExecError {
    #[error("account {account:?} is not configured for paper execution here")]
    UnknownAccount { account: String },
    #[error("message {id} skips ahead: seq {got} after {last} (a message of this account is missing)")]
    Gap { id: String, got: u64, last: u64 },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecOutput {
    pub events: Vec<ExecEvent>,
    pub duplicate: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    version: u16,
    books: BTreeMap<String, PaperBook>,
}

#[derive(Debug, Clone)]
pub struct ExecStage {
    accounts: BTreeMap<String, ExecAccount>,
    books: BTreeMap<String, PaperBook>,
}

impl ExecStage {
    pub fn new(accounts: &[ExecAccount]) -> Self {
        Self { accounts: accounts.iter().map(|a| (a.id.clone(), a.clone())).collect(), books: BTreeMap::new() }
    }

    pub fn restore(accounts: &[ExecAccount], bytes: &[u8]) -> Result<Self, String> {
        let s: Snapshot = rmp_serde::from_slice(bytes).map_err(|e| format!("decoding the exec checkpoint: {e}"))?;
        if s.version != SNAPSHOT_VERSION {
            return Err(format!("exec checkpoint has layout {}, this build reads {SNAPSHOT_VERSION}", s.version));
        }
        let mut stage = Self::new(accounts);
        stage.books = s.books.into_iter().filter(|(id, _)| stage.accounts.contains_key(id)).collect();
        Ok(stage)
    }

    pub fn snapshot(&self) -> Result<Vec<u8>, String> {
        rmp_serde::to_vec_named(&Snapshot { version: SNAPSHOT_VERSION, books: self.books.clone() })
            .map_err(|e| format!("encoding the exec checkpoint: {e}"))
    }

    pub fn book(&self, account: &str) -> Option<&PaperBook> {
        self.books.get(account)
    }

    /// Applies one message. Sequence numbers must follow each other: a gap means a message of
    /// the account was lost upstream, and executing past it would diverge from risk's book.
    pub fn on_message(&mut self, msg: &RiskMessage) -> Result<ExecOutput, ExecError> {
        let account = msg.account();
        let Some(cfg) = self.accounts.get(account) else {
            return Err(ExecError::UnknownAccount { account: account.into() });
        };
        // The account's id is copied once, for its first message, not for every one.
        if !self.books.contains_key(account) {
            self.books.insert(account.to_string(), PaperBook::new(&cfg.id, cfg.starting_balance, cfg.paper.clone()));
        }
        let Some(book) = self.books.get_mut(account) else { unreachable!("the book was inserted above") };
        let last = book.last_seq();
        if msg.seq() <= last {
            return Ok(ExecOutput { events: Vec::new(), duplicate: true });
        }
        if msg.seq() != last + 1 {
            return Err(ExecError::Gap { id: msg.id().into(), got: msg.seq(), last });
        }
        let applied = book.apply(msg);
        Ok(ExecOutput { events: applied.events, duplicate: applied.duplicate })
    }
}
