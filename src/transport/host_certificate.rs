//! Host certificates: whether remex's known_hosts vouches for the OpenSSH
//! certificate a host presented (`HostCertificate` in its sshd_config),
//! through an `@cert-authority PATTERNS CA-KEY` line.
//!
//! A certificate is accepted when, at the time given:
//!
//! - neither the key in it nor its CA is on an `@revoked` line for the host;
//! - it is a host certificate (not a user certificate);
//! - its CA is on an `@cert-authority` line whose patterns match the host
//!   (see [`KnownHosts::cert_authorities`]) and its signature verifies
//!   with that CA;
//! - it is valid now: `valid_after <= now < valid_before`;
//! - one of its principals is the host name remex dialed (the config's
//!   `host`, compared without regard to ASCII case);
//! - it has no critical options (OpenSSH refuses host certificates that
//!   have any; none are defined for them).
//!
//! Unlike OpenSSH, remex refuses a certificate that names no principal
//! (OpenSSH accepts one for every host): a CA that signs such a
//! certificate vouches for any host, which is rarely meant.
//!
//! **Invariant:** judging does no I/O and reads no clock: the caller passes
//! known_hosts and the time.

use russh::keys::ssh_key::Certificate;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{HashAlg, PublicKey};

use super::known_hosts::KnownHosts;

/// What known_hosts says of a host certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertificateStatus {
    /// Every check passed; the CA that vouches for the host.
    Trusted {
        /// `SHA256:…` of the CA.
        ca: String,
    },
    /// The key in the certificate, or its CA, is on an `@revoked` line for
    /// the host. Wins over everything else.
    Revoked {
        /// `SHA256:…` of the revoked key.
        fingerprint: String,
        /// Whether the revoked key is the CA (else the host's own key).
        ca: bool,
    },
    /// A user certificate presented as a host certificate.
    NotHost,
    /// No `@cert-authority` line for the host names the CA.
    UnknownCa {
        /// `SHA256:…` of the CA that signed the certificate.
        ca: String,
    },
    /// The signature does not verify with the CA it names.
    BadSignature,
    /// Not valid yet (`valid_after` is in the future).
    NotYetValid {
        /// Seconds since the epoch.
        valid_after: u64,
    },
    /// Expired (`valid_before` has passed).
    Expired {
        /// Seconds since the epoch.
        valid_before: u64,
    },
    /// None of its principals is the host's name (or it names none).
    WrongPrincipal {
        /// The principals it names.
        principals: Vec<String>,
    },
    /// It carries critical options, which no host certificate may.
    CriticalOptions {
        /// Their names.
        names: Vec<String>,
    },
}

/// Judges `cert`, presented by `host` on `port`, against `known` at
/// `now` (seconds since the epoch).
pub(crate) fn check(
    known: &KnownHosts,
    host: &str,
    port: u16,
    cert: &Certificate,
    now: u64,
) -> CertificateStatus {
    let ca = PublicKey::new(cert.signature_key().clone(), "");
    let ca_fingerprint = ca.fingerprint(HashAlg::Sha256);
    if known.is_revoked(host, port, cert.public_key()) {
        return CertificateStatus::Revoked {
            fingerprint: PublicKey::new(cert.public_key().clone(), "")
                .fingerprint(HashAlg::Sha256)
                .to_string(),
            ca: false,
        };
    }
    if known.is_revoked(host, port, cert.signature_key()) {
        return CertificateStatus::Revoked {
            fingerprint: ca_fingerprint.to_string(),
            ca: true,
        };
    }
    if cert.cert_type() != CertType::Host {
        return CertificateStatus::NotHost;
    }
    if !known
        .cert_authorities(host, port)
        .iter()
        .any(|k| k.key_data() == cert.signature_key())
    {
        return CertificateStatus::UnknownCa {
            ca: ca_fingerprint.to_string(),
        };
    }
    if now < cert.valid_after() {
        return CertificateStatus::NotYetValid {
            valid_after: cert.valid_after(),
        };
    }
    if now >= cert.valid_before() {
        return CertificateStatus::Expired {
            valid_before: cert.valid_before(),
        };
    }
    // The signature, with the CA that known_hosts trusts (and the window
    // again, which passed above).
    if cert.validate_at(now, [&ca_fingerprint]).is_err() {
        return CertificateStatus::BadSignature;
    }
    if !cert
        .valid_principals()
        .iter()
        .any(|p| p.eq_ignore_ascii_case(host))
    {
        return CertificateStatus::WrongPrincipal {
            principals: cert.valid_principals().to_vec(),
        };
    }
    if !cert.critical_options().is_empty() {
        return CertificateStatus::CriticalOptions {
            names: cert.critical_options().keys().cloned().collect(),
        };
    }
    CertificateStatus::Trusted {
        ca: ca_fingerprint.to_string(),
    }
}

/// A certificate time (seconds since the epoch) as people read it: RFC
/// 3339 in UTC, or `forever` for the largest value.
pub(crate) fn show_time(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(|| "forever".to_owned(), |t| t.to_string())
}

