//! What remex does when a person runs it on a terminal: it asks, once, for
//! what it cannot find elsewhere (a key's passphrase, the hosts' password, a
//! yes to pin a host key), never echoes a secret, and takes no for an answer.
//! Each test runs the real binary on a pseudo-terminal (`script(1)`) and
//! types the answers once the prompt is on the screen.

use crate::util::{Remex, TestLab};

/// How often `needle` appears in `text`.
fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn an_encrypted_key_asks_for_its_passphrase_once_for_all_hosts_and_never_shows_it() {
    let lab = TestLab::new(2);
    let passphrase = "open-sesame-7310";
    let config = lab.authorize_new_key("encrypted", &["-t", "ed25519", "-N", passphrase]);
    let prompt = format!(
        "passphrase for {}: ",
        lab.path().join("keys/encrypted").display()
    );
    let exec = || {
        Remex::new()
            .arg("--config")
            .arg(&config)
            .args(["exec", "all", "--", "echo", "in"])
    };

    let mut terminal = exec().on_a_terminal();
    terminal.wait_for(&prompt);
    terminal.wait_for_hidden_input();
    terminal.type_line(passphrase);
    let (code, shown) = terminal.finish();
    assert_eq!(code, 0, "{shown:?}");
    assert!(
        shown.contains("vm01: in") && shown.contains("vm02: in"),
        "{shown:?}"
    );
    assert_eq!(count(&shown, &prompt), 1, "{shown:?}");
    assert!(
        !shown.contains(passphrase),
        "the passphrase was echoed: {shown:?}"
    );

    // A wrong one: both hosts fail as `auth`, still one prompt, no echo.
    let mut terminal = exec().on_a_terminal();
    terminal.wait_for(&prompt);
    terminal.wait_for_hidden_input();
    terminal.type_line("not-the-passphrase-42");
    let (code, shown) = terminal.finish();
    assert_eq!(code, 1, "{shown:?}");
    assert_eq!(count(&shown, &prompt), 1, "{shown:?}");
    assert!(!shown.contains("not-the-passphrase-42"), "{shown:?}");
    assert!(shown.contains("vm01: [auth] wrong passphrase"), "{shown:?}");
    assert!(!shown.contains("vm01: in"), "{shown:?}");

    // REMEX_KEY_PASSPHRASE set: no prompt even on a terminal.
    let (code, shown) = exec()
        .env("REMEX_KEY_PASSPHRASE", passphrase)
        .on_a_terminal()
        .finish();
    assert_eq!(code, 0, "{shown:?}");
    assert_eq!(count(&shown, &prompt), 0, "{shown:?}");
}

#[test]
fn deploy_asks_for_the_password_once_for_all_hosts_and_never_shows_it() {
    let password = "pw-Lab-5527-not-a-secret";
    let lab = TestLab::password(2, password);
    lab.remex()
        .args(["keys", "generate", "--name", "first"])
        .run()
        .expect_code(0);

    let mut terminal = lab
        .remex()
        .args(["keys", "deploy", "all", "--name", "first"])
        .on_a_terminal();
    terminal.wait_for(&format!("password for {} on the hosts: ", lab.lab.user));
    terminal.wait_for_hidden_input();
    terminal.type_line(password);
    let (code, shown) = terminal.finish();
    assert_eq!(code, 0, "{shown:?}");
    assert_eq!(count(&shown, "password for "), 1, "{shown:?}");
    assert!(
        !shown.contains(password),
        "the password was echoed: {shown:?}"
    );
    // The deployed key now logs in on both hosts.
    for host in ["vm01", "vm02"] {
        assert!(
            lab.ssh_logs_in(host, &lab.path().join("keys").join("first")),
            "{host}: {shown:?}"
        );
    }
}

#[test]
fn trust_shows_the_offered_key_and_pins_only_after_yes() {
    let lab = TestLab::new(1);
    let known_hosts = lab.lab.known_hosts_path.clone();
    lab.remex()
        .args(["hosts", "forget", "vm01"])
        .run()
        .expect_code(0);
    let fingerprint = lab.host_fingerprint("vm01");
    let trust = || lab.remex().args(["hosts", "trust", "vm01"]).on_a_terminal();

    // No (and anything that is not yes): nothing is written.
    for answer in ["n", "", "maybe"] {
        let before = std::fs::read(&known_hosts).unwrap();
        let mut terminal = trust();
        terminal.wait_for("trust it? [y/N] ");
        let shown = terminal.output();
        assert!(shown.contains(&fingerprint), "{shown:?}");
        assert!(shown.contains("vm01 (127.0.0.2:"), "{shown:?}");
        terminal.type_line(answer);
        let (code, shown) = terminal.finish();
        assert_eq!(code, 1, "answer {answer:?}: {shown:?}");
        assert!(shown.contains("declined"), "{shown:?}");
        assert_eq!(std::fs::read(&known_hosts).unwrap(), before, "{answer:?}");
    }
    lab.remex()
        .args(["exec", "vm01", "--", "true"])
        .run()
        .expect_code(1);

    // Yes: pinned, and strict checking lets remex in.
    let mut terminal = trust();
    terminal.wait_for("trust it? [y/N] ");
    terminal.type_line("y");
    let (code, shown) = terminal.finish();
    assert_eq!(code, 0, "{shown:?}");
    assert!(
        std::fs::read_to_string(&known_hosts)
            .unwrap()
            .contains(&format!("[127.0.0.2]:{} ssh-ed25519 ", lab.port())),
        "{shown:?}"
    );
    lab.remex()
        .args(["exec", "vm01", "--", "true"])
        .run()
        .expect_code(0);
}
