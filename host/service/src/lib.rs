//! The service: it wires the generic queue to the domain. `tasks` turns a
//! queue delivery into a backtest or an optimization, `worker` runs task
//! slots, `scheduler` fires recurring submissions and `autoscale` keeps
//! enough worker processes for a wait SLA.
#![forbid(unsafe_code)]

pub mod autoscale;
pub mod retention;
pub mod scheduler;
pub mod tasks;
pub mod worker;
