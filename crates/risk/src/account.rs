//! Accounts (config `[[account]]`): a "bot" that follows one ensemble profile with its own
//! balance, leverage, sizing and limits. Several accounts can follow different profiles at
//! once and be ranked against each other.

use serde::{Deserialize, Serialize};
use tradeflow_exec::paper::PaperConfig;

/// Where an account's orders are executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorKind {
    Paper,
    BinanceFutures,
    HyperliquidPerp,
}

impl ExecutorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paper => "paper",
            Self::BinanceFutures => "binance_futures",
            Self::HyperliquidPerp => "hyperliquid_perp",
        }
    }
}

/// How an approved entry is sized.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Sizing {
    /// Position notional = `fraction` × equity.
    FixedFraction { fraction: f64 },
    /// Quantity such that hitting the stop loses `risk` × equity (needs a stop loss).
    FixedRisk { risk: f64 },
    /// Notional = min(Kelly fraction, `cap`) × equity, Kelly = p − (1 − p) / b with p the
    /// decision's confidence and b the take-profit / stop distance ratio (or `payoff` when the
    /// decision has no exits). A non-positive Kelly fraction sizes nothing.
    Kelly { cap: f64, payoff: f64 },
    /// Everything the account has (`sizing = { method = "all_in" }`): the book sizes the
    /// entry when it fills, to what the available margin buys at the fill price with the taker
    /// fee, floored to the paper `lot_step` (see `PaperBook::all_in_quantity`). Risk runs its
    /// checks on the same computation at the decision bar's close. With `paper = { taker_fee =
    /// 0.001, slippage_bps = 0.0, fill_at = "next_open", lot_step = 1e-8 }`, leverage 1 and no
    /// shorts this is backtesting.py's `buy()` with `commission=0.001` on a fractional unit
    /// of 1e-8.
    AllIn,
}

impl Default for Sizing {
    fn default() -> Self {
        Self::FixedFraction { fraction: 0.1 }
    }
}

/// Risk limits of an account. Unset optional limits do not apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskLimits {
    /// Decisions below this confidence are refused.
    pub min_confidence: f64,
    pub max_open_positions: u32,
    /// Quote currency.
    pub max_position_notional: Option<f64>,
    /// Fraction of equity (1.0 = 100 %).
    pub max_position_pct_of_equity: f64,
    /// Total notional / equity after the order.
    pub max_leverage: f64,
    /// Quote currency, per symbol.
    pub max_symbol_exposure: Option<f64>,
    /// Fraction of start-of-day equity (UTC day of the bar).
    pub daily_loss_limit: f64,
    /// Fraction below peak equity that trips the circuit breaker (halted until reset).
    pub max_drawdown: f64,
    /// After this many losing trades in a row, no entries for `cooldown_ms` (0 = off).
    pub cooldown_after_losses: u32,
    pub cooldown_ms: i64,
    pub stop_loss_required: bool,
    /// Below this notional an order is not worth sending.
    pub min_notional: f64,
    /// Exchange accounts: how far risk's own book may differ from what the exchange reports
    /// (balance, and each position's quantity, as a fraction of the exchange's figure) before
    /// the difference is a `reconcile_mismatch` alert. Risk takes the exchange's numbers
    /// either way.
    pub reconcile_tolerance: f64,
    /// Exchange accounts: how often (seconds) the executor reads the exchange's balance,
    /// positions and open orders and reports them to risk, besides after every fill; 0: only
    /// after fills. At least 5 (each reading costs request weight: 5 + 5 + 40 on Binance).
    pub reconcile_every_s: u64,
}

