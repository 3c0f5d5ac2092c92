//! Rotating the Consul CA (`arpanet rotate --tls`, the `rotate-tls`
//! playbook): the state of a rotation in this checkout, and the
//! `consul_ca_rotate` task that moves it on. Docker's TLS CA (`rotate
//! --docker-tls`) is rotated with the same files and task, going from
//! `start` straight to `drop`: nothing in the cluster talks to Docker's
//! TCP API, so no phase of double trust is needed.
//!
//! A new CA cannot replace the old one on every agent at once: an agent
//! that trusts only the new CA refuses every agent still showing a
//! certificate from the old one, and the agents can only be restarted one
//! at a time without losing the quorum. So the rotation goes in three
//! phases, each rolled through every agent (`consul-agents.yml`: clients
//! in batches, servers one at a time, the leader last, with the gates):
//!
//! 1. `trust`: every agent trusts the old and the new CA (its `ca.pem` is a
//!    bundle of both) and keeps its certificate from the old one;
//! 2. `certs`: every agent gets a certificate from the new CA (the bundle
//!    stays, so agents not yet reached still trust it, and it them);
//! 3. `drop`: every agent trusts the new CA alone.
//!
//! The state is kept in files beside the inventory, so a rotation cut short
//! (Ctrl-C, a failed gate) resumes where it stopped on the next
//! `rotate --tls`, and every run in between (`bootstrap`, `upgrade`) rolls
//! agents toward that same phase, never back:
//!
//! - `ca.pem`, `ca-key.pem`: the new CA, which issues from the start;
//! - `ca.old.pem`: the CA being replaced, kept until phase 3 has ended;
//! - `ca.rotation`: the phase (`trust`, `certs` or `drop`).
//!
//! Without `ca.old.pem` no rotation is under way. What the agents trust
//! ([`trust`]) and which CAs this checkout accepts on the cluster
//! ([`known`], used by `cluster_secrets`' refusal check) follow from these
//! files. A checkout that adopts a bundle from a node ([`split`]) records
//! its second CA as `ca.old.pem` in phase `trust`, which changes no agent.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::pki;
use crate::error::{Error, Result};
use crate::modules::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::yaml::Node;

/// The phase of a rotation under way, in `DIR/ca.rotation`.
pub(crate) const PHASE_FILE: &str = "ca.rotation";

/// The phases of a CA rotation, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Agents trust both CAs, keep their old certificates.
    Trust,
    /// Agents trust both CAs, get certificates from the new one.
    Certs,
    /// Agents trust the new CA alone.
    Drop,
}

impl Phase {
    fn word(self) -> &'static str {
        match self {
            Phase::Trust => "trust",
            Phase::Certs => "certs",
            Phase::Drop => "drop",
        }
    }

    fn parse(word: &str) -> Option<Phase> {
        [Phase::Trust, Phase::Certs, Phase::Drop]
            .into_iter()
            .find(|p| p.word() == word)
    }
}

/// The rotation under way in `dir`, if any. A phase file that is missing
/// or unreadable beside `ca.old.pem` reads as `trust`, the phase that
/// trusts most.
pub(crate) fn phase(dir: &Path) -> Result<Option<Phase>> {
    if !dir.join(pki::OLD_CA_CERT).is_file() {
        return Ok(None);
    }
    let word = read(&dir.join(PHASE_FILE))?.unwrap_or_default();
    Ok(Some(Phase::parse(word.trim()).unwrap_or(Phase::Trust)))
}

/// What the agents trust, as their `ca.pem` holds it: the CA, followed by
/// the one being replaced in the first two phases of a rotation. `None`
/// without a CA. Outside a rotation it is `ca.pem` byte for byte (so the
/// agents' fingerprint labels stay what they were before rotations
/// existed).
pub(crate) fn trust(dir: &Path) -> Result<Option<String>> {
    let Some(ca) = read(&dir.join(pki::CA_CERT))? else {
        return Ok(None);
    };
    if let Some(Phase::Trust | Phase::Certs) = phase(dir)? {
        if let Some(old) = read(&dir.join(pki::OLD_CA_CERT))? {
            if pki::cert_spki(&old) != pki::cert_spki(&ca) {
                return Ok(Some(bundle(&ca, &old)));
            }
        }
    }
    Ok(Some(ca))
}

