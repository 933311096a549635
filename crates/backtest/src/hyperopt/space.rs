//! The search space (a TOML file of `[param]` entries) and how a set of parameter values is
//! applied to the base configuration.
//!
//! A parameter names a key of the base configuration: `rules.<key>` (the `[rules]` of
//! `--llm-config`, e.g. `rules.sma_cross.fast`), `condition.<key>`, `profile.<name>.<key>`
//! (`weights.<model>` for a model's weight, `min_confidence`, `method`, ...) or
//! `account.<id>.<key>` (`sizing.fraction`, `risk.max_drawdown`, `paper.taker_fee`, ...).
//! Values are applied by editing the parsed structs through their serde form (serialise,
//! set the key, deserialise), then each struct's own `validate` runs, so a parameter set is
//! held to exactly the rules a configuration file is.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tradeflow_ensemble::Profile;
use tradeflow_inference::condition::ConditionParams;
use tradeflow_inference::rules::RuleParams;
use tradeflow_inference::stage::ModelSpec;
use tradeflow_risk::AccountConfig;

use crate::engine::BacktestConfig;
use crate::report::ReportOptions;

/// The values a parameter may take.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// Whole numbers `low..=high` in steps of `step` (from `low`); `log`: sampled
    /// log-uniformly.
    Int { low: i64, high: i64, step: i64, log: bool },
    /// Numbers in `low..=high`; with `step`, only `low + k × step`.
    Float { low: f64, high: f64, step: Option<f64>, log: bool },
    /// One of these values (strings, numbers or booleans).
    Choice(Vec<Value>),
}

impl Domain {
    /// Every value, for the discrete domains (`None` for a float range without a step).
    pub fn levels(&self) -> Option<Vec<Value>> {
        match self {
            Domain::Int { low, high, step, .. } => {
                Some((0..).map(|k| low + k * step).take_while(|v| v <= high).map(Value::from).collect())
            }
            Domain::Float { low, high, step: Some(step), .. } => {
                // A tolerance of a millionth of a step so that 0.1..0.3 step 0.1 ends at 0.3.
                let n = ((high - low) / step + 1e-6).floor() as usize + 1;
                Some((0..n).map(|k| Value::from(round_to_step(low + k as f64 * step, *step))).collect())
            }
            Domain::Float { step: None, .. } => None,
            Domain::Choice(values) => Some(values.clone()),
        }
    }
}

/// `x` without the binary noise `k × step` leaves (0.30000000000000004 → 0.3), so that the
/// values printed and written to files are the ones a user would type.
fn round_to_step(x: f64, step: f64) -> f64 {
    let decimals = (-step.log10().floor()).max(0.0) as i32 + 9;
    let scale = 10f64.powi(decimals.min(15));
    (x * scale).round() / scale
}

/// One parameter of the space.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Its key, e.g. `rules.sma_cross.fast`.
    pub name: String,
    pub domain: Domain,
    /// Where it is in the configuration tree (the name split at the tree's own keys, which
    /// may hold dots, e.g. a profile named `a.b`).
    path: Vec<String>,
}

impl Param {
    /// A parameter built in code (the name's dots separate its keys).
    pub fn new(name: &str, domain: Domain) -> Self {
        Self { name: name.to_string(), domain, path: name.split('.').map(str::to_string).collect() }
    }
}

/// The parameters, sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    pub params: Vec<Param>,
}

/// One value per parameter of the space, in the space's order.
pub type Assignment = Vec<Value>;

/// The configuration every trial starts from.
#[derive(Debug, Clone)]
pub struct Base {
    pub config: BacktestConfig,
    pub options: ReportOptions,
    tree: Value,
}

/// Keys that name or wire things rather than tune them: not parameters.
const NOT_PARAMETERS: [&str; 5] = ["name", "id", "profile", "executor", "binance"];

impl Base {
    pub fn new(config: BacktestConfig, options: ReportOptions) -> Result<Self, String> {
        let json = |v: Result<Value, serde_json::Error>| v.map_err(|e| format!("cannot read the configuration: {e}"));
        let mut profiles = Map::new();
        for p in &config.profiles {
            let mut v = json(serde_json::to_value(p))?;
            // `weights.<model>` reads better than `models.<model>` for what it is.
            if let Some(o) = v.as_object_mut()
                && let Some(models) = o.remove("models")
            {
                o.insert("weights".into(), models);
            }
            profiles.insert(p.name.clone(), v);
        }
        let mut accounts = Map::new();
        for a in &config.accounts {
            accounts.insert(a.id.clone(), json(serde_json::to_value(a))?);
        }
        let mut tree = Map::new();
        tree.insert("rules".into(), json(serde_json::to_value(&config.inference.rules))?);
        tree.insert("condition".into(), json(serde_json::to_value(&config.inference.condition))?);
        tree.insert("profile".into(), Value::Object(profiles));
        tree.insert("account".into(), Value::Object(accounts));
        Ok(Self { config, options, tree: Value::Object(tree) })
    }