impl Default for RiskLimits {
    fn default() -> Self {
        Self {
            min_confidence: 0.0,
            max_open_positions: 5,
            max_position_notional: None,
            max_position_pct_of_equity: 1.0,
            max_leverage: 10.0,
            max_symbol_exposure: None,
            daily_loss_limit: 0.05,
            max_drawdown: 0.25,
            cooldown_after_losses: 3,
            cooldown_ms: 4 * 3_600_000,
            stop_loss_required: false,
            min_notional: 5.0,
            reconcile_tolerance: 0.001,
            reconcile_every_s: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Stream key of everything this account does; letters, digits, '-', '_' and '.'.
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// The ensemble profile whose decisions it trades.
    pub profile: String,
    #[serde(default = "default_executor")]
    pub executor: ExecutorKind,
    pub starting_balance: f64,
    #[serde(default = "default_leverage")]
    pub leverage: f64,
    #[serde(default = "default_true")]
    pub trading_enabled: bool,
    #[serde(default = "default_true")]
    pub allow_short: bool,
    /// Trailing stop for every position, as a fraction (0.02 = 2 %).
    #[serde(default)]
    pub trailing_stop_pct: Option<f64>,
    #[serde(default)]
    pub sizing: Sizing,
    #[serde(default)]
    pub risk: RiskLimits,
    /// Fees, slippage and maintenance margin of the paper broker (for exchange accounts, the
    /// taker fee used to book fills).
    #[serde(default)]
    pub paper: PaperConfig,
    /// Exchange connection, required with executor `binance_futures`.
    #[serde(default)]
    pub binance: Option<BinanceAccount>,
    /// Exchange connection, required with executor `hyperliquid_perp`.
    #[serde(default)]
    pub hyperliquid: Option<HyperliquidAccount>,
}

/// How an exchange account reaches Binance USDⓈ-M futures. Keys are read from the named
/// environment variables, never from files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinanceAccount {
    #[serde(default)]
    pub testnet: bool,
    /// Overrides the REST base URL (a local fake in tests).
    #[serde(default)]
    pub base_url: Option<String>,
    pub api_key_env: String,
    pub secret_env: String,
}

/// How an exchange account reaches Hyperliquid perpetuals. The signing key (the account's own,
/// or an API wallet approved for it) is read from the named environment variable, never from
/// files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HyperliquidAccount {
    /// Sign for the testnet and, without `base_url`, connect to it.
    #[serde(default)]
    pub testnet: bool,
    /// Overrides the API base URL (a local fake in tests).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the hex signing key.
    #[serde(default = "default_hyperliquid_key_env")]
    pub key_env: String,
    /// The account traded (`0x…`) when the key is an API wallet's; default: the key's address.
    #[serde(default)]
    pub account_address: Option<String>,
    /// A vault or sub-account traded on behalf of (`0x…`).
    #[serde(default)]
    pub vault_address: Option<String>,
    /// Our symbol → Hyperliquid coin; unlisted symbols drop a USDT/USDC/USD suffix.
    #[serde(default)]
    pub coins: std::collections::BTreeMap<String, String>,
    /// Worst fill of a market order away from the mid, as a fraction (default 0.05).
    #[serde(default = "default_hyperliquid_slippage")]
    pub slippage: f64,
}

fn default_hyperliquid_key_env() -> String {
    "HYPERLIQUID_PRIVATE_KEY".into()
}
fn default_hyperliquid_slippage() -> f64 {
    0.05
}

impl HyperliquidAccount {
    /// The client configuration this table describes.
    pub fn client_config(&self) -> tradeflow_exec::hyperliquid::HyperliquidConfig {
        tradeflow_exec::hyperliquid::HyperliquidConfig {
            base_url: self.base_url.clone(),
            testnet: self.testnet,
            key_env: self.key_env.clone(),
            account_address: self.account_address.clone(),
            vault_address: self.vault_address.clone(),
            coins: self.coins.clone(),
            slippage: self.slippage,
            ..Default::default()
        }
    }
}

fn default_executor() -> ExecutorKind {
    ExecutorKind::Paper
}
fn default_leverage() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}

impl AccountConfig {
    /// A paper account with default limits.
    pub fn paper(id: &str, profile: &str, starting_balance: f64) -> Self {
        Self {
            id: id.into(),
            name: id.into(),
            profile: profile.into(),
            executor: ExecutorKind::Paper,
            starting_balance,
            leverage: 1.0,
            trading_enabled: true,
            allow_short: true,
            trailing_stop_pct: None,
            sizing: Sizing::default(),
            risk: RiskLimits::default(),
            paper: PaperConfig::default(),
            binance: None,
            hyperliquid: None,
        }
    }

