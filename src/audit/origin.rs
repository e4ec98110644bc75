//! Who and where: the default `actor` (local user) and `orchestrator`
//! (this machine's host name) of records.

/// The local OS user name, as for the default remote user.
pub fn local_actor() -> String {
    crate::config::user_name()
}

/// This machine's host name: the kernel's (`/proc/sys/kernel/hostname`),
/// else `/etc/hostname`, else `$HOSTNAME`, else `unknown`. (`gethostname(2)`
/// would need `unsafe`; on Linux the first file is the same value.)
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .into_iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .chain(std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_known() {
        let host = hostname();
        assert!(!host.is_empty() && !host.contains('\n'), "{host:?}");
        assert!(!local_actor().is_empty());
    }
}