    /// Every parameter name of this configuration, sorted.
    pub fn parameter_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        leaves(&self.tree, "", &mut out);
        out
    }

    /// The configuration with `values` set (one per parameter of `space`), checked as a
    /// configuration file would be; every problem at once.
    pub fn apply(&self, space: &Space, values: &[Value]) -> Result<(BacktestConfig, ReportOptions), Vec<String>> {
        let mut tree = self.tree.clone();
        for (p, v) in space.params.iter().zip(values) {
            if let Some(slot) = lookup_mut(&mut tree, &p.path) {
                *slot = v.clone();
            }
        }
        let mut problems = Vec::new();
        let mut config = self.config.clone();
        let mut take = |key: &str| tree.get_mut(key).map(Value::take).unwrap_or(Value::Null);
        let rules: Option<RuleParams> = decode(take("rules"), "rules", &mut problems);
        let condition: Option<ConditionParams> = decode(take("condition"), "condition", &mut problems);
        let mut profiles_tree = take("profile");
        let mut accounts_tree = take("account");
        if let Some(r) = rules {
            problems.extend(r.validate().into_iter().map(|e| format!("rules: {e}")));
            config.inference.rules = r;
        }
        if let Some(c) = condition {
            problems.extend(c.validate().into_iter().map(|e| format!("condition: {e}")));
            config.inference.condition = c;
        }
        for p in &mut config.profiles {
            let path = format!("profile.{}", p.name);
            let mut v = profiles_tree.get_mut(&p.name).map(Value::take).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut()
                && let Some(w) = o.remove("weights")
            {
                o.insert("models".into(), w);
            }
            if let Some(new) = decode::<Profile>(v, &path, &mut problems) {
                problems.extend(new.validate(&path));
                *p = new;
            }
        }
        for a in &mut config.accounts {
            let path = format!("account.{}", a.id);
            let v = accounts_tree.get_mut(&a.id).map(Value::take).unwrap_or(Value::Null);
            if let Some(new) = decode::<AccountConfig>(v, &path, &mut problems) {
                problems.extend(new.validate(&path));
                *a = new;
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut options = self.options.clone();
        // The sma_cross model alone acts from its slow SMA's first value on (the bar
        // backtesting.py's Buy & Hold and exposure start from).
        if config.inference.models == [ModelSpec::SmaCross] {
            options.first_trading_bar = config.inference.rules.sma_cross.slow.saturating_sub(1);
        }
        Ok((config, options))
    }
}

fn decode<T: serde::de::DeserializeOwned>(v: Value, path: &str, problems: &mut Vec<String>) -> Option<T> {
    match serde_json::from_value(v) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(format!("{path}: {e}"));
            None
        }
    }
}

fn leaves(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                if NOT_PARAMETERS.contains(&k.as_str()) && !prefix.is_empty() && !prefix.ends_with(".weights") {
                    continue;
                }
                let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                leaves(child, &name, out);
            }
        }
        Value::Array(_) => {}
        _ => out.push(prefix.to_string()),
    }
}

fn lookup_mut<'a>(tree: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(tree, |v, k| v.get_mut(k))
}

/// Splits `name` along the keys of `tree` (longest key first, since keys may hold dots):
/// the path found, and how much of `name` it covers (all of it when the name is a key).
fn resolve<'a>(tree: &'a Value, name: &str) -> (Vec<String>, &'a Value, bool) {
    let mut path = Vec::new();
    let mut node = tree;
    let mut rest = name;
    loop {
        let Some(o) = node.as_object() else { return (path, node, rest.is_empty()) };
        let found = o
            .keys()
            .filter(|k| rest == k.as_str() || rest.strip_prefix(k.as_str()).is_some_and(|r| r.starts_with('.')))
            .max_by_key(|k| k.len());
        let Some(k) = found else { return (path, node, rest.is_empty()) };
        path.push(k.clone());
        node = &o[k];
        rest = rest[k.len()..].strip_prefix('.').unwrap_or("");
        if rest.is_empty() {
            return (path, node, true);
        }
    }
}

