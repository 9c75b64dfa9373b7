//! Loading a component: format checks, the contract check on imports and
//! exports, compilation (or the precompiled cache), `InstancePre`, and the
//! strategy's self-description.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime::component::{Component, Linker};
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use super::bindings::{self, ContractVersion, Pre, StrategyKind};
use super::cache::DiskCache;
use super::config::{NanCanonicalization, RunLimits, SandboxConfig};
use super::error::{LoadError, RunError};
use super::instance::{self, CancelToken, StoreState, WasmPortfolioStrategy, WasmStrategy};
use super::nan;
use super::runtime::GuestRuntime;
use stratbox_engine::portfolio::Universe;
use stratbox_engine::{Description, Market, Params};

pub use super::bindings::CONTRACT;

/// The newest contract version: what the SDK builds against. The host
/// loads every version in [`ContractVersion::ALL`], each through its own
/// bindings (docs/conventions/contract.md#versioning).
pub const CONTRACT_VERSION: &str = ContractVersion::CURRENT.as_str();

/// A checked, compiled strategy component, ready to instantiate cheaply.
pub struct Plugin {
    pub sha256: String,
    pub description: Description,
    /// Every import of the component (all of them allowed by the host).
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub size_bytes: usize,
    /// The contract version it was built against, read from its exports.
    pub contract_version: ContractVersion,
    /// One symbol (`strategy` export) or several (`portfolio` export).
    pub kind: StrategyKind,
    /// What runs the strategy inside: compiled code or an interpreter.
    pub runtime: GuestRuntime,
    /// How it was obtained: "compiled", "disk-cache" or "memory-cache".
    pub source: &'static str,
    pub(crate) pre: Pre,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("sha256", &self.sha256)
            .field("name", &self.description.name)
            .field("contract_version", &self.contract_version)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Who made a report of this plugin with `params` (`report.strategy`).
    pub fn info(&self, params: &Params) -> stratbox_engine::StrategyInfo {
        stratbox_engine::StrategyInfo {
            name: self.description.name.clone(),
            version: self.description.version.clone(),
            sha256: Some(self.sha256.clone()),
            params: params.to_map(),
        }
    }

    /// Whether it trades several symbols on one timeline (it exports
    /// `portfolio`): run it with [`Sandbox::instantiate_portfolio`] and
    /// `engine::portfolio::run_portfolio`, never with one symbol.
    pub fn is_portfolio(&self) -> bool {
        self.kind == StrategyKind::Portfolio
    }
}

/// Plugins kept compiled in memory per process.
const MEMORY_CACHE_PLUGINS: usize = 64;

