use clap::Args;

use super::CliResult;

#[derive(Debug, Args)]
pub struct BenchArgs {}

pub fn run(_args: BenchArgs) -> CliResult {
    Ok(())
}
