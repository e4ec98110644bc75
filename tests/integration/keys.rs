//! `remex keys …` against labs of real OpenSSH sshd hosts, checked with
//! OpenSSH's own `ssh` and `ssh-keygen`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{Remex, Run, TestLab, ssh_keygen};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn keys_dir(lab: &TestLab) -> PathBuf {
    lab.path().join("keys")
}

fn results(json: &Value) -> &Vec<Value> {
    json["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {json}"))
}

/// The `action`s of one host's changes.
fn actions(result: &Value) -> Vec<String> {
    result["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes in {result}"))
        .iter()
        .map(|c| c["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn generate(lab: &TestLab, name: &str) -> Value {
    lab.remex()
        .args(["--json", "keys", "generate", "--name", name])
        .run()
        .expect_code(0)
        .json()
}

/// `remex --json keys deploy all --name NAME`, to add options to.
fn deploy_all(lab: &TestLab, name: &str) -> Remex {
    lab.remex()
        .args(["--json", "keys", "deploy", "all", "--name", name])
}

/// The key files are the state the tests check; the state file says which
/// key each host uses.
fn uses(lab: &TestLab, host: &str) -> String {
    let run = lab
        .remex()
        .args(["--json", "keys", "list"])
        .run()
        .expect_code(0);
    let json = run.json();
    json["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .map(|h| h["key"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no host {host} in {json}"))
}

#[test]
fn generate_writes_private_openssh_keys_and_never_overwrites() {
    let lab = TestLab::new(1);
    let json = generate(&lab, "deploy");
    let dir = keys_dir(&lab);
    let private = dir.join("deploy");
    assert_eq!(json["operation"], "keys.generate");
    assert_eq!(json["key"]["type"], "ssh-ed25519");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&dir.join("deploy.pub")), 0o644);
    assert!(
        json["key"]["comment"]
            .as_str()
            .unwrap()
            .starts_with("remex@"),
        "{json}"
    );
    // OpenSSH reads both halves, and agrees on the fingerprint.
    let listed = ssh_keygen(&["-l", "-f"], &private);
    let fingerprint = json["key"]["fingerprint"].as_str().unwrap();
    assert!(listed.contains(fingerprint), "{listed} vs {json}");
    assert!(listed.contains("(ED25519)"), "{listed}");
    let public = ssh_keygen(&["-y", "-f"], &private);
    let pub_file = std::fs::read_to_string(dir.join("deploy.pub")).unwrap();
    assert!(
        pub_file.starts_with(public.trim()),
        "{public} vs {pub_file}"
    );

    // Never overwritten, even by the same command.
    let before = std::fs::read(&private).unwrap();
    let run = lab
        .remex()
        .args(["keys", "generate", "--name", "deploy"])
        .run()
        .expect_code(2);
    assert!(run.stderr().contains("already exists"), "{}", run.stderr());
    assert_eq!(std::fs::read(&private).unwrap(), before);

    // RSA: at least 3072 bits, and smaller is refused with the fix.
    let run = lab
        .remex()
        .args([
            "keys", "generate", "--name", "small", "--type", "rsa", "--bits", "2048",
        ])
        .run()
        .expect_code(2);
    assert!(run.stderr().contains("--bits 3072"), "{}", run.stderr());
    assert!(!dir.join("small").exists());
    lab.remex()
        .args(["keys", "generate", "--name", "rsa", "--type", "rsa"])
        .run()
        .expect_code(0);
    let listed = ssh_keygen(&["-l", "-f"], &dir.join("rsa"));
    assert!(
        listed.starts_with("3072 SHA256:") && listed.contains("(RSA)"),
        "{listed}"
    );

    // A passphrase encrypts it the way ssh-keygen can open.
    lab.remex()
        .args([
            "keys",
            "generate",
            "--name",
            "locked",
            "--passphrase-env",
            "KEY_PASS",
        ])
        .env("KEY_PASS", "correct horse")
        .run()
        .expect_code(0);
    let locked = dir.join("locked");
    assert_eq!(mode(&locked), 0o600);
    ssh_keygen(&["-y", "-P", "correct horse", "-f"], &locked);
    let wrong = Command::new("ssh-keygen")
        .args(["-y", "-P", "wrong", "-f"])
        .arg(&locked)
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "the key is not encrypted");
}

