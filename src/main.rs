//! The `remex` binary: the command line (`cli/`) over the library's public
//! API — the same API a service or another program uses.

// The command line is where remex prints; and a binary has no public API,
// so `pub` in its modules means "used by the other modules".
#![allow(clippy::print_stdout, clippy::print_stderr, unreachable_pub)]

mod cli;

fn main() -> std::process::ExitCode {
    tune_malloc();
    cli::main()
}

/// Keeps glibc's allocator from handing transfer buffers back to the kernel
/// after every request. A transfer allocates and frees 255 KiB buffers on
/// several threads; by default glibc serves those from fresh mappings or
/// trims the freed memory of its per-thread arenas at once, so every
/// request page-faults and zeroes its buffer again (about a tenth of the
/// client's CPU time in an upload). With these limits the memory is reused;
/// the peak stays bounded by the transfer's memory budget.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    #[allow(unsafe_code)]
    // SAFETY: mallopt(3) only sets allocator parameters; it is called
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}
