//! `cluster_secrets`: the task that makes the cluster's key material on this
//! machine, beside the inventory. The built-in playbooks call it where they
//! need it, in plain sight:
//!
//! ```yaml
//! - name: docker TLS certificates, made on this machine
//!   when: docker_tcp | bool
//!   cluster_secrets:
//!     kind: docker_tls
//!     dir: "{{ docker_tls_dir }}"
//!
//! - name: consul certificates and gossip key, made on this machine
//!   cluster_secrets:
//!     kind: consul
//!     dir: "{{ consul_tls_dir }}"
//! ```
//!
//! It exists so that the engine writes no key material on its own: `exec`,
//! `inventory`, `render` and a user's playbook never make a CA or a key
//! unless a task asks for it.
//!
//! It runs on this machine for each host of the play, like `assert` or
//! `set_fact`, without contacting the host. Per host rather than `run_once`
//! because each host's certificate carries that host's own names: its
//! inventory name, the address arpanet reaches it at over SSH (as
//! `~/.ssh/config` resolves it), its `arpanet_ip`, and for Consul
//! `127.0.0.1`, `localhost` and, on a member of `servers`,
//! `server.DATACENTER.consul`. Each host's run makes the CA (and, for Docker,
//! the client certificate) if they are missing, then its own certificate;
//! hosts run one at a time here, and so do runs of arpanet on this machine
//! (an `flock` on `DIR/.lock`), so the first makes the CA and the others
//! find it; every file is written under a temp name of its own and renamed.
//!
//! The directory is refused, before anything is read or written, when it
//! or anything in it is writable by group or others or owned by another
//! user: keys from there could be someone else's (`pki::guard`).
//!
//! Everything is made once: a later run that finds the files current writes
//! nothing and reports `ok`; one that wrote a file reports `changed` (see
//! `pki::ensure` for when a certificate is issued again).
//!
//! `kind: consul` also makes the gossip encryption key (`gossip.key`, 0600)
//! and sets two facts on the host: `consul_gossip_key`, and
//! `consul_security_fingerprint`, a digest of the CA, the host's certificate
//! and the key, which the agent container carries as a label so that new
//! certificates or a new key restart that agent, and only that one.
//!
//! Under `--check` nothing is written beside the inventory: the task reports
//! `changed` when it would write. So that the tasks copying the files can
//! still say what they would change on a first run, what is missing is made
//! in a scratch copy of the directory (private, in the system's temp dir,
//! one per directory per run so every host shares its CA), and the host's
//! `consul_tls_dir` or `docker_tls_dir` fact points there; `arpanet run`
//! removes the scratch copies when it ends ([`discard_scratch`]). Key
//! material is never printed: the task's message names only how many files
//! were written and where.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::pki::{self, ServerCert};
use crate::config;
use crate::error::{Error, Result};
use crate::modules::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::vars::Vars;
use crate::yaml::Node;

/// The module as the registry (`modules::MODULES`) lists it.
pub(crate) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "cluster_secrets"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let args = args_map(node, "a mapping with `kind` and `dir`")?;
        Ok(Arc::new(ClusterSecrets(args)))
    }
}

/// A `cluster_secrets` task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClusterSecrets(pub SecretsArgs);

impl Module for ClusterSecrets {
    fn name(&self) -> &'static str {
        "cluster_secrets"
    }

    fn summary(&self) -> String {
        self.0.kind.name().to_owned()
    }

    fn templates(&self) -> Vec<&str> {
        vec![&self.0.dir]
    }

    /// The facts it may set (see the module's docs).
    fn defines(&self) -> Vec<&str> {
        match self.0.kind {
            SecretsKind::Consul => vec![
                "consul_gossip_key",
                "consul_security_fingerprint",
                "consul_tls_dir",
            ],
            SecretsKind::DockerTls => vec!["docker_tls_dir"],
        }
    }

    /// Made on this machine, without contacting the host.
    fn local(&self) -> bool {
        true
    }

    /// Under `--check` nothing is written (see the module documentation).
    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move { run(&self.0, ctx) })
    }
}

/// `cluster_secrets:` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsArgs {
    pub kind: SecretsKind,
    /// Where the files are kept (a template), e.g. `{{ consul_tls_dir }}`.
    pub dir: String,
}

