//! Hyperliquid perpetuals: signatures against the official SDK's published vectors, and the
//! client and the exchange desk against a local fake Hyperliquid.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use tradeflow_core::execution::{ExecEvent, FillReason};
use tradeflow_core::order::{BarMark, Direction, Intent, Mark, OrderIntent, OrderType, RiskMessage, Side};
use tradeflow_exec::exchange::{DeskState, ExchangeAccount, ExchangeDesk, ExchangeError};
use tradeflow_exec::hyperliquid::wire::ExchangeRequest;
use tradeflow_exec::hyperliquid::{
    Address, HyperliquidClient, HyperliquidConfig, HyperliquidError, NewOrder, OrderKind, cloid,
};

use serde::Serialize;
use tradeflow_exec::hyperliquid::signing::{action_hash, agent_digest, recover_l1_signer};
use tradeflow_exec::hyperliquid::wire::{Action, LimitWire, OrderTypeWire, OrderWire, TriggerWire};
use tradeflow_exec::hyperliquid::{Signature, Signer};

// ---------------------------------------------------------------------------------------------
// Signature vectors: hyperliquid-python-sdk tests/signing_test.py (commit 7ee976d, 2026-04-14).

const SDK_KEY: &str = "0x0123456789012345678901234567890123456789012345678901234567890123";

fn signer() -> Signer {
    Signer::from_hex(SDK_KEY).unwrap()
}

/// The SDK's `{"type": "dummy", "num": float_to_int_for_hashing(1000)}`.
#[derive(Serialize)]
struct Dummy {
    #[serde(rename = "type")]
    kind: &'static str,
    num: u64,
}

const DUMMY: Dummy = Dummy { kind: "dummy", num: 100_000_000_000 };

fn sig(r: &str, s: &str, v: u8) -> Signature {
    Signature { r: r.into(), s: s.into(), v }
}

/// Signs on mainnet and testnet and compares with the SDK's; the recovered signer is the key's.
fn check<A: Serialize>(action: &A, vault: Option<&str>, mainnet: Signature, testnet: Signature) {
    let vault = vault.map(|v| tradeflow_exec::hyperliquid::Address::parse(v).unwrap());
    let s = signer();
    for (is_mainnet, expected) in [(true, mainnet), (false, testnet)] {
        let got = s.sign_l1_action(action, vault.as_ref(), 0, None, is_mainnet).unwrap();
        assert_eq!(got, expected, "mainnet={is_mainnet}");
        let who = recover_l1_signer(action, vault.as_ref(), 0, None, is_mainnet, &got).unwrap();
        assert_eq!(who, s.address());
    }
}

fn eth_order(c: Option<&str>, t: OrderTypeWire, asset: u32, p: &str, s: &str) -> Action {
    Action::order(OrderWire { a: asset, b: true, p: p.into(), s: s.into(), r: false, t, c: c.map(str::to_string) })
}

fn gtc() -> OrderTypeWire {
    OrderTypeWire { limit: Some(LimitWire { tif: "Gtc".into() }), trigger: None }
}

#[test]
fn phantom_agent_matches_production() {
    let ioc = OrderTypeWire { limit: Some(LimitWire { tif: "Ioc".into() }), trigger: None };
    let action = eth_order(None, ioc, 4, "1670.1", "0.0147");
    let hash = action_hash(&action, None, 1_677_777_606_040, None).unwrap();
    assert_eq!(hex::encode(hash), "0fcbeda5ae3c4950a548021552a4fea2226858c4453571bf3f24ba017eac2908");
}

#[test]
fn l1_action_signing_matches() {
    check(
        &DUMMY,
        None,
        sig(
            "0x53749d5b30552aeb2fca34b530185976545bb22d0b3ce6f62e31be961a59298",
            "0x755c40ba9bf05223521753995abb2f73ab3229be8ec921f350cb447e384d8ed8",
            27,
        ),
        sig(
            "0x542af61ef1f429707e3c76c5293c80d01f74ef853e34b76efffcb57e574f9510",
            "0x17b8b32f086e8cdede991f1e2c529f5dd5297cbe8128500e00cbaf766204a613",
            28,
        ),
    );
}

#[test]
fn order_signing_matches() {
    check(
        &eth_order(None, gtc(), 1, "100", "100"),
        None,
        sig(
            "0xd65369825a9df5d80099e513cce430311d7d26ddf477f5b3a33d2806b100d78e",
            "0x2b54116ff64054968aa237c20ca9ff68000f977c93289157748a3162b6ea940e",
            28,
        ),
        sig(
            "0x82b2ba28e76b3d761093aaded1b1cdad4960b3af30212b343fb2e6cdfa4e3d54",
            "0x6b53878fc99d26047f4d7e8c90eb98955a109f44209163f52d8dc4278cbbd9f5",
            27,
        ),
    );
}

