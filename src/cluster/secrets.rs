//! `cluster_secrets`: the task that keeps the cluster's key material on
//! this machine, beside the inventory. The built-in playbooks call it where
//! they need it, in plain sight (`playbooks/secrets.yml`):
//!
//! ```yaml
//! - name: consul certificates and gossip key
//!   cluster_secrets:
//!     kind: consul
//!     dir: "{{ consul_tls_dir }}"
//!     node_dir: "{{ consul_data }}/arpanet"
//!     keyring: "{{ consul_data }}/serf/local.keyring"
//!     ask: "{{ groups['servers'] }}"
//! ```
//!
//! It exists so that the engine writes no key material on its own: `exec`,
//! `inventory`, `render` and a user's playbook never make a CA or a key
//! unless a task asks for it.
//!
//! **The running cluster is the authority; the files here are a cache.**
//! With `node_dir` (where each node keeps the copies arpanet put there) the
//! task first asks the running cluster what it uses: the first host of
//! `ask` that can be reached and holds copies (a server, in the built-in
//! playbooks) is read over SSH, once per run, for its CA certificate and,
//! for Consul, the gossip keys its agent holds (`keyring`: the agent's own
//! keyring file, its primary key first; else the key in `security.json`).
//! Then, before anything is made:
//!
//! - a checkout whose CA certificate differs from the cluster's, or whose
//!   gossip key is not one the cluster holds, is **refused**: the task
//!   fails (on every host, so the play stops before any host changed) with
//!   both SHA-256 fingerprints and the fix; key material is never shown;
//! - a checkout without them **adopts** the cluster's: the CA certificate
//!   and the gossip key (its primary) are written here, and each host's own
//!   certificate and key, read from that host, when they were signed by
//!   that CA. So the next tasks find them current and no agent restarts.
//!   The CA's private key never goes to a node, so it stays missing: a
//!   certificate that must be issued (a new node, changed addresses) then
//!   fails for that host, saying where to get `ca-key.pem` (`pki`).
//!
//! Only a checkout that finds no cluster (no copies on any reachable host
//! of `ask`) makes a new CA and gossip key. `new_gossip_key: true` (for
//! `arpanet rotate`, which replaces it next) neither compares nor adopts
//! the gossip key.
//!
//! Without `node_dir` it runs on this machine for each host of the play,
//! like `assert` or `set_fact`, without contacting the host. Per host
//! rather than `run_once` because each host's certificate carries that
//! host's own names: its inventory name, the address arpanet reaches it at
//! over SSH (as `~/.ssh/config` resolves it), its `arpanet_ip`, and for
//! Consul `127.0.0.1`, `localhost` and, on a member of `servers`,
//! `server.DATACENTER.consul`. Each host's run makes the CA (and, for
//! Docker, the client certificate) if they are missing, then its own
//! certificate; hosts run one at a time here, and so do runs of arpanet on
//! this machine (an `flock` on `DIR/.lock`), so the first makes the CA and
//! the others find it; every file is written under a temp name of its own
//! and renamed. What is read from nodes is read before that lock is taken.
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
//! `consul_security_fingerprint`, a digest of the CA and the host's
//! certificate, which the agent container carries as a label so that new
//! certificates restart that agent, and only that one. The gossip key is
//! not in it: an agent keeps the keys it uses in its keyring (changed
//! in place by `arpanet rotate`) and ignores the configured one once it
//! has a keyring, so a restart would change nothing.
//!
//! Under `--check` nothing is written beside the inventory: the task reports
//! `changed` when it would write. So that the tasks copying the files can
//! still say what they would change on a first run, what is missing is made
//! (or adopted) in a scratch copy of the directory (private, in the
//! system's temp dir, one per directory per run so every host shares its
//! CA), and the host's `consul_tls_dir` or `docker_tls_dir` fact points
//! there; `arpanet run` removes the scratch copies when it ends
//! ([`discard_scratch`]). Key material is never printed: the task's message
//! names only how many files were written and where.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::acl;
use super::ca_rotation;
use super::pki::{self, ServerCert};
use crate::config;
use crate::error::{Error, Result};
use crate::modules::templated::{Strings, Templated};
use crate::modules::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::report::Failure;
use crate::transport::{quote, Transport};
use crate::vars::Vars;
use crate::yaml::Node;

