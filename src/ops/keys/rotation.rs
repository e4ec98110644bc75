//! Key rotation as a per-host state machine that never locks a host out.
//!
//! ```text
//! Generated ──deploy new key (log in with old)──▶ Deployed
//! Deployed ──fresh login with the new key only──▶ Verified
//!          └─login failed──▶ Generated (the next run deploys again)
//! Verified ──record new key as the host's current key (local)──▶ Recorded
//! Recorded ──remove old key (log in with new)──▶ OldRemoved (finished)
//! ```
//!
//! **Invariant:** at every instant the key the state file names as a host's
//! `current` key can log in. The old key stays in authorized_keys until a
//! login with the new key has been verified, and the state switches to the
//! new key (step `Recorded`, in the same atomic write as the switch) before
//! the old key is removed. So recording comes before removal: a crash
//! between "remove" and "record" would otherwise leave the state pointing at
//! a key that no longer works.
//!
//! Each step is persisted in the state file (`rotations`), so a rerun
//! resumes every host from its recorded step; every remote step is
//! idempotent (adding a present key or removing an absent one changes
//! nothing), so redoing a step whose completion was not recorded is safe.
//! A finished host's entry is dropped from `rotations`.
//!
//! A host remex has no record for logs in with the key from the config;
//! that key may be an operator's own, so rotation replaces it as remex's key
//! but never removes it from authorized_keys (`old` is `None`).
//!
//! What the state file records of a rotation ([`HostRotation`],
//! [`RotationStep`]) is the key directory's (`keydir/host_rotation.rs`);
//! this module moves it from step to step.

use std::collections::BTreeSet;

use crate::keydir::{HostRotation, KeyState, KeysError, RotationStep};

/// What to do next on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationAction {
    /// Add `key` to authorized_keys, logging in with `login` (`None`: the
    /// key from the config). Then [`RotationEvent::Deployed`].
    Deploy {
        /// The new key.
        key: String,
        /// The key that works today.
        login: Option<String>,
    },
    /// Open a fresh connection authenticating with `key` only. Then
    /// [`RotationEvent::Verified`] or [`RotationEvent::VerifyFailed`].
    Verify {
        /// The new key.
        key: String,
    },
    /// Record `key` as the host's key (local only). Then
    /// [`RotationEvent::Recorded`].
    Record {
        /// The new key.
        key: String,
    },
    /// Remove `key` from authorized_keys, logging in with `login`. Then
    /// [`RotationEvent::OldRemoved`].
    RemoveOld {
        /// The old key.
        key: String,
        /// The new key, verified and recorded.
        login: String,
    },
    /// Nothing left to do.
    Done,
}

/// What happened on a host, fed to [`KeyState::advance_rotation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationEvent {
    /// The new key is in authorized_keys.
    Deployed,
    /// A login with the new key worked.
    Verified,
    /// A login with the new key failed: deploy again next time.
    VerifyFailed,
    /// The caller is ready to switch the host to the new key.
    Recorded,
    /// The old key was removed from authorized_keys.
    OldRemoved,
}

impl RotationEvent {
    /// The event's name in error messages.
    fn name(self) -> &'static str {
        match self {
            Self::Deployed => "deployed",
            Self::Verified => "verified",
            Self::VerifyFailed => "verify-failed",
            Self::Recorded => "recorded",
            Self::OldRemoved => "old-removed",
        }
    }
}

impl HostRotation {
    /// The next thing to do on the host, from its recorded step.
    pub fn next_action(&self) -> RotationAction {
        match (self.step, &self.old) {
            (RotationStep::Generated, old) => RotationAction::Deploy {
                key: self.new.clone(),
                login: old.clone(),
            },
            (RotationStep::Deployed, _) => RotationAction::Verify {
                key: self.new.clone(),
            },
            (RotationStep::Verified, _) => RotationAction::Record {
                key: self.new.clone(),
            },
            (RotationStep::Recorded, Some(old)) => RotationAction::RemoveOld {
                key: old.clone(),
                login: self.new.clone(),
            },
            (RotationStep::Recorded, None) | (RotationStep::OldRemoved, _) => RotationAction::Done,
        }
    }

    /// The key that is known to log in now (`None`: the configured key):
    /// the old one until the new one is recorded, then the new one.
    pub fn login_key(&self) -> Option<&str> {
        if self.step >= RotationStep::Recorded {
            Some(&self.new)
        } else {
            self.old.as_deref()
        }
    }

