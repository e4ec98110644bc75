//! Scale: a 200-host lab in the suite, so that a regression in fan-out
//! (descriptors, the connection budget, per-host state) fails CI. The
//! 1,000-host runs are in `bench/peers.sh`.

use crate::util::TestLab;

#[test]
fn exec_all_on_200_hosts_succeeds_everywhere_with_one_login_each() {
    let lab = TestLab::new(200);
    let json = lab
        .remex()
        .args(["--json", "exec", "all", "--", "true"])
        .run()
        .expect_code(0)
        .json();
    assert_eq!(json["summary"]["total"], 200, "{}", json["summary"]);
    assert_eq!(json["summary"]["ok"], 200, "{}", json["summary"]);
    // One connection per host: each sshd logged exactly one login.
    for host in lab.lab.hosts.iter().map(|h| h.name.as_str()) {
        let logins = lab.logins(host);
        assert_eq!(logins, 1, "{host}: {logins} logins");
    }
}