/// Which secrets: they differ in the names a host's certificate carries and
/// in the gossip key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretsKind {
    /// The CA, the client pair and each node's pair for Docker's TLS API.
    DockerTls,
    /// The CA and each agent's pair for Consul's RPC, and the gossip key.
    Consul,
}

impl SecretsKind {
    /// The name as written in YAML.
    pub fn name(self) -> &'static str {
        match self {
            SecretsKind::DockerTls => "docker_tls",
            SecretsKind::Consul => "consul",
        }
    }
}

/// The file holding the Consul gossip encryption key, in the `consul` dir.
pub(crate) const GOSSIP_KEY: &str = "gossip.key";

/// Make (or find current) this host's secrets; see the module documentation.
pub(crate) fn run(args: &SecretsArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let dir = ctx.render(&args.dir)?;
    if dir.trim().is_empty() {
        return Err(Error::input(
            ctx.location.clone(),
            crate::error::InputKind::EmptySecretsDir {
                host: ctx.host.to_string(),
            },
        ));
    }
    let dir = PathBuf::from(dir);
    let cert = server_cert(args.kind, ctx.host, ctx.vars)?;
    // One host (and one run of arpanet) at a time: the first makes the CA,
    // the others reuse it. `--check` writes nothing, so it takes no lock,
    // but refuses a directory others could write all the same.
    let _one_at_a_time = if ctx.check {
        pki::guard(&dir)?;
        None
    } else {
        Some(pki::lock(&dir)?)
    };
    let certs = std::slice::from_ref(&cert);
    let consul = args.kind == SecretsKind::Consul;
    let (count, facts) = if ctx.check {
        let mut planned = pki::plan(&dir, certs)?.created.len();
        planned += usize::from(consul && !dir.join(GOSSIP_KEY).exists());
        let mut facts = Vars::new();
        let made = if planned > 0 {
            let scratch = scratch_copy(&dir)?;
            let name = match args.kind {
                SecretsKind::Consul => "consul_tls_dir",
                SecretsKind::DockerTls => "docker_tls_dir",
            };
            facts.insert(name.into(), scratch.display().to_string().into());
            // Hosts take turns on the scratch copy as on the real one.
            let _turn = pki::lock(&scratch)?;
            make(&scratch, certs, consul)?;
            scratch
        } else {
            dir.clone()
        };
        if consul {
            facts.extend(consul_facts(&made, &cert.name)?);
        }
        (planned, facts)
    } else {
        let written = make(&dir, certs, consul)?;
        let facts = match consul {
            true => consul_facts(&dir, &cert.name)?,
            false => Vars::new(),
        };
        (written, facts)
    };
    let facts = (!facts.is_empty()).then_some(facts);
    let msg = (count > 0).then(|| {
        let verb = if ctx.check { "would write" } else { "wrote" };
        let files = if count == 1 { "file" } else { "files" };
        format!("{verb} {count} {files} in `{}`", dir.display())
    });
    Ok(Outcome {
        changed: count > 0,
        msg,
        facts,
        ..Outcome::ok()
    })
}

/// The certificate `host` needs: its name and the addresses it is reached
/// at, by kind.
fn server_cert(kind: SecretsKind, host: &str, vars: &Vars) -> Result<ServerCert> {
    let text = |name: &str| vars.get(name).and_then(Value::as_str).map(str::to_owned);
    let address = config::ssh_address(host, vars)?;
    let mut addresses = Vec::new();
    if kind == SecretsKind::Consul {
        addresses.extend(["127.0.0.1".to_owned(), "localhost".to_owned()]);
    }
    let ip = text("arpanet_ip").filter(|ip| *ip != address);
    addresses.push(address);
    addresses.extend(ip);
    let server = vars
        .get("group_names")
        .and_then(Value::as_array)
        .is_some_and(|groups| groups.iter().any(|g| g == "servers"));
    if kind == SecretsKind::Consul && server {
        let datacenter = text("consul_datacenter").unwrap_or_else(|| "dc1".to_owned());
        addresses.push(format!("server.{datacenter}.consul"));
    }
    Ok(ServerCert {
        name: host.to_owned(),
        addresses,
    })
}