/// One line about a certificate for `-v` and messages: its type, the
/// fingerprint of the key in it, its ID, serial and CA.
pub(crate) fn describe(cert: &Certificate) -> String {
    let key = PublicKey::new(cert.public_key().clone(), "");
    let ca = PublicKey::new(cert.signature_key().clone(), "");
    format!(
        "{} {} (ID {:?}, serial {}, CA {})",
        cert.algorithm().to_certificate_type(),
        key.fingerprint(HashAlg::Sha256),
        cert.key_id(),
        cert.serial(),
        ca.fingerprint(HashAlg::Sha256)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::Path;
    use std::process::Command;

    use super::*;

    /// A test CA and host key made by `ssh-keygen` in a temp dir.
    struct Keys {
        dir: tempfile::TempDir,
    }

    impl Keys {
        fn new() -> Keys {
            let keys = Keys {
                dir: tempfile::tempdir().unwrap(),
            };
            for name in ["ca", "other-ca", "host"] {
                keygen(&["-q", "-t", "ed25519", "-N", "", "-f"], &keys.path(name));
            }
            keys
        }

        fn path(&self, name: &str) -> std::path::PathBuf {
            self.dir.path().join(name)
        }

        /// `ssh-keygen -s CA ARGS host.pub`: the certificate.
        fn sign(&self, ca: &str, args: &[&str]) -> Certificate {
            let mut all = vec!["-q", "-s"];
            let ca = self.path(ca);
            all.push(ca.to_str().unwrap());
            all.extend_from_slice(&["-I", "test-id"]);
            all.extend_from_slice(args);
            keygen(&all, &self.path("host.pub"));
            let text = std::fs::read_to_string(self.path("host-cert.pub")).unwrap();
            Certificate::from_openssh(text.trim()).unwrap()
        }

        /// The `TYPE BASE64` of a public key file.
        fn public(&self, name: &str) -> String {
            let text = std::fs::read_to_string(self.path(&format!("{name}.pub"))).unwrap();
            text.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        }

        fn known(&self, lines: &str) -> KnownHosts {
            let text = lines
                .replace("CA_KEY", &self.public("ca"))
                .replace("OTHER_CA", &self.public("other-ca"))
                .replace("HOST_KEY", &self.public("host"));
            KnownHosts::parse(&text, Path::new("/test/known_hosts"))
        }
    }

    fn keygen(args: &[&str], file: &Path) {
        let out = Command::new("ssh-keygen")
            .args(args)
            .arg(file)
            .output()
            .unwrap_or_else(|e| panic!("ssh-keygen (apt-get install openssh-client): {e}"));
        assert!(out.status.success(), "ssh-keygen {args:?}: {out:?}");
    }

    /// Seconds since the epoch, now.
    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn is_trusted(status: &CertificateStatus) -> bool {
        matches!(status, CertificateStatus::Trusted { .. })
    }

    #[test]
    fn a_host_certificate_for_the_host_from_its_ca_is_trusted_on_any_port() {
        let keys = Keys::new();
        let cert = keys.sign(
            "ca",
            &["-h", "-n", "web1.example.net,10.0.0.1", "-V", "+1h"],
        );
        let known = keys.known("@cert-authority *.example.net CA_KEY\n");
        let status = check(&known, "web1.example.net", 22, &cert, now());
        assert!(is_trusted(&status), "{status:?}");
        // Off port 22 the bare name matches too, and case does not matter.
        assert!(is_trusted(&check(
            &known,
            "WEB1.example.net",
            2222,
            &cert,
            now()
        )));
        // The `[host]:port` form OpenSSH looks up.
        let known = keys.known("@cert-authority [10.0.0.1]:2222 CA_KEY\n");
        assert!(is_trusted(&check(&known, "10.0.0.1", 2222, &cert, now())));
        assert!(matches!(
            check(&known, "10.0.0.1", 2223, &cert, now()),
            CertificateStatus::UnknownCa { .. }
        ));
        // A negated pattern matching either form excludes the host.
        let known = keys.known("@cert-authority *,![web1.example.net]:2222 CA_KEY\n");
        assert!(matches!(
            check(&known, "web1.example.net", 2222, &cert, now()),
            CertificateStatus::UnknownCa { .. }
        ));
        assert!(is_trusted(&check(
            &known,
            "web1.example.net",
            22,
            &cert,
            now()
        )));
    }

    #[test]
    fn the_validity_window_is_checked_at_the_time_given() {
        let keys = Keys::new();
        // 2030-01-01T00:00:00Z to 2030-01-02T00:00:00Z.
        let cert = keys.sign(
            "ca",
            &["-h", "-n", "web1", "-V", "20300101:20300102", "-z", "7"],
        );
        let known = keys.known("@cert-authority * CA_KEY\n");
        let (after, before) = (1_893_456_000, 1_893_542_400);
        assert_eq!(
            check(&known, "web1", 22, &cert, after - 1),
            CertificateStatus::NotYetValid { valid_after: after }
        );
        assert!(is_trusted(&check(&known, "web1", 22, &cert, after)));
        assert!(is_trusted(&check(&known, "web1", 22, &cert, before - 1)));
        assert_eq!(
            check(&known, "web1", 22, &cert, before),
            CertificateStatus::Expired {
                valid_before: before
            }
        );
        assert_eq!(show_time(before), "2030-01-02T00:00:00Z");
        assert_eq!(show_time(u64::MAX), "forever");
        assert!(describe(&cert).contains("(ID \"test-id\", serial 7, CA SHA256:"));
    }

    #[test]
    fn a_principal_must_name_the_host() {
        let keys = Keys::new();
        let known = keys.known("@cert-authority * CA_KEY\n");
        let cert = keys.sign("ca", &["-h", "-n", "web2,web3", "-V", "+1h"]);
        assert_eq!(
            check(&known, "web1", 22, &cert, now()),
            CertificateStatus::WrongPrincipal {
                principals: vec!["web2".to_owned(), "web3".to_owned()]
            }
        );
        assert!(is_trusted(&check(&known, "web3", 22, &cert, now())));
        // Not a pattern: `*` is a principal like any other name.
        let cert = keys.sign("ca", &["-h", "-n", "web*", "-V", "+1h"]);
        assert!(matches!(
            check(&known, "web1", 22, &cert, now()),
            CertificateStatus::WrongPrincipal { .. }
        ));
        // No principal at all: OpenSSH would take it for any host; remex not.
        let cert = keys.sign("ca", &["-h", "-V", "+1h"]);
        assert_eq!(
            check(&known, "web1", 22, &cert, now()),
            CertificateStatus::WrongPrincipal { principals: vec![] }
        );
    }

    #[test]
    fn only_a_ca_trusted_for_the_host_vouches() {
        let keys = Keys::new();
        let cert = keys.sign("other-ca", &["-h", "-n", "web1", "-V", "+1h"]);
        // A CA line for other hosts, a plain pin of the CA key, and a CA
        // line for another CA: none of them trusts this certificate.
        let known = keys
            .known("@cert-authority db* OTHER_CA\nweb1 OTHER_CA\n@cert-authority web1 CA_KEY\n");
        let status = check(&known, "web1", 22, &cert, now());
        let CertificateStatus::UnknownCa { ca } = &status else {
            panic!("{status:?}");
        };
        assert!(ca.starts_with("SHA256:"), "{ca}");
        assert!(is_trusted(&check(
            &known,
            "db1",
            22,
            &keys.sign("other-ca", &["-h", "-n", "db1", "-V", "+1h"]),
            now()
        )));
    }

    #[test]
    fn a_user_certificate_is_not_a_host_certificate() {
        let keys = Keys::new();
        let cert = keys.sign("ca", &["-n", "web1", "-V", "+1h"]);
        let known = keys.known("@cert-authority * CA_KEY\n");
        assert_eq!(
            check(&known, "web1", 22, &cert, now()),
            CertificateStatus::NotHost
        );
    }

    #[test]
    fn a_revoked_ca_or_host_key_wins() {
        let keys = Keys::new();
        let cert = keys.sign("ca", &["-h", "-n", "web1", "-V", "+1h"]);
        let known = keys.known("@cert-authority * CA_KEY\n@revoked * CA_KEY\n");
        let status = check(&known, "web1", 2222, &cert, now());
        assert!(
            matches!(status, CertificateStatus::Revoked { ca: true, .. }),
            "{status:?}"
        );
        let known = keys.known("@revoked web1 HOST_KEY\n@cert-authority * CA_KEY\n");
        let status = check(&known, "web1", 22, &cert, now());
        assert!(
            matches!(status, CertificateStatus::Revoked { ca: false, .. }),
            "{status:?}"
        );
        // A revocation for other hosts does not apply.
        let known = keys.known("@revoked db1 CA_KEY\n@cert-authority * CA_KEY\n");
        assert!(is_trusted(&check(&known, "web1", 22, &cert, now())));
    }

    #[test]
    fn critical_options_are_refused() {
        let keys = Keys::new();
        let cert = keys.sign(
            "ca",
            &["-h", "-n", "web1", "-V", "+1h", "-O", "force-command=true"],
        );
        let known = keys.known("@cert-authority * CA_KEY\n");
        assert_eq!(
            check(&known, "web1", 22, &cert, now()),
            CertificateStatus::CriticalOptions {
                names: vec!["force-command".to_owned()]
            }
        );
    }

    #[test]
    fn a_tampered_certificate_does_not_verify() {
        let keys = Keys::new();
        let cert = keys.sign("ca", &["-h", "-n", "web1", "-V", "+1h"]);
        let known = keys.known("@cert-authority * CA_KEY\n");
        // The same certificate with another key inside: the CA's signature
        // no longer covers it.
        let mut bytes = cert.to_bytes().unwrap();
        let inner = cert.public_key().ed25519().unwrap().0;
        let at = bytes.windows(inner.len()).position(|w| w == inner).unwrap();
        bytes[at] ^= 1;
        let forged = Certificate::from_bytes(&bytes).unwrap();
        assert_eq!(
            check(&known, "web1", 22, &forged, now()),
            CertificateStatus::BadSignature
        );
    }
}
