//! Every sandbox default in one place, each with the reason for its value.
//! Each limit can be overridden per server (`SandboxConfig`) and per run
//! (`RunLimits`).

use std::path::PathBuf;
use std::time::Duration;

use super::runtime::GuestRuntime;

/// The fewest steps a portfolio window holds: 1024 steps of 100 symbols
/// (`MAX_SYMBOLS`) with five columns is 4 MiB of guest memory, well under
/// the memory cap, and a few calls per 10,000 steps.
pub const MIN_PORTFOLIO_WINDOW_STEPS: usize = 1024;

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Linear memory cap per instance. 64 MiB (the product default, docs/sandbox.md "Limits"): a strategy
    /// keeps one window of bars (8192 bars x 48 bytes = 384 KiB) plus its
    /// indicators; anything near the cap is a leak or an attack.
    pub memory_limit_bytes: usize,
    /// Fuel for a run: `fuel_base + fuel_per_bar * bars`. An EMA crossover
    /// burns about 40 fuel per bar; 20,000 per bar leaves 500x headroom for
    /// heavy indicators while an infinite loop on 10k bars still ends in
    /// well under a second.
    pub fuel_base: u64,
    pub fuel_per_bar: u64,
    /// The same for a Python strategy: CPython interprets every bar and
    /// builds a float object per value it reads. The EMA crossover burns
    /// about 23,000 fuel per bar in Python and 49,000 in JavaScript
    /// (SpiderMonkey without its JIT), measured over 3,000 bars with 209
    /// trades; 500,000 and 1,000,000 leave about 20x for heavier
    /// strategies, and an endless loop on 10k bars still ends in seconds.
    pub python_fuel_base: u64,
    pub python_fuel_per_bar: u64,
    /// The same for a JavaScript strategy (SpiderMonkey's interpreter).
    pub javascript_fuel_base: u64,
    pub javascript_fuel_per_bar: u64,
    /// Fuel for `describe` (at upload and inspect): generous for building a
    /// schema, tiny next to a run.
    pub describe_fuel: u64,
    /// Wall-clock cap on one run, enforced through epoch interruption. The
    /// longest legitimate run (10M bars of a heavy strategy) takes seconds.
    pub deadline: Duration,
    /// Epoch tick: the granularity of deadlines and cancellation. 10 ms
    /// costs nothing measurable and stops a runaway strategy promptly.
    pub epoch_tick: Duration,
    /// Native stack for wasm frames. 512 KiB (wasmtime's default) allows
    /// deep legitimate recursion and stops unbounded recursion at once.
    pub max_wasm_stack: usize,
    /// Bars pushed to the guest per window. 8192 amortises the call and
    /// copy cost (about 12-16 ns/bar measured) while staying small in guest memory.
    pub window_bars: usize,
    /// Log lines kept per run and bytes kept per line; the rest is counted.
    pub log_max_lines: usize,
    pub log_max_line_bytes: usize,
    /// Bytes a run may hand to `log` in all, kept or not, before it is
    /// stopped: every message is copied out of the guest before it can be
    /// dropped, and fuel does not count that host work. 64 MiB is far past
    /// any useful log and costs the host a few tens of milliseconds.
    pub log_max_total_bytes: u64,
    /// Precompiled components on disk; `None` keeps the cache in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Concurrent instances in the pooling allocator (0 disables pooling).
    /// Pooling makes instantiation about 4x cheaper (7 us vs 28 us); 64
    /// slots cover a worker with one slot per core on large machines.
    pub pool_instances: u32,
    /// How NaNs are made identical on every CPU (docs/conventions/contract.md, "Determinism"). The
    /// default rewrites each plugin so NaNs are canonical wherever their
    /// bits can be observed (`sandbox/nan.rs`): same reports, without
    /// Cranelift's per-operation canonicalisation on every float chain
    /// (an EMA crossover: 24 ms against 30 ms per million bars).
    pub nan_canonicalization: NanCanonicalization,
    /// Map linear memory copy-on-write from the module image. Cheap for
    /// one big run; for many tiny runs in a multi-threaded worker every
    /// first write to an image page is a copy plus a TLB shootdown across
    /// cores, so `false` (copy the data segments) can be faster there.
    pub memory_init_cow: bool,
    /// Bytes of each pooled linear memory reset with `memset` instead of
    /// `madvise` when an instance ends, so the next instance in that slot
    /// takes no page faults on them. 512 KiB covers the 128 KiB stack,
    /// data and heap of a plugin built by `stratbox plugin build` running
    /// 8192-bar windows; a memset of it costs less than the faults it
    /// saves (a 1,000-combination sweep: about 20 % less CPU, measured).
    pub memory_keep_resident: usize,
    /// Find the pages an instance dirtied with Linux's PAGEMAP_SCAN ioctl
    /// (kernel 6.7+, skipped where missing) and reset only those, instead
    /// of a memset of all `memory_keep_resident` bytes. A 100-bar backtest
    /// dirties a few pages of the 512 KiB.
    pub pagemap_scan: bool,
    /// Bytes of each pooled table (a module's indirect-call table) reset in
    /// place instead of released with `madvise` when an instance ends.
    /// wasmtime's default is none: every tiny backtest then released its
    /// tables' pages, one more TLB flush across cores per batch. 64 KiB
    /// holds 8,192 entries, more than a plugin built by `stratbox plugin
    /// build` declares; only the entries a module declares are reset.
    pub table_keep_resident: usize,
    /// Pooled memories released per `madvise` batch. Each release flushes
    /// TLBs on every core running the process; batching spreads that cost
    /// over many short-lived instances (a worker running tiny backtests).
    pub decommit_batch: usize,
    /// Tell `perf` about compiled strategy code: `STRATBOX_PERF=map` names
    /// functions in `/tmp/perf-PID.map` (`perf report`), `STRATBOX_PERF=
    /// jitdump` also keeps their code (`perf record -k mono`, then `perf
    /// inject --jit`, for `perf annotate`). Profiling only.
    /// `None`, `map` or `jitdump`; anything else fails engine creation.
    pub profiler: Option<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            memory_limit_bytes: 64 << 20,
            fuel_base: 100_000_000,
            fuel_per_bar: 20_000,
            python_fuel_base: 1_000_000_000,
            python_fuel_per_bar: 500_000,
            javascript_fuel_base: 1_000_000_000,
            javascript_fuel_per_bar: 1_000_000,
            describe_fuel: 50_000_000,
            deadline: Duration::from_secs(120),
            epoch_tick: Duration::from_millis(10),
            max_wasm_stack: 512 << 10,
            window_bars: 8192,
            log_max_lines: 1_000,
            log_max_line_bytes: 1_024,
            log_max_total_bytes: 64 << 20,
            cache_dir: default_cache_dir(),
            pool_instances: 64,
            nan_canonicalization: NanCanonicalization::AtObservation,
            memory_init_cow: true,
            memory_keep_resident: 512 << 10,
            // Queue bench, 100-bar backtests, interleaved: 112-129 us of
            // worker CPU per backtest against 126-175 without.
            pagemap_scan: true,
            table_keep_resident: 64 << 10,
            // Measured on the queue bench (100-bar backtests, 2 slots):
            // 131-145 us of worker CPU per backtest against 150-177 at 1.
            decommit_batch: 32,
            profiler: default_profiler(),
        }
    }
}

