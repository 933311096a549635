//! `tradeflow tasks`: jobs through the edge's API (submit, list, show, cancel, retry), so a
//! job from the command line passes the same validation, roles, quotas and audit log as one
//! from any other client. `--wait` follows a job to its end with a progress bar.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::progress::Display;

#[derive(Args)]
pub struct TasksArgs {
    /// The edge's base URL.
    #[arg(long, env = "TRADEFLOW_EDGE_URL", default_value = "http://127.0.0.1:8080")]
    edge: String,
    /// A bearer token (`POST /api/v1/auth/login`).
    #[arg(long, env = "TRADEFLOW_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// An API key (header X-API-Key).
    #[arg(long, env = "TRADEFLOW_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// A user to log in as, with the password in TRADEFLOW_PASSWORD.
    #[arg(long, env = "TRADEFLOW_USER")]
    user: Option<String>,
    #[command(subcommand)]
    command: TasksCommand,
}

#[derive(Subcommand)]
pub enum TasksCommand {
    /// Submit a job: KIND is backtest, hyperopt, download or train; its parameters as JSON.
    Submit {
        kind: String,
        /// The parameters: JSON text, `@FILE` or `@-` (stdin). Default `{}`.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Follow the job to its end (progress bar on a terminal); exit 1 unless it succeeds.
        #[arg(long)]
        wait: bool,
    },
    /// List jobs, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print the page as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One job as JSON.
    Show { id: String },
    /// Cancel a queued or running job.
    Cancel { id: String },
    /// Run a failed or cancelled job again.
    Retry {
        id: String,
        #[arg(long)]
        wait: bool,
    },
}

struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<(&'static str, String)>,
}

impl Client {
    async fn new(args: &TasksArgs) -> anyhow::Result<Client> {
        let tls = tradeflow_net::tls::client_config().map_err(anyhow::Error::msg)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(rustls::ClientConfig::clone(&tls))
            .timeout(Duration::from_secs(30))
            .build()
            .context("HTTP client")?;
        let base = format!("{}/api/v1", args.edge.trim_end_matches('/'));
        let mut client = Client { http, base, auth: None };
        client.auth = match (&args.token, &args.api_key, &args.user) {
            (Some(t), _, _) => Some(("authorization", format!("Bearer {t}"))),
            (None, Some(k), _) => Some(("x-api-key", k.clone())),
            (None, None, Some(user)) => {
                let password = std::env::var("TRADEFLOW_PASSWORD").context("--user needs TRADEFLOW_PASSWORD")?;
                let answer = client
                    .call(reqwest::Method::POST, "/auth/login", Some(json!({"username": user, "password": password})))
                    .await?;
                let token = answer["access_token"].as_str().context("login answer without access_token")?;
                Some(("authorization", format!("Bearer {token}")))
            }
            (None, None, None) => None,
        };
        Ok(client)
    }

    /// One call; an error status becomes an error carrying the API's message.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some((name, value)) = &self.auth {
            req = req.header(*name, value);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp =
            req.send().await.with_context(|| format!("{method} {path}: the edge at {} did not answer", self.base))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let message = value["error"]["message"].as_str().map_or_else(|| value.to_string(), str::to_string);
            bail!("{method} {path}: {status}: {message}");
        }
        Ok(value)
    }
}

pub async fn run(args: TasksArgs) -> anyhow::Result<()> {
    let client = Client::new(&args).await?;
    match args.command {
        TasksCommand::Submit { kind, params, wait } => {
            let params = read_params(&params)?;
            let submitted = client.call(reqwest::Method::POST, &format!("/tasks/{kind}"), Some(params)).await?;
            let id = submitted["task_id"].as_str().context("answer without task_id")?.to_string();
            eprintln!("tasks: {kind} job {id} queued");
            if wait {
                return follow(&client, &id).await;
            }
            println!("{submitted}");
        }
        TasksCommand::List { status, kind, limit, json } => {
            let mut query = vec![format!("limit={limit}")];
            query.extend(status.map(|s| format!("status={s}")));
            query.extend(kind.map(|k| format!("kind={k}")));
            let page = client.call(reqwest::Method::GET, &format!("/tasks?{}", query.join("&")), None).await?;
            if json {
                println!("{page}");
            } else {
                println!(
                    "{:<22} {:<9} {:<10} {:>7} {:>8}  submitted by",
                    "task", "kind", "status", "attempt", "progress"
                );
                for t in page["items"].as_array().into_iter().flatten() {
                    println!(
                        "{:<22} {:<9} {:<10} {:>7} {:>7.0}%  {}",
                        t["task_id"].as_str().unwrap_or("?"),
                        t["kind"].as_str().unwrap_or("?"),
                        t["status"].as_str().unwrap_or("?"),
                        t["attempt"],
                        t["progress"].as_f64().unwrap_or(0.0) * 100.0,
                        t["submitted_by"].as_str().unwrap_or("?"),
                    );
                }
                println!("{} of {} jobs", page["items"].as_array().map_or(0, Vec::len), page["total"]);
            }
        }
        TasksCommand::Show { id } => {
            println!("{}", client.call(reqwest::Method::GET, &format!("/tasks/{id}"), None).await?)
        }
        TasksCommand::Cancel { id } => {
            let t = client.call(reqwest::Method::DELETE, &format!("/tasks/{id}"), None).await?;
            eprintln!("tasks: {id} is {}", t["status"].as_str().unwrap_or("?"));
            println!("{t}");
        }
        TasksCommand::Retry { id, wait } => {
            let submitted = client.call(reqwest::Method::POST, &format!("/tasks/{id}/retry"), None).await?;
            if wait {
                return follow(&client, &id).await;
            }
            println!("{submitted}");
        }
    }
    Ok(())
}

/// `JSON`, `@FILE` or `@-`.
fn read_params(arg: &str) -> anyhow::Result<Value> {
    let text = match arg.strip_prefix('@') {
        Some("-") => std::io::read_to_string(std::io::stdin()).context("reading the parameters from stdin")?,
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("--params: cannot read {path}"))?,
        None => arg.to_string(),
    };
    serde_json::from_str(&text).context("--params: not JSON")
}

/// Polls the job until it ends, showing its progress; the job's JSON on stdout at the end.
async fn follow(client: &Client, id: &str) -> anyhow::Result<()> {
    let display = Display::new("tasks", "%", 100);
    let mut waiting_since = std::time::Instant::now();
    loop {
        let t = client.call(reqwest::Method::GET, &format!("/tasks/{id}"), None).await;
        let t = match t {
            Ok(t) => t,
            // Just submitted: the store may not list it for a few milliseconds.
            Err(e) if waiting_since.elapsed() < Duration::from_secs(5) && e.to_string().contains("404") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        waiting_since = std::time::Instant::now();
        let status = t["status"].as_str().unwrap_or("?");
        let step = match t["step"].as_str() {
            Some("candles") => "candles",
            Some("trials") => "trials",
            Some("out of sample") => "out of sample",
            Some("pages") => "pages",
            _ => "running",
        };
        let eta = t["eta_s"].as_f64().map_or(String::new(), |e| format!("eta {e:.0} s"));
        display.update(
            if status == "queued" { "queued" } else { step },
            (t["progress"].as_f64().unwrap_or(0.0) * 100.0) as u64,
            100,
            &eta,
        );
        if matches!(status, "succeeded" | "failed" | "cancelled") {
            display.finish();
            println!("{t}");
            if status != "succeeded" {
                bail!("task {id} {status}: {}", t["error"].as_str().unwrap_or("no reason given"));
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
