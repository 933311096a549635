//! The accounts: reads from memory; create, replace, patch and delete through the accounts
//! file and `reload`; enable and disable as `set_trading` commands.

use super::*;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(get_account, replace_account, patch_account, delete_account))
        .routes(routes!(enable_account))
        .routes(routes!(disable_account))
}

/// Every configured account with its latest state.
#[utoipa::path(get, path = "/trading/accounts", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Items<AccountView>), (status = 401, body = crate::error::ErrorBody)))]
pub(super) async fn list_accounts(State(state): State<AppState>, _who: Viewer) -> Json<Items<AccountView>> {
    let live = state.live.accounts();
    let items = configured(&state).iter().map(|a| account_view(&state, a, live.get(&a.id))).collect();
    Json(Items { items })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountDetail {
    pub account: AccountView,
    /// The whole `[[account]]` table as the workers read it.
    #[schema(value_type = Object)]
    pub config: Value,
    pub positions: Vec<PositionView>,
}

pub(super) fn detail(state: &AppState, a: &AccountConfig) -> AccountDetail {
    AccountDetail {
        account: account_view(state, a, state.live.account(&a.id).as_ref()),
        config: serde_json::to_value(a).unwrap_or(Value::Null),
        positions: state.live.positions(Some(&a.id)).into_iter().map(position_view).collect(),
    }
}

/// One account: its state, its whole configuration and its open positions.
#[utoipa::path(get, path = "/trading/accounts/{id}", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id")),
    responses(
        (status = 200, body = AccountDetail),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub(super) async fn get_account(
    State(state): State<AppState>,
    _who: Viewer,
    Path(id): Path<String>,
) -> Result<Json<AccountDetail>, ApiError> {
    let a = find_account(&state, &id)?;
    Ok(Json(detail(&state, &a)))
}

// ---------------------------------------------------------------------------------------------
// Accounts: changes

/// What an account change did.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountChange {
    pub account: AccountDetail,
    /// Id of the `reload` command sent to the workers.
    pub reload_command: String,
    /// What the reload does (the stages re-read the file; the edge does not see their answer).
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountDeleted {
    pub id: String,
    pub deleted: bool,
    pub reload_command: String,
    /// What the reload does, as for the other changes.
    pub message: String,
}

/// What an account change's `reload` does, as far as the edge can tell: it sees the command
/// sent, not the stages' answer (they log it).
pub const RELOAD_NOTE: &str = "accounts file rewritten and reload sent: every ensemble, risk and execution \
    stage that reads this file (worker ensemble, worker risk, worker exec, and those inside tradeflow up) \
    re-reads it; a sound file takes over from the checkpoints (logged as `configuration reloaded`), a \
    broken one is refused and the running configuration stays (logged as `reload refused`)";

/// TOML text of a value, or `None` for null.
pub(super) fn toml_value(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // A JSON string literal is a valid TOML basic string.
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(items) => format!("[{}]", items.iter().filter_map(toml_value).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => {
            let fields: Vec<String> =
                m.iter().filter_map(|(k, v)| toml_value(v).map(|v| format!("{} = {v}", toml_key(k)))).collect();
            format!("{{ {} }}", fields.join(", "))
        }
    })
}

pub(super) fn toml_key(k: &str) -> String {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

/// The accounts as an accounts file (`[[account]]` tables).
pub fn accounts_toml(accounts: &[AccountConfig]) -> String {
    let mut out = String::from("# Accounts, written by the tradeflow edge (account routes).\n");
    for a in accounts {
        out.push_str("\n[[account]]\n");
        if let Ok(Value::Object(m)) = serde_json::to_value(a) {
            for (k, v) in &m {
                if let Some(v) = toml_value(v) {
                    out.push_str(&format!("{} = {v}\n", toml_key(k)));
                }
            }
        }
    }
    out
}

/// Writes `text` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed over it.
pub(super) fn write_atomic(path: &FsPath, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(FsPath::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "accounts".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    written
}

/// Validates `next` as the workers would (the very file text they will read), writes it and
/// makes it the edge's accounts. `change` gets the current accounts and returns the new set
/// (or refuses). Runs under the accounts lock, so changes do not interleave.
pub(super) fn change_accounts<T>(
    state: &AppState,
    change: impl FnOnce(&[AccountConfig]) -> Result<(Vec<AccountConfig>, T), ApiError>,
) -> Result<T, ApiError> {
    let Some(path) = state.pipeline.accounts_path.as_deref() else {
        return Err(ApiError::conflict(
            "the accounts are the defaults: start with `--accounts FILE` (or TRADEFLOW_ACCOUNTS) to manage them",
        ));
    };
    let mut guard = state.pipeline.accounts.write().unwrap_or_else(|p| p.into_inner());
    let (next, out) = change(&guard)?;
    let text = accounts_toml(&next);
    let names: Vec<&str> = state.pipeline.profiles.iter().map(|p| p.name.as_str()).collect();
    let parsed = tradeflow_risk::parse_accounts(&text, &names).map_err(|problems| {
        ApiError::unprocessable("invalid_account", problems.join("; ")).with_details(json!({ "problems": problems }))
    })?;
    write_atomic(path, &text)
        .map_err(|e| ApiError::unavailable(&format!("the accounts file {}", path.display()), e))?;
    *guard = parsed;
    Ok(out)
}

pub(super) async fn reload(state: &AppState, caller: &Caller) -> Result<String, ApiError> {
    Ok(state.command(caller, Command::Reload).await?.id)
}

/// Creates an account (trader): the body is an `[[account]]` table as JSON (`id`, `profile`,
/// `starting_balance` required; see the README's Risk section). 422 with every problem when
/// it is not valid, 409 when the id is taken or without an accounts file.
#[utoipa::path(post, path = "/trading/accounts", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    request_body(content = Object, description = "an account: {id, name?, profile, executor?, starting_balance, leverage?, trading_enabled?, allow_short?, trailing_stop_pct?, sizing?, risk?, paper?}"),
    responses(
        (status = 201, body = AccountChange),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn create_account(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Json(body): Json<AccountConfig>,
) -> Result<(StatusCode, Json<AccountChange>), ApiError> {
    let caller = meta.caller(who);
    let id = body.id.clone();
    let outcome = async {
        change_accounts(&state, |current| {
            if current.iter().any(|a| a.id == body.id) {
                return Err(ApiError::conflict(format!("account {:?} exists", body.id))
                    .with_details(json!({ "resource": "account", "name": body.id })));
            }
            let mut next = current.to_vec();
            next.push(body);
            Ok((next, ()))
        })?;
        let reload_command = reload(&state, &caller).await?;
        let a = find_account(&state, &id)?;
        let config = serde_json::to_value(&a).unwrap_or(Value::Null);
        let change = AccountChange { account: detail(&state, &a), reload_command, message: RELOAD_NOTE.into() };
        Ok((change, json!({ "account": id, "config": config })))
    }
    .await;
    let change = state.audited(&caller, "account_create", "/api/v1/trading/accounts", outcome).await?;
    Ok((StatusCode::CREATED, Json(change)))
}

pub(super) async fn update(
    state: &AppState,
    caller: &Caller,
    id: &str,
    next: AccountConfig,
) -> Result<AccountChange, ApiError> {
    if next.id != id {
        return Err(ApiError::unprocessable("invalid_body", format!("id: {:?} cannot become {:?}", id, next.id))
            .with_details(json!({ "field": "id" })));
    }
    change_accounts(state, |current| {
        let mut all = current.to_vec();
        let slot = all.iter_mut().find(|a| a.id == id).ok_or_else(|| ApiError::not_found("account", id))?;
        *slot = next;
        Ok((all, ()))
    })?;
    let reload_command = reload(state, caller).await?;
    let a = find_account(state, id)?;
    Ok(AccountChange { account: detail(state, &a), reload_command, message: RELOAD_NOTE.into() })
}

/// Replaces an account's configuration (trader): the whole `[[account]]` table; its `id` must
/// be the path's.
#[utoipa::path(put, path = "/trading/accounts/{id}", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id")),
    request_body(content = Object, description = "the whole account, as for create"),
    responses(
        (status = 200, body = AccountChange),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn replace_account(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(id): Path<String>,
    Json(body): Json<AccountConfig>,
) -> Result<Json<AccountChange>, ApiError> {
    let caller = meta.caller(who);
    let resource = format!("/api/v1/trading/accounts/{id}");
    let outcome = async {
        let config = serde_json::to_value(&body).unwrap_or(Value::Null);
        let change = update(&state, &caller, &id, body).await?;
        Ok((change, json!({ "account": id, "config": config })))
    }
    .await;
    Ok(Json(state.audited(&caller, "account_update", &resource, outcome).await?))
}

/// RFC 7396 merge patch, except that `sizing` (a tagged choice) is replaced whole.
pub(super) fn merge_patch(target: &mut Value, patch: &Value, top: bool) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else if top && k == "sizing" {
                    t.insert(k.clone(), v.clone());
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v, false);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Changes some fields of an account (trader): a JSON merge patch (RFC 7396) of its
/// configuration; nested tables (`risk`, `paper`) merge, `sizing` is replaced whole, `null`
/// resets a field to its default.
#[utoipa::path(patch, path = "/trading/accounts/{id}", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id")),
    request_body(content = Object, description = "the fields to change, e.g. {\"leverage\": 2, \"risk\": {\"max_open_positions\": 3}}"),
    responses(
        (status = 200, body = AccountChange),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn patch_account(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(id): Path<String>,
    Json(patch): Json<Value>,
) -> Result<Json<AccountChange>, ApiError> {
    let caller = meta.caller(who);
    let resource = format!("/api/v1/trading/accounts/{id}");
    let outcome = async {
        if !patch.is_object() {
            return Err(ApiError::unprocessable("invalid_body", "expected a JSON object of the fields to change"));
        }
        let current = find_account(&state, &id)?;
        let mut merged = serde_json::to_value(&current).unwrap_or(Value::Null);
        merge_patch(&mut merged, &patch, true);
        let next: AccountConfig = serde_json::from_value(merged)
            .map_err(|e| ApiError::unprocessable("invalid_body", format!("the patched account: {e}")))?;
        let change = update(&state, &caller, &id, next).await?;
        Ok((change, json!({ "account": id, "patch": patch })))
    }
    .await;
    Ok(Json(state.audited(&caller, "account_update", &resource, outcome).await?))
}

/// Deletes an account (trader). 409 while it holds open positions (close them first) or when
/// it is the last account.
#[utoipa::path(delete, path = "/trading/accounts/{id}", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id")),
    responses(
        (status = 200, body = AccountDeleted),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn delete_account(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Json<AccountDeleted>, ApiError> {
    let caller = meta.caller(who);
    let resource = format!("/api/v1/trading/accounts/{id}");
    let outcome = async {
        find_account(&state, &id)?;
        let open = state.live.positions(Some(&id)).len();
        if open > 0 {
            return Err(ApiError::conflict(format!("account {id:?} holds {open} open positions: close them first"))
                .with_details(json!({ "open_positions": open })));
        }
        change_accounts(&state, |current| {
            if current.len() == 1 {
                return Err(ApiError::conflict("the last account cannot be deleted"));
            }
            Ok((current.iter().filter(|a| a.id != id).cloned().collect(), ()))
        })?;
        let reload_command = reload(&state, &caller).await?;
        let deleted = AccountDeleted { id: id.clone(), deleted: true, reload_command, message: RELOAD_NOTE.into() };
        Ok((deleted, json!({ "account": id })))
    }
    .await;
    Ok(Json(state.audited(&caller, "account_delete", &resource, outcome).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TradingSwitch {
    pub account: String,
    /// What was asked.
    pub trading_enabled: bool,
    /// Id of the `set_trading` command.
    pub command: String,
    /// Whether this process's control follower applied it within the wait (2 s). `false`
    /// (answered 202): sent, not confirmed; the account view says when it is.
    pub applied: bool,
}

pub(super) async fn switch(
    state: &AppState,
    caller: &Caller,
    id: &str,
    enabled: bool,
) -> Result<TradingSwitch, ApiError> {
    find_account(state, id)?;
    // Answer once this process's follower has applied it, so a read right after agrees; or
    // say that it has not.
    let (command, applied) = crate::routes::control::send_and_wait(
        state,
        caller,
        Command::SetTrading { account: id.to_string(), enabled },
        |s| s.trading.get(id) == Some(&enabled),
    )
    .await?;
    Ok(TradingSwitch { account: id.to_string(), trading_enabled: enabled, command, applied })
}

/// [`switch`], audited as `account_enable` or `account_disable`, answered 200 when applied.
pub(super) async fn switch_audited(
    state: &AppState,
    caller: Caller,
    id: &str,
    enabled: bool,
) -> Result<(StatusCode, Json<TradingSwitch>), ApiError> {
    let outcome = switch(state, &caller, id, enabled).await.map(|s| (s, json!({ "account": id, "enabled": enabled })));
    let action = if enabled { "enable" } else { "disable" };
    let resource = format!("/api/v1/trading/accounts/{id}/{action}");
    let s = state.audited(&caller, &format!("account_{action}"), &resource, outcome).await?;
    Ok((crate::routes::control::command_status(s.applied), Json(s)))
}

/// Lets an account open positions again (trader): a `set_trading` command.
#[utoipa::path(post, path = "/trading/accounts/{id}/enable", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id")),
    responses(
        (status = 200, body = TradingSwitch, description = "applied"),
        (status = 202, body = TradingSwitch, description = "sent, not seen applied within 2 s (`applied: false`)"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn enable_account(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TradingSwitch>), ApiError> {
    switch_audited(&state, meta.caller(who), &id, true).await
}

/// Stops an account from opening positions (trader): entries are refused with
/// `trading_disabled`; exits still happen.
#[utoipa::path(post, path = "/trading/accounts/{id}/disable", tag = "trading", security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, description = "account id")),
    responses(
        (status = 200, body = TradingSwitch, description = "applied"),
        (status = 202, body = TradingSwitch, description = "sent, not seen applied within 2 s (`applied: false`)"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn disable_account(
    State(state): State<AppState>,
    Trader(who): Trader,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TradingSwitch>), ApiError> {
    switch_audited(&state, meta.caller(who), &id, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accounts_file_round_trips_through_the_workers_parser() {
        let mut a = AccountConfig::paper("a-1", "technical", 10_000.0);
        a.name = "Quote \"me\" \\ ünï".into();
        a.trailing_stop_pct = Some(0.00001);
        a.sizing = tradeflow_risk::Sizing::Kelly { cap: 0.2, payoff: 1.5 };
        a.risk.max_position_notional = Some(2500.0);
        let mut b = AccountConfig::paper("b", "committee", 5000.5);
        b.leverage = 3.0;
        b.allow_short = false;
        let text = accounts_toml(&[a.clone(), b.clone()]);
        let parsed = tradeflow_risk::parse_accounts(&text, &["technical", "committee"]).unwrap();
        assert_eq!(parsed, vec![a, b], "{text}");
    }

    #[test]
    fn merge_patch_merges_tables_and_replaces_sizing() {
        let mut t = json!({ "id": "a", "leverage": 1.0, "risk": { "max_open_positions": 5, "min_notional": 5.0 },
                            "sizing": { "method": "fixed_fraction", "fraction": 0.1 }, "trailing_stop_pct": 0.1 });
        let p = json!({ "leverage": 2.0, "risk": { "max_open_positions": 3 },
                        "sizing": { "method": "kelly", "cap": 0.2, "payoff": 1.5 }, "trailing_stop_pct": null });
        merge_patch(&mut t, &p, true);
        assert_eq!(
            t,
            json!({ "id": "a", "leverage": 2.0, "risk": { "max_open_positions": 3, "min_notional": 5.0 },
                    "sizing": { "method": "kelly", "cap": 0.2, "payoff": 1.5 } })
        );
    }

    #[test]
    fn atomic_writes_replace_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.toml");
        std::fs::write(&path, "old").unwrap();
        write_atomic(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }
}
