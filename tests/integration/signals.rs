//! SIGTERM (`timeout`, systemd, CI cancellation) and SIGHUP (a closed
//! terminal) stop a run the way Ctrl-C does: the remote commands are
//! stopped, every host's `end` record is written, the report is printed,
//! and remex exits with 128 + the signal's number. (Scripts and transfers:
//! `script.rs`, `transfer_edge.rs`.)

use serde_json::Value;

use crate::util::{
    TestLab, assert_every_host_ended, assert_no_process_left, assert_verifies, processes_matching,
    records, send_signal, wait_for,
};

#[test]
fn sigterm_and_sighup_stop_the_remote_commands_and_every_host_is_recorded() {
    let lab = TestLab::new(3);
    let hosts = ["vm01", "vm02", "vm03"];
    for (signal, code, json) in [("TERM", 143, true), ("HUP", 129, false), ("INT", 130, true)] {
        // The remote command's own command line, unique to this case.
        let sleep = format!("sleep 7{code}1");
        let mut remex = lab.remex();
        if json {
            remex = remex.arg("--json");
        }
        let mut child = remex
            .args(["exec", "all", "--"])
            .args(sleep.split(' '))
            .spawn();
        // remex's own command line names it too: count the hosts' only.
        wait_for(&mut child, "the command running on every host", || {
            let running = processes_matching(&sleep);
            running
                .iter()
                .filter(|(_, cmd)| cmd.trim() == sleep)
                .count()
                == hosts.len()
        });
        send_signal(&child, signal);
        let out = child.wait_with_output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(code), "{signal}: {stderr}");
        assert!(stderr.contains("remex: interrupted"), "{signal}: {stderr}");
        // No remote process outlives remex's report.
        assert_no_process_left(&[&sleep]);

        let records = records(&lab);
        let run = if json {
            // The whole report, one result per host, each cancelled.
            let report: Value = serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("{signal}: not JSON ({e}): {stdout}"));
            let results = report["results"].as_array().unwrap();
            assert_eq!(results.len(), hosts.len(), "{report}");
            for r in results {
                assert_eq!(r["error"]["kind"], "cancelled", "{signal}: {r}");
            }
            assert_eq!(report["summary"]["failed"], hosts.len());
            report["run_id"].as_str().unwrap().to_owned()
        } else {
            // The human report: every host's line, and the summary.
            for host in hosts {
                assert!(stderr.contains(&format!("{host}: [cancelled]")), "{stderr}");
            }
            assert!(stderr.contains("3 hosts: 0 ok"), "{stderr}");
            records.last().unwrap()["run"].as_str().unwrap().to_owned()
        };
        for end in assert_every_host_ended(&records, &run, &hosts) {
            assert_eq!(end["error_kind"], "cancelled", "{signal}: {end}");
        }
    }
    assert_verifies(&lab);
}
