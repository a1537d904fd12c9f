#![forbid(unsafe_code)]

use std::process::ExitCode;

/// mimalloc: the proxy path allocates small, short-lived buffers; glibc's malloc showed as ~15%
/// of the CPU time in profiles of the load benchmark. Built without transparent huge pages
/// (`no_thp`): with them, each arena mimalloc touched became resident 2 MiB at a time, and the
/// gateway's peak RSS under 256 connections was about twice that of the same build without.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    api_gateway::Launcher::new().run()
}
