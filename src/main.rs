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

/// Raises the soft limit of open files to the hard limit: each host takes
/// a socket, so a run on 1,000 hosts needs more than the usual soft limit of
/// 1,024. Says so at `-v`. Returns nothing: when it cannot, the run goes on
/// and a host that finds no descriptor fails with the reason.
#[cfg(unix)]
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    let raised = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max
        {
            None
        } else {
            let before = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            (libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0).then_some(before)
        }
    };
    if let Some(before) = raised {
        tracing::debug!(
            "raised the open-file limit (RLIMIT_NOFILE) from {before} to {}, one per host connection",
            limit.rlim_cur
        );
    }
}

#[cfg(not(unix))]
fn raise_open_file_limit() {}