/// Make what is missing in `dir`: the CA and the certificates of `certs`,
/// and for Consul the gossip key. Returns how many files it wrote.
fn make(dir: &Path, certs: &[ServerCert], consul: bool) -> Result<usize> {
    let mut written = pki::ensure(dir, certs)?.created.len();
    let key_file = dir.join(GOSSIP_KEY);
    if consul && read_optional(&key_file)?.is_none() {
        let key = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            rand::random::<[u8; 32]>(),
        );
        pki::write_secret(&key_file, key.as_bytes())?;
        written += 1;
    }
    Ok(written)
}

/// Scratch copies made under `--check`: (the real directory, its copy).
static SCRATCH: Mutex<Vec<(PathBuf, tempfile::TempDir)>> = Mutex::new(Vec::new());

/// This run's scratch copy of `dir` (see the module documentation): made
/// on first use with what `dir` already holds.
fn scratch_copy(dir: &Path) -> Result<PathBuf> {
    let mut scratch = SCRATCH.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, copy)) = scratch.iter().find(|(real, _)| real == dir) {
        return Ok(copy.path().to_path_buf());
    }
    let copy = tempfile::Builder::new()
        .prefix("arpanet-check-")
        .tempdir()
        .map_err(|e| Error::io("create", std::env::temp_dir(), e))?;
    copy_tree(dir, copy.path())?;
    let path = copy.path().to_path_buf();
    scratch.push((dir.to_path_buf(), copy));
    Ok(path)
}

/// Copy the files under `from` (if it exists) into `to`, modes kept.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let entries = match fs::read_dir(from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", from, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read", from, e))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if source.is_dir() {
            fs::create_dir_all(&target).map_err(|e| Error::io("create", &target, e))?;
            copy_tree(&source, &target)?;
        } else {
            fs::copy(&source, &target).map_err(|e| Error::io("copy", &source, e))?;
        }
    }
    Ok(())
}

/// Remove this run's scratch copies (called when `arpanet run` ends).
pub(crate) fn discard_scratch() {
    SCRATCH
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
}

/// `consul_gossip_key`, and `consul_security_fingerprint` when the CA and
/// the host's certificate are there: what its agent is started with.
fn consul_facts(dir: &Path, host: &str) -> Result<Vars> {
    let Some(key) = read_optional(&dir.join(GOSSIP_KEY))? else {
        return Ok(Vars::new());
    };
    let key = String::from_utf8_lossy(&key).trim().to_owned();
    let mut facts = Vars::new();
    let ca = read_optional(&dir.join(pki::CA_CERT))?;
    let own = read_optional(&dir.join(pki::HOSTS_DIR).join(host).join(pki::SERVER_CERT))?;
    if let (Some(ca), Some(own)) = (ca, own) {
        let digest = Sha256::new()
            .chain_update(&ca)
            .chain_update(&own)
            .chain_update(key.as_bytes())
            .finalize();
        facts.insert(
            "consul_security_fingerprint".into(),
            hex::encode(&digest[..8]).into(),
        );
    }
    facts.insert("consul_gossip_key".into(), key.into());
    Ok(facts)
}