    /// Every problem, each with its key path (`account[0].leverage: ...`).
    pub fn validate(&self, path: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.id.is_empty()
            || self.id.len() > 64
            || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            p.push(format!("{path}.id: {:?} must be 1-64 letters, digits, '-', '_' or '.'", self.id));
        }
        if self.profile.is_empty() {
            p.push(format!("{path}.profile: name the ensemble profile this account follows"));
        }
        if !(self.starting_balance.is_finite() && self.starting_balance > 0.0) {
            p.push(format!("{path}.starting_balance: must be a positive number, got {}", self.starting_balance));
        }
        if !(self.leverage.is_finite() && (1.0..=125.0).contains(&self.leverage)) {
            p.push(format!("{path}.leverage: must be within 1..=125, got {}", self.leverage));
        }
        if let Some(t) = self.trailing_stop_pct
            && !(t > 0.0 && t < 1.0)
        {
            p.push(format!("{path}.trailing_stop_pct: must be within (0, 1), got {t}"));
        }
        match self.sizing {
            Sizing::FixedFraction { fraction } if !(fraction > 0.0 && fraction <= 10.0) => {
                p.push(format!("{path}.sizing.fraction: must be within (0, 10], got {fraction}"))
            }
            Sizing::FixedRisk { risk } if !(risk > 0.0 && risk <= 0.5) => {
                p.push(format!("{path}.sizing.risk: must be within (0, 0.5], got {risk}"))
            }
            Sizing::Kelly { cap, payoff } => {
                if !(cap > 0.0 && cap <= 1.0) {
                    p.push(format!("{path}.sizing.cap: must be within (0, 1], got {cap}"));
                }
                if !(payoff.is_finite() && payoff > 0.0) {
                    p.push(format!("{path}.sizing.payoff: must be a positive number, got {payoff}"));
                }
            }
            _ => {}
        }
        if matches!(self.sizing, Sizing::FixedRisk { .. }) && !self.risk.stop_loss_required {
            // Fixed-risk sizing cannot size without a stop; say so rather than refuse every entry.
            p.push(format!("{path}.risk.stop_loss_required: must be true with sizing method \"fixed_risk\""));
        }
        let r = &self.risk;
        let rp = format!("{path}.risk");
        if !(0.0..=1.0).contains(&r.min_confidence) {
            p.push(format!("{rp}.min_confidence: must be within 0..1, got {}", r.min_confidence));
        }
        if r.max_open_positions == 0 {
            p.push(format!("{rp}.max_open_positions: must be at least 1"));
        }
        for (name, v) in
            [("max_position_notional", r.max_position_notional), ("max_symbol_exposure", r.max_symbol_exposure)]
        {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                p.push(format!("{rp}.{name}: must be a positive number, got {v}"));
            }
        }
        if !(r.max_position_pct_of_equity > 0.0 && r.max_position_pct_of_equity <= 100.0) {
            p.push(format!(
                "{rp}.max_position_pct_of_equity: must be within (0, 100], got {}",
                r.max_position_pct_of_equity
            ));
        }
        if !(r.max_leverage.is_finite() && r.max_leverage > 0.0) {
            p.push(format!("{rp}.max_leverage: must be a positive number, got {}", r.max_leverage));
        }
        if !(r.daily_loss_limit > 0.0 && r.daily_loss_limit <= 1.0) {
            p.push(format!("{rp}.daily_loss_limit: must be within (0, 1], got {}", r.daily_loss_limit));
        }
        if !(r.max_drawdown > 0.0 && r.max_drawdown <= 1.0) {
            p.push(format!("{rp}.max_drawdown: must be within (0, 1], got {}", r.max_drawdown));
        }
        if r.cooldown_ms < 0 {
            p.push(format!("{rp}.cooldown_ms: must be 0 or more, got {}", r.cooldown_ms));
        }
        if !(r.reconcile_tolerance.is_finite() && r.reconcile_tolerance >= 0.0) {
            p.push(format!("{rp}.reconcile_tolerance: must be 0 or more, got {}", r.reconcile_tolerance));
        }
        if (1..5).contains(&r.reconcile_every_s) {
            p.push(format!("{rp}.reconcile_every_s: must be 0 (off) or at least 5, got {}", r.reconcile_every_s));
        }
        if !(r.min_notional.is_finite() && r.min_notional >= 0.0) {
            p.push(format!("{rp}.min_notional: must be 0 or more, got {}", r.min_notional));
        }
        match (&self.executor, &self.binance) {
            (ExecutorKind::BinanceFutures, None) => p.push(format!(
                "{path}.binance: executor \"binance_futures\" needs a [binance] table (api_key_env, secret_env)"
            )),
            (ExecutorKind::BinanceFutures, Some(_)) if self.leverage.fract() != 0.0 => {
                p.push(format!("{path}.leverage: Binance takes whole leverage values, got {}", self.leverage))
            }
            (ExecutorKind::Paper | ExecutorKind::HyperliquidPerp, Some(_)) => p.push(format!(
                "{path}.binance: only for executor \"binance_futures\" (this account is {})",
                self.executor.as_str()
            )),
            _ => {}
        }
        match (&self.executor, &self.hyperliquid) {
            (ExecutorKind::HyperliquidPerp, None) => p.push(format!(
                "{path}.hyperliquid: executor \"hyperliquid_perp\" needs a [hyperliquid] table (key_env, testnet)"
            )),
            (ExecutorKind::HyperliquidPerp, Some(h)) => {
                if self.leverage.fract() != 0.0 {
                    p.push(format!("{path}.leverage: Hyperliquid takes whole leverage values, got {}", self.leverage));
                }
                if self.trailing_stop_pct.is_some() {
                    p.push(format!(
                        "{path}.trailing_stop_pct: Hyperliquid has no trailing stop orders (use stop loss / take profit)"
                    ));
                }
                if let Err(problems) = h.client_config().validate() {
                    p.extend(problems.into_iter().map(|e| format!("{path}.hyperliquid.{e}")));
                }
            }
            (_, Some(_)) => p.push(format!(
                "{path}.hyperliquid: only for executor \"hyperliquid_perp\" (this account is {})",
                self.executor.as_str()
            )),
            _ => {}
        }
        if self.executor != ExecutorKind::Paper && self.paper.fill_at != tradeflow_exec::paper::FillAt::Close {
            p.push(format!(
                "{path}.paper.fill_at: \"next_open\" is for paper accounts (an exchange fills when it fills)"
            ));
        }
        if let Err(problems) = self.paper.validate() {
            p.extend(problems.into_iter().map(|e| format!("{path}.paper.{e}")));
        }
        p
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    account: Vec<AccountConfig>,
}

