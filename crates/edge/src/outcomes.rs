//! The answers to manual order requests, as this edge's tap sees them go by on `risk.orders`
//! and `exec.fills`. A route registers the order id it waits for before it sends the request,
//! and the tap hands it the order or refusal and the fills as they pass: no polling of the
//! store, and every edge sees every answer (the tap reads without a consumer group), whichever
//! edge sent the request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tradeflow_bus::Envelope;
use tradeflow_core::Payload;
use tradeflow_core::execution::Fill;
use tradeflow_core::order::{OrderIntent, Rejection};

/// What has been seen of one order so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    pub order: Option<OrderIntent>,
    pub rejection: Option<Rejection>,
    pub fills: Vec<Fill>,
}

impl Seen {
    fn is_empty(&self) -> bool {
        self.order.is_none() && self.rejection.is_none() && self.fills.is_empty()
    }
}

#[derive(Default)]
pub struct Outcomes {
    /// Order id → the watchers' channel and how many wait on it.
    waiting: Mutex<HashMap<String, (watch::Sender<Seen>, usize)>>,
}

/// A registration: dropping it stops the watching (the last one removes the entry).
pub struct Watching {
    outcomes: Arc<Outcomes>,
    order_id: String,
    pub rx: watch::Receiver<Seen>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut w = self.outcomes.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, n)) = w.get_mut(&self.order_id) {
            *n -= 1;
            if *n == 0 {
                w.remove(&self.order_id);
            }
        }
    }
}

impl Outcomes {
    /// Starts watching an order id (before the request is sent, so nothing passes unseen).
    pub fn watch(self: &Arc<Self>, order_id: &str) -> Watching {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let entry = w.entry(order_id.to_string()).or_insert_with(|| (watch::channel(Seen::default()).0, 0));
        entry.1 += 1;
        let rx = entry.0.subscribe();
        Watching { outcomes: self.clone(), order_id: order_id.to_string(), rx }
    }

    /// Called by the tap for every message: cheap when nobody waits.
    pub fn observe(&self, env: &Envelope) {
        let order_id = match env.kind.as_str() {
            OrderIntent::KIND | Rejection::KIND => env.id.as_str(),
            Fill::KIND => match env.id.rsplit_once('#') {
                Some((order, _)) => order,
                None => return,
            },
            _ => return,
        };
        let w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let Some((tx, _)) = w.get(order_id) else { return };
        let update = |seen: &mut Seen| match env.kind.as_str() {
            OrderIntent::KIND => env.open::<OrderIntent>().map(|o| seen.order = Some(o)).is_ok(),
            Rejection::KIND => env.open::<Rejection>().map(|r| seen.rejection = Some(r)).is_ok(),
            _ => match env.open::<Fill>() {
                Ok(f) if !seen.fills.iter().any(|g| g.id == f.id) => {
                    seen.fills.push(f);
                    true
                }
                _ => false,
            },
        };
        tx.send_if_modified(update);
    }

    /// Orders being waited for (for tests and metrics).
    pub fn waiting(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Watching {
    /// Waits until `done` holds for what has been seen, or `deadline`; returns what was seen.
    pub async fn until(&mut self, deadline: tokio::time::Instant, done: impl Fn(&Seen) -> bool) -> Seen {
        let _ = tokio::time::timeout_at(deadline, self.rx.wait_for(|s| !s.is_empty() && done(s))).await;
        self.rx.borrow().clone()
    }
}
