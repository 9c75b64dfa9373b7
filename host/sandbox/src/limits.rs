//! Memory and table caps, recording which one a guest hit so the run's
//! error can be named.

use wasmtime::ResourceLimiter;

/// Raised (as the trap's error) when a guest grows memory past its cap.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit_bytes} bytes exceeded (asked for {desired_bytes})")]
pub struct MemoryLimitHit {
    pub limit_bytes: usize,
    pub desired_bytes: usize,
}

pub struct Limiter {
    pub memory_limit_bytes: usize,
    pub memory_limit_hit: bool,
}

/// Table entries per table: far above what any compiled strategy needs.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit_bytes {
            self.memory_limit_hit = true;
            return Err(MemoryLimitHit {
                limit_bytes: self.memory_limit_bytes,
                desired_bytes: desired,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