/// The CA certificates (DER) this checkout accepts on the cluster: the CA
/// and, during a rotation, the one it replaces.
pub(crate) fn known(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for file in [pki::CA_CERT, pki::OLD_CA_CERT] {
        if let Some(text) = read(&dir.join(file))? {
            out.extend(pki::cert_ders(&text));
        }
    }
    Ok(out)
}

/// `ca` then `old`, one after the other.
fn bundle(ca: &str, old: &str) -> String {
    let mut text = ca.to_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(old);
    text
}

/// A node's `ca.pem` split into its first certificate and the rest (the
/// CA being replaced, when it is a bundle), so that [`bundle`] of the two
/// gives the text back byte for byte.
pub(crate) fn split(text: &str) -> (String, Option<String>) {
    const END: &str = "-----END CERTIFICATE-----";
    let Some(at) = text.find(END) else {
        return (text.to_owned(), None);
    };
    let mut cut = at + END.len();
    let rest = &text[cut..];
    cut += rest.len() - rest.trim_start_matches(['\r', '\n']).len();
    let (first, rest) = text.split_at(cut);
    if pki::cert_ders(rest).is_empty() {
        return (text.to_owned(), None);
    }
    let first = match first.ends_with('\n') {
        true => first.to_owned(),
        false => format!("{first}\n"),
    };
    (first, Some(rest.to_owned()))
}

/// Record, in a checkout adopting the cluster's CA, that the node's bundle
/// holds a second CA being replaced (phase `trust`, which keeps every
/// agent as it is).
pub(crate) fn adopt_old(dir: &Path, old: &str) -> Result<()> {
    pki::write_cert(&dir.join(pki::OLD_CA_CERT), old.as_bytes())?;
    pki::write_cert(&dir.join(PHASE_FILE), b"trust\n")
}

fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// The module as the registry lists it:
///
/// ```yaml
/// - name: a new consul CA beside the old one
///   run_once: true
///   consul_ca_rotate:
///     dir: "{{ consul_tls_dir }}"
///     step: start        # or trust, certs, drop, finish
/// ```
pub(crate) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "consul_ca_rotate"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        Ok(Arc::new(CaRotate(args_map(
            node,
            "a mapping with `dir` and `step`",
        )?)))
    }
}

/// Which move of the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Step {
    /// Keep the CA as `ca.old.pem` and make a new one (or find the one a
    /// rotation cut short made).
    Start,
    /// Enter phase 1 (no-op when further on).
    Trust,
    /// Enter phase 2 (no-op when further on).
    Certs,
    /// Enter phase 3.
    Drop,
    /// The rotation has ended: forget the old CA.
    Finish,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateArgs {
    /// The checkout's Consul secrets directory (a template).
    pub dir: String,
    pub step: Step,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CaRotate(pub RotateArgs);

impl Module for CaRotate {
    fn name(&self) -> &'static str {
        "consul_ca_rotate"
    }

    fn summary(&self) -> String {
        format!("{:?}", self.0.step).to_lowercase()
    }

    fn templates(&self) -> Vec<&str> {
        vec![&self.0.dir]
    }

    fn local(&self) -> bool {
        true
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            let dir = PathBuf::from(ctx.render(&self.0.dir)?);
            let msg = step(&dir, self.0.step, ctx.check)?;
            Ok(Outcome {
                changed: msg.is_some(),
                msg,
                ..Outcome::ok()
            })
        })
    }
}