const SPEC_KEYS: [&str; 5] = ["int", "float", "choice", "step", "log"];

/// Reads a space file against `base`: every problem at once, each with its key path.
pub fn parse_space(text: &str, base: &Base) -> Result<Space, Vec<String>> {
    let table: toml::Table = toml::from_str(text).map_err(|e| vec![e.to_string().trim_end().to_string()])?;
    let mut problems = Vec::new();
    let mut specs: BTreeMap<String, toml::Table> = BTreeMap::new();
    for (k, v) in &table {
        if k != "param" {
            problems.push(format!("{k}: unknown key; a space file holds one [param] table"));
            continue;
        }
        match v.as_table() {
            Some(t) => flatten(t, "", &mut specs, &mut problems),
            None => problems.push("param: expected a table of parameters".into()),
        }
    }
    if specs.is_empty() && problems.is_empty() {
        problems.push(
            "param: name at least one parameter, e.g. [param] \"rules.sma_cross.fast\" = { int = [5, 50] }".into(),
        );
    }
    let valid = base.parameter_names();
    let mut params = Vec::new();
    for (name, spec) in &specs {
        let at = format!("param.{}", quote(name));
        let domain = parse_domain(spec, &at, &mut problems);
        let (path, node, whole) = resolve(&base.tree, name);
        let is_param = whole && !node.is_object() && !node.is_array() && valid.contains(name);
        if !is_param {
            let prefix = path.join(".");
            let under: Vec<&String> = valid
                .iter()
                .filter(|v| prefix.is_empty() || v.starts_with(&format!("{prefix}.")) || **v == prefix)
                .collect();
            let list = if under.is_empty() { valid.iter().collect() } else { under };
            problems.push(format!(
                "{at}: unknown parameter; valid{}: {}",
                if prefix.is_empty() { String::new() } else { format!(" under {prefix}") },
                list.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
            continue;
        }
        let Some(domain) = domain else { continue };
        check_type(&domain, node, &at, &mut problems);
        params.push(Param { name: name.clone(), domain, path });
    }
    if problems.is_empty() { Ok(Space { params }) } else { Err(problems) }
}

fn quote(name: &str) -> String {
    format!("{name:?}")
}

/// `[param]` entries, nested by dotted keys or written as quoted names: a table with `int`,
/// `float` or `choice` is a parameter, any other table goes one level down.
fn flatten(t: &toml::Table, prefix: &str, specs: &mut BTreeMap<String, toml::Table>, problems: &mut Vec<String>) {
    for (k, v) in t {
        let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v.as_table() {
            Some(inner) if ["int", "float", "choice"].iter().any(|s| inner.contains_key(*s)) => {
                if specs.insert(name.clone(), inner.clone()).is_some() {
                    problems.push(format!("param.{}: given twice", quote(&name)));
                }
            }
            Some(inner) if !inner.is_empty() && inner.values().all(toml::Value::is_table) => {
                flatten(inner, &name, specs, problems)
            }
            _ => problems.push(format!(
                "param.{}: expected {{ int = [LOW, HIGH] }}, {{ float = [LOW, HIGH] }} or {{ choice = [...] }}",
                quote(&name)
            )),
        }
    }
}

fn parse_domain(spec: &toml::Table, at: &str, problems: &mut Vec<String>) -> Option<Domain> {
    for k in spec.keys() {
        if !SPEC_KEYS.contains(&k.as_str()) {
            problems.push(format!("{at}.{k}: unknown key; expected one of {}", SPEC_KEYS.join(", ")));
        }
    }
    let kinds: Vec<&str> = ["int", "float", "choice"].into_iter().filter(|k| spec.contains_key(*k)).collect();
    if kinds.len() > 1 {
        problems.push(format!("{at}: give one of int, float or choice, not {}", kinds.join(" and ")));
        return None;
    }
    let log = match spec.get("log") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(other) => {
            problems.push(format!("{at}.log: expected true or false, got {other}"));
            false
        }
    };
    let domain = match kinds.first().copied() {
        Some("int") => {
            let bounds = pair(&spec["int"], &format!("{at}.int"), problems, |v| v.as_integer().map(|i| i as f64));
            let step = match spec.get("step") {
                None => Some(1),
                Some(toml::Value::Integer(s)) if *s > 0 => Some(*s),
                Some(other) => {
                    problems.push(format!("{at}.step: expected a whole number above 0, got {other}"));
                    None
                }
            };
            let (low, high) = bounds?;
            let (low, high) = (low as i64, high as i64);
            if log && low < 1 {
                problems.push(format!("{at}.log: a log scale needs a low bound of at least 1, got {low}"));
            }
            Domain::Int { low, high, step: step?, log }
        }
        Some("float") => {
            let bounds = pair(&spec["float"], &format!("{at}.float"), problems, toml_number);
            let step = match spec.get("step") {
                None => None,
                Some(v) => match toml_number(v) {
                    Some(s) if s > 0.0 && s.is_finite() => Some(s),
                    _ => {
                        problems.push(format!("{at}.step: expected a number above 0, got {v}"));
                        None
                    }
                },
            };
            let (low, high) = bounds?;
            if log && low <= 0.0 {
                problems.push(format!("{at}.log: a log scale needs a low bound above 0, got {low}"));
            }
            Domain::Float { low, high, step, log }
        }
        Some(_) => {
            for k in ["step", "log"] {
                if spec.contains_key(k) {
                    problems.push(format!("{at}.{k}: not for a choice"));
                }
            }
            let values = match spec["choice"].as_array() {
                Some(a) if !a.is_empty() => a,
                _ => {
                    problems.push(format!("{at}.choice: expected a list of at least one value"));
                    return None;
                }
            };
            let mut out = Vec::new();
            for (i, v) in values.iter().enumerate() {
                match v {
                    toml::Value::String(_)
                    | toml::Value::Integer(_)
                    | toml::Value::Float(_)
                    | toml::Value::Boolean(_) => {
                        let j = serde_json::to_value(v).unwrap_or(Value::Null);
                        if out.contains(&j) {
                            problems.push(format!("{at}.choice[{i}]: {v} is listed twice"));
                        }
                        out.push(j);
                    }
                    other => {
                        problems.push(format!("{at}.choice[{i}]: expected a string, number or boolean, got {other}"))
                    }
                }
            }
            Domain::Choice(out)
        }
        None => return None,
    };
    // A domain with problems still has its values checked against its key (the space is
    // refused anyway), so that every problem is reported at once.
    Some(domain)
}

fn toml_number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) if f.is_finite() => Some(*f),
        _ => None,
    }
}

