//! `-v`: what remex says on stderr about each connection.

use crate::util::TestLab;

/// `-v` shows every step of a connection for the host, with timings;
/// `-vv` keeps russh's own noise out; without `-v` none of it shows.
#[test]
fn verbose_shows_each_connection_step_with_timings() {
    let lab = TestLab::new(1);
    let port = lab.port();
    let run = lab
        .remex()
        .args(["-v", "exec", "vm01", "--", "true"])
        .run()
        .expect_code(0);
    let stderr = run.stderr();
    for step in [
        format!("vm01: tcp connected to 127.0.0.2:{port} in "),
        "vm01: key exchange done in ".to_owned(),
        "vm01: host key ssh-ed25519 SHA256:".to_owned(),
        format!("vm01: authenticated as {} with publickey ", lab.lab.user),
        "vm01: channel ".to_owned(),
        ": exit status 0 after ".to_owned(),
    ] {
        assert!(stderr.contains(&step), "no `{step}` in:\n{stderr}");
    }
    assert!(stderr.contains(" opened in "), "{stderr}");
    assert!(stderr.contains(" ms\n"), "timings in ms: {stderr}");

    let run = lab
        .remex()
        .args(["-vv", "exec", "vm01", "--", "true"])
        .run()
        .expect_code(0);
    let stderr = run.stderr();
    assert!(stderr.contains("vm01: tcp connected to "), "{stderr}");
    assert!(!stderr.contains("Maximum packet size"), "{stderr}");
    assert!(!stderr.contains("ERROR"), "{stderr}");

    let run = lab
        .remex()
        .args(["exec", "vm01", "--", "true"])
        .run()
        .expect_code(0);
    let stderr = run.stderr();
    assert!(!stderr.contains("tcp connected"), "{stderr}");
    assert!(!stderr.contains("DEBUG"), "{stderr}");
}

/// Colour only on a terminal, and never with `NO_COLOR`: logs written to a
/// file, n8n or cron stay plain text.
#[test]
fn log_colours_are_for_terminals_only_and_no_color_turns_them_off() {
    const ESC: &str = "\u{1b}[";
    let lab = TestLab::new(1);
    let run = lab
        .remex()
        .args(["-v", "exec", "vm01", "--", "true"])
        .run()
        .expect_code(0);
    let stderr = run.stderr();
    assert!(
        stderr.contains("DEBUG") && !stderr.contains(ESC),
        "{stderr:?}"
    );

    let (code, shown) = lab
        .remex()
        .args(["-v", "exec", "vm01", "--", "true"])
        .on_a_terminal()
        .finish();
    assert_eq!(code, 0, "{shown:?}");
    assert!(shown.contains(ESC), "a terminal gets colour: {shown:?}");

    let (code, shown) = lab
        .remex()
        .env("NO_COLOR", "1")
        .args(["-v", "exec", "vm01", "--", "true"])
        .on_a_terminal()
        .finish();
    assert_eq!(code, 0, "{shown:?}");
    assert!(shown.contains("DEBUG") && !shown.contains(ESC), "{shown:?}");
}

/// A run on many hosts needs a descriptor per connection: remex raises its
/// soft open-file limit to the hard one, and says so at `-v`.
#[test]
fn the_open_file_limit_is_raised_and_said_at_verbose() {
    let lab = TestLab::new(1);
    let script = format!(
        "ulimit -S -n 256 && exec '{}' -v --config '{}' exec vm01 -- sh -c 'ulimit -n' 2>&1",
        env!("CARGO_BIN_EXE_remex"),
        lab.config().display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("raised the open-file limit (RLIMIT_NOFILE) from 256 to "),
        "{text}"
    );
}
