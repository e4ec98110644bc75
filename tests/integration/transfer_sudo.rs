//! `remex upload` and `remex download` with `--sudo` / `--sudo-user`: the
//! files are read and written as another user (the host's `sftp-server`
//! run through sudo), with the same verification and atomic rename, and the
//! sudo password only ever on a channel's stdin.
//!
//! Both tests need root: they create throwaway users and sudoers rules.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use crate::transfer_edge::{
    assert_no_leftovers, digest_of, message, random_file, remex_json, result_of, same_bytes,
};
use crate::util::{SudoersDropIn, TestLab, ThrowawayUser, log_path, records, running_as_root};

const MIB: u64 = 1024 * 1024;

/// A directory only root can enter, as /etc or /root on a real host.
fn root_only_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn sudo_transfers_read_and_write_as_root_and_keep_the_password_secret() {
    assert!(
        running_as_root(),
        "THIS TEST NEEDS ROOT: it creates a throwaway user with a password and a sudoers drop-in. CI runs it as root."
    );
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let user = ThrowawayUser::create(parent.path());
    let password = "Tr4nsfer-pw-remex";
    user.set_password(password);
    let _rule = SudoersDropIn::install(&user.name, &format!("{} ALL=(ALL) ALL", user.name));
    let lab = TestLab::with(1, remex::lab::ServerKind::OpenSsh, Some(user.name.clone()));

    let vault = lab.path().join("vault");
    root_only_dir(&vault);
    // Over 1 MiB: verified by a hash command on the host (as root too).
    let local = lab.path().join("app.conf");
    random_file(&local, 3 * MIB + 1);
    let sent = digest_of(&local, b"");
    let remote = vault.join("app.conf");
    let run = |extra: &[&str], paths: &[&Path], code: i32| {
        let mut remex = lab
            .remex()
            .env("REMEX_TEST_SUDO_PW", password)
            .arg("--json");
        remex = remex.args(extra);
        let run = remex.args(paths).run().expect_code(code);
        assert!(
            !run.stdout().contains(password) && !run.stderr().contains(password),
            "the sudo password was shown"
        );
        run.json()
    };
    let with_password = ["--sudo", "--sudo-password-env", "REMEX_TEST_SUDO_PW"];

    // As the login user: refused by the file system, nothing written.
    let json = remex_json(&lab, &["upload", "vm01"], &[&local, &remote], 1);
    let r = result_of(&json, "vm01");
    assert_eq!(r["error"]["kind"], "transfer", "{r}");
    assert!(message(r).contains("ermission denied"), "{r}");
    // --sudo without the password this rule needs: a sudo error, no hang.
    let json = run(&["upload", "vm01", "--sudo"], &[&local, &remote], 1);
    let r = result_of(&json, "vm01");
    assert_eq!(r["error"]["kind"], "sudo", "{r}");
    assert!(message(r).contains("--sudo-password-env"), "{r}");
    assert!(std::fs::read_dir(&vault).unwrap().next().is_none());

    // With it: written as root, verified, renamed into place.
    let mut words = vec!["upload", "vm01", "--mode", "0640"];
    words.extend(with_password);
    let json = run(&words, &[&local, &remote], 0);
    let r = result_of(&json, "vm01");
    assert_eq!(r["status"], "written", "{r}");
    assert_eq!(r["sha256"], sent.as_str(), "{r}");
    assert!(same_bytes(&remote, &local));
    let meta = std::fs::metadata(&remote).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "not written as root");
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_no_leftovers(&vault);

    // And read back as root: a root-only file comes down whole.
    let secret = vault.join("secret.bin");
    random_file(&secret, 2 * MIB + 5);
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let back = lab.path().join("back");
    let json = remex_json(&lab, &["download", "vm01"], &[&secret, &back], 1);
    assert!(message(result_of(&json, "vm01")).contains("ermission denied"));
    let mut words = vec!["download", "vm01"];
    words.extend(with_password);
    let json = run(&words, &[&secret, &back], 0);
    let r = result_of(&json, "vm01");
    assert_eq!(r["status"], "written", "{r}");
    assert!(same_bytes(&back.join("vm01").join("secret.bin"), &secret));

    // The audit log names the sudo target and never the password.
    let log = std::fs::read_to_string(log_path(&lab)).unwrap();
    assert!(!log.contains(password), "the password is in the audit log");
    let starts: Vec<_> = records(&lab)
        .into_iter()
        .filter(|r| r["event"] == "start" && r["sudo"] == "root")
        .map(|r| r["op"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        starts.contains(&"upload".to_owned()) && starts.contains(&"download".to_owned()),
        "{starts:?}"
    );
}

#[test]
fn sudo_user_transfers_land_in_that_users_home_as_that_user() {
    assert!(
        running_as_root(),
        "THIS TEST NEEDS ROOT: it creates a throwaway user. CI runs it as root."
    );
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let user = ThrowawayUser::create(parent.path());
    let owner = std::fs::metadata(&user.home).unwrap();
    // The lab logs in as root, whose sudo needs no password.
    let lab = TestLab::new(1);
    let local = lab.path().join("notes.txt");
    std::fs::write(&local, "for the app user\n").unwrap();

    let as_user = ["--sudo-user", user.name.as_str()];
    let mut words = vec!["upload", "vm01", "--mkdir"];
    words.extend(as_user);
    let json = remex_json(&lab, &words, &[&local, Path::new("~/notes/notes.txt")], 0);
    assert_eq!(result_of(&json, "vm01")["status"], "written", "{json}");
    let landed = user.home.join("notes").join("notes.txt");
    assert!(same_bytes(&landed, &local), "not in {}", landed.display());
    for made in [&landed, &user.home.join("notes")] {
        let meta = std::fs::metadata(made).unwrap();
        assert_eq!(
            meta.uid(),
            owner.uid(),
            "{} is not the user's",
            made.display()
        );
    }

    // A relative path is in the same home.
    let back = lab.path().join("back");
    let mut words = vec!["download", "vm01", "--flat"];
    words.extend(as_user);
    let json = remex_json(&lab, &words, &[Path::new("notes/notes.txt"), &back], 0);
    assert_eq!(result_of(&json, "vm01")["status"], "written", "{json}");
    assert!(same_bytes(&back.join("notes.txt"), &local));
}