/// Accounts from TOML (`[[account]]` tables), every problem reported at once. `profiles` are
/// the names of the configured ensemble profiles; an account following another is refused.
pub fn parse_accounts(text: &str, profiles: &[&str]) -> Result<Vec<AccountConfig>, Vec<String>> {
    let file: AccountsFile = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    for (i, a) in file.account.iter().enumerate() {
        let path = format!("account[{i}]");
        problems.extend(a.validate(&path));
        if file.account[..i].iter().any(|b| b.id == a.id) {
            problems.push(format!("{path}.id: {:?} is used twice", a.id));
        }
        if !a.profile.is_empty() && !profiles.contains(&a.profile.as_str()) {
            problems.push(format!(
                "{path}.profile: no ensemble profile is named {:?} (configured: {})",
                a.profile,
                profiles.join(", ")
            ));
        }
    }
    if file.account.is_empty() {
        problems.push("account: define at least one account".into());
    }
    if problems.is_empty() { Ok(file.account) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_named() {
        let text = r#"
[[account]]
id = "a b"
profile = "nope"
starting_balance = -1.0
leverage = 200.0
trailing_stop_pct = 1.5
sizing = { method = "kelly", cap = 2.0, payoff = 0.0 }
risk = { max_open_positions = 0, daily_loss_limit = 0.0, max_drawdown = 2.0 }

[[account]]
id = "ok"
profile = "technical"
starting_balance = 1000.0

[[account]]
id = "ok"
profile = "technical"
starting_balance = 1000.0
sizing = { method = "fixed_risk", risk = 0.01 }
"#;
        let problems = parse_accounts(text, &["technical"]).unwrap_err();
        let expected = [
            r#"account[0].id: "a b" must be 1-64 letters, digits, '-', '_' or '.'"#,
            "account[0].starting_balance: must be a positive number, got -1",
            "account[0].leverage: must be within 1..=125, got 200",
            "account[0].trailing_stop_pct: must be within (0, 1), got 1.5",
            "account[0].sizing.cap: must be within (0, 1], got 2",
            "account[0].sizing.payoff: must be a positive number, got 0",
            "account[0].risk.max_open_positions: must be at least 1",
            "account[0].risk.daily_loss_limit: must be within (0, 1], got 0",
            "account[0].risk.max_drawdown: must be within (0, 1], got 2",
            r#"account[0].profile: no ensemble profile is named "nope" (configured: technical)"#,
            r#"account[2].risk.stop_loss_required: must be true with sizing method "fixed_risk""#,
            r#"account[2].id: "ok" is used twice"#,
        ];
        assert_eq!(problems, expected);
    }

    #[test]
    fn defaults_are_sane() {
        let a = parse_accounts("[[account]]\nid='p1'\nprofile='t'\nstarting_balance=10000.0\n", &["t"]).unwrap();
        assert_eq!(a[0].executor, ExecutorKind::Paper);
        assert_eq!(a[0].leverage, 1.0);
        assert_eq!(a[0].risk.daily_loss_limit, 0.05);
        assert!(a[0].trading_enabled);
    }

    #[test]
    fn hyperliquid_accounts_need_their_table_and_say_what_is_wrong() {
        let text = r#"
[[account]]
id = "hl"
profile = "t"
starting_balance = 1000.0
executor = "hyperliquid_perp"
leverage = 3.0
[account.hyperliquid]
testnet = true
vault_address = "0x1719884eb866cb12b2287399b15f7db5e7d775ea"
coins = { PEPEUSDT = "kPEPE" }

[[account]]
id = "bad"
profile = "t"
starting_balance = 1000.0
executor = "hyperliquid_perp"
leverage = 2.5
trailing_stop_pct = 0.02
[account.hyperliquid]
key_env = ""
account_address = "0x12"
slippage = 0.9

[[account]]
id = "none"
profile = "t"
starting_balance = 1000.0
executor = "hyperliquid_perp"

[[account]]
id = "paper"
profile = "t"
starting_balance = 1000.0
[account.hyperliquid]
"#;
        let problems = parse_accounts(text, &["t"]).unwrap_err();
        let expected = [
            "account[1].leverage: Hyperliquid takes whole leverage values, got 2.5",
            "account[1].trailing_stop_pct: Hyperliquid has no trailing stop orders (use stop loss / take profit)",
            r#"account[1].hyperliquid.key_env: "" is not an environment variable name"#,
            r#"account[1].hyperliquid.account_address: "0x12" is not an address (0x and 40 hex digits)"#,
            "account[1].hyperliquid.slippage: 0.9 is not within (0, 0.5)",
            r#"account[2].hyperliquid: executor "hyperliquid_perp" needs a [hyperliquid] table (key_env, testnet)"#,
            r#"account[3].hyperliquid: only for executor "hyperliquid_perp" (this account is paper)"#,
        ];
        assert_eq!(problems, expected);
        let ok = text.split("[[account]]").nth(1).unwrap();
        let a = parse_accounts(&format!("[[account]]{ok}"), &["t"]).unwrap();
        let h = a[0].hyperliquid.as_ref().unwrap().client_config();
        assert_eq!(
            (a[0].executor.as_str(), h.testnet, h.key_env.as_str()),
            ("hyperliquid_perp", true, "HYPERLIQUID_PRIVATE_KEY")
        );
        assert_eq!(h.coin("PEPEUSDT"), "kPEPE");
    }
}
