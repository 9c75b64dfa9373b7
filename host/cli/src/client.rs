//! A blocking client of the HTTP API for the CLI commands that talk to a
//! running server (`upload`, `candles import`, `demo`, `dlq`, `tasks`).

use anyhow::{anyhow, Context};
use clap::Args;
use serde_json::Value;
use std::time::Duration;

use super::CliError;

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Base URL of the stratbox API.
    #[arg(
        long = "api",
        env = "STRATBOX_API_URL",
        default_value_t = format!("http://{}", stratbox_api::DEFAULT_ADDR)
    )]
    pub api_url: String,
    /// Bearer token, when the server requires one.
    #[arg(long, env = "STRATBOX_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
    token: Option<String>,
}

/// A Python component compiles in 6-12 s on a 2-core machine; ten
/// minutes covers a loaded server and then gives up waiting (the compile
/// goes on).
const UPLOAD_COMPILE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

impl Client {
    pub fn new(api: &ApiArgs) -> Result<Client, CliError> {
        Client::with_base(&api.api_url, api.token.as_deref())
    }

    pub fn with_base(base: &str, token: Option<&str>) -> Result<Client, CliError> {
        let base = base.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            return Err(CliError::input(anyhow!(
                "--api {base}: expected an http:// URL (for HTTPS, put a TLS proxy in front)"
            )));
        }
        let http = reqwest::blocking::Client::builder()
            // Uploads of tens of MiB and large CSV imports take a while.
            .timeout(Duration::from_secs(300))
            .build()
            .context("cannot build the http client")
            .map_err(CliError::run)?;
        Ok(Client {
            http,
            base,
            token: token.filter(|t| !t.is_empty()).map(str::to_string),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.get(self.url(path)), path)
    }

    pub fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> Result<Value, CliError> {
        let request = self
            .http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.send(request, path)
    }

    pub fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.http.delete(self.url(path)), path)
    }

    pub fn put_json(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        let request = self
            .http
            .put(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        self.send(request, path)
    }

    /// Uploads a strategy component and returns the stored strategy. A
    /// large one (Python, JavaScript) is answered 202 and compiled in the
    /// background: this polls until it is stored (`waiting` is told once),
    /// and a refusal after the compile is an input error like one before.
    pub fn upload_strategy(&self, bytes: Vec<u8>, waiting: &dyn Fn()) -> Result<Value, CliError> {
        let reply = self.post("/api/v1/strategies", "application/wasm", bytes)?;
        let Some(poll) = reply["poll"].as_str().map(str::to_string) else {
            return Ok(reply);
        };
        waiting();
        let started = std::time::Instant::now();
        loop {
            let state = self.get(&poll)?;
            match state["status"].as_str().unwrap_or_default() {
                "ready" => return Ok(state["strategy"].clone()),
                "failed" => {
                    return Err(CliError::input(anyhow::anyhow!(
                        "the server refused the strategy after compiling it: {}",
                        state["error"].as_str().unwrap_or("no reason given")
                    )))
                }
                _ if started.elapsed() > UPLOAD_COMPILE_TIMEOUT => {
                    return Err(CliError::run(anyhow::anyhow!(
                        "the server was still compiling the strategy after {UPLOAD_COMPILE_TIMEOUT:?}; poll {poll}"
                    )))
                }
                _ => std::thread::sleep(std::time::Duration::from_millis(250)),
            }
        }
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.post(path, "application/json", body.to_string().into_bytes())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The JSON reply; a refusal becomes an input error (exit 2) quoting
    /// the server's code, field and message, a server fault a run error.
    fn send(
        &self,
        request: reqwest::blocking::RequestBuilder,
        path: &str,
    ) -> Result<Value, CliError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .with_context(|| format!("cannot reach the API at {}", self.base))
            .map_err(CliError::run)?;
        let status = response.status();
        let text = response
            .text()
            .with_context(|| format!("reading the reply of {path}"))
            .map_err(CliError::run)?;
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .with_context(|| format!("{path} answered {status} with non-JSON: {text}"))
                .map_err(CliError::run)?
        };
        if status.is_success() {
            return Ok(body);
        }
        let error = &body["error"];
        let mut message = format!(
            "{path}: {} {}",
            status.as_u16(),
            error["code"].as_str().unwrap_or("error")
        );
        if let Some(field) = error["field"].as_str() {
            message.push_str(&format!(" (field `{field}`)"));
        }
        message.push_str(&format!(
            ": {}",
            error["message"].as_str().unwrap_or(text.as_str())
        ));
        if status.is_client_error() {
            Err(CliError::input(anyhow!(message)))
        } else {
            Err(CliError::run(anyhow!(message)))
        }
    }
}