#[test]
fn order_with_cloid_signing_matches() {
    check(
        &eth_order(Some("0x00000000000000000000000000000001"), gtc(), 1, "100", "100"),
        None,
        sig(
            "0x41ae18e8239a56cacbc5dad94d45d0b747e5da11ad564077fcac71277a946e3",
            "0x3c61f667e747404fe7eea8f90ab0e76cc12ce60270438b2058324681a00116da",
            27,
        ),
        sig(
            "0xeba0664bed2676fc4e5a743bf89e5c7501aa6d870bdb9446e122c9466c5cd16d",
            "0x7f3e74825c9114bc59086f1eebea2928c190fdfbfde144827cb02b85bbe90988",
            28,
        ),
    );
}

#[test]
fn vault_signing_matches() {
    check(
        &DUMMY,
        Some("0x1719884eb866cb12b2287399b15f7db5e7d775ea"),
        sig(
            "0x3c548db75e479f8012acf3000ca3a6b05606bc2ec0c29c50c515066a326239",
            "0x4d402be7396ce74fbba3795769cda45aec00dc3125a984f2a9f23177b190da2c",
            28,
        ),
        sig(
            "0xe281d2fb5c6e25ca01601f878e4d69c965bb598b88fac58e475dd1f5e56c362b",
            "0x7ddad27e9a238d045c035bc606349d075d5c5cd00a6cd1da23ab5c39d4ef0f60",
            27,
        ),
    );
}

#[test]
fn tpsl_order_signing_matches() {
    let trigger = OrderTypeWire {
        limit: None,
        trigger: Some(TriggerWire { is_market: true, trigger_px: "103".into(), tpsl: "sl".into() }),
    };
    check(
        &eth_order(None, trigger, 1, "100", "100"),
        None,
        sig(
            "0x98343f2b5ae8e26bb2587daad3863bc70d8792b09af1841b6fdd530a2065a3f9",
            "0x6b5bb6bb0633b710aa22b721dd9dee6d083646a5f8e581a20b545be6c1feb405",
            27,
        ),
        sig(
            "0x971c554d917c44e0e1b6cc45d8f9404f32172a9d3b3566262347d0302896a2e4",
            "0x206257b104788f80450f8e786c329daa589aa0b32ba96948201ae556d5637eac",
            28,
        ),
    );
}

#[test]
fn schedule_cancel_signing_matches() {
    #[derive(Serialize)]
    struct ScheduleCancel {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        time: Option<u64>,
    }
    check(
        &ScheduleCancel { kind: "scheduleCancel", time: None },
        None,
        sig(
            "0x6cdfb286702f5917e76cd9b3b8bf678fcc49aec194c02a73e6d4f16891195df9",
            "0x6557ac307fa05d25b8d61f21fb8a938e703b3d9bf575f6717ba21ec61261b2a0",
            27,
        ),
        sig(
            "0xc75bb195c3f6a4e06b7d395acc20bbb224f6d23ccff7c6a26d327304e6efaeed",
            "0x342f8ede109a29f2c0723bd5efb9e9100e3bbb493f8fb5164ee3d385908233df",
            28,
        ),
    );
    check(
        &ScheduleCancel { kind: "scheduleCancel", time: Some(123_456_789) },
        None,
        sig(
            "0x609cb20c737945d070716dcc696ba030e9976fcf5edad87afa7d877493109d55",
            "0x16c685d63b5c7a04512d73f183b3d7a00da5406ff1f8aad33f8ae2163bab758b",
            28,
        ),
        sig(
            "0x4e4f2dbd4107c69783e251b7e1057d9f2b9d11cee213441ccfa2be63516dc5bc",
            "0x706c656b23428c8ba356d68db207e11139ede1670481a9e01ae2dfcdb0e1a678",
            27,
        ),
    );
}

#[test]
fn sub_account_actions_signing_matches() {
    #[derive(Serialize)]
    struct Create {
        #[serde(rename = "type")]
        kind: &'static str,
        name: &'static str,
    }
    check(
        &Create { kind: "createSubAccount", name: "example" },
        None,
        sig(
            "0x51096fe3239421d16b671e192f574ae24ae14329099b6db28e479b86cdd6caa7",
            "0xb71f7d293af92d3772572afb8b102d167a7cef7473388286bc01f52a5c5b423",
            27,
        ),
        sig(
            "0xa699e3ed5c2b89628c746d3298b5dc1cca604694c2c855da8bb8250ec8014a5b",
            "0x53f1b8153a301c72ecc655b1c315d64e1dcea3ee58921fd7507e35818fcc1584",
            28,
        ),
    );
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Transfer {
        #[serde(rename = "type")]
        kind: &'static str,
        sub_account_user: &'static str,
        is_deposit: bool,
        usd: u64,
    }
    check(
        &Transfer {
            kind: "subAccountTransfer",
            sub_account_user: "0x1d9470d4b963f552e6f671a81619d395877bf409",
            is_deposit: true,
            usd: 10,
        },
        None,
        sig(
            "0x43592d7c6c7d816ece2e206f174be61249d651944932b13343f4d13f306ae602",
            "0x71a926cb5c9a7c01c3359ec4c4c34c16ff8107d610994d4de0e6430e5cc0f4c9",
            28,
        ),
        sig(
            "0xe26574013395ad55ee2f4e0575310f003c5bb3351b5425482e2969fa51543927",
            "0xefb08999196366871f919fd0e138b3a7f30ee33e678df7cfaf203e25f0a4278",
            28,
        ),
    );
}

