//! Every Redis key the store uses, in one place (docs/queue.md, "Keys", lists them).
//!
//! Symbols are `[A-Z0-9._-]` (see `candles::normalize_symbol`) and ids are
//! numbers, so no key of one kind can be mistaken for a key of another.

use stratbox_engine::candles::format_timeframe;

pub const DEFAULT_PREFIX: &str = "stratbox";
/// Appended to a symbol to name its mark-price series.
pub const MARK_SUFFIX: &str = ".MARK";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
    /// Where the id counters live: the install's prefix, for a tenant
    /// too, so an id names one record install-wide and another tenant's
    /// id is simply not found.
    ids: String,
}

impl Default for Keys {
    fn default() -> Self {
        Keys::new(DEFAULT_PREFIX)
    }
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
            ids: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}:tenant:{name}`: the prefix of every key of a tenant.
    pub fn tenant(&self, tenant: &crate::TenantName) -> Keys {
        Keys {
            prefix: format!("{}:tenant:{}", self.ids, tenant.as_str()),
            ids: self.ids.clone(),
        }
    }

    /// `{prefix}:apikeys`: API keys, field the sha256 of the key (hex),
    /// value the key's JSON (id, tenant, label, admin, created_at_ms).
    pub fn api_keys(&self) -> String {
        format!("{}:apikeys", self.prefix)
    }

    /// `{prefix}:tenants`: tenant name to its quota's JSON.
    pub fn tenants(&self) -> String {
        format!("{}:tenants", self.prefix)
    }

    /// `{prefix}:plugin:{sha256}`: hash with the component (`wasm`, raw
    /// bytes), `name`, `version`, `description` (JSON), `size`,
    /// `created_at_ms` and `strategy_id`.
    pub fn plugin(&self, sha256: &str) -> String {
        format!("{}:plugin:{sha256}", self.prefix)
    }

    /// `{prefix}:upload:{sha256}`: an upload being compiled in the
    /// background (docs/languages.md, "Uploads"): `wasm`, `status`
    /// (`compiling`, `ready` or `failed`), `error`, `strategy_id`,
    /// `started_at_ms`. Expires a day after its last change.
    pub fn upload(&self, sha256: &str) -> String {
        format!("{}:upload:{sha256}", self.prefix)
    }

    /// `{prefix}:plugin:{sha256}:tasks`: ids of tasks submitted to run
    /// the plugin; while one may still run, the plugin cannot be deleted.
    pub fn plugin_tasks(&self, sha256: &str) -> String {
        format!("{}:plugin:{sha256}:tasks", self.prefix)
    }

    /// `{prefix}:schedule:{id}`: a schedule (definition, paused, next and
    /// last run, runs, last error).
    pub fn schedule(&self, id: u64) -> String {
        format!("{}:schedule:{id}", self.prefix)
    }

    /// `{prefix}:schedules`: ids of every schedule.
    pub fn schedules(&self) -> String {
        format!("{}:schedules", self.prefix)
    }

    /// `{prefix}:schedules:due`: schedule ids by next run (ms).
    pub fn schedules_due(&self) -> String {
        format!("{}:schedules:due", self.prefix)
    }

    /// `{prefix}:schedule:next_id`: counter handing out schedule ids.
    pub fn schedule_next_id(&self) -> String {
        format!("{}:schedule:next_id", self.ids)
    }

    /// `{prefix}:strategy:next_id`: counter (INCR) handing out strategy ids.
    pub fn strategy_next_id(&self) -> String {
        format!("{}:strategy:next_id", self.ids)
    }

    /// `{prefix}:strategies`: hash strategy id -> plugin sha256. The reverse
    /// mapping is the `strategy_id` field of the plugin hash.
    pub fn strategies(&self) -> String {
        format!("{}:strategies", self.prefix)
    }

    /// `{prefix}:candles:series`: set of `SYMBOL:tf` (e.g. `BTCUSDT:1h`),
    /// one member per stored series.
    pub fn series_set(&self) -> String {
        format!("{}:candles:series", self.prefix)
    }

    /// The member of [`Keys::series_set`] for one series.
    pub fn series_member(symbol: &str, timeframe_secs: i64) -> String {
        format!("{symbol}:{}", format_timeframe(timeframe_secs))
    }

    /// `{prefix}:candles:{SYMBOL}:{tf}`: series meta hash with `rows`,
    /// `first_ts`, `last_ts`, `timeframe_secs`, `chunk_span_secs`, `version`
    /// (bumped by every import) and one field `chunk:{no}` per chunk, whose
    /// value is the version that last wrote that chunk.
    pub fn series(&self, symbol: &str, timeframe_secs: i64) -> String {
        format!(
            "{}:candles:{symbol}:{}",
            self.prefix,
            format_timeframe(timeframe_secs)
        )
    }

    /// `{prefix}:candles:{SYMBOL}:{tf}:{chunk_no}`: one binary chunk (see
    /// `store::chunk`) holding the bars with
    /// `ts.div_euclid(chunk_span_secs) == chunk_no`. Always the series key,
    /// a colon and the number: the load script builds it that way.
    pub fn chunk(&self, symbol: &str, timeframe_secs: i64, chunk_no: i64) -> String {
        format!("{}:{chunk_no}", self.series(symbol, timeframe_secs))
    }

    /// `{prefix}:funding:{SYMBOL}`: hash of funding settlements, field
    /// the settlement time (unix seconds) -> the rate as text (see
    /// `store::funding`).
    pub fn funding(&self, symbol: &str) -> String {
        format!("{}:funding:{symbol}", self.prefix)
    }

    /// `{prefix}:instrument:{SYMBOL}`: the instrument as JSON (see
    /// `store::instruments`).
    pub fn instrument(&self, symbol: &str) -> String {
        format!("{}:instrument:{symbol}", self.prefix)
    }

    /// The symbol under which a symbol's mark-price candles are stored as
    /// a candle series (`BTCUSDT.MARK`, so `{prefix}:candles:BTCUSDT.MARK:1h`
    /// and its chunks): the same chunks, versions and cache as trade
    /// candles. Trade symbols never end in `.MARK` on Bybit.
    pub fn mark_symbol(symbol: &str) -> String {
        format!("{symbol}{MARK_SUFFIX}")
    }

    /// `{prefix}:backtest:{id}`: backtest record hash (field names in
    /// `store::backtests::fields`).
    pub fn backtest(&self, id: u64) -> String {
        format!("{}{id}", self.backtest_prefix())
    }

    /// `{prefix}:backtest:{id}:log`: the strategy log of the record's last
    /// run that logged (`store::backtests::StrategyLog` as JSON), apart
    /// from the record so listing records does not carry it.
    pub fn backtest_log(&self, id: u64) -> String {
        format!("{}{id}:log", self.backtest_prefix())
    }

    /// What every backtest record key starts with (scripts append the id).
    pub fn backtest_prefix(&self) -> String {
        format!("{}:backtest:", self.prefix)
    }

    /// `{prefix}:backtest:next_id`: counter (INCR) handing out backtest ids.
    pub fn backtest_next_id(&self) -> String {
        format!("{}:backtest:next_id", self.ids)
    }

    /// `{prefix}:optimization:{id}`: optimization record hash (fields in
    /// `store::optimizations::fields`).
    pub fn optimization(&self, id: u64) -> String {
        format!("{}:optimization:{id}", self.prefix)
    }

    /// `{prefix}:optimization:next_id`: counter (INCR) of optimization ids.
    pub fn optimization_next_id(&self) -> String {
        format!("{}:optimization:next_id", self.ids)
    }

    /// `{prefix}:optimization:{id}:results`: hash chunk number -> that
    /// chunk's rows (JSON), written once per chunk (HSETNX); dropped when
    /// the table is written.
    pub fn optimization_results(&self, id: u64) -> String {
        format!("{}:optimization:{id}:results", self.prefix)
    }

    /// `{prefix}:optimization:{id}:chunk:{n}`: the record the queue mirrors
    /// chunk task `n` into (`task_id`, `status`, `error`, ...).
    pub fn optimization_chunk(&self, id: u64, chunk: usize) -> String {
        format!("{}:optimization:{id}:chunk:{chunk}", self.prefix)
    }

    /// `{prefix}:optimization:{id}:fanout`: the record of the task that
    /// fans the optimization out into chunks.
    pub fn optimization_fanout(&self, id: u64) -> String {
        format!("{}:optimization:{id}:fanout", self.prefix)
    }

    /// `{prefix}:backtests`: sorted set of backtest ids scored by
    /// `created_at_ms`, for listing recent ones.
    pub fn backtests(&self) -> String {
        format!("{}:backtests", self.prefix)
    }

    /// `{prefix}:optimizations`: sorted set of optimization ids scored by
    /// id (ids grow with time), for listing recent ones.
    pub fn optimizations(&self) -> String {
        format!("{}:optimizations", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout() {
        let k = Keys::default();
        assert_eq!(k.plugin("ab"), "stratbox:plugin:ab");
        assert_eq!(k.strategy_next_id(), "stratbox:strategy:next_id");
        assert_eq!(k.strategies(), "stratbox:strategies");
        assert_eq!(k.series_set(), "stratbox:candles:series");
        assert_eq!(Keys::series_member("BTCUSDT", 3_600), "BTCUSDT:1h");
        assert_eq!(k.series("BTCUSDT", 3_600), "stratbox:candles:BTCUSDT:1h");
        assert_eq!(
            k.chunk("BTCUSDT", 900, -3),
            "stratbox:candles:BTCUSDT:15m:-3"
        );
        assert_eq!(k.backtest(7), "stratbox:backtest:7");
        assert_eq!(k.backtest_log(7), "stratbox:backtest:7:log");
        assert_eq!(k.backtest_next_id(), "stratbox:backtest:next_id");
        assert_eq!(k.backtests(), "stratbox:backtests");
        assert_eq!(Keys::new("x").backtests(), "x:backtests");
        assert_eq!(k.optimization(3), "stratbox:optimization:3");
        assert_eq!(k.optimization_next_id(), "stratbox:optimization:next_id");
        assert_eq!(k.optimization_results(3), "stratbox:optimization:3:results");
        assert_eq!(
            k.optimization_chunk(3, 0),
            "stratbox:optimization:3:chunk:0"
        );
        assert_eq!(k.optimization_fanout(3), "stratbox:optimization:3:fanout");
        assert_eq!(k.funding("BTCUSDT"), "stratbox:funding:BTCUSDT");
        assert_eq!(k.instrument("BTCUSDT"), "stratbox:instrument:BTCUSDT");
        assert_eq!(
            k.series(&Keys::mark_symbol("BTCUSDT"), 3_600),
            "stratbox:candles:BTCUSDT.MARK:1h"
        );
    }
}