/// The module as the registry (`modules::MODULES`) lists it.
pub(crate) struct Def;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "cluster_secrets"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let args: SecretsArgs = args_map(node, "a mapping with `kind` and `dir`")?;
        if args.node_dir.is_none() && (args.ask.is_some() || args.keyring.is_some()) {
            return Err(
                BadArgs::invalid("`ask` and `keyring` need `node_dir`").with_hint(
                    "`node_dir` is where each node keeps its copies, which are read over SSH",
                ),
            );
        }
        if args.kind == SecretsKind::DockerTls
            && (args.keyring.is_some() || args.new_gossip_key || args.acl.is_some() || args.renew)
        {
            return Err(BadArgs::invalid(
                "`keyring`, `new_gossip_key`, `acl` and `renew` are for `kind: consul` (docker \
                 TLS has no gossip key or ACL tokens, and no rotation)",
            ));
        }
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
        let a = &self.0;
        let mut out: Vec<&str> = [Some(&a.dir), a.node_dir.as_ref(), a.keyring.as_ref()]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if let Some(ask) = &a.ask {
            crate::playbook::values::json_strings(ask.raw(), &mut out);
        }
        if let Some(acl) = &a.acl {
            crate::playbook::values::json_strings(acl.raw(), &mut out);
        }
        out
    }

    /// The facts it may set (see the module's docs).
    fn defines(&self) -> Vec<&str> {
        match self.0.kind {
            SecretsKind::Consul => vec![
                "consul_gossip_key",
                "consul_security_fingerprint",
                "consul_ca_trust",
                "consul_tls_dir",
            ],
            SecretsKind::DockerTls => vec!["docker_tls_dir"],
        }
    }

    /// Made on this machine, without contacting the host, unless the
    /// node's copies are read first.
    fn local(&self) -> bool {
        self.0.node_dir.is_none()
    }

    fn reaches_peers(&self) -> bool {
        self.0.ask.is_some()
    }

    /// Under `--check` nothing is written (see the module documentation).
    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, ctx))
    }
}

/// `cluster_secrets:` arguments.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsArgs {
    pub kind: SecretsKind,
    /// Where the files are kept (a template), e.g. `{{ consul_tls_dir }}`.
    pub dir: String,
    /// Where each node keeps its copies (a template): read over SSH to
    /// adopt or refuse before anything is made.
    #[serde(default)]
    pub node_dir: Option<String>,
    /// The Consul agent's keyring file on the node (a template): the gossip
    /// keys it holds, its primary first.
    #[serde(default)]
    pub keyring: Option<String>,
    /// The hosts asked, in order, for the running cluster's CA and gossip
    /// key: the first reachable one holding copies answers.
    #[serde(default)]
    pub(crate) ask: Option<Templated<Strings>>,
    /// The gossip key is about to be replaced (`arpanet rotate`): neither
    /// compared with the cluster's nor adopted.
    #[serde(default)]
    pub new_gossip_key: bool,
    /// This host's certificate is issued anew even though it is current
    /// (`arpanet rotate --certs`).
    #[serde(default)]
    pub renew: bool,
    /// Consul's ACLs are on (`consul_acl`): the tokens are made too (see
    /// `acl`). Adopted and compared whenever the cluster holds them.
    #[serde(default)]
    pub(crate) acl: Option<Templated<Value>>,
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

    /// What a node's own certificate and key are called in its `node_dir`.
    fn node_pair(self) -> (&'static str, &'static str) {
        match self {
            SecretsKind::DockerTls => ("server-cert.pem", "server-key.pem"),
            SecretsKind::Consul => ("cert.pem", "key.pem"),
        }
    }

    /// How the CA is named in messages.
    fn what(self) -> &'static str {
        match self {
            SecretsKind::DockerTls => "docker TLS CA",
            SecretsKind::Consul => "consul CA",
        }
    }
}

/// The file holding the Consul gossip encryption key, in the `consul` dir.
pub(crate) const GOSSIP_KEY: &str = "gossip.key";

/// The Consul agent's settings file in `node_dir`, holding the gossip key
/// it was first started with (`encrypt`).
const SECURITY_JSON: &str = "security.json";

/// A certificate and its key, PEM.
type Pair = (String, String);