#[test]
fn deploy_with_a_bootstrap_key_keeps_other_lines_and_is_idempotent() {
    let lab = TestLab::new(2);
    generate(&lab, "deploy");
    // remex's usual key for the hosts is the one being deployed, so only
    // the bootstrap key gets in at first.
    let config = lab.config_variant(
        "deploy.yml",
        &[("default_key: id_ed25519", "default_key: deploy")],
    );
    let remex = || Remex::new().arg("--config").arg(&config);

    // vm01 already has a file with options, comments, CRLF and no final
    // newline; vm02 has no ~/.ssh at all.
    let other_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBFJ0gRTGH2WmjCkmCF1AI0WHX5ahmgmu4fHJiRLwKyl other@laptop";
    let existing = format!(
        "# managed by hand\r\ncommand=\"echo a b\",from=\"127.0.0.1\" {other_key}\r\n\n   {other_key}"
    );
    let vm01_file = lab.host_authorized_keys("vm01");
    std::fs::create_dir_all(vm01_file.parent().unwrap()).unwrap();
    std::fs::write(&vm01_file, &existing).unwrap();
    let vm02_file = lab.host_authorized_keys("vm02");
    assert!(!vm02_file.parent().unwrap().exists());

    // Without the bootstrap key nothing gets in, and it says how.
    let run = remex()
        .args(["--json", "keys", "deploy", "all", "--name", "deploy"])
        .run()
        .expect_code(1);
    let json = run.json();
    for result in results(&json) {
        assert_eq!(result["ok"], false, "{result}");
        assert_eq!(result["error"]["kind"], "auth", "{result}");
    }
    assert_eq!(std::fs::read_to_string(&vm01_file).unwrap(), existing);

    let bootstrap = lab.lab.key_path.clone();
    let deploy = || {
        remex()
            .args([
                "--json",
                "keys",
                "deploy",
                "all",
                "--name",
                "deploy",
                "--bootstrap-key",
            ])
            .arg(&bootstrap)
            .run()
    };
    let json = deploy().expect_code(0).json();
    assert_eq!(json["operation"], "keys.deploy");
    assert_eq!(json["key"]["name"], "deploy");
    for result in results(&json) {
        assert_eq!(
            actions(result),
            ["added", "verified", "now_used"],
            "{result}"
        );
        assert_eq!(result["uses"], "deploy");
        assert_eq!(
            result["changes"][0]["fingerprint"],
            json["key"]["fingerprint"]
        );
    }
    let public = std::fs::read_to_string(keys_dir(&lab).join("deploy.pub")).unwrap();
    let after = std::fs::read_to_string(&vm01_file).unwrap();
    // Every byte kept; a line break added before the new line (LF, as the
    // file's last line break), then the key.
    assert_eq!(after, format!("{existing}\n{}\n", public.trim()));
    assert_eq!(mode(&vm01_file), 0o600);
    let vm02_text = std::fs::read_to_string(&vm02_file).unwrap();
    assert_eq!(vm02_text, format!("{}\n", public.trim()));
    assert_eq!(mode(vm02_file.parent().unwrap()), 0o700);
    assert_eq!(mode(&vm02_file), 0o600);

    // Twice: nothing written, still one line.
    let json = deploy().expect_code(0).json();
    for result in results(&json) {
        assert_eq!(actions(result), ["already_present", "verified"], "{result}");
    }
    assert_eq!(std::fs::read_to_string(&vm01_file).unwrap(), after);
    assert_eq!(std::fs::read_to_string(&vm02_file).unwrap(), vm02_text);

    // OpenSSH's client logs in with it, and remex now does too without the
    // lab's key.
    for host in ["vm01", "vm02"] {
        assert!(
            lab.ssh_logs_in(host, &keys_dir(&lab).join("deploy")),
            "{host}"
        );
    }
    lab.drop_lab_key();
    let run = lab
        .remex()
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(0);
    assert!(run.stderr().contains("2 hosts: 2 ok"), "{}", run.stderr());
    assert_eq!(uses(&lab, "vm01"), "deploy");
}

