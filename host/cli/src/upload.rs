//! `stratbox upload`: send a strategy component to a running API.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

use super::client::{ApiArgs, Client};
use super::{CliError, CliResult};

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The strategy component (.wasm), e.g. from `stratbox plugin build`.
    path: PathBuf,
    #[command(flatten)]
    api: ApiArgs,
    /// Print the server's reply as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &UploadArgs) -> CliResult {
    let bytes = std::fs::read(&args.path)
        .with_context(|| format!("cannot read {}", args.path.display()))
        .map_err(CliError::input)?;
    let client = Client::new(&args.api)?;
    let reply = client.upload_strategy(bytes, &|| {
        eprintln!("checked; the server is compiling it (Python and JavaScript take seconds)...")
    })?;
    if args.json {
        outln!("{reply}");
        return Ok(());
    }
    outln!(
        "strategy {} = {} {} (sha256 {})",
        reply["strategy_id"],
        reply["name"].as_str().unwrap_or("?"),
        reply["version"].as_str().unwrap_or("?"),
        reply["sha256"].as_str().unwrap_or("?")
    );
    for param in reply["params"].as_array().into_iter().flatten() {
        outln!(
            "  {:<16} {:<6} default {}",
            param["name"].as_str().unwrap_or("?"),
            param["type"].as_str().unwrap_or("?"),
            param["default"]
        );
    }
    Ok(())
}
