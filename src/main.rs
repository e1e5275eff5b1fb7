//! The `registry-operator` binary: the operator and its CLI.

use std::process::ExitCode;

use clap::Parser;
use registry_operator::cli::Cli;

fn main() -> ExitCode {
    fixed_mmap_threshold();
    let cli = Cli::parse();
    registry_operator::cli::run(cli)
}

/// Fixes glibc malloc's mmap threshold at its default, 128 KiB. Left alone, glibc raises it
/// to the size of every large block freed (up to 32 MiB); a run then carves the growing
/// lists of a large repository from the heap, and the space they leave when they grow stays
/// resident under the small allocations made meanwhile. Measured on one repository of
/// 200,000 tags: 98.5 MiB peak resident without this, 83.1 MiB with it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fixed_mmap_threshold() {
    const THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: mallopt only sets a malloc parameter; it is called before any other thread
    // exists. Its result (0 when refused) changes nothing but memory use.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
    }
}

/// Other allocators choose for themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fixed_mmap_threshold() {}
