//! The `remex` binary: the command line (`cli/`) over the library's public
//! API — the same API a service or another program uses.

// The command line is where remex prints; and a binary has no public API,
// so `pub` in its modules means "used by the other modules".
#![allow(clippy::print_stdout, clippy::print_stderr, unreachable_pub)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

/// Keeps glibc's allocator from handing transfer buffers back to the kernel
/// after every request (called for every command but `serve`, before the
/// runtime starts). A transfer allocates and frees 255 KiB buffers on
/// several threads; by default glibc serves those from fresh mappings or
/// trims the freed memory of its per-thread arenas at once, so every
/// request page-faults and zeroes its buffer again (about a tenth of the
/// client's CPU time in an upload). With these limits the memory is reused;
/// the peak stays bounded by the transfer's memory budget.
///
/// Not for `remex serve`: a long-lived process with many threads would keep
/// up to the trim threshold of freed memory in each of glibc's arenas
/// (measured: 250 MB under bench/serve.sh's load, 4 arenas of 30-60 MB).
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
