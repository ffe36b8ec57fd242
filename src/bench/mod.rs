//! `tcpkit bench`: the load generator.
use crate::Failure;
use crate::cli::BenchArgs;

/// Run the benchmark.
pub fn run(_args: BenchArgs) -> Result<(), Failure> {
    Err(Failure::new(1, "bench: not implemented yet"))
}