#[test]
fn a_changed_action_or_chain_recovers_another_signer() {
    let s = signer();
    let action = eth_order(None, gtc(), 1, "100", "100");
    let good = s.sign_l1_action(&action, None, 7, None, true).unwrap();
    let other = eth_order(None, gtc(), 1, "101", "100");
    assert_ne!(recover_l1_signer(&other, None, 7, None, true, &good).unwrap(), s.address());
    assert_ne!(recover_l1_signer(&action, None, 8, None, true, &good).unwrap(), s.address());
    assert_ne!(recover_l1_signer(&action, None, 7, None, false, &good).unwrap(), s.address());
    // The digest depends on the source letter only through the phantom agent.
    assert_ne!(agent_digest(&[0; 32], true), agent_digest(&[0; 32], false));
}

// ---------------------------------------------------------------------------------------------
// A local fake Hyperliquid.
//
// It follows Hyperliquid's API documentation as read on 2026-12-06 ("Exchange endpoint": place
// order, cancel, cancel by cloid, update leverage; "Info endpoint": meta, allMids, orderStatus
// by oid or cloid, userFills, frontendOpenOrders, clearinghouseState) and the official SDK's
// request shapes: `POST /exchange` with `{action, nonce, signature, vaultAddress,
// expiresAfter}`, answered `{"status": "ok", "response": {"type": "order", "data": {"statuses":
// [...]}}}` (`{"filled": {totalSz, avgPx, oid}}`, `{"resting": {oid}}`, `{"error": msg}`) or
// `{"status": "err", "response": msg}`. It recovers the signer of every action from its
// signature over the re-encoded action (as Hyperliquid does) and refuses any other signer or a
// reused nonce. IOC orders fill at the coin's mid when their limit crosses it; trigger orders
// rest until [`Fake::set_mid`] crosses their trigger (`sl`: against the position, `tp`: with
// it), then fill at that mid keeping their oid (status `filled`, a fill in `userFills`).
// Duplicate cloids are accepted, so a double placement would show as two orders.

#[derive(Debug, Clone)]
struct FakeOrder {
    oid: u64,
    cloid: Option<String>,
    coin: String,
    is_buy: bool,
    orig_sz: f64,
    sz: f64,
    limit_px: f64,
    /// (trigger price, "sl" | "tp")
    trigger: Option<(f64, String)>,
    reduce_only: bool,
    status: &'static str,
    timestamp: i64,
}

struct Fake {
    signer: Address,
    mainnet: bool,
    /// (name, szDecimals, maxLeverage)
    universe: Vec<(&'static str, u32, u32)>,
    mids: BTreeMap<String, f64>,
    orders: Vec<FakeOrder>,
    fills: Vec<Value>,
    /// coin → (signed size, entry price)
    positions: BTreeMap<String, (f64, f64)>,
    leverage: BTreeMap<u32, (bool, u32)>,
    nonces: BTreeSet<u64>,
    next_oid: u64,
    /// Order actions still to answer only after this long (after acting on them).
    slow_orders: u32,
    slow_for: Duration,
    refused_signatures: u32,
    exchange_posts: u32,
    clock: i64,
}

impl Fake {
    fn asset_name(&self, a: u32) -> String {
        self.universe[a as usize].0.to_string()
    }

    fn open(&self) -> Vec<&FakeOrder> {
        self.orders.iter().filter(|o| o.status == "open").collect()
    }

    fn by_cloid(&self, id: &str) -> Vec<&FakeOrder> {
        let c = cloid(id);
        self.orders.iter().filter(|o| o.cloid.as_deref() == Some(c.as_str())).collect()
    }