/// `[LOW, HIGH]` with LOW <= HIGH.
fn pair(
    v: &toml::Value,
    at: &str,
    problems: &mut Vec<String>,
    number: impl Fn(&toml::Value) -> Option<f64>,
) -> Option<(f64, f64)> {
    let bounds = v.as_array().filter(|a| a.len() == 2).and_then(|a| Some((number(&a[0])?, number(&a[1])?)));
    match bounds {
        Some((lo, hi)) if lo <= hi => Some((lo, hi)),
        Some((lo, hi)) => {
            problems.push(format!("{at}: low bound {lo} is above high bound {hi}"));
            None
        }
        None => {
            problems.push(format!("{at}: expected [LOW, HIGH], got {v}"));
            None
        }
    }
}

/// The domain's values must fit the key they go to.
fn check_type(domain: &Domain, leaf: &Value, at: &str, problems: &mut Vec<String>) {
    let whole = leaf.as_f64().is_some() && !leaf.is_f64();
    match (domain, leaf) {
        (Domain::Int { .. }, Value::Number(_) | Value::Null) => {}
        (Domain::Float { .. }, Value::Number(_)) if whole => {
            problems.push(format!("{at}: the key is a whole number; use int = [LOW, HIGH]"))
        }
        (Domain::Float { .. }, Value::Number(_) | Value::Null) => {}
        (Domain::Choice(values), _) => {
            for v in values {
                let fits = match leaf {
                    Value::String(_) => v.is_string(),
                    Value::Bool(_) => v.is_boolean(),
                    Value::Number(_) if whole => v.is_i64() || v.is_u64(),
                    Value::Number(_) => v.is_number(),
                    _ => !v.is_object(),
                };
                if !fits {
                    problems.push(format!("{at}.choice: {v} does not fit the key (its value now is {leaf})"));
                }
            }
        }
        (_, _) => problems.push(format!("{at}: the key holds {leaf}, not a number; use choice = [...]")),
    }
}
