//! The winner's configuration as the files `tradeflow backtest` and the workers take:
//! `--llm-config` (the base file with its `[rules]` and `[condition]` replaced, so its
//! analysts stay as written, key variables included and no key), `--profiles` and
//! `--accounts`.

use serde::Serialize;
use tradeflow_ensemble::Profile;
use tradeflow_risk::AccountConfig;

use crate::engine::BacktestConfig;

/// The three files' text.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFiles {
    pub llm_config: String,
    pub profiles: String,
    pub accounts: String,
}

#[derive(Serialize)]
struct ProfilesFile<'a> {
    profile: &'a [Profile],
}

#[derive(Serialize)]
struct AccountsFile<'a> {
    account: &'a [AccountConfig],
}

/// `config`'s rules, profiles and accounts as files; `base_llm_config` is the text of the
/// base `--llm-config` (or a preset's), whose other tables are kept.
pub fn config_files(config: &BacktestConfig, base_llm_config: Option<&str>) -> Result<ConfigFiles, String> {
    let mut llm: toml::Table = match base_llm_config {
        Some(text) => toml::from_str(text).map_err(|e| format!("the base --llm-config: {e}"))?,
        None => toml::Table::new(),
    };
    let rules = toml::Value::try_from(&config.inference.rules).map_err(|e| e.to_string())?;
    let condition = toml::Value::try_from(&config.inference.condition).map_err(|e| e.to_string())?;
    llm.insert("rules".into(), rules);
    llm.insert("condition".into(), condition);
    let text = |r: Result<String, toml::ser::Error>| r.map_err(|e| e.to_string());
    Ok(ConfigFiles {
        llm_config: text(toml::to_string(&llm))?,
        profiles: text(toml::to_string(&ProfilesFile { profile: &config.profiles }))?,
        accounts: text(toml::to_string(&AccountsFile { account: &config.accounts }))?,
    })
}