pub struct Sandbox {
    engine: Engine,
    linker: Linker<StoreState>,
    config: SandboxConfig,
    pooling: bool,
    disk: Option<DiskCache>,
    memory: Mutex<HashMap<String, (Arc<Plugin>, u64)>>,
    /// One gate per sha256 being loaded: a worker whose slots all get the
    /// first tasks of a new strategy compiles it once, not once per slot
    /// (a Python or JavaScript component costs seconds and hundreds of MB).
    loading: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    uses: std::sync::atomic::AtomicU64,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> anyhow::Result<Self> {
        let (engine, pooling) = match build_engine(&config, config.pool_instances > 0) {
            Ok(engine) => (engine, config.pool_instances > 0),
            // The pool reserves address space up front; where that is not
            // allowed, fall back to on-demand allocation, and say so: every
            // instantiation then costs page faults and mmap calls.
            Err(e) => {
                tracing::warn!(
                    error = %format!("{e:#}"),
                    pool_instances = config.pool_instances,
                    "pooling allocator unavailable; strategy instances use on-demand allocation"
                );
                (build_engine(&config, false)?, false)
            }
        };
        let mut linker = Linker::new(&engine);
        bindings::add_to_linker(&mut linker)
            .map_err(|e| anyhow::anyhow!("cannot link the log import: {e:#}"))?;
        spawn_epoch_ticker(&engine, config.epoch_tick);
        let disk = config.cache_dir.as_deref().and_then(|dir| {
            let transform = match config.nan_canonicalization {
                NanCanonicalization::AtObservation => nan::PASS_VERSION,
                _ => "",
            };
            DiskCache::open(&dir.join("compiled"), &engine, transform).ok()
        });
        Ok(Self {
            engine,
            linker,
            config,
            pooling,
            disk,
            memory: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
            uses: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// "pooling" or "on-demand".
    pub fn allocator(&self) -> &'static str {
        if self.pooling {
            "pooling"
        } else {
            "on-demand"
        }
    }

    /// Drops compiled plugins held in memory (the disk cache stays).
    pub fn clear_memory_cache(&self) {
        self.memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// A plugin this sandbox has already loaded, by sha256, without its
    /// bytes: a worker fetches a plugin from Redis once, not per task.
    pub fn cached(&self, sha256: &str) -> Option<Arc<Plugin>> {
        let tick = self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let entry = memory.get_mut(sha256)?;
        entry.1 = tick;
        Some(entry.0.clone())
    }

    /// True when `sha256` loads without a compile: held in memory, or
    /// precompiled on disk.
    pub fn is_compiled(&self, sha256: &str) -> bool {
        self.memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(sha256)
            || self.disk.as_ref().is_some_and(|d| d.contains(sha256))
    }

    /// Checks and compiles `bytes` (or fetches them from a cache).
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<Plugin>, LoadError> {
        check_header(bytes)?;
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let Some(plugin) = self.cached(&sha256) {
            return Ok(plugin);
        }
        let gate = self
            .loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(sha256.clone())
            .or_default()
            .clone();
        let loaded = {
            let _turn = gate.lock().unwrap_or_else(|e| e.into_inner());
            // Whoever held the gate before may have loaded it meanwhile.
            match self.cached(&sha256) {
                Some(plugin) => Ok(plugin),
                None => self.load_uncached(bytes, sha256.clone()),
            }
        };
        self.loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&sha256);
        loaded
    }

    /// Loads a plugin held in no memory cache: from disk, or compiled.
    fn load_uncached(&self, bytes: &[u8], sha256: String) -> Result<Arc<Plugin>, LoadError> {
        let tick = self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (component, source) = match self
            .disk
            .as_ref()
            .and_then(|d| d.load(&self.engine, &sha256))
        {
            Some(component) => (component, "disk-cache"),
            None => {
                let component = self.compile(bytes)?;
                if let (Some(disk), Ok(precompiled)) = (&self.disk, component.serialize()) {
                    // A failed write only costs a recompile next time.
                    let _ = disk.store(&sha256, &precompiled);
                }
                (component, "compiled")
            }
        };
        let runtime = GuestRuntime::detect(bytes);
        let (contract_version, kind, imports, exports) =
            check_contract(&self.engine, &component, runtime)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(|pre| Pre::new(contract_version, kind, pre))
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        let description =
            instance::describe(&self.engine, &pre, &self.config).map_err(LoadError::Describe)?;
        description.check().map_err(LoadError::BadSchema)?;
        let plugin = Arc::new(Plugin {
            sha256: sha256.clone(),
            description,
            imports,
            exports,
            size_bytes: bytes.len(),
            contract_version,
            kind,
            runtime,
            source,
            pre,
        });
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        if memory.len() >= MEMORY_CACHE_PLUGINS {
            if let Some(oldest) = memory
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            {
                memory.remove(&oldest);
            }
        }
        memory.insert(sha256, (plugin.clone(), tick));
        Ok(plugin)
    }

    /// Compiles `bytes`, through the NaN pass when it is on. A component
    /// the pass cannot read gets wasmtime's own error for it.
    fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        let invalid = |e: wasmtime::Error| LoadError::Invalid(format!("{e:#}"));
        if self.config.nan_canonicalization != NanCanonicalization::AtObservation {
            return Component::new(&self.engine, bytes).map_err(invalid);
        }
        match nan::canonicalize(bytes) {
            Ok(rewritten) => Component::new(&self.engine, rewritten).map_err(invalid),
            Err(pass_error) => match Component::new(&self.engine, bytes) {
                Err(e) => Err(invalid(e)),
                Ok(_) => Err(LoadError::Invalid(pass_error)),
            },
        }
    }

    /// A fresh instance with `params` applied, limited for a run of `bars`.
    /// A portfolio plugin is refused (`strategy_error`): it needs
    /// [`Sandbox::instantiate_portfolio`].
    pub fn instantiate(
        &self,
        plugin: &Plugin,
        params: &Params,
        bars: usize,
        limits: RunLimits,
        cancel: CancelToken,
    ) -> Result<WasmStrategy, RunError> {
        if plugin.is_portfolio() {
            return Err(RunError::InitFailed {
                message: format!(
                    "{} trades several symbols on one timeline (it exports `portfolio`); \
                     run it with several symbols",
                    plugin.description.name
                ),
            });
        }
        WasmStrategy::start(
            &self.engine,
            &plugin.pre,
            plugin.contract_version,
            &self.config,
            self.run_settings(plugin, bars, limits, cancel),
            params,
            &plugin.description.columns,
        )
    }

    /// A fresh instance of a portfolio plugin for a run over `universe`
    /// on `market`, with `params` applied (its `init` gets the universe's
    /// symbol names and the market). The same limits as [`Self::instantiate`],
    /// the fuel budget counting one bar per symbol and step. A
    /// single-symbol plugin is refused (`strategy_error`).
    pub fn instantiate_portfolio(
        &self,
        plugin: &Plugin,
        params: &Params,
        universe: &Universe,
        market: Market,
        limits: RunLimits,
        cancel: CancelToken,
    ) -> Result<WasmPortfolioStrategy, RunError> {
        if !plugin.is_portfolio() {
            return Err(RunError::InitFailed {
                message: format!(
                    "{} trades one symbol (it exports `strategy`, not `portfolio`); \
                     run it with one symbol",
                    plugin.description.name
                ),
            });
        }
        let symbols: Vec<String> = universe.names().map(str::to_string).collect();
        let bars = universe.steps().saturating_mul(symbols.len().max(1));
        WasmPortfolioStrategy::start(
            &self.engine,
            &plugin.pre,
            &self.config,
            self.run_settings(plugin, bars, limits, cancel),
            instance::PortfolioSetup {
                params,
                symbols: &symbols,
                market,
                columns: &plugin.description.columns,
            },
        )
    }

    fn run_settings(
        &self,
        plugin: &Plugin,
        bars: usize,
        limits: RunLimits,
        cancel: CancelToken,
    ) -> instance::RunSettings {
        let fuel_budget = limits
            .fuel
            .unwrap_or_else(|| self.config.fuel_budget(plugin.runtime, bars));
        let memory_limit = limits
            .memory_limit_bytes
            .unwrap_or(self.config.memory_limit_bytes)
            .min(self.config.memory_limit_bytes);
        let deadline = limits.deadline.unwrap_or(self.config.deadline);
        instance::RunSettings {
            fuel_budget,
            memory_limit,
            deadline,
            started: Instant::now(),
            cancel,
        }
    }
}

fn build_engine(config: &SandboxConfig, pooling: bool) -> anyhow::Result<Engine> {
    let mut c = wasmtime::Config::new();
    c.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack)
        .cranelift_opt_level(OptLevel::Speed)
        .cranelift_nan_canonicalization(
            config.nan_canonicalization == NanCanonicalization::EveryOperation,
        )
        .memory_init_cow(config.memory_init_cow)
        .relaxed_simd_deterministic(true)
        .parallel_compilation(true);
    match config.profiler.as_deref() {
        None => {}
        Some("map") => {
            c.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        Some("jitdump") => {
            c.profiler(wasmtime::ProfilingStrategy::JitDump);
        }
        Some(other) => anyhow::bail!("STRATBOX_PERF must be `map` or `jitdump`, got `{other}`"),
    }
    if pooling {
        let slots = config.pool_instances;
        let mut pool = PoolingAllocationConfig::default();
        // A wrapped Rust strategy is one main module plus small adapter
        // shims: a few core instances and tables, one memory, per slot.
        pool.total_component_instances(slots)
            .total_core_instances(slots * 8)
            .total_memories(slots * 2)
            .total_tables(slots * 8)
            .max_memory_size(config.memory_limit_bytes)
            .linear_memory_keep_resident(config.memory_keep_resident)
            .table_keep_resident(config.table_keep_resident)
            .pagemap_scan(if config.pagemap_scan {
                Enabled::Auto
            } else {
                Enabled::No
            })
            .decommit_batch_size(config.decommit_batch.max(1));
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&c).map_err(|e| anyhow::anyhow!("cannot create the wasmtime engine: {e:#}"))
}

/// Advances the engine's epoch every tick until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine, tick: std::time::Duration) {
    let weak = engine.weak();
    let _ = std::thread::Builder::new()
        .name("stratbox-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(tick);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        });
}

/// What can be checked without compiling: the header, the contract
/// version and the imports, read from the component's top-level sections
/// (milliseconds for an 18 MB interpreter component, against seconds to
/// compile it). Passing this does not mean the component will load.
#[derive(Debug, Clone)]
pub struct Prechecked {
    pub sha256: String,
    pub runtime: GuestRuntime,
    pub contract_version: ContractVersion,
    pub kind: StrategyKind,
}

pub fn precheck(bytes: &[u8]) -> Result<Prechecked, LoadError> {
    use wasmparser::{Chunk, Parser, Payload};
    check_header(bytes)?;
    let invalid = |e: wasmparser::BinaryReaderError| LoadError::Invalid(e.to_string());
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut parser = Parser::new(0);
    let mut offset = 0;
    loop {
        let (consumed, payload) = match parser.parse(&bytes[offset..], true).map_err(invalid)? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            Chunk::NeedMoreData(_) => {
                return Err(LoadError::Invalid("the component is truncated".into()))
            }
        };
        offset += consumed;
        match payload {
            Payload::ComponentImportSection(reader) => {
                for import in reader {
                    imports.push(import.map_err(invalid)?.name.full_name().into_owned());
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader {
                    exports.push(export.map_err(invalid)?.name.full_name().into_owned());
                }
            }
            // Nested modules and components: the interpreter and its
            // shims, most of the bytes; their names are not the contract.
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                offset += (unchecked_range.end - unchecked_range.start) as usize;
            }
            Payload::End(_) => break,
            _ => {}
        }
    }
    let runtime = GuestRuntime::detect(bytes);
    let (contract_version, kind, _, _) = check_names(imports, exports, runtime)?;
    Ok(Prechecked {
        sha256: hex::encode(Sha256::digest(bytes)),
        runtime,
        contract_version,
        kind,
    })
}

fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    match u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) {
        0x0001_000d => Ok(()),
        0x0000_0001 => Err(LoadError::CoreModule),
        other => Err(LoadError::UnknownLayer(other)),
    }
}

/// The contract version a component was built for, read from its
/// `strategy` or `portfolio` export, and the only thing it may import:
/// the log of that same version (docs/conventions/contract.md, "What a
/// strategy may import"). Components name the version in every import
/// and export, so this needs no call into the guest.
type Checked = (ContractVersion, StrategyKind, Vec<String>, Vec<String>);

fn check_contract(
    engine: &Engine,
    component: &Component,
    runtime: GuestRuntime,
) -> Result<Checked, LoadError> {
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    check_names(imports, exports, runtime)
}

/// Why a portfolio component imports the `strategy` interface, and what to
/// do about it.
const PORTFOLIO_IMPORTS_STRATEGY: &str =
    "a portfolio component imports nothing of the `strategy` interface (the `portfolio` \
     interface defines its own types); it was built against an older draft of wit/strategy.wit: \
     rebuild it with `stratbox plugin build DIR`";

/// The contract check on a component's top-level import and export names.
fn check_names(
    imports: Vec<String>,
    exports: Vec<String>,
    runtime: GuestRuntime,
) -> Result<Checked, LoadError> {
    let spoken = || {
        let all = ContractVersion::ALL.map(|v| format!("{CONTRACT}@{v}"));
        match all.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => all.join(""),
        }
    };
    let exported = |kind: StrategyKind| {
        let prefix = format!("{CONTRACT}/{}@", kind.interface());
        exports
            .iter()
            .filter_map(|n| n.strip_prefix(&prefix))
            .find_map(ContractVersion::parse)
            .filter(|v| kind == StrategyKind::Single || v.has_portfolio())
    };
    let (single, portfolio) = (
        exported(StrategyKind::Single),
        exported(StrategyKind::Portfolio),
    );
    let found = match (single, portfolio) {
        (Some(_), Some(_)) => {
            return Err(LoadError::Invalid(format!(
                "the component exports both `{CONTRACT}/strategy` and `{CONTRACT}/portfolio`; \
                 a strategy is either over one symbol or over several"
            )))
        }
        (Some(v), None) => Some((v, StrategyKind::Single)),
        (None, Some(v)) => Some((v, StrategyKind::Portfolio)),
        (None, None) => None,
    };
    let version = found.map(|(v, _)| v);
    let other_version = |names: &[String]| {
        names
            .iter()
            .find(|n| {
                n.starts_with(&format!("{CONTRACT}/"))
                    && version.is_none_or(|v| !n.ends_with(&format!("@{v}")))
            })
            .map(|n| {
                n.split_once('@')
                    .map_or("an unversioned contract".to_string(), |(_, v)| {
                        format!("{CONTRACT}@{v}")
                    })
            })
    };
    let Some((version, kind)) = found else {
        if let Some(found) = other_version(&exports).or_else(|| other_version(&imports)) {
            return Err(LoadError::ContractVersion {
                found,
                expected: spoken(),
            });
        }
        return Err(LoadError::MissingExport {
            expected: format!(
                "{CONTRACT}/strategy@{v}` or `{CONTRACT}/portfolio@{v}",
                v = ContractVersion::CURRENT
            ),
        });
    };
    if let Some(found) = other_version(&imports) {
        return Err(LoadError::ContractVersion {
            found,
            expected: format!(
                "{CONTRACT}@{version} (the version of its `{}` export)",
                kind.interface()
            ),
        });
    }
    let log = format!("{CONTRACT}/log@{version}");
    let forbidden: Vec<String> = imports.iter().filter(|n| **n != log).cloned().collect();
    if !forbidden.is_empty() {
        // A portfolio component importing `strategy` was built against a
        // draft of 0.3.0 whose `portfolio` interface used `strategy`'s
        // types, which made the toolchains import that interface whole.
        let strategy = format!("{CONTRACT}/strategy@{version}");
        let hint = if kind == StrategyKind::Portfolio && forbidden.contains(&strategy) {
            PORTFOLIO_IMPORTS_STRATEGY
        } else {
            runtime.build_hint()
        };
        return Err(LoadError::ForbiddenImports {
            imports: forbidden,
            allowed: log,
            hint,
        });
    }
    Ok((version, kind, imports, exports))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_portfolio_component_may_import_only_the_log() {
        let exports = names(&["stratbox:strategy/portfolio@0.3.0"]);
        let (version, kind, _, _) = check_names(
            names(&["stratbox:strategy/log@0.3.0"]),
            exports.clone(),
            GuestRuntime::Python,
        )
        .unwrap();
        assert_eq!(
            (version, kind),
            (ContractVersion::V0_3_0, StrategyKind::Portfolio)
        );
        // What the toolchains made of a `portfolio` interface that `use`d
        // the `strategy` types: that whole interface, functions included.
        let err = check_names(
            names(&[
                "stratbox:strategy/strategy@0.3.0",
                "stratbox:strategy/log@0.3.0",
            ]),
            exports,
            GuestRuntime::Javascript,
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(
                "forbidden import: stratbox:strategy/strategy@0.3.0; \
                 a strategy may import only `stratbox:strategy/log@0.3.0`; \
                 a portfolio component imports nothing of the `strategy` interface"
            ),
            "{message}"
        );
        assert!(message.contains("stratbox plugin build DIR"), "{message}");
    }

    #[test]
    fn a_single_symbol_component_importing_strategy_gets_the_build_hint() {
        let err = check_names(
            names(&[
                "stratbox:strategy/strategy@0.3.0",
                "stratbox:strategy/log@0.3.0",
            ]),
            names(&["stratbox:strategy/strategy@0.3.0"]),
            GuestRuntime::Compiled,
        )
        .unwrap_err();
        let LoadError::ForbiddenImports { imports, hint, .. } = err else {
            panic!("expected forbidden imports, got {err}");
        };
        assert_eq!(imports, ["stratbox:strategy/strategy@0.3.0"]);
        assert_eq!(hint, GuestRuntime::Compiled.build_hint());
    }
}