    /// Whether nothing is left to do.
    pub fn is_finished(&self) -> bool {
        self.next_action() == RotationAction::Done
    }

    /// The step after `event`, or `None` when the event is not allowed now.
    /// Removal is allowed only after the new key was verified and recorded.
    fn after(&self, event: RotationEvent) -> Option<RotationStep> {
        use RotationEvent as E;
        use RotationStep as S;
        match (self.step, event) {
            (S::Generated, E::Deployed) => Some(S::Deployed),
            (S::Deployed, E::Verified) => Some(S::Verified),
            (S::Deployed, E::VerifyFailed) => Some(S::Generated),
            (S::Verified, E::Recorded) => Some(S::Recorded),
            (S::Recorded, E::OldRemoved) if self.old.is_some() => Some(S::OldRemoved),
            _ => None,
        }
    }
}

/// What a rotation run should do with one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPlan {
    /// An unfinished rotation: continue it from its step.
    Resume(HostRotation),
    /// Start a rotation away from `old` (`None`: the configured key).
    Start {
        /// The host's current key.
        old: Option<String>,
    },
    /// The host already uses the key this run is rotating to (a rerun after
    /// it finished there).
    AlreadyRotated {
        /// That key.
        key: String,
    },
}

/// What a rotation run over some hosts should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RotationPlan {
    /// The new key of the unfinished rotation among these hosts, which
    /// hosts to [`HostPlan::Start`] should rotate to as well; `None` means
    /// generate a new key (no unfinished rotation, or several different
    /// ones).
    pub new_key: Option<String>,
    /// Per host, in the order given.
    pub hosts: Vec<(String, HostPlan)>,
}

/// Plans a rotation run over `hosts`: resume unfinished rotations; a rerun
/// skips hosts already on the key being rotated to; the rest start.
pub(crate) fn plan_rotation(state: &KeyState, hosts: &[String]) -> RotationPlan {
    let pending: BTreeSet<&str> = hosts
        .iter()
        .filter_map(|h| state.rotations.get(h))
        .map(|r| r.new.as_str())
        .collect();
    let new_key = match (pending.len(), pending.first()) {
        (1, Some(key)) => Some((*key).to_owned()),
        _ => None,
    };
    let hosts = hosts
        .iter()
        .map(|host| {
            let current = state.hosts.get(host).map(|h| h.current.clone());
            let plan = match (state.rotations.get(host), current) {
                (Some(rotation), _) => HostPlan::Resume(rotation.clone()),
                (None, Some(key)) if pending.contains(key.as_str()) => {
                    HostPlan::AlreadyRotated { key }
                }
                (None, old) => HostPlan::Start { old },
            };
            (host.clone(), plan)
        })
        .collect();
    RotationPlan { new_key, hosts }
}

impl KeyState {
    /// The unfinished rotation of `host`, if any.
    pub fn pending_rotation(&self, host: &str) -> Option<&HostRotation> {
        self.rotations.get(host)
    }

    /// Starts rotating `host` to key `new` (step `Generated`), or returns
    /// the rotation already in progress there unchanged (a rerun resumes).
    /// The old key is the host's current key (`None`: the configured key).
    pub fn begin_rotation(
        &mut self,
        host: &str,
        new: &str,
        now: &str,
    ) -> Result<HostRotation, KeysError> {
        if let Some(pending) = self.rotations.get(host) {
            return Ok(pending.clone());
        }
        let old = self.hosts.get(host).map(|h| h.current.clone());
        if old.as_deref() == Some(new) {
            return Err(KeysError::SameKey {
                host: host.to_owned(),
                name: new.to_owned(),
            });
        }
        let rotation = HostRotation {
            old,
            new: new.to_owned(),
            step: RotationStep::Generated,
            updated: now.to_owned(),
        };
        self.rotations.insert(host.to_owned(), rotation.clone());
        Ok(rotation)
    }

