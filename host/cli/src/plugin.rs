use anyhow::{anyhow, bail, Context};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::guest::{self, Lang};
use super::{write_atomically, CliError, CliResult};
use stratbox_sandbox::{Sandbox, SandboxConfig, StrategyKind};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Scaffold a new strategy (a working EMA-cross example with native
    /// unit tests) in Rust, Python or JavaScript, ready for `stratbox
    /// plugin build`.
    New {
        /// Directory to create; its last component names the strategy.
        dir: PathBuf,
        /// The strategy's language.
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
        /// Path of the stratbox SDK of that language (default: the one in
        /// the repository this binary was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Show a plugin's description, parameter schema, sha256 and imports.
    Inspect {
        /// The component (.wasm).
        path: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Build a strategy to a WebAssembly component, in the language its
    /// directory holds: Cargo.toml (Rust), app.py (Python, with
    /// componentize-py) or strategy.js (JavaScript, with componentize-js).
    /// The Python and JavaScript toolchains are installed on first use.
    Build {
        /// The strategy's directory.
        dir: PathBuf,
        /// Rust only: `wasm32-unknown-unknown` (wrapped as a component;
        /// imports nothing but the log) or `wasm32-wasip2`.
        #[arg(long, default_value = "wasm32-unknown-unknown")]
        target: String,
        /// Rust only: cargo target directory (default: cargo's own choice).
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Where to write the component (default: <target-dir>/plugins/<crate>.wasm
        /// for Rust, <toolchains>/plugins/<name>.wasm for the others).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Python and JavaScript: where their toolchains and cached builds
        /// live (default: $STRATBOX_TOOLCHAINS, else ~/.cache/stratbox/toolchains).
        #[arg(long)]
        toolchains: Option<PathBuf>,
        /// Python and JavaScript: the SDK to build with (default: the one
        /// in the repository this binary was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
        /// JavaScript: compile SpiderMonkey's interpreter ahead of time
        /// against the strategy with weval (about 1.6x the bars/s; a build
        /// about three times as long). Needs weval in the toolchain
        /// directory (`weval/bin/weval`); never downloads it.
        #[arg(long)]
        aot: bool,
    },
}

pub fn run(cmd: PluginCommand) -> CliResult {
    match cmd {
        PluginCommand::New { dir, lang, sdk } => match lang {
            Lang::Rust => scaffold(&dir, sdk.as_deref()),
            other => guest::scaffold(&dir, other, sdk.as_deref()),
        },
        PluginCommand::Inspect { path, json } => inspect(&path, json),
        PluginCommand::Build {
            dir,
            target,
            target_dir,
            out,
            toolchains,
            sdk,
            aot,
        } => {
            let lang = Lang::detect(&dir).map_err(CliError::input)?;
            if aot && lang != Lang::Js {
                return Err(CliError::input(anyhow!(
                    "--aot is for JavaScript strategies; {} holds a {lang:?} one",
                    dir.display()
                )));
            }
            let path = match lang {
                Lang::Rust => build(&dir, &target, target_dir.as_deref(), out.as_deref()),
                other => guest::build(
                    &dir,
                    other,
                    &guest::BuildOptions {
                        toolchains: toolchains.as_deref(),
                        out: out.as_deref(),
                        sdk: sdk.as_deref(),
                        aot,
                    },
                ),
            }
            .map_err(CliError::run)?;
            outln!("{}", path.display());
            Ok(())
        }
    }
}

fn inspect(path: &Path, json: bool) -> CliResult {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(CliError::input)?;
    let sandbox = Sandbox::new(SandboxConfig::default()).map_err(CliError::run)?;
    let plugin = sandbox
        .load(&bytes)
        .with_context(|| format!("cannot load plugin {}", path.display()))
        .map_err(CliError::input)?;
    let d = &plugin.description;
    if json {
        let value = serde_json::json!({
            "name": d.name,
            "version": d.version,
            "summary": d.summary,
            "sha256": plugin.sha256,
            "size_bytes": plugin.size_bytes,
            "runtime": plugin.runtime,
            "kind": plugin.kind,
            "contract_version": plugin.contract_version.as_str(),
            "imports": plugin.imports,
            "exports": plugin.exports,
            "params": d.params,
            "columns": d.columns,
        });
        outln!("{value}");
        return Ok(());
    }
    outln!("{} {}", d.name, d.version);
    outln!("  {}", d.summary);
    outln!("  sha256   {}", plugin.sha256);
    outln!("  size     {} bytes", plugin.size_bytes);
    outln!("  runtime  {}", plugin.runtime);
    outln!(
        "  kind     {} (stratbox:strategy@{})",
        match plugin.kind {
            StrategyKind::Single => "single symbol",
            StrategyKind::Portfolio => "portfolio: several symbols on one timeline",
        },
        plugin.contract_version
    );
    outln!("  imports  {}", plugin.imports.join(", "));
    outln!("  exports  {}", plugin.exports.join(", "));
    let columns: Vec<String> = d
        .columns
        .iter()
        .map(|c| format!("{c:?}").to_lowercase())
        .collect();
    outln!("  columns  {}", columns.join(", "));
    outln!("  params");
    for p in &d.params {
        let bound = |b: Option<f64>| b.map_or("-".to_string(), |v| v.to_string());
        outln!(
            "    {:<16} {:<5} default {:<8} min {:<6} max {:<6} step {:<4} {}",
            p.name,
            p.kind.to_string(),
            p.default.to_string(),
            bound(p.min),
            bound(p.max),
            bound(p.step),
            p.help
        );
    }
    Ok(())
}

/// Inlining: see `build`. The 128 KiB shadow stack (Rust's wasm default is
/// 1 MiB, placed first in linear memory) puts the heap right after it, so
/// every page a run touches lies in the first 512 KiB, which the sandbox
/// resets with memset instead of unmapping (`memory_keep_resident`): a
/// fresh instance then takes no page faults, which cut a 1,000-combination
/// sweep's CPU by about 20 % (measured). Deeper stacks trap as
/// out-of-bounds, a `strategy_trap`.
///
/// The initial memory of 512 KiB (the same as `memory_keep_resident`)
/// leaves about 370 KiB of heap that the SDK's allocator uses before it
/// grows memory, so a short run never grows it.
const PLUGIN_RUSTFLAGS: &str = "-C llvm-args=-inline-threshold=2000 -C link-arg=-zstack-size=131072 -C link-arg=--initial-memory=524288";

/// Builds the crate in `dir` and returns the component's path.
pub fn build(
    dir: &Path,
    target: &str,
    target_dir: Option<&Path>,
    out: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!("{} has no Cargo.toml", dir.display());
    }
    let mut metadata = Command::new("cargo");
    metadata
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(&manifest);
    let metadata = metadata.output().context("cannot run `cargo metadata`")?;
    if !metadata.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&metadata.stderr)
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&metadata.stdout).context("cannot parse `cargo metadata`")?;
    let manifest = std::fs::canonicalize(&manifest)?;
    let package = metadata["packages"]
        .as_array()
        .and_then(|packages| {
            packages.iter().find(|p| {
                p["manifest_path"]
                    .as_str()
                    .and_then(|m| std::fs::canonicalize(m).ok())
                    .is_some_and(|m| m == manifest)
            })
        })
        .ok_or_else(|| anyhow!("no package in {}", dir.display()))?;
    let name = package["name"]
        .as_str()
        .ok_or_else(|| anyhow!("package without a name"))?;
    let target_dir = match target_dir {
        Some(t) => t.to_path_buf(),
        None => PathBuf::from(
            metadata["target_directory"]
                .as_str()
                .ok_or_else(|| anyhow!("cargo metadata gave no target directory"))?,
        ),
    };
    // The SDK calls `on_bar` once per bar from its window loop; inlining it
    // there lets LLVM keep the bar in registers instead of linear memory,
    // which cut the fuel per bar of ema-crossover from 220 to 59 (measured).
    let rustflags = match std::env::var("RUSTFLAGS") {
        Ok(flags) if !flags.trim().is_empty() => format!("{flags} {PLUGIN_RUSTFLAGS}"),
        _ => PLUGIN_RUSTFLAGS.to_string(),
    };
    let status = Command::new("cargo")
        .env("RUSTFLAGS", rustflags)
        .args([
            "build",
            // The `plugin` profile, defined here so every crate, in this
            // workspace or not, builds alike: whole-program optimisation so
            // the SDK's per-bar glue inlines into the strategy.
            "--config",
            "profile.plugin.inherits=\"release\"",
            "--config",
            "profile.plugin.lto=true",
            "--config",
            "profile.plugin.codegen-units=1",
            "--config",
            "profile.plugin.opt-level=3",
            "--profile",
            "plugin",
            "--target",
            target,
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .context("cannot run `cargo build`")?;
    if !status.success() {
        bail!("cargo build of {name} for {target} failed");
    }
    let artifact = target_dir
        .join(target)
        .join("plugin")
        .join(format!("{}.wasm", name.replace('-', "_")));
    let module =
        std::fs::read(&artifact).with_context(|| format!("cannot read {}", artifact.display()))?;
    let component = if module.get(4..8) == Some(&[0x0d, 0x00, 0x01, 0x00][..]) {
        module
    } else {
        componentize(&module).with_context(|| format!("cannot wrap {name} as a component"))?
    };
    let out = match out {
        Some(out) => out.to_path_buf(),
        None => target_dir.join("plugins").join(format!("{name}.wasm")),
    };
    write_atomically(&out, &component)?;
    Ok(out)
}

const SCAFFOLD_LIB: &str = include_str!("scaffold_lib.rs.txt");

fn scaffold(dir: &Path, sdk: Option<&Path>) -> CliResult {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| {
            !n.is_empty()
                && n.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        })
        .ok_or_else(|| {
            CliError::input(anyhow!(
                "{}: the last path component names the crate: lowercase letters, digits, - and _, starting with a letter",
                dir.display()
            ))
        })?;
    if dir.exists() {
        return Err(CliError::input(anyhow!("{} already exists", dir.display())));
    }
    let sdk = match sdk {
        Some(sdk) => sdk.to_path_buf(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk"),
    };
    let sdk = std::fs::canonicalize(&sdk)
        .with_context(|| format!("--sdk: no SDK at {}", sdk.display()))
        .map_err(CliError::input)?;
    if !sdk.join("Cargo.toml").is_file() {
        return Err(CliError::input(anyhow!(
            "--sdk: {} has no Cargo.toml",
            sdk.display()
        )));
    }
    let manifest = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
stratbox-sdk = {{ path = "{sdk}" }}

# A crate of its own, even inside another workspace.
[workspace]
"#,
        sdk = sdk.display()
    );
    let lib = SCAFFOLD_LIB.replace("{{NAME}}", &name);
    write_atomically(&dir.join("Cargo.toml"), manifest.as_bytes()).map_err(CliError::run)?;
    write_atomically(&dir.join("src/lib.rs"), lib.as_bytes()).map_err(CliError::run)?;
    outln!("created {}", dir.display());
    outln!(
        "  test natively:  cargo test --manifest-path {}/Cargo.toml",
        dir.display()
    );
    outln!("  build:          stratbox plugin build {}", dir.display());
    Ok(())
}

/// Wraps a core module built with the SDK (its WIT world is embedded in a
/// custom section) as a component.
pub fn componentize(module: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(module)?
        .validate(true)
        .encode()
}