#[test]
fn deploy_with_a_password_and_keyboard_interactive() {
    let password = "pw-Lab-4711-not-a-secret";
    let mut lab = TestLab::password(2, password);
    // vm02 offers keyboard-interactive (PAM) only, not `password`.
    lab.reconfigure(
        "vm02",
        "PasswordAuthentication yes",
        "PasswordAuthentication no",
    );
    // The lab authorizes no key: remex cannot get in yet.
    lab.remex()
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(1);
    generate(&lab, "first");

    // A wrong password: refused, and the password is nowhere in the output.
    let run = deploy_all(&lab, "first")
        .args(["--password-env", "PW"])
        .env("PW", "wrong-password-123")
        .run()
        .expect_code(1);
    assert!(!run.stdout().contains("wrong-password-123"));
    assert!(!run.stderr().contains("wrong-password-123"));
    for result in results(&run.json()) {
        assert_eq!(result["error"]["kind"], "auth", "{result}");
        let message = result["error"]["message"].as_str().unwrap();
        assert!(message.contains("the password"), "{message}");
    }

    let run = deploy_all(&lab, "first")
        .args(["--password-env", "PW"])
        .env("PW", password)
        .run()
        .expect_code(0);
    for result in results(&run.json()) {
        assert_eq!(
            actions(result),
            ["added", "verified", "now_used"],
            "{result}"
        );
    }
    assert!(
        lab.sshd_log("vm01").contains("Accepted password for"),
        "{}",
        lab.sshd_log("vm01")
    );
    assert!(
        lab.sshd_log("vm02")
            .contains("Accepted keyboard-interactive/pam for"),
        "{}",
        lab.sshd_log("vm02")
    );
    // From now on the deployed key is what remex logs in with.
    let run = lab
        .remex()
        .args(["exec", "all", "--", "id", "-un"])
        .run()
        .expect_code(0);
    assert!(
        run.stdout().contains(&format!("vm01: {}\n", lab.lab.user)),
        "{}",
        run.stdout()
    );
    for host in ["vm01", "vm02"] {
        assert!(
            lab.ssh_logs_in(host, &keys_dir(&lab).join("first")),
            "{host}"
        );
    }
}

/// Runs `keys rotate` with `args`, returning the run.
fn rotate(lab: &TestLab, args: &[&str]) -> Run {
    lab.remex()
        .args(["--json", "keys", "rotate", "all"])
        .args(args)
        .run()
}

#[test]
fn rotate_switches_to_a_new_key_and_the_old_one_is_refused() {
    let lab = lab_on_deployed_key(2, "old");

    let json = rotate(&lab, &["--name", "new"]).expect_code(0).json();
    assert_eq!(json["operation"], "keys.rotate");
    assert_eq!(json["key"]["name"], "new");
    for result in results(&json) {
        assert_eq!(
            actions(result),
            ["added", "verified", "now_used", "removed"],
            "{result}"
        );
        assert_eq!(result["uses"], "new");
        assert_eq!(result["rotation_step"], Value::Null);
    }
    let dir = keys_dir(&lab);
    for host in ["vm01", "vm02"] {
        assert!(
            lab.ssh_logs_in(host, &dir.join("new")),
            "{host}: new key refused"
        );
        assert!(
            !lab.ssh_logs_in(host, &archived(&json, "old")),
            "{host}: old key still logs in"
        );
        assert_eq!(uses(&lab, host), "new");
    }
    // The old private key is archived, not deleted, until prune.
    assert!(!dir.join("old").exists());
    let old = archived(&json, "old");
    assert_eq!(mode(&old), 0o600);
    lab.remex()
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(0);
    let run = lab
        .remex()
        .args(["--json", "keys", "prune"])
        .run()
        .expect_code(0);
    assert_eq!(
        run.json()["removed"].as_array().unwrap().len(),
        1,
        "{}",
        run.stdout()
    );
    assert!(!old.exists());
}