    /// What a rotation run to key `target` does on `host` at the host's
    /// turn, decided on the state as it is then (another operation may have
    /// changed the host while this run waited):
    ///
    /// - an unfinished rotation there is resumed. One that has not switched
    ///   the host yet (before `Recorded`) is first rebased on the host's key
    ///   of now: a revoke or a deploy that ran meanwhile may have changed
    ///   it, and the old key is what the rotation logs in with and removes.
    ///   One whose new key the host already uses is dropped (done);
    /// - else, when the host uses `target` already, nothing (`None`);
    /// - else a new rotation to `target` begins, once `target_exists` said
    ///   the key is in the key directory (never begin with a key archived
    ///   or removed meanwhile).
    pub(crate) fn next_rotation(
        &mut self,
        host: &str,
        target: &str,
        target_exists: impl FnOnce() -> Result<(), KeysError>,
        now: &str,
    ) -> Result<Option<HostRotation>, KeysError> {
        let current = self.hosts.get(host).map(|h| h.current.clone());
        if let Some(mut rotation) = self.rotations.get(host).cloned() {
            if rotation.step >= RotationStep::Recorded {
                return Ok(Some(rotation));
            }
            if current.as_deref() == Some(rotation.new.as_str()) {
                self.rotations.remove(host);
            } else {
                if rotation.old != current {
                    rotation.old = current;
                    now.clone_into(&mut rotation.updated);
                    self.rotations.insert(host.to_owned(), rotation.clone());
                }
                return Ok(Some(rotation));
            }
        }
        if current.as_deref() == Some(target) {
            return Ok(None);
        }
        target_exists()?;
        self.begin_rotation(host, target, now).map(Some)
    }