/// The file's bytes, or `None` when there is no such file.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, Value)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn a_consul_server_certificate_names_the_server_and_its_addresses() {
        let v = vars(&[
            ("ansible_host", json!("10.0.0.1")),
            ("arpanet_ip", json!("192.168.0.1")),
            ("group_names", json!(["servers"])),
            ("consul_datacenter", json!("east")),
        ]);
        let cert = server_cert(SecretsKind::Consul, "node1", &v).unwrap();
        assert_eq!(cert.name, "node1");
        assert_eq!(
            cert.addresses,
            [
                "127.0.0.1",
                "localhost",
                "10.0.0.1",
                "192.168.0.1",
                "server.east.consul"
            ]
        );
        let client = vars(&[
            ("ansible_host", json!("10.0.0.4")),
            ("arpanet_ip", json!("10.0.0.4")),
            ("group_names", json!(["clients"])),
        ]);
        let cert = server_cert(SecretsKind::Consul, "node4", &client).unwrap();
        assert_eq!(cert.addresses, ["127.0.0.1", "localhost", "10.0.0.4"]);
        let cert = server_cert(SecretsKind::DockerTls, "node1", &v).unwrap();
        assert_eq!(cert.addresses, ["10.0.0.1", "192.168.0.1"]);
    }

    #[test]
    fn consul_facts_digest_the_ca_the_host_certificate_and_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert!(
            consul_facts(dir, "n1").unwrap().is_empty(),
            "no key, no facts"
        );
        let key_file = dir.join(GOSSIP_KEY);
        fs::write(&key_file, "a2V5\n").unwrap();
        let facts = consul_facts(dir, "n1").unwrap();
        assert_eq!(facts.get("consul_gossip_key"), Some(&json!("a2V5")));
        assert!(facts.get("consul_security_fingerprint").is_none());
        pki::ensure(
            dir,
            &[ServerCert {
                name: "n1".into(),
                addresses: vec!["10.0.0.1".into()],
            }],
        )
        .unwrap();
        let one = consul_facts(dir, "n1").unwrap();
        let again = consul_facts(dir, "n1").unwrap();
        fs::write(&key_file, "b3RoZXI=\n").unwrap();
        let other = consul_facts(dir, "n1").unwrap();
        let print = |f: &Vars| {
            f["consul_security_fingerprint"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(print(&one).len(), 16);
        assert_eq!(print(&one), print(&again));
        assert_ne!(print(&one), print(&other));
    }

    #[test]
    fn the_builtin_playbooks_make_the_secrets_before_they_copy_them() {
        use crate::modules::copy::Copy;
        use crate::playbook::Task;
        let cases = [
            ("setup", SecretsKind::DockerTls, "docker_tls_dir"),
            ("bootstrap", SecretsKind::DockerTls, "docker_tls_dir"),
            ("consul", SecretsKind::Consul, "consul_tls_dir"),
            ("bootstrap", SecretsKind::Consul, "consul_tls_dir"),
            ("upgrade", SecretsKind::Consul, "consul_tls_dir"),
        ];
        for (name, kind, dir) in cases {
            let pb = crate::playbook::resolve(name, crate::cluster::builtin::BUILTINS).unwrap();
            let tasks: Vec<&Task> = pb.plays.iter().flat_map(|p| p.task_list()).collect();
            let made = tasks.iter().position(|t| {
                matches!(t.module.downcast::<ClusterSecrets>(), Some(ClusterSecrets(a))
                    if a.kind == kind && a.dir == format!("{{{{ {dir} }}}}"))
            });
            let copied = tasks
                .iter()
                .position(|t| match t.module.downcast::<Copy>() {
                    Some(Copy(a)) => [&a.src, &a.content]
                        .into_iter()
                        .flatten()
                        .any(|s| s.contains(dir) || s.contains("consul_gossip_key")),
                    None => false,
                });
            assert!(copied.is_some(), "{name}: nothing copies from `{dir}`");
            assert!(made < copied, "{name}: `{dir}` copied before it is made");
            assert!(made.is_some(), "{name}: no cluster_secrets for `{dir}`");
        }
        // Nothing else makes key material.
        for name in ["pull", "stack", "stop", "info", "preflight"] {
            let pb = crate::playbook::resolve(name, crate::cluster::builtin::BUILTINS).unwrap();
            assert!(
                !pb.plays
                    .iter()
                    .flat_map(|p| p.task_list())
                    .any(|t| t.module.downcast::<ClusterSecrets>().is_some()),
                "{name}"
            );
        }
    }

    #[test]
    fn its_arguments_are_checked_when_the_playbook_is_read() {
        let parse = |args: &str| {
            let text = format!("- hosts: all\n  tasks:\n    - cluster_secrets: {args}\n");
            crate::playbook::Playbook::parse_with(
                Path::new("pb.yml"),
                Path::new("."),
                &text,
                crate::cluster::builtin::BUILTINS,
            )
        };
        let pb = parse("{kind: consul, dir: \"{{ consul_tls_dir }}\"}").unwrap();
        assert_eq!(pb.plays[0].task_list()[0].name, "cluster_secrets: consul");
        for (bad, says) in [
            (
                "{kind: vault, dir: x}",
                &[
                    "`kind`: unknown value `vault`",
                    "expected one of `docker_tls`, `consul`",
                ][..],
            ),
            ("{kind: consul}", &["missing argument `dir`"]),
            (
                "{kind: consul, dir: x, mode: '0600'}",
                &[
                    "unknown argument `mode`",
                    "`cluster_secrets` takes `kind`, `dir`",
                ],
            ),
            ("{kind: consul, dir: \"{{ nope\"}", &["pb.yml:3"]),
        ] {
            let err = parse(bad).unwrap_err().to_string();
            for part in says {
                assert!(err.contains(part), "{bad}: {err}");
            }
        }
    }
}