impl SandboxConfig {
    /// Timeline steps pushed per window to a strategy over `symbols`
    /// symbols: as many values per column as a single-symbol window
    /// (`window_bars`) across all symbols, so a window costs the guest the
    /// same memory whatever the universe; but at least
    /// [`MIN_PORTFOLIO_WINDOW_STEPS`], so a wide universe still crosses
    /// in few calls.
    pub fn portfolio_window_steps(&self, symbols: usize) -> usize {
        (self.window_bars / symbols.max(1)).max(MIN_PORTFOLIO_WINDOW_STEPS)
    }

    /// `(base, per bar)` fuel of a run of a strategy on `runtime`.
    pub fn fuel_rate(&self, runtime: GuestRuntime) -> (u64, u64) {
        match runtime {
            GuestRuntime::Compiled => (self.fuel_base, self.fuel_per_bar),
            GuestRuntime::Python => (self.python_fuel_base, self.python_fuel_per_bar),
            GuestRuntime::Javascript => (self.javascript_fuel_base, self.javascript_fuel_per_bar),
        }
    }

    /// The default fuel budget of a run of `bars` bars on `runtime`.
    pub fn fuel_budget(&self, runtime: GuestRuntime, bars: usize) -> u64 {
        let (base, per_bar) = self.fuel_rate(runtime);
        base.saturating_add(per_bar.saturating_mul(bars as u64))
    }
}

/// Where NaN bit patterns are made canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NanCanonicalization {
    /// Where bits can be observed: stores, reinterprets, copysign, SIMD.
    AtObservation,
    /// After every float operation (Cranelift's setting): the same
    /// guarantee, at a higher cost.
    EveryOperation,
    /// Not at all: results may differ between CPUs. Benchmarks only.
    Off,
}

/// `$STRATBOX_CACHE_DIR`, else `$XDG_CACHE_HOME/stratbox`, else
/// `$HOME/.cache/stratbox`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STRATBOX_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("stratbox"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache").join("stratbox"))
}

/// `$STRATBOX_PERF`, when set and not empty.
pub fn default_profiler() -> Option<String> {
    std::env::var("STRATBOX_PERF")
        .ok()
        .filter(|v| !v.is_empty())
}

/// Per-run overrides of the server defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunLimits {
    /// Absolute fuel budget for the run.
    pub fuel: Option<u64>,
    pub deadline: Option<Duration>,
    /// Must not exceed the server's cap (the pool is sized for it).
    pub memory_limit_bytes: Option<usize>,
}