/// Take `step` in `dir` (with `check`, only say what it would do): what
/// changed, `None` when nothing had to.
pub(crate) fn step(dir: &Path, step: Step, check: bool) -> Result<Option<String>> {
    let _one_at_a_time = match check {
        true => None,
        false => Some(pki::lock(dir)?),
    };
    let now = phase(dir)?;
    let would = |text: &str| match check {
        true => format!("would {text}"),
        false => text.to_owned(),
    };
    let ca_path = dir.join(pki::CA_CERT);
    let old_path = dir.join(pki::OLD_CA_CERT);
    match step {
        Step::Start => {
            let Some(ca) = read(&ca_path)? else {
                return Err(Error::usage(format!(
                    "there is no CA `{}` to rotate",
                    ca_path.display()
                ))
                .with_hint(
                    "`arpanet run bootstrap` makes (or adopts) the cluster's CA; Docker's \
                     needs `docker_tcp: true` on some node",
                ));
            };
            let mut done = Vec::new();
            if now.is_none() {
                if !check {
                    pki::write_cert(&old_path, ca.as_bytes())?;
                    pki::write_cert(&dir.join(PHASE_FILE), b"trust\n")?;
                }
                done.push(format!("keep the CA as `{}`", pki::OLD_CA_CERT));
            }
            let old = read(&old_path)?.unwrap_or(ca);
            let current = read(&ca_path)?;
            let made = current.is_some_and(|c| pki::cert_spki(&c) != pki::cert_spki(&old));
            if !made {
                if !check {
                    pki::new_ca(dir)?;
                }
                done.push(format!("make a new CA in `{}`", ca_path.display()));
            }
            Ok((!done.is_empty()).then(|| would(&done.join(", "))))
        }
        Step::Trust | Step::Certs | Step::Drop => {
            let wanted = match step {
                Step::Trust => Phase::Trust,
                Step::Certs => Phase::Certs,
                _ => Phase::Drop,
            };
            match now {
                None if check => Ok(Some(would(&format!("enter phase `{}`", wanted.word())))),
                None => Err(Error::usage(format!(
                    "no CA rotation is under way in `{}` (no `{}`)",
                    dir.display(),
                    pki::OLD_CA_CERT
                ))),
                Some(now) if now >= wanted => Ok(None),
                Some(_) => {
                    if !check {
                        let word = format!("{}\n", wanted.word());
                        pki::write_cert(&dir.join(PHASE_FILE), word.as_bytes())?;
                    }
                    Ok(Some(would(&format!("enter phase `{}`", wanted.word()))))
                }
            }
        }
        Step::Finish => {
            if now.is_none() && !check {
                return Ok(None);
            }
            if !check {
                remove(&old_path)?;
                remove(&dir.join(PHASE_FILE))?;
            }
            Ok(Some(would(&format!(
                "forget the old CA (`{}`)",
                pki::OLD_CA_CERT
            ))))
        }
    }
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::pki::ServerCert;

    fn node(name: &str) -> ServerCert {
        ServerCert {
            name: name.into(),
            addresses: vec!["10.0.0.1".into()],
        }
    }

    fn text(dir: &Path, file: &str) -> String {
        std::fs::read_to_string(dir.join(file)).unwrap()
    }

    #[test]
    fn a_rotation_goes_through_its_phases_and_resumes_where_it_stopped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        pki::ensure(&dir, &[node("n1")], Default::default()).unwrap();
        let old_ca = text(&dir, pki::CA_CERT);
        let old_cert = text(&dir, "hosts/n1/server-cert.pem");
        assert_eq!(phase(&dir).unwrap(), None);
        assert_eq!(trust(&dir).unwrap().unwrap(), old_ca);

        // --check writes nothing.
        let said = step(&dir, Step::Start, true).unwrap().unwrap();
        assert!(said.starts_with("would keep the CA"), "{said}");
        assert_eq!(text(&dir, pki::CA_CERT), old_ca);
        assert!(!dir.join(pki::OLD_CA_CERT).exists());

        step(&dir, Step::Start, false).unwrap().unwrap();
        let new_ca = text(&dir, pki::CA_CERT);
        assert_ne!(new_ca, old_ca);
        assert_eq!(text(&dir, pki::OLD_CA_CERT), old_ca);
        assert_eq!(phase(&dir).unwrap(), Some(Phase::Trust));
        // Started again (a rotation cut short): the same new CA.
        assert_eq!(step(&dir, Step::Start, false).unwrap(), None);
        assert_eq!(text(&dir, pki::CA_CERT), new_ca);

        // Phase 1: both trusted, the old certificate kept.
        let both = trust(&dir).unwrap().unwrap();
        assert_eq!(both, format!("{new_ca}{old_ca}"));
        assert_eq!(split(&both), (new_ca.clone(), Some(old_ca.clone())));
        let how = pki::Renewal {
            old_ca_current: true,
            renew: false,
        };
        assert!(pki::ensure(&dir, &[node("n1")], how)
            .unwrap()
            .created
            .iter()
            .all(|p| !p.starts_with(dir.join("hosts"))));
        assert_eq!(text(&dir, "hosts/n1/server-cert.pem"), old_cert);
        assert_eq!(known(&dir).unwrap().len(), 2);

        // Phase 2: a certificate from the new CA, both still trusted.
        step(&dir, Step::Certs, false).unwrap().unwrap();
        assert_eq!(step(&dir, Step::Trust, false).unwrap(), None, "never back");
        assert_eq!(phase(&dir).unwrap(), Some(Phase::Certs));
        pki::ensure(&dir, &[node("n1")], Default::default()).unwrap();
        let new_cert = text(&dir, "hosts/n1/server-cert.pem");
        assert_ne!(new_cert, old_cert);
        assert_eq!(trust(&dir).unwrap().unwrap(), both);

        // Phase 3: the new CA alone; the old one still known until the end.
        step(&dir, Step::Drop, false).unwrap().unwrap();
        assert_eq!(trust(&dir).unwrap().unwrap(), new_ca);
        assert_eq!(known(&dir).unwrap().len(), 2);
        step(&dir, Step::Finish, false).unwrap().unwrap();
        assert_eq!(phase(&dir).unwrap(), None);
        assert_eq!(known(&dir).unwrap().len(), 1);
        assert!(!dir.join(PHASE_FILE).exists());
        assert_eq!(step(&dir, Step::Finish, false).unwrap(), None);
    }

    #[test]
    fn a_start_cut_between_the_new_key_and_its_certificate_makes_a_new_ca_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        pki::ensure(&dir, &[node("n1")], Default::default()).unwrap();
        let old_ca = text(&dir, pki::CA_CERT);
        // As a run stopped after keeping the old CA and before its new one.
        pki::write_cert(&dir.join(pki::OLD_CA_CERT), old_ca.as_bytes()).unwrap();
        let said = step(&dir, Step::Start, false).unwrap().unwrap();
        assert!(said.starts_with("make a new CA"), "{said}");
        assert_ne!(text(&dir, pki::CA_CERT), old_ca);
        pki::ensure(&dir, &[node("n1")], Default::default()).unwrap();
    }

    #[test]
    fn a_single_ca_splits_into_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        pki::ensure(&dir, &[], Default::default()).unwrap();
        let ca = text(&dir, pki::CA_CERT);
        assert_eq!(split(&ca), (ca.clone(), None));
        assert_eq!(split("junk"), ("junk".to_owned(), None));
    }

    #[test]
    fn its_arguments_are_checked_when_the_playbook_is_read() {
        let parse = |args: &str| {
            let text = format!("- hosts: all\n  tasks:\n    - consul_ca_rotate: {args}\n");
            crate::playbook::Playbook::parse_with(
                Path::new("pb.yml"),
                Path::new("."),
                &text,
                crate::cluster::builtin::BUILTINS,
            )
        };
        assert!(parse("{dir: x, step: certs}").is_ok());
        let err = parse("{dir: x, step: later}").unwrap_err().to_string();
        assert!(err.contains("unknown value `later`"), "{err}");
    }
}