    /// Fills `sz` of order `i` at `px`: a fill and the position.
    fn fill(&mut self, i: usize, px: f64) {
        self.clock += 1;
        let o = &mut self.orders[i];
        let sz = o.sz;
        o.sz = 0.0;
        o.status = "filled";
        let signed = if o.is_buy { sz } else { -sz };
        let pos = self.positions.entry(o.coin.clone()).or_insert((0.0, 0.0));
        let new = pos.0 + signed;
        if pos.0 == 0.0 || pos.0.signum() == signed.signum() {
            pos.1 = (pos.0.abs() * pos.1 + sz * px) / new.abs();
        }
        pos.0 = (new * 1e9).round() / 1e9;
        if pos.0 == 0.0 {
            self.positions.remove(&o.coin);
        }
        self.fills.push(json!({
            "coin": o.coin, "px": px.to_string(), "sz": sz.to_string(),
            "side": if o.is_buy { "B" } else { "A" }, "time": self.clock, "oid": o.oid,
            "fee": "0", "tid": self.fills.len() as u64 + 1, "crossed": true,
        }));
    }

    /// A new mid for `coin`; fires the trigger orders it crosses. Returns their oids.
    fn set_mid(&mut self, coin: &str, px: f64) -> Vec<u64> {
        self.mids.insert(coin.to_string(), px);
        let mut fired = Vec::new();
        for i in 0..self.orders.len() {
            let o = &self.orders[i];
            let Some((trigger, tpsl)) = o.trigger.clone() else { continue };
            if o.status != "open" || o.coin != coin {
                continue;
            }
            // A sell stop fires at or below its trigger, a sell take profit at or above; a buy
            // the other way round.
            let below = px <= trigger;
            let fires = if (tpsl == "sl") != o.is_buy { below } else { px >= trigger };
            if fires {
                fired.push(o.oid);
                self.fill(i, px);
            }
        }
        fired
    }

    fn order_json(o: &FakeOrder) -> Value {
        json!({
            "coin": o.coin, "side": if o.is_buy { "B" } else { "A" }, "limitPx": o.limit_px.to_string(),
            "sz": o.sz.to_string(), "oid": o.oid, "timestamp": o.timestamp,
            "triggerCondition": "N/A", "isTrigger": o.trigger.is_some(),
            "triggerPx": o.trigger.as_ref().map_or("0.0".to_string(), |t| t.0.to_string()),
            "children": [], "isPositionTpsl": false, "reduceOnly": o.reduce_only,
            "orderType": if o.trigger.is_some() { "Stop Market" } else { "Limit" },
            "origSz": o.orig_sz.to_string(), "tif": if o.trigger.is_some() { Value::Null } else { json!("Gtc") },
            "cloid": o.cloid,
        })
    }

    /// One order of an order action; its status.
    fn place(&mut self, w: &tradeflow_exec::hyperliquid::wire::OrderWire) -> Value {
        let coin = self.asset_name(w.a);
        let (sz, px): (f64, f64) = (w.s.parse().unwrap(), w.p.parse().unwrap());
        let held = self.positions.get(&coin).map_or(0.0, |p| p.0);
        if w.r && (held == 0.0 || (held > 0.0) == w.b) {
            return json!({"error": "Reduce only order would increase position."});
        }
        self.next_oid += 1;
        self.clock += 1;
        let trigger = w.t.trigger.as_ref().map(|t| (t.trigger_px.parse::<f64>().unwrap(), t.tpsl.clone()));
        self.orders.push(FakeOrder {
            oid: self.next_oid,
            cloid: w.c.clone(),
            coin: coin.clone(),
            is_buy: w.b,
            orig_sz: sz,
            sz,
            limit_px: px,
            trigger: trigger.clone(),
            reduce_only: w.r,
            status: "open",
            timestamp: self.clock,
        });
        let i = self.orders.len() - 1;
        let oid = self.next_oid;
        if trigger.is_some() {
            return json!({"resting": {"oid": oid}});
        }
        let tif = w.t.limit.as_ref().map(|l| l.tif.as_str()).unwrap_or("Gtc");
        let mid = self.mids[&coin];
        let crosses = if w.b { px >= mid } else { px <= mid };
        match (tif, crosses) {
            (_, true) => {
                self.fill(i, mid);
                json!({"filled": {"totalSz": sz.to_string(), "avgPx": mid.to_string(), "oid": oid}})
            }
            ("Ioc", false) => {
                self.orders[i].status = "canceled";
                json!({"error": format!("Order could not immediately match against any resting orders. asset={}", w.a)})
            }
            _ => json!({"resting": {"oid": oid}}),
        }
    }