    /// Applies `event` to `host`'s rotation and keeps the host records in
    /// step: `Recorded` makes the new key current; `OldRemoved` forgets the
    /// old key and finishes. Returns the new step (a finished rotation is
    /// dropped from [`KeyState::rotations`]). Refuses events out of order —
    /// above all removing the old key before the new one was verified and
    /// recorded.
    pub fn advance_rotation(
        &mut self,
        host: &str,
        event: RotationEvent,
        now: &str,
    ) -> Result<RotationStep, KeysError> {
        let rotation = self
            .rotations
            .get(host)
            .cloned()
            .ok_or_else(|| KeysError::NoRotation {
                host: host.to_owned(),
            })?;
        let step = rotation
            .after(event)
            .ok_or_else(|| KeysError::RotationTransition {
                host: host.to_owned(),
                from: rotation.step,
                event: event.name(),
            })?;
        match event {
            RotationEvent::Deployed => {
                // Known hosts list the new key as deployed, not yet used;
                // an unknown host gets its record when the key is recorded.
                if self.hosts.contains_key(host) {
                    self.record_deployed(host, &rotation.new, false);
                }
            }
            RotationEvent::Recorded => self.record_deployed(host, &rotation.new, true),
            RotationEvent::OldRemoved => {
                if let Some(old) = &rotation.old {
                    self.record_removed(host, old);
                }
            }
            RotationEvent::Verified | RotationEvent::VerifyFailed => {}
        }
        let updated = HostRotation {
            step,
            updated: now.to_owned(),
            ..rotation
        };
        if updated.is_finished() {
            self.rotations.remove(host);
        } else {
            self.rotations.insert(host.to_owned(), updated);
        }
        Ok(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keydir::load_state;
    use crate::keydir::state::save_state;

    const NOW: &str = "2026-01-02T03:04:05Z";

    fn state_with(host: &str, current: &str) -> KeyState {
        let mut s = KeyState::default();
        s.record_deployed(host, current, true);
        s
    }

    fn advance(s: &mut KeyState, host: &str, event: RotationEvent) -> RotationStep {
        s.advance_rotation(host, event, NOW)
            .unwrap_or_else(|e| panic!("{event:?}: {e}"))
    }

    /// Every state the invariant applies to: the host's current key is one
    /// that is deployed (so it can log in).
    fn assert_current_is_deployed(s: &KeyState, host: &str) {
        if let Some(h) = s.hosts.get(host) {
            assert!(h.deployed.contains(&h.current), "{h:?}");
        }
    }

    #[test]
    fn full_rotation_in_order() {
        let mut s = state_with("vm01", "old");
        let r = s
            .begin_rotation("vm01", "new", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.next_action(),
            RotationAction::Deploy {
                key: "new".into(),
                login: Some("old".into())
            }
        );
        assert_eq!(r.login_key(), Some("old"));

        assert_eq!(
            advance(&mut s, "vm01", RotationEvent::Deployed),
            RotationStep::Deployed
        );
        assert_eq!(s.hosts["vm01"].current, "old", "not used before verified");
        assert_eq!(s.hosts["vm01"].deployed, ["old", "new"]);
        assert_current_is_deployed(&s, "vm01");
        assert_eq!(
            s.rotations["vm01"].next_action(),
            RotationAction::Verify { key: "new".into() }
        );

        assert_eq!(
            advance(&mut s, "vm01", RotationEvent::Verified),
            RotationStep::Verified
        );
        assert_eq!(s.hosts["vm01"].current, "old");
        assert_eq!(
            s.rotations["vm01"].next_action(),
            RotationAction::Record { key: "new".into() }
        );

        assert_eq!(
            advance(&mut s, "vm01", RotationEvent::Recorded),
            RotationStep::Recorded
        );
        assert_eq!(s.hosts["vm01"].current, "new", "switched before removal");
        assert_eq!(s.rotations["vm01"].login_key(), Some("new"));
        assert_current_is_deployed(&s, "vm01");
        assert_eq!(
            s.rotations["vm01"].next_action(),
            RotationAction::RemoveOld {
                key: "old".into(),
                login: "new".into()
            }
        );

        assert_eq!(
            advance(&mut s, "vm01", RotationEvent::OldRemoved),
            RotationStep::OldRemoved
        );
        assert_eq!(s.hosts["vm01"].current, "new");
        assert_eq!(s.hosts["vm01"].deployed, ["new"]);
        assert!(s.pending_rotation("vm01").is_none(), "finished: dropped");
    }

    #[test]
    fn old_key_cannot_be_removed_before_verification_and_record() {
        for steps in [
            &[][..],
            &[RotationEvent::Deployed][..],
            &[RotationEvent::Deployed, RotationEvent::Verified][..],
        ] {
            let mut s = state_with("vm01", "old");
            s.begin_rotation("vm01", "new", NOW)
                .unwrap_or_else(|e| panic!("{e}"));
            for &e in steps {
                advance(&mut s, "vm01", e);
            }
            let before = s.clone();
            let err = s.advance_rotation("vm01", RotationEvent::OldRemoved, NOW);
            assert!(
                matches!(
                    err,
                    Err(KeysError::RotationTransition {
                        event: "old-removed",
                        ..
                    })
                ),
                "{steps:?}: {err:?}"
            );
            assert_eq!(s, before, "a refused event changes nothing");
            assert_eq!(s.hosts["vm01"].current, "old");
        }
    }

    #[test]
    fn out_of_order_events_are_refused() {
        let mut s = state_with("vm01", "old");
        s.begin_rotation("vm01", "new", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        for event in [
            RotationEvent::Verified,
            RotationEvent::Recorded,
            RotationEvent::VerifyFailed,
        ] {
            assert!(s.advance_rotation("vm01", event, NOW).is_err(), "{event:?}");
        }
        advance(&mut s, "vm01", RotationEvent::Deployed);
        assert!(
            s.advance_rotation("vm01", RotationEvent::Deployed, NOW)
                .is_err()
        );
        assert!(
            s.advance_rotation("vm01", RotationEvent::Recorded, NOW)
                .is_err()
        );
        let msg = s
            .advance_rotation("vm01", RotationEvent::Recorded, NOW)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            msg,
            "rotation on vm01: `recorded` is not allowed after step `deployed`"
        );
        let none = s.advance_rotation("vm09", RotationEvent::Deployed, NOW);
        assert!(matches!(none, Err(KeysError::NoRotation { .. })));
    }

    #[test]
    fn failed_verification_goes_back_to_deploy() {
        let mut s = state_with("vm01", "old");
        s.begin_rotation("vm01", "new", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        advance(&mut s, "vm01", RotationEvent::Deployed);
        assert_eq!(
            advance(&mut s, "vm01", RotationEvent::VerifyFailed),
            RotationStep::Generated
        );
        assert_eq!(s.hosts["vm01"].current, "old", "still the working key");
        assert!(matches!(
            s.rotations["vm01"].next_action(),
            RotationAction::Deploy { .. }
        ));
    }

    #[test]
    fn rerun_resumes_from_the_persisted_step() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut s = state_with("vm01", "old");
        s.record_deployed("vm02", "old", true);
        for host in ["vm01", "vm02"] {
            s.begin_rotation(host, "new", NOW)
                .unwrap_or_else(|e| panic!("{e}"));
            advance(&mut s, host, RotationEvent::Deployed);
        }
        // vm01 gets all the way; vm02's verification fails (sshd down).
        for e in [
            RotationEvent::Verified,
            RotationEvent::Recorded,
            RotationEvent::OldRemoved,
        ] {
            advance(&mut s, "vm01", e);
        }
        advance(&mut s, "vm02", RotationEvent::VerifyFailed);
        save_state(dir.path(), &s).unwrap_or_else(|e| panic!("{e}"));

        // The rerun, in a new process: only the state file carries over.
        let mut s = load_state(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let hosts = ["vm01".to_owned(), "vm02".to_owned()];
        let plan = plan_rotation(&s, &hosts);
        assert_eq!(plan.new_key.as_deref(), Some("new"));
        assert_eq!(
            plan.hosts[0],
            (
                "vm01".into(),
                HostPlan::AlreadyRotated { key: "new".into() }
            )
        );
        let HostPlan::Resume(r) = &plan.hosts[1].1 else {
            panic!("vm02 should resume: {:?}", plan.hosts[1]);
        };
        assert_eq!(r.step, RotationStep::Generated);
        assert_eq!(s.hosts["vm02"].current, "old", "vm02 keeps its working key");
        // begin_rotation on a pending host returns it unchanged.
        let again = s
            .begin_rotation("vm02", "other", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&again, r);
        for e in [
            RotationEvent::Deployed,
            RotationEvent::Verified,
            RotationEvent::Recorded,
            RotationEvent::OldRemoved,
        ] {
            advance(&mut s, "vm02", e);
        }
        assert_eq!(s.hosts["vm02"].current, "new");
        assert!(s.rotations.is_empty());

        // With nothing pending, a new run starts afresh and needs a key.
        let plan = plan_rotation(&s, &hosts);
        assert_eq!(
            plan.hosts[0].1,
            HostPlan::Start {
                old: Some("new".into())
            }
        );
    }

    /// vm01 rotated from `old` to `new` up to step `Recorded`.
    fn recorded(old: &str, new: &str) -> KeyState {
        let mut s = state_with("vm01", old);
        s.begin_rotation("vm01", new, NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        for e in [
            RotationEvent::Deployed,
            RotationEvent::Verified,
            RotationEvent::Recorded,
        ] {
            advance(&mut s, "vm01", e);
        }
        s
    }

    #[test]
    fn resume_after_a_crash_between_steps() {
        // Crash after the remote removal but before `OldRemoved` was saved:
        // the state still says `Recorded`, current = new (which works).
        let s = recorded("old", "new");
        assert_eq!(s.hosts["vm01"].current, "new");
        // The rerun redoes the (idempotent) removal, logging in with new.
        assert_eq!(
            s.rotations["vm01"].next_action(),
            RotationAction::RemoveOld {
                key: "old".into(),
                login: "new".into()
            }
        );
    }

    #[test]
    fn host_on_the_configured_key_keeps_it_deployed() {
        let mut s = KeyState::default();
        let r = s
            .begin_rotation("vm05", "new", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.old, None);
        assert_eq!(
            r.next_action(),
            RotationAction::Deploy {
                key: "new".into(),
                login: None
            }
        );
        advance(&mut s, "vm05", RotationEvent::Deployed);
        assert!(!s.hosts.contains_key("vm05"), "not current before verified");
        advance(&mut s, "vm05", RotationEvent::Verified);
        assert_eq!(
            advance(&mut s, "vm05", RotationEvent::Recorded),
            RotationStep::Recorded
        );
        assert_eq!(s.hosts["vm05"].current, "new");
        assert!(s.rotations.is_empty(), "finished without removing anything");
        let plan = plan_rotation(&s, &["vm06".to_owned()]);
        assert_eq!(plan.hosts[0].1, HostPlan::Start { old: None });
    }

    fn exists() -> Result<(), KeysError> {
        Ok(())
    }

    fn next(s: &mut KeyState, host: &str, target: &str) -> Option<HostRotation> {
        s.next_rotation(host, target, exists, NOW)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn at_its_turn_a_rotation_starts_from_the_host_as_it_is_then() {
        // Nothing pending: begin, unless the host is on the target already.
        let mut s = state_with("vm01", "a");
        let r = next(&mut s, "vm01", "b").unwrap_or_else(|| panic!("no rotation"));
        assert_eq!((r.old.as_deref(), r.new.as_str()), (Some("a"), "b"));
        assert_eq!(s.rotations["vm01"], r, "begun in the state");
        let mut done = state_with("vm01", "b");
        assert_eq!(next(&mut done, "vm01", "b"), None);
        assert!(done.rotations.is_empty());

        // Begun from `a` by a run that stopped before deploying, then a
        // revoke (forced) moved the host to `c`: the rotation now starts
        // from `c`, which is what logs in and what it will remove.
        let mut s = state_with("vm01", "a");
        s.record_deployed("vm01", "c", false);
        s.begin_rotation("vm01", "b", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        s.record_removed("vm01", "a");
        assert_eq!(s.hosts["vm01"].current, "c");
        let r = next(&mut s, "vm01", "b").unwrap_or_else(|| panic!("no rotation"));
        assert_eq!(r.old.as_deref(), Some("c"));
        assert_eq!(s.rotations["vm01"].old.as_deref(), Some("c"), "saved");
        assert_eq!(
            r.next_action(),
            RotationAction::Deploy {
                key: "b".into(),
                login: Some("c".into())
            }
        );

        // A deploy that went first made the new key the host's: done.
        let mut s = state_with("vm01", "a");
        s.begin_rotation("vm01", "b", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        s.record_deployed("vm01", "b", true);
        assert_eq!(next(&mut s, "vm01", "b"), None);
        assert!(s.rotations.is_empty());

        // Once the host switched, the rotation resumes as saved.
        let mut s = recorded("a", "b");
        s.record_deployed("vm01", "d", true);
        let r = next(&mut s, "vm01", "b").unwrap_or_else(|| panic!("no rotation"));
        assert_eq!(
            (r.old.as_deref(), r.step),
            (Some("a"), RotationStep::Recorded)
        );

        // Another run's rotation pending: it is finished first (resumed),
        // and this run's target comes after.
        let mut s = state_with("vm01", "a");
        s.begin_rotation("vm01", "other", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        let r = next(&mut s, "vm01", "b").unwrap_or_else(|| panic!("no rotation"));
        assert_eq!(r.new, "other");

        // A target archived or removed meanwhile is never begun.
        let mut s = state_with("vm01", "a");
        let gone = s.next_rotation(
            "vm01",
            "b",
            || {
                Err(KeysError::KeyGone {
                    name: "b".into(),
                    dir: "/k".into(),
                })
            },
            NOW,
        );
        assert!(matches!(gone, Err(KeysError::KeyGone { .. })), "{gone:?}");
        assert!(s.rotations.is_empty());
    }

    #[test]
    fn rotating_to_the_current_key_is_refused() {
        let mut s = state_with("vm01", "k");
        let err = s.begin_rotation("vm01", "k", NOW);
        assert!(matches!(err, Err(KeysError::SameKey { .. })));
        assert!(s.rotations.is_empty());
    }

    #[test]
    fn rotation_state_format() {
        let mut s = state_with("vm01", "old");
        s.begin_rotation("vm01", "new", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        advance(&mut s, "vm01", RotationEvent::Deployed);
        let json = serde_json::to_value(&s.rotations).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            json,
            serde_json::json!({ "vm01": {
                "old": "old", "new": "new", "step": "deployed", "updated": NOW
            }})
        );
        let step: RotationStep =
            serde_json::from_str("\"old-removed\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(step, RotationStep::OldRemoved);
        assert_eq!(step.to_string(), "old-removed");
    }

    #[test]
    fn several_unfinished_rotations_mean_a_fresh_key_for_new_hosts() {
        let mut s = state_with("a", "k1");
        s.record_deployed("b", "k1", true);
        s.record_deployed("c", "k1", true);
        s.begin_rotation("a", "k2", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        s.begin_rotation("b", "k3", NOW)
            .unwrap_or_else(|e| panic!("{e}"));
        let plan = plan_rotation(&s, &["a".into(), "b".into(), "c".into()]);
        assert_eq!(plan.new_key, None);
        assert!(matches!(plan.hosts[2].1, HostPlan::Start { .. }));
    }
}