/// What the running cluster uses, as read from one of its nodes.
#[derive(Debug, Clone, Default)]
struct Found {
    /// The node that answered.
    host: String,
    /// Its CA certificate (PEM).
    ca: Option<String>,
    /// The gossip keys its agent holds, the primary first.
    keys: Vec<String>,
    /// Its ACL tokens, by the name of the file beside the inventory.
    acl: Vec<(&'static str, String)>,
}

/// Make (or find current, or adopt) this host's secrets; see the module
/// documentation.
pub(crate) async fn run(args: &SecretsArgs, ctx: &Context<'_>) -> Result<Outcome> {
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
    pki::guard(&dir)?;
    let consul = args.kind == SecretsKind::Consul;
    // With ACLs on, the datacenter their configuration names.
    let acl_on = match &args.acl {
        Some(acl) if consul => crate::truth::as_bool(&acl.get("acl", ctx)?).ok_or_else(|| {
            Error::usage("`acl` must be true or false").with_hint("`acl: \"{{ consul_acl }}\"`")
        })?,
        _ => false,
    };
    let acl = match acl_on {
        true => Some(ctx.render("{{ consul_datacenter | default('dc1') }}")?),
        false => None,
    };
    let acl = acl.as_deref();
    // ACLs: this host's own agent token, and whether its agent is a
    // server's (whose configuration holds the management token).
    let acl = acl.map(|datacenter| AclHost {
        datacenter: datacenter.to_owned(),
        host: ctx.host,
        server: is_server(ctx.vars),
    });
    let acl = acl.as_ref();
    // What the nodes hold is read first, with no lock held here: hosts
    // wait for each other's network round trips only through the cache.
    let mut node = None;
    let mut own_token = None;
    if let Some(node_dir) = &args.node_dir {
        let found = match &args.ask {
            Some(ask) => {
                let ask = ask.get("ask", ctx)?.0;
                let keyring = args.keyring.as_deref();
                Some(ask_cluster(args.kind, &dir, node_dir, keyring, &ask, ctx).await?)
            }
            None => None,
        };
        let node_dir = ctx.render(node_dir)?;
        if let Some(refused) = found
            .as_ref()
            .and_then(|f| refusal(args, &dir, f).transpose())
        {
            return refused;
        }
        let own = own_pair(args.kind, &dir, &node_dir, ctx).await?;
        if acl.is_some() {
            own_token = own_agent_token(&node_dir, ctx).await?;
            if let Some(refused) = token_refusal(&dir, ctx.host, own_token.as_deref())? {
                return Ok(refused);
            }
        }
        node = Some((found, own));
    }
    let adopt = |target: &Path| -> Result<usize> {
        let Some((found, own)) = &node else {
            return Ok(0);
        };
        let mut written = 0;
        if let Some(found) = found {
            written += adopt_cluster(args, target, found)?;
        }
        if let Some((cert_pem, key_pem)) = own {
            written += pki::adopt_pair(target, ctx.host, cert_pem, key_pem)?.len();
        }
        written += adopt_agent_token(target, ctx.host, own_token.as_deref())?;
        Ok(written)
    };
    let certs = std::slice::from_ref(&cert);
    let (count, facts) = if ctx.check {
        let mut planned = would_adopt(args, &dir, node.as_ref())?
            + usize::from(own_token.is_some() && read_agent_token(&dir, ctx.host)?.is_none());
        if planned == 0 {
            planned = pki::plan(&dir, certs, renewal(&dir, consul, args.renew)?)?
                .created
                .len();
            planned += usize::from(consul && !dir.join(GOSSIP_KEY).exists());
            if let Some(acl) = acl {
                planned += acl_files(&dir, acl, false)?;
            }
        }
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
            adopt(&scratch)?;
            make(&scratch, certs, consul, acl, args.renew)?;
            scratch
        } else {
            dir.clone()
        };
        if consul {
            facts.extend(consul_facts(&made, &cert.name)?);
        }
        (planned, facts)
    } else {
        // One host (and one run of arpanet) at a time: the first makes the
        // CA, the others reuse it.
        let _one_at_a_time = pki::lock(&dir)?;
        let written = adopt(&dir)? + make(&dir, certs, consul, acl, args.renew)?;
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

/// The running cluster's CA and gossip keys: from the first host of `ask`
/// that can be reached and holds copies, asked once per run and directory
/// (every host's task shares the answer). Reachable hosts without copies:
/// no cluster yet. None reachable: an error, since keys made blind could
/// split the cluster. `node_dir` and `keyring` are templates, rendered with
/// the asked host's variables (its `consul_data`).
async fn ask_cluster(
    kind: SecretsKind,
    dir: &Path,
    node_dir: &str,
    keyring: Option<&str>,
    ask: &[String],
    ctx: &Context<'_>,
) -> Result<Found> {
    let cell = {
        let mut asked = ASKED.lock().unwrap_or_else(PoisonError::into_inner);
        match asked.iter().find(|(d, _)| d == dir) {
            Some((_, cell)) => cell.clone(),
            None => {
                let cell = Arc::new(tokio::sync::OnceCell::new());
                asked.push((dir.to_path_buf(), cell.clone()));
                cell
            }
        }
    };
    let found = cell
        .get_or_try_init(|| async {
            let mut unreachable = Vec::new();
            let mut answered = false;
            for host in ask {
                let vars = host_vars(ctx, host)?;
                let render = |t: &str| ctx.engine.render_str(t, &vars, ctx.location);
                let node_dir = render(node_dir)?;
                let keyring = keyring.map(render).transpose()?;
                let keyring = keyring.as_deref();
                let ca = format!("{node_dir}/{}", pki::CA_CERT);
                let security = format!("{node_dir}/{SECURITY_JSON}");
                let mut paths = vec![ca.clone()];
                if kind == SecretsKind::Consul {
                    paths.push(security.clone());
                    paths.extend(keyring.map(str::to_owned));
                    paths.extend(acl::ON_NODES.iter().map(|(_, f)| format!("{node_dir}/{f}")));
                }
                let conn = match host == ctx.host {
                    true => Ok(None),
                    false => ctx.peers.connect(host).await.map(Some),
                };
                let files = match conn {
                    Ok(Some(conn)) => read_node(conn.as_ref(), host, &paths).await,
                    Ok(None) => read_node(ctx.transport, host, &paths).await,
                    Err(e) => Err(e),
                };
                let files = match files {
                    Ok(files) => files,
                    Err(e) => {
                        unreachable.push(format!("`{host}`: {e}"));
                        continue;
                    }
                };
                answered = true;
                let text = |p: &str| files.get(p).map(|b| String::from_utf8_lossy(b).into_owned());
                let mut keys = Vec::new();
                if let Some(ring) = keyring.and_then(text) {
                    keys = serde_json::from_str::<Vec<String>>(&ring).unwrap_or_default();
                }
                if keys.is_empty() {
                    let encrypt = text(&security)
                        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                        .and_then(|v| v.get("encrypt").and_then(Value::as_str).map(str::to_owned));
                    keys.extend(encrypt);
                }
                let mut tokens = Vec::new();
                for (local, there) in acl::ON_NODES {
                    let Some(content) = text(&format!("{node_dir}/{there}")) else {
                        continue;
                    };
                    let token = Some(content.trim().to_owned()).filter(|t| !t.is_empty());
                    tokens.extend(token.map(|t| (local, t)));
                }
                let found = Found {
                    host: host.clone(),
                    ca: text(&ca),
                    keys,
                    acl: tokens,
                };
                if found.ca.is_some() || !found.keys.is_empty() || !found.acl.is_empty() {
                    return Ok(found);
                }
            }
            match answered || ask.is_empty() {
                true => Ok(Found::default()),
                false => Err(Error::usage(format!(
                    "cannot ask the running cluster which {} it uses: no host of `ask` answered ({})",
                    kind.what(),
                    unreachable.join("; ")
                ))
                .with_hint("arpanet makes no new keys without knowing the cluster has none: bring a server back, then run again")),
            }
        })
        .await?;
    Ok(found.clone())
}

/// `host`'s variables as its own tasks see them (`hostvars[host]` over
/// this host's).
fn host_vars(ctx: &Context<'_>, host: &str) -> Result<Vars> {
    let mut vars = ctx.vars.clone();
    if host != ctx.host {
        let quoted = serde_json::to_string(host).map_err(|e| Error::Internal(e.to_string()))?;
        let expr = Value::String(format!("{{{{ hostvars[{quoted}] }}}}"));
        if let Value::Object(theirs) = ctx.engine.render_json(&expr, ctx.vars, ctx.location)? {
            vars.extend(theirs);
        }
    }
    Ok(vars)
}

/// The cluster's answers of this run, by directory (see [`ask_cluster`]).
#[allow(clippy::type_complexity)]
static ASKED: Mutex<Vec<(PathBuf, Arc<tokio::sync::OnceCell<Found>>)>> = Mutex::new(Vec::new());

/// The files among `paths` that exist on `host`, by path (read with the
/// task's `become`: they are the Consul user's, 0600).
async fn read_node(
    transport: &dyn Transport,
    host: &str,
    paths: &[String],
) -> Result<BTreeMap<String, Vec<u8>>> {
    let list: Vec<String> = paths.iter().map(|p| quote(p)).collect();
    let script = format!(
        "for f in {}; do if [ -e \"$f\" ]; then b=$(base64 < \"$f\") || exit 1; \
         printf '%s %s\\n' \"$f\" \"$(printf '%s' \"$b\" | tr -d '\\n')\"; fi; done",
        list.join(" ")
    );
    let out = crate::probe::exec(transport, host, &script, None).await?;
    if !out.success() {
        // stderr only: stdout may hold key material.
        return Err(Error::Remote {
            host: host.to_owned(),
            message: format!(
                "cannot read arpanet's copies of the cluster's keys (exit {}): {}",
                out.status,
                out.stderr.trim()
            ),
        });
    }
    let mut files = BTreeMap::new();
    for line in out.stdout.lines() {
        let Some((path, b64)) = line.rsplit_once(' ') else {
            continue;
        };
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
            .map_err(|_| Error::Remote {
                host: host.to_owned(),
                message: format!("unreadable copy of `{path}`"),
            })?;
        files.insert(path.to_owned(), bytes);
    }
    Ok(files)
}

/// This host's own certificate and key as its node holds them, when this
/// checkout lacks them (to adopt them).
async fn own_pair(
    kind: SecretsKind,
    dir: &Path,
    node_dir: &str,
    ctx: &Context<'_>,
) -> Result<Option<(String, String)>> {
    let here = dir.join(pki::HOSTS_DIR).join(ctx.host);
    if here.join(pki::SERVER_CERT).is_file() && here.join(pki::SERVER_KEY).is_file() {
        return Ok(None);
    }
    let (cert, key) = kind.node_pair();
    let paths = [format!("{node_dir}/{cert}"), format!("{node_dir}/{key}")];
    let files = read_node(ctx.transport, ctx.host, &paths).await?;
    let text = |p: &String| {
        files
            .get(p)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    Ok(text(&paths[0]).zip(text(&paths[1])))
}

/// The task's failure when this checkout's CA or gossip key is not the
/// running cluster's; `None` when they agree or are missing here.
fn refusal(args: &SecretsArgs, dir: &Path, found: &Found) -> Result<Option<Outcome>> {
    let mut differ = Vec::new();
    let ca_path = dir.join(pki::CA_CERT);
    // The node trusts one CA, or two during a CA rotation (a bundle): each
    // must be one this checkout knows (its CA, or the one a rotation under
    // way here replaces).
    if let (Some(here), Some(there)) = (read_text(&ca_path)?, &found.ca) {
        let known = ca_rotation::known(dir)?;
        let theirs = pki::cert_ders(there);
        let stranger = match theirs.is_empty() {
            true => Some(there.clone().into_bytes()),
            false => theirs.into_iter().find(|der| !known.contains(der)),
        };
        if let Some(stranger) = stranger {
            differ.push(format!(
                "the {} `{}` is SHA-256 {}, `{}` uses {}",
                args.kind.what(),
                ca_path.display(),
                fingerprint(&pki::cert_der(&here).unwrap_or_else(|| here.into_bytes())),
                found.host,
                fingerprint(&stranger),
            ));
        }
    }
    let key_path = dir.join(GOSSIP_KEY);
    let checks_key = args.kind == SecretsKind::Consul && !args.new_gossip_key;
    if let (true, Some(here), Some(primary)) =
        (checks_key, read_text(&key_path)?, found.keys.first())
    {
        let here = here.trim();
        if !found.keys.iter().any(|k| k == here) {
            differ.push(format!(
                "the gossip key `{}` is SHA-256 {}, `{}` uses {}",
                key_path.display(),
                fingerprint(here.as_bytes()),
                found.host,
                fingerprint(primary.as_bytes()),
            ));
        }
    }
    if args.kind == SecretsKind::Consul {
        // During `rotate --tokens` a server may still hold the management
        // token being replaced.
        let old = acl::read(dir, acl::OLD_MANAGEMENT)?;
        for (file, there) in &found.acl {
            let replaced = *file == acl::MANAGEMENT && old.as_deref() == Some(there.as_str());
            match acl::read(dir, file)? {
                Some(here) if here != *there && !replaced => differ.push(format!(
                    "the {} `{}` is SHA-256 {}, `{}` uses {}",
                    acl::what(file),
                    dir.join(file).display(),
                    fingerprint(here.as_bytes()),
                    found.host,
                    fingerprint(there.as_bytes()),
                )),
                _ => {}
            }
        }
    }
    if differ.is_empty() {
        return Ok(None);
    }
    Ok(Some(Outcome {
        failure: Some(Failure {
            message: format!(
                "refused: this checkout's keys are not the running cluster's ({}); nothing was changed",
                differ.join("; ")
            ),
            hint: Some(format!(
                "copy `{}` from the checkout that made the cluster (or remove it here to adopt \
                 the cluster's); to give the cluster a new gossip key on purpose, `arpanet \
                 rotate` (a new CA: `arpanet rotate --tls`)",
                dir.display()
            )),
            ..Failure::default()
        }),
        ..Outcome::ok()
    }))
}

/// Write the cluster's CA certificate and primary gossip key into `dir`
/// where it has none; how many files were written.
fn adopt_cluster(args: &SecretsArgs, dir: &Path, found: &Found) -> Result<usize> {
    let mut written = 0;
    let ca_path = dir.join(pki::CA_CERT);
    if let (None, Some(ca)) = (read_text(&ca_path)?, &found.ca) {
        // A bundle (a CA rotation under way): the new CA, and the one it
        // replaces kept as such, so this checkout's agents stay as they are.
        let (ca, old) = match args.kind {
            SecretsKind::Consul => ca_rotation::split(ca),
            SecretsKind::DockerTls => (ca.clone(), None),
        };
        pki::write_cert(&ca_path, ca.as_bytes())?;
        written += 1;
        if let Some(old) = old {
            ca_rotation::adopt_old(dir, &old)?;
            written += 1;
        }
    }
    let key_path = dir.join(GOSSIP_KEY);
    let adopts_key = args.kind == SecretsKind::Consul && !args.new_gossip_key;
    if let (true, None, Some(key)) = (adopts_key, read_text(&key_path)?, found.keys.first()) {
        pki::write_secret(&key_path, key.as_bytes())?;
        written += 1;
    }
    if args.kind == SecretsKind::Consul {
        for (file, token) in &found.acl {
            if acl::read(dir, file)?.is_none() {
                pki::write_secret(&dir.join(file), format!("{token}\n").as_bytes())?;
                written += 1;
            }
        }
    }
    Ok(written)
}

/// How many files adopting would write into `dir` (for `--check`).
fn would_adopt(
    args: &SecretsArgs,
    dir: &Path,
    node: Option<&(Option<Found>, Option<Pair>)>,
) -> Result<usize> {
    let Some((found, own)) = node else {
        return Ok(0);
    };
    let mut count = 2 * usize::from(own.is_some());
    if let Some(found) = found {
        count += usize::from(found.ca.is_some() && !dir.join(pki::CA_CERT).exists());
        let adopts_key = args.kind == SecretsKind::Consul && !args.new_gossip_key;
        count +=
            usize::from(adopts_key && !found.keys.is_empty() && !dir.join(GOSSIP_KEY).exists());
        if args.kind == SecretsKind::Consul {
            count += found
                .acl
                .iter()
                .filter(|(file, _)| !dir.join(file).exists())
                .count();
        }
    }
    Ok(count)
}

/// A short SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256`
/// begins for a certificate's DER: `AB:CD:...` (8 bytes).
fn fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..8]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn read_text(path: &Path) -> Result<Option<String>> {
    Ok(read_optional(path)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
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
    if kind == SecretsKind::Consul && is_server(vars) {
        let datacenter = text("consul_datacenter").unwrap_or_else(|| "dc1".to_owned());
        addresses.push(format!("server.{datacenter}.consul"));
    }
    Ok(ServerCert {
        name: host.to_owned(),
        addresses,
    })
}

/// Make what is missing in `dir`: the CA and the certificates of `certs`,
/// for Consul the gossip key, and with `acl` (the datacenter, when ACLs are
/// on) the ACL tokens. Returns how many files it wrote.
fn make(
    dir: &Path,
    certs: &[ServerCert],
    consul: bool,
    acl: Option<&AclHost<'_>>,
    renew: bool,
) -> Result<usize> {
    let how = renewal(dir, consul, renew)?;
    let mut written = pki::ensure(dir, certs, how)?.created.len();
    let key_file = dir.join(GOSSIP_KEY);
    if consul && read_optional(&key_file)?.is_none() {
        let key = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            rand::random::<[u8; 32]>(),
        );
        pki::write_secret(&key_file, key.as_bytes())?;
        written += 1;
    }
    if let Some(acl) = acl {
        written += acl_files(dir, acl, true)?;
    }
    Ok(written)
}

/// When node certificates are issued anew beyond `pki`'s own rules: with
/// `renew` (`arpanet rotate --certs`), and not while a CA rotation in `dir`
/// is in its first phase, where the old CA's certificates stay (see
/// `ca_rotation`).
fn renewal(dir: &Path, consul: bool, renew: bool) -> Result<pki::Renewal> {
    let first_phase = consul && ca_rotation::phase(dir)? == Some(ca_rotation::Phase::Trust);
    if renew && first_phase {
        // Not every agent trusts the new CA yet.
        return Err(Error::usage(format!(
            "a rotation of the consul CA is under way in `{}` (its first phase): new \
             certificates now would come from a CA not every agent trusts yet",
            dir.display()
        ))
        .with_hint("finish it first: `arpanet rotate --tls`"));
    }
    Ok(pki::Renewal {
        old_ca_current: first_phase,
        renew,
    })
}

/// What the ACL files of one host are made from.
struct AclHost<'a> {
    /// The datacenter the agent's configuration names.
    datacenter: String,
    /// The host, whose agent gets a token of its own.
    host: &'a str,
    /// Its agent is a server's: its configuration holds the management
    /// token as the master token.
    server: bool,
}

/// Whether the host is in the `servers` group.
fn is_server(vars: &Vars) -> bool {
    vars.get("group_names")
        .and_then(Value::as_array)
        .is_some_and(|groups| groups.iter().any(|g| g == "servers"))
}

/// The ACL tokens missing in `dir` (new ones: the management and linking
/// tokens, and the host's own agent token in `hosts/HOST/`) and the
/// host's agent configuration made from them (`hosts/HOST/acl.json`)
/// where it differs: how many files that is; written with `write`.
fn acl_files(dir: &Path, acl: &AclHost<'_>, write: bool) -> Result<usize> {
    let mut count = 0;
    let host_dir = acl::host_dir(dir, acl.host);
    let mut tokens = Vec::new();
    for (dir, file) in [
        (dir, acl::MANAGEMENT),
        (dir, acl::LINKING),
        (host_dir.as_path(), acl::AGENT),
    ] {
        let token = match acl::read(dir, file)? {
            Some(token) => token,
            None => {
                count += 1;
                let token = acl::new_token();
                if write {
                    pki::create_private_dir(dir)?;
                    pki::write_secret(&dir.join(file), format!("{token}\n").as_bytes())?;
                }
                token
            }
        };
        tokens.push(token);
    }
    let (management, agent) = (&tokens[0], &tokens[2]);
    let master = acl.server.then_some(management.as_str());
    let wanted = acl::agent_config(&acl.datacenter, agent, master);
    let config = host_dir.join(acl::NODE_CONFIG);
    if read_text(&config)?.as_deref() != Some(wanted.as_str()) {
        count += 1;
        if write {
            pki::write_secret(&config, wanted.as_bytes())?;
        }
    }
    Ok(count)
}

/// `host`'s own agent token here (`hosts/HOST/acl-agent.token`).
fn read_agent_token(dir: &Path, host: &str) -> Result<Option<String>> {
    acl::read(&acl::host_dir(dir, host), acl::AGENT)
}

/// The agent token the task's host keeps (`node_dir/agent.token`), if any.
async fn own_agent_token(node_dir: &str, ctx: &Context<'_>) -> Result<Option<String>> {
    let path = format!("{node_dir}/{}", acl::NODE_AGENT);
    let files = read_node(ctx.transport, ctx.host, std::slice::from_ref(&path)).await?;
    Ok(files
        .get(&path)
        .map(|b| String::from_utf8_lossy(b).trim().to_owned())
        .filter(|t| !t.is_empty()))
}

/// The task's failure when `host`'s agent token here is not the one its
/// node keeps.
fn token_refusal(dir: &Path, host: &str, there: Option<&str>) -> Result<Option<Outcome>> {
    let (Some(here), Some(there)) = (read_agent_token(dir, host)?, there) else {
        return Ok(None);
    };
    if here == there {
        return Ok(None);
    }
    let path = acl::host_dir(dir, host).join(acl::AGENT);
    Ok(Some(Outcome {
        failure: Some(Failure {
            message: format!(
                "refused: this checkout's keys are not the running cluster's (the {} `{}` is \
                 SHA-256 {}, `{host}` uses {}); nothing was changed",
                acl::what(acl::AGENT),
                path.display(),
                fingerprint(here.as_bytes()),
                fingerprint(there.as_bytes()),
            ),
            hint: Some(format!(
                "copy `{}` from the checkout that made the cluster (or remove it here to adopt \
                 the cluster's); to give the agents new tokens on purpose, `arpanet rotate \
                 --tokens`",
                dir.display()
            )),
            ..Failure::default()
        }),
        ..Outcome::ok()
    }))
}

/// Write the agent token `host`'s node keeps into `dir` when it has none
/// for that host; how many files were written.
fn adopt_agent_token(dir: &Path, host: &str, there: Option<&str>) -> Result<usize> {
    let Some(token) = there else {
        return Ok(0);
    };
    if read_agent_token(dir, host)?.is_some() {
        return Ok(0);
    }
    let host_dir = acl::host_dir(dir, host);
    pki::create_private_dir(&host_dir)?;
    pki::write_secret(&host_dir.join(acl::AGENT), format!("{token}\n").as_bytes())?;
    Ok(1)
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

/// Remove this run's scratch copies and forget the cluster's answers
/// (called when a run ends).
pub(crate) fn discard_scratch() {
    SCRATCH
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    ASKED.lock().unwrap_or_else(PoisonError::into_inner).clear();
}

/// `consul_gossip_key`, and when the CA and the host's certificate are
/// there `consul_ca_trust` (what the agent trusts: the CA, or during a CA
/// rotation both, see `ca_rotation`) and `consul_security_fingerprint`, a
/// digest of that and the certificate: what its agent is started with (the
/// gossip key is not in the digest: see the module documentation).
fn consul_facts(dir: &Path, host: &str) -> Result<Vars> {
    let Some(key) = read_optional(&dir.join(GOSSIP_KEY))? else {
        return Ok(Vars::new());
    };
    let key = String::from_utf8_lossy(&key).trim().to_owned();
    let mut facts = Vars::new();
    let ca = ca_rotation::trust(dir)?;
    let own = read_optional(&dir.join(pki::HOSTS_DIR).join(host).join(pki::SERVER_CERT))?;
    if let (Some(ca), Some(own)) = (ca, own) {
        let digest = Sha256::new()
            .chain_update(ca.as_bytes())
            .chain_update(&own)
            .finalize();
        facts.insert(
            "consul_security_fingerprint".into(),
            hex::encode(&digest[..8]).into(),
        );
        facts.insert("consul_ca_trust".into(), ca.into());
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
    fn consul_facts_digest_the_ca_and_the_host_certificate() {
        let print = |f: &Vars| {
            f["consul_security_fingerprint"]
                .as_str()
                .unwrap()
                .to_owned()
        };
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
            Default::default(),
        )
        .unwrap();
        let one = consul_facts(dir, "n1").unwrap();
        let again = consul_facts(dir, "n1").unwrap();
        // A new gossip key changes the fact, not the fingerprint: agents
        // take a new key through their keyring (`arpanet rotate`).
        fs::write(&key_file, "b3RoZXI=\n").unwrap();
        let rotated = consul_facts(dir, "n1").unwrap();
        assert_eq!(rotated.get("consul_gossip_key"), Some(&json!("b3RoZXI=")));
        assert_eq!(print(&rotated), print(&one));
        fs::remove_dir_all(dir.join(pki::HOSTS_DIR)).unwrap();
        pki::ensure(
            dir,
            &[ServerCert {
                name: "n1".into(),
                addresses: vec!["10.0.0.1".into()],
            }],
            Default::default(),
        )
        .unwrap();
        let other = consul_facts(dir, "n1").unwrap();
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
                    Some(Copy(a)) => [&a.src, &a.content].into_iter().flatten().any(|s| {
                        s.contains(dir)
                            || s.contains("consul_gossip_key")
                            || s.contains("consul_ca_trust")
                    }),
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
