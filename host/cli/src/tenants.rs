//! `stratbox keys` and `stratbox tenants`: API keys and tenants' quotas
//! of a running service, over its HTTP API with an admin's token or key
//! (docs/tenants.md).

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use stratbox_store::Quota;

use super::client::{ApiArgs, Client};
use super::{CliError, CliResult};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key: for a tenant, or an admin key of the install. Prints
    /// the secret, which is shown this once.
    Create(KeyCreateArgs),
    /// Every key: id, tenant, label, admin, created (never the secrets).
    List(KeyListArgs),
    /// Revoke a key by its id (from `stratbox keys list`).
    Revoke(KeyRevokeArgs),
}

#[derive(Debug, Args)]
pub struct KeyCreateArgs {
    /// The tenant the key acts for (1 to 32 of a-z, 0-9, `_`, `-`).
    #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
    tenant: Option<String>,
    /// An admin key: manages keys, quotas and the DLQ, sees every tenant.
    #[arg(long)]
    admin: bool,
    /// What the key is for, shown in lists.
    #[arg(long, default_value = "")]
    label: String,
    /// The API's JSON instead of the secret alone.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct KeyListArgs {
    /// The API's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct KeyRevokeArgs {
    /// The key's id (12 hex digits).
    id: String,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Every tenant: its quota, and its queued, running and stored work.
    List(TenantListArgs),
    /// Set (replace) a tenant's quota; a limit left out is no limit.
    Quota(QuotaArgs),
}

#[derive(Debug, Args)]
pub struct TenantListArgs {
    /// The API's JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct QuotaArgs {
    /// The tenant (created if new).
    tenant: String,
    /// Tasks waiting in the queue at once.
    #[arg(long)]
    max_queued: Option<u64>,
    /// Tasks running at once.
    #[arg(long)]
    max_running: Option<u32>,
    /// Fuel of one task (also its default).
    #[arg(long)]
    max_fuel: Option<u64>,
    /// Memory of one task, MiB.
    #[arg(long)]
    max_memory_mib: Option<u64>,
    /// Wall-clock time of one task, ms.
    #[arg(long)]
    max_timeout_ms: Option<u64>,
    /// Stored backtest and optimization records.
    #[arg(long)]
    max_results: Option<u64>,
    /// Retention: finished records kept, newest first.
    #[arg(long)]
    retention_max_count: Option<u64>,
    /// Retention: finished records older than this many days are deleted.
    #[arg(long)]
    retention_max_age_days: Option<u64>,
    #[command(flatten)]
    api: ApiArgs,
}

impl QuotaArgs {
    fn body(&self) -> Value {
        let quota = Quota {
            max_queued: self.max_queued,
            max_running: self.max_running,
            max_fuel: self.max_fuel,
            max_memory_mib: self.max_memory_mib,
            max_timeout_ms: self.max_timeout_ms,
            max_results: self.max_results,
            retention_max_count: self.retention_max_count,
            retention_max_age_days: self.retention_max_age_days,
        };
        serde_json::to_value(quota).expect("a quota serialises")
    }
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(
        || {
            if v.is_null() {
                "-".into()
            } else {
                v.to_string()
            }
        },
        str::to_string,
    )
}

pub fn run_keys(cmd: KeysCommand) -> CliResult {
    match cmd {
        KeysCommand::Create(args) => {
            let client = Client::new(&args.api)?;
            let body = json!({"tenant": args.tenant, "label": args.label, "admin": args.admin});
            let reply = client.post_json("/api/v1/keys", &body)?;
            if args.json {
                outln!("{reply}");
            } else {
                outln!("{}", text(&reply["secret"]));
            }
            Ok(())
        }
        KeysCommand::List(args) => {
            let client = Client::new(&args.api)?;
            let reply = client.get("/api/v1/keys")?;
            if args.json {
                outln!("{reply}");
                return Ok(());
            }
            outln!(
                "{:<12}  {:<32}  {:<5}  {:<13}  label",
                "id",
                "tenant",
                "admin",
                "created_ms"
            );
            for k in reply["keys"].as_array().into_iter().flatten() {
                outln!(
                    "{:<12}  {:<32}  {:<5}  {:<13}  {}",
                    text(&k["id"]),
                    text(&k["tenant"]),
                    k["admin"].as_bool().unwrap_or(false),
                    text(&k["created_at_ms"]),
                    text(&k["label"])
                );
            }
            Ok(())
        }
        KeysCommand::Revoke(args) => {
            if args.id.len() != 12 || !args.id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(CliError::input(anyhow!(
                    "ID `{}`: expected a key id of 12 hex digits (see `stratbox keys list`)",
                    args.id
                )));
            }
            let client = Client::new(&args.api)?;
            client.delete(&format!("/api/v1/keys/{}", args.id))?;
            outln!("revoked {}", args.id);
            Ok(())
        }
    }
}

pub fn run_tenants(cmd: TenantsCommand) -> CliResult {
    match cmd {
        TenantsCommand::List(args) => {
            let client = Client::new(&args.api)?;
            let reply = client.get("/api/v1/tenants")?;
            if args.json {
                outln!("{reply}");
                return Ok(());
            }
            outln!(
                "{:<32}  {:>8}  {:>8}  {:>8}  quota",
                "tenant",
                "queued",
                "running",
                "results"
            );
            for t in reply["tenants"].as_array().into_iter().flatten() {
                outln!(
                    "{:<32}  {:>8}  {:>8}  {:>8}  {}",
                    text(&t["tenant"]),
                    text(&t["queued"]),
                    text(&t["running"]),
                    text(&t["results"]),
                    t["quota"]
                );
            }
            Ok(())
        }
        TenantsCommand::Quota(args) => {
            let client = Client::new(&args.api)?;
            let path = format!("/api/v1/tenants/{}/quota", args.tenant);
            let reply = client.put_json(&path, &args.body())?;
            outln!("{} {}", text(&reply["tenant"]), reply["quota"]);
            Ok(())
        }
    }
}