/// The archived private key of `name` from a rotate report.
fn archived(json: &Value, name: &str) -> PathBuf {
    json["archived"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .map(|a| PathBuf::from(a["private_path"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("`{name}` not archived: {json}"))
}

#[test]
fn rotate_interrupted_on_some_hosts_keeps_their_old_key_and_a_rerun_finishes() {
    let mut lab = lab_on_deployed_key(3, "k1");
    let k1 = keys_dir(&lab).join("k1");

    // vm02 takes the new key into authorized_keys but refuses to log in
    // with it (its sshd accepts ed25519 keys only; the new key is ECDSA):
    // the rotation fails there after it changed the host. vm03 is down.
    lab.reconfigure(
        "vm02",
        "PubkeyAuthentication yes\n",
        "PubkeyAuthentication yes\nPubkeyAcceptedAlgorithms ssh-ed25519\n",
    );
    lab.lab.stop_host("vm03").unwrap();

    let run = rotate(&lab, &["--name", "k2", "--type", "ecdsa"]).expect_code(1);
    let json = run.json();
    let [vm01, vm02, vm03] = results(&json).as_slice() else {
        panic!("three results expected: {json}");
    };
    assert_eq!(vm01["ok"], true, "{vm01}");
    assert_eq!(vm01["uses"], "k2");
    assert_eq!(vm02["ok"], false);
    assert_eq!(actions(vm02), ["added"], "{vm02}");
    assert_eq!(vm02["uses"], "k1");
    let message = vm02["error"]["message"].as_str().unwrap();
    let rerun = format!(
        "run `remex --config {} keys rotate vm02` again",
        lab.config().display()
    );
    for needle in [
        "refused the new key `k2`",
        "still uses key `k1`",
        rerun.as_str(),
    ] {
        assert!(message.contains(needle), "no {needle:?} in {message}");
    }
    assert_eq!(vm03["ok"], false);
    assert_eq!(vm03["uses"], "k1");
    assert_eq!(vm03["rotation_step"], "generated");
    // The old key still works where the rotation did not finish, and remex
    // keeps using it there.
    assert!(lab.ssh_logs_in("vm02", &k1));
    assert!(!lab.ssh_logs_in("vm01", &k1));
    assert_eq!(uses(&lab, "vm02"), "k1");
    lab.remex()
        .args(["exec", "vm01,vm02", "--", "true"])
        .run()
        .expect_code(0);
    assert!(k1.exists(), "k1 is archived while hosts still use it");

    // Fix vm02, bring vm03 back: the same command finishes the job, with
    // the same new key (not another one).
    lab.reconfigure("vm02", "PubkeyAcceptedAlgorithms ssh-ed25519\n", "");
    lab.lab.start_host("vm03").unwrap();
    lab.remex()
        .args(["exec", "vm03", "--", "true"])
        .run()
        .expect_code(0);
    let json = rotate(&lab, &[]).expect_code(0).json();
    assert_eq!(json["key"]["name"], "k2");
    let actions_of = |i: usize| actions(&results(&json)[i]);
    assert_eq!(actions_of(0), Vec::<String>::new(), "vm01 was done");
    assert_eq!(
        actions_of(1),
        ["already_present", "verified", "now_used", "removed"]
    );
    assert_eq!(actions_of(2), ["added", "verified", "now_used", "removed"]);
    let k1_archived = archived(&json, "k1");
    for host in ["vm01", "vm02", "vm03"] {
        assert!(lab.ssh_logs_in(host, &keys_dir(&lab).join("k2")), "{host}");
        assert!(
            !lab.ssh_logs_in(host, &k1_archived),
            "{host}: k1 still logs in"
        );
        assert_eq!(uses(&lab, host), "k2");
    }
}

#[test]
fn revoke_refuses_the_only_usable_key_unless_forced() {
    let lab = TestLab::new(1);
    generate(&lab, "a");
    generate(&lab, "b");
    lab.remex()
        .args(["keys", "deploy", "vm01", "--name", "a"])
        .run()
        .expect_code(0);
    let shared = lab.path().join("authorized_keys");
    let lab_key_line = std::fs::read(&shared).unwrap();
    lab.drop_lab_key();
    let (a, b) = (keys_dir(&lab).join("a"), keys_dir(&lab).join("b"));

    let revoke = |name: &str, force: bool| {
        let mut remex = lab
            .remex()
            .args(["--json", "keys", "revoke", "vm01", "--name", name]);
        if force {
            remex = remex.arg("--force");
        }
        remex.run()
    };
    let run = revoke("a", false).expect_code(1);
    let message = run.json()["results"][0]["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("only key remex can use for vm01"),
        "{message}"
    );
    assert!(message.contains("--force"), "{message}");
    assert!(
        lab.ssh_logs_in("vm01", &a),
        "a refused revoke must not touch the host"
    );

    // With a second key deployed, the first can go (remex logs in with b).
    lab.remex()
        .args(["keys", "deploy", "vm01", "--name", "b"])
        .run()
        .expect_code(0);
    let json = revoke("a", false).expect_code(0).json();
    assert_eq!(actions(&results(&json)[0]), ["removed"]);
    assert_eq!(results(&json)[0]["uses"], "b");
    assert!(!lab.ssh_logs_in("vm01", &a));
    assert!(lab.ssh_logs_in("vm01", &b));

    revoke("b", false).expect_code(1);
    assert!(lab.ssh_logs_in("vm01", &b));
    let json = revoke("b", true).expect_code(0).json();
    assert_eq!(actions(&results(&json)[0]), ["removed"]);
    assert_eq!(results(&json)[0]["uses"], Value::Null);
    assert!(!lab.ssh_logs_in("vm01", &b));
    // Revoking what is not there changes nothing (remex gets in with the
    // configured key again).
    std::fs::write(&shared, lab_key_line).unwrap();
    let json = revoke("b", true).expect_code(0).json();
    assert_eq!(actions(&results(&json)[0]), ["not_present"]);
}

#[test]
fn a_private_key_readable_by_others_is_refused() {
    let lab = TestLab::new(1);
    let key = lab.lab.key_path.clone();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fix = format!("chmod 600 {}", key.display());
    let run = lab
        .remex()
        .args(["--json", "exec", "all", "--", "true"])
        .run()
        .expect_code(1);
    let error = run.json()["results"][0]["error"].clone();
    assert_eq!(error["kind"], "auth", "{error}");
    assert!(error["message"].as_str().unwrap().contains(&fix), "{error}");

    generate(&lab, "next");
    let run = deploy_all(&lab, "next")
        .args(["--bootstrap-key"])
        .arg(&key)
        .run()
        .expect_code(1);
    let error = run.json()["results"][0]["error"].clone();
    assert!(error["message"].as_str().unwrap().contains(&fix), "{error}");
    assert!(!lab.host_authorized_keys("vm01").exists());
}

// Key-state changes serialized per host (issue 23): overlapping deploy,
// rotate, revoke and prune on the same hosts, through one `Executor` and
// through separate `remex` processes, must leave the key state, the archive
// and every host's authorized_keys agreeing.

/// The base64 blob of a public key line (`TYPE BLOB [COMMENT]`, options
/// before it allowed).
fn key_blob(line: &str) -> Option<String> {
    let mut fields = line.split_whitespace();
    while let Some(field) = fields.next() {
        if field.starts_with("ssh-") || field.starts_with("ecdsa-") || field.starts_with("sk-") {
            return fields.next().map(str::to_owned);
        }
    }
    None
}

/// The key state file as JSON (an empty state when there is none).
fn key_state(lab: &TestLab) -> Value {
    match std::fs::read(keys_dir(lab).join("remex-keys.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Err(_) => serde_json::json!({ "version": 1 }),
    }
}

/// The blob of key `name` from the key directory or its archive.
fn blob_of(lab: &TestLab, name: &str) -> String {
    let dir = keys_dir(lab);
    let text = [
        dir.join(format!("{name}.pub")),
        dir.join("archive").join(format!("{name}.pub")),
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .unwrap_or_else(|| panic!("key `{name}` is neither in the key directory nor archived"));
    key_blob(&text).unwrap_or_else(|| panic!("no key in {name}.pub: {text}"))
}

/// The invariant the issue is about, on every host of `hosts`: the key the
/// state names for the host exists in the key directory (not archived) and
/// logs in; the host's authorized_keys holds exactly the keys the state
/// says are deployed there; no rotation is left half done. `context` says
/// what ran, for the failure message.
fn assert_keys_agree(lab: &TestLab, hosts: &[&str], context: &str) {
    let state = key_state(lab);
    let dir = keys_dir(lab);
    assert!(
        state["rotations"]
            .as_object()
            .is_none_or(serde_json::Map::is_empty),
        "a rotation was left unfinished\n{state:#}\n{context}"
    );
    for host in hosts {
        let entry = &state["hosts"][host];
        let current = entry["current"]
            .as_str()
            .unwrap_or_else(|| panic!("the state forgot {host}\n{state:#}\n{context}"));
        assert!(
            dir.join(current).is_file() && dir.join(format!("{current}.pub")).is_file(),
            "{host}: the state names key `{current}`, which is not in the key directory\n{state:#}\n{context}"
        );
        assert!(
            state["keys"][current]["archived"].is_null(),
            "{host}: the state names key `{current}`, which it says is archived\n{state:#}\n{context}"
        );
        let mut deployed: Vec<String> = entry["deployed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| blob_of(lab, k.as_str().unwrap()))
            .collect();
        deployed.sort();
        let file = std::fs::read_to_string(lab.host_authorized_keys(host)).unwrap_or_default();
        let mut accepted: Vec<String> = file.lines().filter_map(key_blob).collect();
        accepted.sort();
        assert_eq!(
            accepted, deployed,
            "{host}: authorized_keys (left) is not what the state says is deployed (right)\n{state:#}\n{context}"
        );
        assert!(
            lab.ssh_logs_in(host, &dir.join(current)),
            "{host}: the recorded key `{current}` does not log in\n{state:#}\n{context}"
        );
    }
}

/// remex itself still gets in everywhere, with no word of a missing key.
fn assert_remex_gets_in(lab: &TestLab) {
    let run = lab
        .remex()
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(0);
    assert!(!run.stderr().contains("is missing"), "{}", run.stderr());
}

/// The key vm01 uses, as the state says.
fn current_key(lab: &TestLab) -> String {
    key_state(lab)["hosts"]["vm01"]["current"]
        .as_str()
        .unwrap_or_else(|| panic!("no key for vm01: {:#}", key_state(lab)))
        .to_owned()
}

/// A lab whose hosts remex reaches only with the key `name` it deployed
/// (the lab's own key is dropped): a key state that goes wrong locks remex
/// out.
fn lab_on_deployed_key(hosts: usize, name: &str) -> TestLab {
    let lab = TestLab::new(hosts);
    generate(&lab, name);
    lab.remex()
        .args(["keys", "deploy", "all", "--name", name])
        .run()
        .expect_code(0);
    lab.drop_lab_key();
    lab
}

#[test]
fn overlapping_key_operations_on_one_executor_leave_state_archive_and_hosts_agreeing() {
    use remex::RunContext;
    use remex::keys::{DeployRequest, GenerateRequest, RevokeRequest, RotateRequest};

    let lab = lab_on_deployed_key(3, "k0");
    let hosts = ["vm01", "vm02", "vm03"];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let executor = remex::Executor::new(remex::Config::load(&lab.config()).unwrap()).unwrap();
    let ctx = RunContext::new();
    let revoke = |name: &str| RevokeRequest {
        name: name.to_owned(),
        force: false,
    };
    let deploy = |name: &str| DeployRequest {
        name: name.to_owned(),
        bootstrap_key: None,
        password: None,
    };
    for round in 1..=6 {
        // Each round, at once on the same hosts: rotate away from the key
        // in use, revoke it, deploy it again, deploy a fresh key and
        // revoke the last round's — every pair of them touches the same
        // host's state and authorized_keys.
        let current = current_key(&lab);
        let (fresh, last) = (format!("d{round}"), format!("d{}", round - 1));
        runtime
            .block_on(executor.keys_generate(
                &ctx,
                &GenerateRequest {
                    name: fresh.clone(),
                    kind: remex::keys::KeyKind::default(),
                    passphrase: None,
                },
            ))
            .unwrap();
        let rotate_to = RotateRequest {
            name: Some(format!("r{round}")),
            ..RotateRequest::default()
        };
        let one = hosts[round % hosts.len()];
        let (revoke_current, redeploy_current) = (revoke(&current), deploy(&current));
        let (deploy_fresh, revoke_last) = (deploy(&fresh), revoke(&last));
        let rotate_one = RotateRequest::default();
        let (rotated, revoked, redeployed, deployed, revoked_last, rotated_one) =
            runtime.block_on(async {
                tokio::join!(
                    executor.keys_rotate(&ctx, "all", &rotate_to),
                    executor.keys_revoke(&ctx, "all", &revoke_current),
                    executor.keys_deploy(&ctx, "all", &redeploy_current),
                    executor.keys_deploy(&ctx, "all", &deploy_fresh),
                    executor.keys_revoke(&ctx, "all", &revoke_last),
                    executor.keys_rotate(&ctx, one, &rotate_one),
                )
            });
        let context = format!(
            "round {round} (rotate to r{round} and on {one}, revoke and redeploy {current}, deploy {fresh}, revoke {last}):\n\
             rotate: {rotated:#?}\nrevoke: {revoked:#?}\nredeploy: {redeployed:#?}\n\
             deploy: {deployed:#?}\nrevoke last: {revoked_last:#?}\nrotate one: {rotated_one:#?}"
        );
        // Whatever went first, the rotation to r{round} waits its turn on
        // each host and then gets done there: its old key logs in.
        let rotated_all = rotated.as_ref().map(|r| r.summary.ok).unwrap_or(0);
        assert_eq!(rotated_all, hosts.len(), "{context}");
        assert_keys_agree(&lab, &hosts, &context);
    }
    assert_remex_gets_in(&lab);
    runtime.block_on(executor.close());
}

#[test]
fn overlapping_key_operations_in_separate_processes_leave_state_archive_and_hosts_agreeing() {
    let lab = lab_on_deployed_key(2, "k0");
    let hosts = ["vm01", "vm02"];
    for round in 1..=8 {
        let current = current_key(&lab);
        let (fresh, last) = (format!("d{round}"), format!("d{}", round - 1));
        generate(&lab, &fresh);
        let commands: Vec<Vec<String>> = [
            vec!["keys", "rotate", "all", "--name", &format!("r{round}")],
            vec!["keys", "rotate", "vm02", "--name", &format!("s{round}")],
            vec!["keys", "revoke", "all", "--name", &current],
            vec!["keys", "deploy", "all", "--name", &current],
            vec!["keys", "deploy", "all", "--name", &fresh],
            vec!["keys", "revoke", "all", "--name", &last],
            vec!["keys", "prune"],
        ]
        .into_iter()
        .map(|args| args.into_iter().map(str::to_owned).collect())
        .collect();
        let runs: Vec<(String, Run)> = std::thread::scope(|scope| {
            let started: Vec<_> = commands
                .iter()
                .map(|args| {
                    let remex = lab.remex().arg("--json").args(args);
                    (args.join(" "), scope.spawn(move || remex.run()))
                })
                .collect();
            started
                .into_iter()
                .map(|(what, thread)| (what, thread.join().unwrap()))
                .collect()
        });
        let context: String = runs
            .iter()
            .map(|(what, run)| {
                format!(
                    "--- remex {what}: exit {}\n{}\n{}\n",
                    run.code(),
                    run.stdout(),
                    run.stderr()
                )
            })
            .collect();
        for (what, run) in &runs {
            assert!(
                !run.stderr().contains("is missing"),
                "round {round}: remex {what} warned of a missing key\n{context}"
            );
            assert!(
                run.code() == 0 || run.code() == 1 || run.code() == 2,
                "round {round}: remex {what} crashed\n{context}"
            );
        }
        // One rotation may be refused while the other is under way on vm02
        // (a --name that differs from a rotation in progress), never both.
        assert!(
            runs[..2].iter().any(|(_, run)| run.code() == 0),
            "round {round}: neither rotation got done\n{context}"
        );
        assert_keys_agree(&lab, &hosts, &format!("round {round}\n{context}"));
    }
    assert_remex_gets_in(&lab);
}

/// Takes `KEY_DIR/.locks/NAME` the way another remex in the middle of a
/// key step does (`flock`, exclusive or shared).
fn hold_key_lock(lab: &TestLab, name: &str, shared: bool) -> std::fs::File {
    let dir = keys_dir(lab).join(".locks");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(name))
        .unwrap();
    if shared {
        file.lock_shared().unwrap();
    } else {
        file.lock().unwrap();
    }
    file
}

/// Asserts that `child` is still running a while after it started (it
/// waits for a lock): a slow machine only makes this easier to pass.
fn assert_still_waiting(child: &mut std::process::Child, what: &str) {
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "{what} did not wait for the lock another process holds"
    );
}

/// Waits for `child` and asserts it exited 0.
fn assert_succeeds(child: std::process::Child) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
}

#[test]
fn a_key_step_waits_while_another_process_holds_the_host_and_prune_waits_for_steps() {
    let lab = TestLab::new(2);
    generate(&lab, "d1");
    let d1 = std::fs::read_to_string(keys_dir(&lab).join("d1.pub")).unwrap();
    let d1 = key_blob(&d1).unwrap();
    let holds_d1 = |host: &str| {
        std::fs::read_to_string(lab.host_authorized_keys(host))
            .unwrap_or_default()
            .contains(&d1)
    };

    // Another process is in the middle of a key step on vm01: a deploy
    // there waits for it (vm02, free, goes ahead), then does its work.
    let vm01 = hold_key_lock(&lab, "host-vm01.lock", false);
    let mut deploy = lab
        .remex()
        .args(["--json", "keys", "deploy", "all", "--name", "d1"])
        .spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !holds_d1("vm02") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(holds_d1("vm02"), "vm02 waited for vm01's lock");
    assert_still_waiting(&mut deploy, "keys deploy");
    assert!(!holds_d1("vm01"), "vm01 changed during another's step");
    drop(vm01);
    assert_succeeds(deploy);
    assert!(holds_d1("vm01") && holds_d1("vm02"));

    // A host step is under way somewhere: pruning the archive waits for it.
    let step = hold_key_lock(&lab, "keydir.lock", true);
    let mut prune = lab.remex().args(["keys", "prune"]).spawn();
    assert_still_waiting(&mut prune, "keys prune");
    drop(step);
    assert_succeeds(prune);
    assert_keys_agree(&lab, &["vm01", "vm02"], "after the deploy");
}
