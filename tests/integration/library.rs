//! The library in a long-lived process, the way a service uses it: one
//! `Executor` for many runs, some at the same time, while other processes
//! change known_hosts and the keys.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use remex::{Config, Exec, Executor, RunContext};

use crate::util::{TestLab, log_path, records};

/// A runtime and an executor for `config`.
fn executor(config: &std::path::Path) -> (tokio::runtime::Runtime, Executor) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let executor = Executor::new(Config::load(config).unwrap()).unwrap();
    (runtime, executor)
}

/// Runs `true` on `host` through `executor`; the host's error, if any.
fn exec_on(
    runtime: &tokio::runtime::Runtime,
    executor: &Executor,
    host: &str,
) -> Option<remex::Failure> {
    let report = runtime
        .block_on(executor.exec(&RunContext::new(), host, &Exec::argv(["true"])))
        .unwrap();
    report.results[0].error.clone()
}

/// Established TCP connections whose server end is on `port` right now
/// (both ends are on this machine, so the server's side counts each
/// connection once). The kernel lists the table over several reads and may
/// repeat a line when sockets come and go in between, so lines count once
/// per address pair.
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let port = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, remote_address, state (01 = ESTABLISHED).
            let (local, remote, state) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
            (local.ends_with(&port) && *state == "01").then_some((*local, *remote))
        })
        .collect::<HashSet<_>>()
        .len()
}

#[test]
fn concurrent_runs_keep_their_own_actor_and_share_one_connection_budget() {
    let lab = TestLab::new(6);
    let config = lab.config_variant("two.yml", &[("max_parallel: 64", "max_parallel: 2")]);
    let (runtime, executor) = executor(&config);

    // Watch the connections to the lab while the runs go.
    let running = Arc::new(AtomicBool::new(true));
    let most = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (running, most, port) = (running.clone(), most.clone(), lab.port());
        std::thread::spawn(move || {
            // The kernel lists the table over several reads: a read while
            // connections come and go may show a socket that just closed
            // and the one that replaced it. A connection over the budget
            // stays open far longer than two reads, so each count is
            // confirmed by the next one.
            let mut last = 0;
            while running.load(Ordering::SeqCst) {
                let now = connections_to(port);
                most.fetch_max(now.min(last), Ordering::SeqCst);
                last = now;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let exec = Exec::argv(["sleep", "0.3"]);
    let (a, b) = runtime.block_on(async {
        let alpha = RunContext::new().actor("alpha").request_id("req-a");
        let beta = RunContext::new().actor("beta").request_id("req-b");
        tokio::join!(
            executor.exec(&alpha, "all", &exec),
            executor.exec(&beta, "all", &exec)
        )
    });
    running.store(false, Ordering::SeqCst);
    watcher.join().unwrap();
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.all_ok() && b.all_ok(), "{a:?}\n{b:?}");

    let most = most.load(Ordering::SeqCst);
    assert!(
        most <= 2,
        "{most} connections were open at once; the budget is 2"
    );
    assert!(most >= 1, "the watcher saw no connection at all");

    // Each run's records carry its own actor and request, none the other's.
    let all = records(&lab);
    for (report, actor, request) in [(&a, "alpha", "req-a"), (&b, "beta", "req-b")] {
        let mine: Vec<_> = all.iter().filter(|r| r["run"] == report.run_id).collect();
        assert_eq!(mine.len(), 12, "{mine:#?}");
        for record in mine {
            assert_eq!(record["workflow"], actor, "{record}");
            assert_eq!(record["request"], request, "{record}");
        }
    }
    runtime.block_on(executor.close());
}

#[test]
fn a_long_lived_executor_sees_forget_trust_revoked_and_rotate_done_meanwhile() {
    let lab = TestLab::new(1);
    let (runtime, executor) = executor(&lab.config());
    let remex = |args: &[&str]| lab.remex().args(args).run().expect_code(0);
    assert_eq!(exec_on(&runtime, &executor, "vm01"), None);

    // Forgotten by another process: the open connection is not trusted
    // any more, and a new one meets an unknown key.
    remex(&["hosts", "forget", "vm01"]);
    let failure = exec_on(&runtime, &executor, "vm01").expect("a forgotten host fails");
    assert_eq!(failure.kind, remex::ErrorKind::HostKey, "{failure:?}");
    assert!(failure.message.contains("unknown"), "{failure:?}");

    // Trusted again by another process: the next run gets in.
    remex(&["hosts", "trust", "vm01", "--yes"]);
    assert_eq!(exec_on(&runtime, &executor, "vm01"), None);

    // Rotated by another process: the old key is gone from the host, and
    // the executor's next connection logs in with the new key.
    let rotated = lab
        .remex()
        .args(["--json", "keys", "rotate", "vm01"])
        .run()
        .expect_code(0)
        .json();
    let new = rotated["key"]["fingerprint"].as_str().unwrap().to_owned();
    let logins_with = |key: &str| {
        lab.sshd_log("vm01")
            .lines()
            .filter(|l| l.contains("Accepted publickey") && l.contains(key))
            .count()
    };
    let before = logins_with(&new);
    assert_eq!(exec_on(&runtime, &executor, "vm01"), None);
    assert_eq!(
        logins_with(&new),
        before + 1,
        "the executor did not log in anew with the rotated key {new}"
    );

    // Marked @revoked by hand: refused at once, connection or not.
    let known = std::fs::read_to_string(&lab.lab.known_hosts_path).unwrap();
    let line = known
        .lines()
        .find(|l| l.contains(&format!("[127.0.0.2]:{}", lab.port())))
        .unwrap()
        .to_owned();
    std::fs::write(
        &lab.lab.known_hosts_path,
        format!("{known}@revoked {line}\n"),
    )
    .unwrap();
    let failure = exec_on(&runtime, &executor, "vm01").expect("a revoked key fails");
    assert_eq!(failure.kind, remex::ErrorKind::HostKey, "{failure:?}");
    assert!(failure.message.contains("@revoked"), "{failure:?}");
    runtime.block_on(executor.close());

    // One run after another, all in the log, which still verifies.
    let runs: HashSet<String> = records(&lab)
        .iter()
        .map(|r| r["run"].as_str().unwrap().to_owned())
        .collect();
    assert!(runs.len() >= 6, "{runs:?}");
    assert!(log_path(&lab).exists());
    crate::util::assert_verifies(&lab);
}

#[test]
fn an_executor_for_one_run_closes_each_connection_once_its_host_is_done() {
    let lab = TestLab::new(4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = || Config::load(&lab.config()).unwrap();
    let run = |executor: &Executor| {
        let report = runtime
            .block_on(executor.exec(&RunContext::new(), "all", &Exec::argv(["true"])))
            .unwrap();
        assert_eq!(report.summary.ok, 4, "{:?}", report.summary);
    };

    // The default (a service): the connections stay, for the next run.
    let pooling = Executor::new(config()).unwrap();
    run(&pooling);
    assert_eq!(pooling.open_connections(), 4);
    assert_eq!(connections_to(lab.port()), 4);
    runtime.block_on(pooling.close());

    // One run (the CLI): each is closed as its host finishes, before the
    // run returns, so nothing is left for `close` and no socket stays.
    let one_run = Executor::builder(config())
        .reuse_connections(false)
        .build()
        .unwrap();
    run(&one_run);
    assert_eq!(one_run.open_connections(), 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while connections_to(lab.port()) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(connections_to(lab.port()), 0);
}