    fn cancel_where(&mut self, pick: impl Fn(&FakeOrder) -> bool, asset: u32) -> Value {
        match self.orders.iter_mut().find(|o| o.status == "open" && pick(o)) {
            Some(o) => {
                o.status = "canceled";
                json!("success")
            }
            None => json!({"error": format!("Order was never placed, already canceled, or filled. asset={asset}")}),
        }
    }
}

type Shared = Arc<Mutex<Fake>>;

fn ok(data: Value) -> Value {
    json!({"status": "ok", "response": data})
}

async fn exchange(State(fake): State<Shared>, Json(req): Json<ExchangeRequest>) -> Json<Value> {
    use tradeflow_exec::hyperliquid::wire::Action;
    let (answer, delay) = {
        let mut f = fake.lock().unwrap();
        f.exchange_posts += 1;
        let vault = req.vault_address.as_deref().map(|v| Address::parse(v).unwrap());
        let who =
            recover_l1_signer(&req.action, vault.as_ref(), req.nonce, req.expires_after, f.mainnet, &req.signature);
        if who != Ok(f.signer) {
            f.refused_signatures += 1;
            let shown = who.map(|a| a.to_string()).unwrap_or_else(|e| e);
            return Json(json!({"status": "err", "response": format!("User or API Wallet {shown} does not exist.")}));
        }
        if !f.nonces.insert(req.nonce) {
            return Json(json!({"status": "err", "response": "Invalid nonce: duplicate nonce"}));
        }
        match &req.action {
            Action::UpdateLeverage { asset, is_cross, leverage } => {
                f.leverage.insert(*asset, (*is_cross, *leverage));
                (ok(json!({"type": "default"})), None)
            }
            Action::Order { orders, .. } => {
                let statuses: Vec<Value> = orders.iter().map(|w| f.place(w)).collect();
                let delay = (f.slow_orders > 0).then(|| {
                    f.slow_orders -= 1;
                    f.slow_for
                });
                (ok(json!({"type": "order", "data": {"statuses": statuses}})), delay)
            }
            Action::Cancel { cancels } => {
                let statuses: Vec<Value> = cancels.iter().map(|c| f.cancel_where(|o| o.oid == c.o, c.a)).collect();
                (ok(json!({"type": "cancel", "data": {"statuses": statuses}})), None)
            }
            Action::CancelByCloid { cancels } => {
                let statuses: Vec<Value> = cancels
                    .iter()
                    .map(|c| f.cancel_where(|o| o.cloid.as_deref() == Some(c.cloid.as_str()), c.asset))
                    .collect();
                (ok(json!({"type": "cancel", "data": {"statuses": statuses}})), None)
            }
        }
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    Json(answer)
}

async fn info(State(fake): State<Shared>, Json(q): Json<Value>) -> Json<Value> {
    let f = fake.lock().unwrap();
    let user_ok = q.get("user").and_then(Value::as_str).is_none_or(|u| u == f.signer.to_string());
    let answer = match q["type"].as_str().unwrap_or_default() {
        "meta" => {
            json!({"universe": f.universe.iter().map(|(n, d, l)| json!({"name": n, "szDecimals": d, "maxLeverage": l})).collect::<Vec<_>>()})
        }
        "allMids" => Value::Object(f.mids.iter().map(|(c, p)| (c.clone(), json!(p.to_string()))).collect()),
        _ if !user_ok => json!([]),
        "orderStatus" => {
            let found = match &q["oid"] {
                Value::String(c) => f.orders.iter().rev().find(|o| o.cloid.as_deref() == Some(c.as_str())),
                v => f.orders.iter().find(|o| Some(o.oid) == v.as_u64()),
            };
            match found {
                Some(o) => {
                    json!({"status": "order", "order": {"order": Fake::order_json(o), "status": o.status, "statusTimestamp": o.timestamp}})
                }
                None => json!({"status": "unknownOid"}),
            }
        }
        "userFills" => Value::Array(f.fills.iter().rev().cloned().collect()),
        "frontendOpenOrders" => Value::Array(f.open().into_iter().map(Fake::order_json).collect()),
        "clearinghouseState" => {
            let positions: Vec<Value> = f
                .positions
                .iter()
                .map(|(c, (sz, px))| {
                    let mid = f.mids[c];
                    json!({"type": "oneWay", "position": {"coin": c, "szi": sz.to_string(), "entryPx": px.to_string(),
                        "unrealizedPnl": ((mid - px) * sz).to_string(), "leverage": {"type": "cross", "value": 2}}})
                })
                .collect();
            let used: f64 = f.positions.iter().map(|(c, (sz, _))| sz.abs() * f.mids[c] / 2.0).sum();
            json!({"assetPositions": positions,
                "marginSummary": {"accountValue": "10000.0", "totalNtlPos": "0", "totalRawUsd": "10000.0", "totalMarginUsed": used.to_string()},
                "withdrawable": (10_000.0 - used).to_string(), "time": f.clock})
        }
        other => json!({"error": format!("unknown type {other}")}),
    };
    Json(answer)
}

const AGENT_KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";

async fn fake() -> (String, Shared) {
    let signer = Signer::from_hex(AGENT_KEY).unwrap().address();
    let state = Arc::new(Mutex::new(Fake {
        signer,
        mainnet: false,
        universe: vec![("BTC", 5, 40), ("ETH", 4, 25)],
        mids: BTreeMap::from([("BTC".to_string(), 100.0), ("ETH".to_string(), 10.0)]),
        orders: Vec::new(),
        fills: Vec::new(),
        positions: BTreeMap::new(),
        leverage: BTreeMap::new(),
        nonces: BTreeSet::new(),
        next_oid: 1000,
        slow_orders: 0,
        slow_for: Duration::from_millis(900),
        refused_signatures: 0,
        exchange_posts: 0,
        clock: 1_700_000_000_000,
    }));
    let app = axum::Router::new()
        .route("/exchange", axum::routing::post(exchange))
        .route("/info", axum::routing::post(info))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

fn config(url: &str) -> HyperliquidConfig {
    HyperliquidConfig {
        base_url: Some(url.into()),
        testnet: true,
        timeout: Duration::from_millis(300),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..HyperliquidConfig::default()
    }
}

fn client(url: &str) -> HyperliquidClient {
    HyperliquidClient::with_signer(&config(url), Signer::from_hex(AGENT_KEY).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The client against the fake.

#[tokio::test]
async fn orders_cancels_leverage_and_positions() {
    let (url, fake) = fake().await;
    let c = client(&url);
    c.set_leverage("BTC", 3).await.unwrap();
    assert_eq!(fake.lock().unwrap().leverage[&0], (true, 3));
    assert!(matches!(c.set_leverage("BTC", 41).await, Err(HyperliquidError::InvalidRequest(_))));

    // A resting limit order, found by its id, listed open, cancelled once.
    let limit = NewOrder {
        coin: "ETH".into(),
        is_buy: true,
        size: 1.23456,
        kind: OrderKind::Limit { px: 9.0 },
        reduce_only: false,
        id: "bid-1".into(),
    };
    let ack = c.place_order(&limit).await.unwrap();
    assert_eq!((ack.status.as_str(), ack.filled, ack.cloid.as_str()), ("open", 0.0, cloid("bid-1").as_str()));
    {
        let f = fake.lock().unwrap();
        let o = &f.by_cloid("bid-1")[0];
        // Size to ETH's 4 decimals; price as sent.
        assert_eq!((o.orig_sz, o.limit_px), (1.2346, 9.0));
    }
    let status = c.order_status("bid-1").await.unwrap().unwrap();
    assert_eq!((status.status.as_str(), status.order.oid), ("open", ack.oid));
    assert_eq!(c.open_orders().await.unwrap().len(), 1);
    assert!(c.cancel_by_cloid("ETH", "bid-1").await.unwrap());
    assert!(!c.cancel_by_cloid("ETH", "bid-1").await.unwrap(), "a second cancel finds nothing open");
    assert_eq!(c.order_status("bid-1").await.unwrap().unwrap().status, "canceled");
    assert!(c.order_status("never").await.unwrap().is_none());

    // A market buy fills at the mid; the position and balances show it.
    let buy = NewOrder {
        coin: "BTC".into(),
        is_buy: true,
        size: 0.5,
        kind: OrderKind::Market,
        reduce_only: false,
        id: "buy-1".into(),
    };
    let ack = c.place_order(&buy).await.unwrap();
    assert_eq!((ack.status.as_str(), ack.filled, ack.avg_px), ("filled", 0.5, Some(100.0)));
    // Its limit is the mid + 5 % at 5 significant figures.
    assert_eq!(fake.lock().unwrap().by_cloid("buy-1")[0].limit_px, 105.0);
    let state = c.account_state().await.unwrap();
    assert_eq!(state.positions.len(), 1);
    assert_eq!(
        (state.positions[0].coin.as_str(), state.positions[0].size, state.positions[0].entry_px),
        ("BTC", 0.5, Some(100.0))
    );
    assert_eq!((state.account_value, state.margin_used), (10_000.0, 25.0));

    // A cancel by oid of an order that is not open.
    let by_oid = c.cancel("BTC", 1).await.unwrap();
    assert!(!by_oid);
    let f = fake.lock().unwrap();
    assert_eq!(f.refused_signatures, 0, "every action was signed by the agent key");
}

#[tokio::test]
async fn another_key_is_refused_by_signature() {
    let (url, fake) = fake().await;
    let c = HyperliquidClient::with_signer(&config(&url), Signer::from_hex(SDK_KEY).unwrap()).unwrap();
    let e = c.set_leverage("BTC", 2).await.unwrap_err();
    assert!(matches!(&e, HyperliquidError::Refused(m) if m.contains("does not exist")), "{e}");
    assert_eq!(fake.lock().unwrap().refused_signatures, 1);
    // Mainnet signatures do not pass on the testnet either.
    let mainnet = HyperliquidConfig { testnet: false, ..config(&url) };
    let c = HyperliquidClient::with_signer(&mainnet, Signer::from_hex(AGENT_KEY).unwrap()).unwrap();
    assert!(c.set_leverage("BTC", 2).await.is_err());
    assert_eq!(fake.lock().unwrap().refused_signatures, 2);
}

#[tokio::test]
async fn a_timeout_after_placing_gives_one_order() {
    let (url, fake) = fake().await;
    let c = client(&url);
    // The fake places the order, then answers after the client's 300 ms timeout.
    fake.lock().unwrap().slow_orders = 1;
    let buy = NewOrder {
        coin: "BTC".into(),
        is_buy: true,
        size: 0.5,
        kind: OrderKind::Market,
        reduce_only: false,
        id: "intent-7".into(),
    };
    let ack = c.place_order(&buy).await.unwrap();
    assert_eq!((ack.status.as_str(), ack.filled, ack.avg_px), ("filled", 0.5, Some(100.0)));
    // Placed again (a redelivered intent): found, not posted.
    let again = c.place_order(&buy).await.unwrap();
    assert_eq!(again.oid, ack.oid);
    let f = fake.lock().unwrap();
    assert_eq!(f.by_cloid("intent-7").len(), 1, "exactly one order at the exchange");
    assert_eq!(f.exchange_posts, 1);
    assert_eq!(f.positions["BTC"].0, 0.5);
}

// ---------------------------------------------------------------------------------------------
// The exchange desk on Hyperliquid.

fn desk(url: &str) -> ExchangeDesk {
    let account = ExchangeAccount {
        id: "live".into(),
        profile: "p".into(),
        starting_balance: 1_000.0,
        leverage: 2,
        taker_fee: 0.00045,
        client: client(url).into(),
        reconcile_every: None,
    };
    ExchangeDesk::new(vec![account], DeskState::default())
}

fn bar() -> BarMark {
    BarMark {
        symbol: "BTCUSDT".into(),
        open_time: 0,
        close_time: 3_600_000,
        open: None,
        high: 102.0,
        low: 99.0,
        close: 100.0,
    }
}

fn order(seq: u64, intent: Intent, stop: Option<f64>, target: Option<f64>) -> RiskMessage {
    RiskMessage::Order(OrderIntent {
        id: format!("csv:BTCUSDT:1h:{seq}/p/live"),
        decision_id: format!("csv:BTCUSDT:1h:{seq}/p"),
        account: "live".into(),
        seq,
        bar: bar(),
        intent,
        direction: Direction::Long,
        side: if intent == Intent::Open { Side::Buy } else { Side::Sell },
        order_type: OrderType::Market,
        limit_price: None,
        quantity: 2.0,
        leverage: 2.0,
        stop_loss: stop,
        take_profit: target,
        trailing_stop_pct: None,
        reason: "test".into(),
        fill_sizing: None,
    })
}

fn mark(seq: u64) -> RiskMessage {
    RiskMessage::Mark(Mark { id: format!("m{seq}"), decision_id: "d".into(), account: "live".into(), seq, bar: bar() })
}

fn fills(events: &[ExecEvent]) -> Vec<(FillReason, f64, f64)> {
    events
        .iter()
        .filter_map(|e| if let ExecEvent::Fill(f) = e { Some((f.reason, f.quantity, f.price)) } else { None })
        .collect()
}

#[tokio::test]
async fn protective_orders_rest_and_a_fired_stop_is_booked_once() {
    let (url, fake) = fake().await;
    let mut desk = desk(&url);
    let out = desk.on_message(&order(1, Intent::Open, Some(95.0), Some(110.0))).await.unwrap();
    assert_eq!(fills(&out.events), [(FillReason::Entry, 2.0, 100.0)]);
    {
        let f = fake.lock().unwrap();
        assert_eq!(f.leverage[&0], (true, 2));
        let open = f.open();
        assert_eq!(open.len(), 2, "{open:?}");
        let sl = f.by_cloid("csv:BTCUSDT:1h:1/p/live:sl")[0];
        let tp = f.by_cloid("csv:BTCUSDT:1h:1/p/live:tp")[0];
        assert_eq!(
            (sl.trigger.clone().unwrap(), sl.is_buy, sl.reduce_only, sl.orig_sz),
            ((95.0, "sl".into()), false, true, 2.0)
        );
        assert_eq!(tp.trigger.clone().unwrap(), (110.0, "tp".into()));
        // A sell trigger's limit is below its trigger: 95 − 5 % = 90.25, at BTC's 6 − 5 = 1
        // decimal.
        assert_eq!(sl.limit_px, 90.3);
    }
    // Nothing fired: a mark books nothing.
    assert!(desk.on_message(&mark(2)).await.unwrap().events.is_empty());
    // The price falls through the stop: it fires at the exchange at 94.
    assert_eq!(fake.lock().unwrap().set_mid("BTC", 94.0).len(), 1);
    let out = desk.on_message(&mark(3)).await.unwrap();
    assert_eq!(fills(&out.events), [(FillReason::StopLoss, 2.0, 94.0)]);
    {
        let f = fake.lock().unwrap();
        assert_eq!(f.by_cloid("csv:BTCUSDT:1h:1/p/live:tp")[0].status, "canceled", "the take profit went with it");
        assert!(f.open().is_empty() && f.positions.is_empty());
    }
    assert!(desk.state.protection("live", "BTCUSDT").is_empty());
    let book = desk.book("live").unwrap();
    assert!(book.position("BTCUSDT").is_none());
    // Booked once: later marks book nothing.
    assert!(desk.on_message(&mark(4)).await.unwrap().events.is_empty());
    // A close finds nothing to close and sends nothing.
    let posts = fake.lock().unwrap().exchange_posts;
    assert!(fills(&desk.on_message(&order(5, Intent::Close, None, None)).await.unwrap().events).is_empty());
    assert_eq!(fake.lock().unwrap().exchange_posts, posts);
    assert_eq!(fake.lock().unwrap().refused_signatures, 0);
}

#[tokio::test]
async fn a_close_cancels_the_protection_then_sells_reduce_only() {
    let (url, fake) = fake().await;
    let mut desk = desk(&url);
    desk.on_message(&order(1, Intent::Open, Some(95.0), None)).await.unwrap();
    fake.lock().unwrap().set_mid("BTC", 103.0);
    let out = desk.on_message(&order(2, Intent::Close, None, None)).await.unwrap();
    assert_eq!(fills(&out.events), [(FillReason::Exit, 2.0, 103.0)]);
    let f = fake.lock().unwrap();
    assert_eq!(f.by_cloid("csv:BTCUSDT:1h:1/p/live:sl")[0].status, "canceled");
    let close = f.by_cloid("csv:BTCUSDT:1h:2/p/live")[0];
    assert!(close.reduce_only && !close.is_buy);
    assert!(f.positions.is_empty() && f.open().is_empty());
}

#[tokio::test]
async fn a_redelivered_intent_after_a_timeout_places_one_order() {
    let (url, fake) = fake().await;
    let mut desk = desk(&url);
    fake.lock().unwrap().slow_orders = 1;
    let out = desk.on_message(&order(1, Intent::Open, None, None)).await.unwrap();
    assert_eq!(fills(&out.events), [(FillReason::Entry, 2.0, 100.0)]);
    // The worker restarted from a checkpoint before this message: a fresh desk sees it again.
    let mut fresh = self::desk(&url);
    let out = fresh.on_message(&order(1, Intent::Open, None, None)).await.unwrap();
    assert_eq!(fills(&out.events), [(FillReason::Entry, 2.0, 100.0)], "booked from the order found");
    let f = fake.lock().unwrap();
    assert_eq!(f.by_cloid("csv:BTCUSDT:1h:1/p/live").len(), 1);
    assert_eq!(f.positions["BTC"].0, 2.0);
}

#[tokio::test]
async fn a_trailing_stop_is_refused_without_undoing_the_entry() {
    let (url, fake) = fake().await;
    let mut desk = desk(&url);
    let RiskMessage::Order(o) = order(1, Intent::Open, Some(95.0), None) else { unreachable!() };
    let msg = RiskMessage::Order(OrderIntent { trailing_stop_pct: Some(0.02), ..o });
    let out = desk.on_message(&msg).await.unwrap();
    assert_eq!(fills(&out.events), [(FillReason::Entry, 2.0, 100.0)]);
    let kinds: Vec<_> = desk.state.protection("live", "BTCUSDT").iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [tradeflow_exec::exchange::ProtectiveKind::StopLoss]);
    assert_eq!(fake.lock().unwrap().open().len(), 1);
}

#[tokio::test]
async fn a_refused_close_says_why_and_is_not_retried() {
    let (url, fake) = fake().await;
    let mut desk = desk(&url);
    desk.on_message(&order(1, Intent::Open, None, None)).await.unwrap();
    // Someone closed the position on the exchange by hand.
    {
        let mut f = fake.lock().unwrap();
        f.positions.clear();
    }
    let e = desk.on_message(&order(2, Intent::Close, None, None)).await.unwrap_err();
    assert!(matches!(&e, ExchangeError::Refused(m) if m.contains("Reduce only")), "{e}");
}
