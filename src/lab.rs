//! The local lab: real Debian nodes (systemd, sshd, dockerd) as containers on
//! the local Docker engine, for trying arpanet and for its own tests.
//!
//! Everything the lab creates carries the label `arpanet.lab=NAME`, so
//! `lab down` and `lab status` find it again, and several labs (a developer's
//! and the test suite's) live side by side under different names.

mod docker;
mod images;
mod node;
mod plan;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

use self::docker::{lab_error, Docker};
use self::images::ImageSpec;
pub use self::plan::{render_inventory, NodePlan, Subnet};

/// Label on every container, network and volume of a lab; its value is the
/// lab's name.
pub const LABEL: &str = "arpanet.lab";
const LABEL_NODE: &str = "arpanet.lab.node";
const LABEL_IP: &str = "arpanet.lab.ip";
const LABEL_KIND: &str = "arpanet.lab.kind";

const KEY_FILE: &str = "id_ed25519";
const KNOWN_HOSTS_FILE: &str = "known_hosts";
const INVENTORY_FILE: &str = "inventory.ini";
/// The sudo password of the nodes' `deploy` user (see `node::SUDO_USERS`).
const BECOME_PASSWORD_FILE: &str = "become-password";
/// The lab's name, written by `lab up`, so `--dir D` alone finds D's lab.
const NAME_FILE: &str = "lab-name";
/// What a run of the built-in playbooks against the lab's inventory makes
/// beside it (CA keys included); `lab down` removes them.
const MADE_BESIDE_INVENTORY: [&str; 2] = ["consul-tls", "docker-tls"];
/// The lab's name when none is given or recorded.
pub(crate) const DEFAULT_NAME: &str = "arpanet-lab";

/// Port the registry serves on inside the lab network.
pub const REGISTRY_PORT: u16 = 5000;

/// How long nodes get to boot (systemd running, sshd answering).
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

/// Which lab a `lab` command acts on.
#[derive(Debug, Clone)]
pub struct LabTarget {
    /// Where the lab keeps its key, known_hosts and inventory.
    pub dir: PathBuf,
    /// Prefix of the lab's containers, network and volumes; `None`: the
    /// name recorded in `dir`, else [`DEFAULT_NAME`].
    pub name: Option<String>,
}

/// The lab a command means: the name given, else the one `lab up` recorded
/// in `dir`, else the default. `lab down` with a name other than the one
/// `dir` records is refused: it would remove one lab's containers and
/// another's key and inventory.
fn lab_name(target: &LabTarget, down: bool) -> Result<String> {
    let recorded = match std::fs::read_to_string(target.dir.join(NAME_FILE)) {
        Ok(text) => Some(text.trim().to_owned()).filter(|n| !n.is_empty()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("read", target.dir.join(NAME_FILE), e)),
    };
    match (&target.name, recorded) {
        (Some(given), Some(recorded)) if down && *given != recorded => Err(Error::usage(format!(
            "`{}` holds lab `{recorded}`, not `{given}`",
            target.dir.display()
        ))
        .with_hint(format!(
            "`arpanet lab down --dir {}` takes down `{recorded}`; for `{given}`, pass its own `--dir`",
            target.dir.display()
        ))),
        (Some(given), _) => Ok(given.clone()),
        (None, Some(recorded)) => Ok(recorded),
        (None, None) => Ok(DEFAULT_NAME.to_owned()),
    }
}

/// What a `lab` command asks for.
#[derive(Debug, Clone)]
pub enum LabCommand {
    /// Build images if missing and start `nodes` nodes, `servers` of them
    /// Consul servers, on `subnet` (a /24).
    Up {
        lab: LabTarget,
        nodes: usize,
        servers: usize,
        subnet: String,
        /// Add a bastion node, the only way to the nodes' SSH port.
        bastion: bool,
    },
    /// Remove the lab; `purge` the cached images too.
    Down { lab: LabTarget, purge: bool },
    /// Show each node, its address and whether it runs.
    Status { lab: LabTarget },
}

pub fn run(command: LabCommand) -> Result<i32> {
    match command {
        LabCommand::Up {
            lab,
            nodes,
            servers,
            subnet,
            bastion,
        } => {
            let subnet = Subnet::parse(&subnet)?;
            let plan = plan::nodes(nodes, servers, &subnet)?;
            let bastion = bastion.then(|| plan::bastion(&subnet));
            Lab::new(&lab, false)?.up(&subnet, &plan, bastion.as_ref())
        }
        LabCommand::Down { lab, purge } => Lab::new(&lab, true)?.down(purge),
        LabCommand::Status { lab } => Lab::new(&lab, false)?.status(),
    }
}

/// Progress lines on stderr, with the time since `lab` started.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    start: Instant,
}

impl Progress {
    fn new() -> Self {
        Progress {
            start: Instant::now(),
        }
    }

    pub(crate) fn say(&self, message: &str) {
        eprintln!(
            "lab [{:>5.1}s] {message}",
            self.start.elapsed().as_secs_f64()
        );
    }

    /// A line belonging to a longer step that began at `since`.
    pub(crate) fn detail(&self, since: Instant, message: &str) {
        eprintln!(
            "lab [{:>5.1}s]   +{:.1}s {message}",
            self.start.elapsed().as_secs_f64(),
            since.elapsed().as_secs_f64()
        );
    }
}

/// One lab: its name (prefix of everything it creates) and its directory.
struct Lab {
    name: String,
    /// As the user wrote it, for messages.
    dir_arg: PathBuf,
    /// Absolute, for the inventory.
    dir: PathBuf,
    docker: Docker,
    progress: Progress,
}

impl Lab {
    fn new(target: &LabTarget, down: bool) -> Result<Self> {
        let name = &lab_name(target, down)?;
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        if !valid {
            return Err(Error::usage(format!(
                "lab name `{name}` must be lowercase letters, digits, `-`, `_` or `.`"
            )));
        }
        let dir =
            std::path::absolute(&target.dir).map_err(|e| Error::io("resolve", &target.dir, e))?;
        Ok(Lab {
            name: name.clone(),
            dir_arg: target.dir.clone(),
            dir,
            docker: Docker,
            progress: Progress::new(),
        })
    }

    fn network(&self) -> &str {
        &self.name
    }

    fn container(&self, node: &str) -> String {
        format!("{}-{node}", self.name)
    }

    fn node_volume(&self, node: &str) -> String {
        format!("{}-{node}-docker", self.name)
    }

    fn registry_container(&self) -> String {
        format!("{}-registry", self.name)
    }

    fn registry_volume(&self) -> String {
        format!("{}-registry-data", self.name)
    }

    fn label(&self) -> String {
        format!("{LABEL}={}", self.name)
    }

    fn say(&self, message: impl AsRef<str>) {
        self.progress.say(message.as_ref());
    }

    // ---- up ----------------------------------------------------------------

    fn up(&self, subnet: &Subnet, plan: &[NodePlan], bastion: Option<&NodePlan>) -> Result<i32> {
        let version = self.docker.engine_version()?;
        self.say(format!("docker engine {version} answers"));
        let mut done: Vec<String> = Vec::new();

        let rebuilt = self.ensure_images(&mut done)?;
        self.ensure_network(subnet, &mut done)?;
        let port = self.ensure_registry(subnet, &mut done)?;
        self.push_images(port, &rebuilt, &mut done)?;
        let key = self.ensure_key(&mut done)?;
        let public_key = read_file(&key.with_extension("pub"))?;
        let password = self.ensure_become_password()?;

        self.remove_extra_nodes(plan, &mut done)?;
        match bastion {
            Some(bastion) => self.ensure_node(bastion, &mut done)?,
            None => self.remove_bastion(&mut done)?,
        }
        for node in plan {
            self.ensure_node(node, &mut done)?;
        }
        let mut reached: Vec<NodePlan> = plan.to_vec();
        let mut host_keys = self.wait_for_nodes(
            plan,
            public_key.trim(),
            &password,
            bastion.map(|b| b.ip),
            &mut done,
        )?;
        if let Some(bastion) = bastion {
            let keys = self.wait_for_nodes(
                std::slice::from_ref(bastion),
                public_key.trim(),
                &password,
                None,
                &mut done,
            )?;
            reached.push(bastion.clone());
            host_keys.extend(keys);
        }

        let known_hosts = self.dir.join(KNOWN_HOSTS_FILE);
        let text: String = reached
            .iter()
            .zip(&host_keys)
            .map(|(node, key)| format!("{} {key}\n", node.ip))
            .collect();
        if write_if_changed(&known_hosts, &text, 0o644)? {
            done.push(format!("wrote {}", known_hosts.display()));
        }
        let inventory_path = self.dir.join(INVENTORY_FILE);
        let inventory = render_inventory(
            &self.name,
            plan,
            &key,
            &known_hosts,
            &subnet.registry_address(),
            bastion.map(|b| b.ip),
        );
        if write_if_changed(&inventory_path, &inventory, 0o644)? {
            done.push(format!("wrote {}", inventory_path.display()));
        }

        if done.is_empty() {
            self.say(format!(
                "lab `{}` is up with {} nodes; nothing changed",
                self.name,
                plan.len()
            ));
        } else {
            self.say(format!(
                "lab `{}` is up with {} nodes; {} change(s):",
                self.name,
                plan.len(),
                done.len()
            ));
            for line in &done {
                eprintln!("  - {line}");
            }
        }
        let shown = self.dir_arg.join(INVENTORY_FILE);
        println!("inventory: {}", shown.display());
        println!("next:");
        println!("  arpanet exec -i {} -- docker info", shown.display());
        println!("  arpanet run -i {} bootstrap", shown.display());
        Ok(crate::error::exit::OK)
    }

    /// Build every image that is missing or stale; the ones built.
    fn ensure_images(&self, done: &mut Vec<String>) -> Result<Vec<ImageSpec>> {
        let wanted: Vec<(ImageSpec, &str)> = images::ALL
            .iter()
            .filter_map(|spec| spec.needs_build(&self.docker).map(|why| (*spec, why)))
            .collect();
        if wanted.is_empty() {
            self.say("images cached: ".to_owned() + &image_list(&images::ALL));
            return Ok(Vec::new());
        }
        let mirror = images::debian_mirror()?;
        for (spec, why) in &wanted {
            let started = Instant::now();
            self.say(format!(
                "building image {} ({why}) from Debian {} via {mirror}",
                spec.reference, spec.suite
            ));
            let old = self
                .docker
                .out(&["image", "inspect", "--format", "{{.Id}}", spec.reference])
                .ok();
            spec.build(&mirror, &self.progress)?;
            if let Some(old) = old {
                // The build it replaces; still used by a container, it stays.
                let _ = self.docker.run(&["rmi", &old]);
            }
            let took = started.elapsed().as_secs_f64();
            self.say(format!("built image {} in {took:.1}s", spec.reference));
            done.push(format!("built image {} in {took:.1}s", spec.reference));
        }
        Ok(wanted.into_iter().map(|(spec, _)| spec).collect())
    }

    fn ensure_network(&self, subnet: &Subnet, done: &mut Vec<String>) -> Result<()> {
        let existing = self
            .docker
            .out(&[
                "network",
                "inspect",
                "--format",
                "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
                self.network(),
            ])
            .ok();
        match existing {
            Some(subnets) if subnets.split_whitespace().any(|s| s == subnet.cidr()) => {
                self.say(format!(
                    "network {} ({}) exists",
                    self.network(),
                    subnet.cidr()
                ));
                Ok(())
            }
            Some(subnets) => Err(Error::Lab {
                message: format!(
                    "network `{}` exists with subnet {}, not {}",
                    self.network(),
                    subnets.trim(),
                    subnet.cidr()
                ),
                hint: Some(format!(
                    "take the lab down first (`arpanet lab down --name {}`) or keep its subnet",
                    self.name
                )),
            }),
            None => {
                self.docker.run(&[
                    "network",
                    "create",
                    "--driver",
                    "bridge",
                    "--subnet",
                    &subnet.cidr(),
                    "--gateway",
                    &subnet.gateway().to_string(),
                    "--label",
                    &self.label(),
                    self.network(),
                ])?;
                let message = format!("created network {} ({})", self.network(), subnet.cidr());
                self.say(&message);
                done.push(message);
                Ok(())
            }
        }
    }

    /// Start the registry if needed; the port it is published on at
    /// 127.0.0.1.
    fn ensure_registry(&self, subnet: &Subnet, done: &mut Vec<String>) -> Result<u16> {
        let name = self.registry_container();
        let ip = subnet.registry().to_string();
        let volume = self.registry_volume();
        let publish = format!("127.0.0.1::{REGISTRY_PORT}");
        let mut args: Vec<&str> = vec![
            "run",
            "--detach",
            "--name",
            &name,
            "--hostname",
            "registry",
            "--network",
            self.network(),
            "--ip",
            &ip,
            "--publish",
            &publish,
            "--restart",
            "unless-stopped",
        ];
        let labels = [
            self.label(),
            format!("{LABEL_NODE}=registry"),
            format!("{LABEL_IP}={ip}"),
            format!("{LABEL_KIND}=registry"),
        ];
        for label in &labels {
            args.extend(["--label", label]);
        }
        let mount = format!("{volume}:/var/lib/docker-registry");
        args.extend(["--volume", &mount, images::REGISTRY.reference]);

        let action = self.ensure_container(&name, &ip, &volume, &args)?;
        if let Some(action) = action {
            let message = format!("{action} registry {name} at {ip}:{REGISTRY_PORT}");
            self.say(&message);
            done.push(message);
        } else {
            self.say(format!("registry {name} running at {ip}:{REGISTRY_PORT}"));
        }
        let published = self
            .docker
            .out(&["port", &name, &format!("{REGISTRY_PORT}/tcp")])?;
        let port = published
            .lines()
            .find_map(|l| l.rsplit_once(':').and_then(|(_, p)| p.trim().parse().ok()))
            .ok_or_else(|| {
                lab_error(format!(
                    "registry `{name}` has no published port (`docker port` said `{published}`)"
                ))
            })?;
        node::wait_for_registry(port, Duration::from_secs(30)).map_err(|e| {
            lab_error(format!(
                "registry `{name}` does not answer on 127.0.0.1:{port}: {e}"
            ))
            .with_hint(format!("see `docker logs {name}`"))
        })?;
        Ok(port)
    }

    /// Make sure the images the cluster runs are in the lab registry.
    fn push_images(&self, port: u16, rebuilt: &[ImageSpec], done: &mut Vec<String>) -> Result<()> {
        for spec in images::ALL {
            let Some(path) = spec.registry_path else {
                continue;
            };
            let fresh = rebuilt.iter().any(|r| r.reference == spec.reference);
            if !fresh && node::registry_has(port, path).unwrap_or(false) {
                self.say(format!("registry has {path}"));
                continue;
            }
            let started = Instant::now();
            let remote = format!("127.0.0.1:{port}/{path}");
            self.docker.run(&["tag", spec.reference, &remote])?;
            let pushed = self.docker.run(&["push", &remote]);
            let _ = self.docker.run(&["rmi", &remote]);
            pushed?;
            let message = format!(
                "pushed {path} to the registry in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            self.say(&message);
            done.push(message);
        }
        Ok(())
    }

    fn ensure_key(&self, done: &mut Vec<String>) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io("create", &self.dir, e))?;
        write_if_changed(
            &self.dir.join(NAME_FILE),
            &format!("{}\n", self.name),
            0o644,
        )?;
        let key = self.dir.join(KEY_FILE);
        if key.exists() && key.with_extension("pub").exists() {
            return Ok(key);
        }
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        let output = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-C")
            .arg(format!("arpanet-lab@{}", self.name))
            .arg("-f")
            .arg(&key)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| docker::spawn_error("ssh-keygen", &e))?;
        if !output.status.success() {
            return Err(lab_error(format!(
                "`ssh-keygen` failed: {}",
                docker::tail(&String::from_utf8_lossy(&output.stderr), 5)
            )));
        }
        let message = format!("generated the lab's SSH key {}", key.display());
        self.say(&message);
        done.push(message);
        Ok(key)
    }

    /// The password of the nodes' `deploy` sudoer: made once per lab
    /// directory (mode 0600), kept across `lab up`s.
    fn ensure_become_password(&self) -> Result<String> {
        let path = self.dir.join(BECOME_PASSWORD_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            if !text.trim().is_empty() {
                return Ok(text.trim().to_owned());
            }
        }
        let password = format!("{:032x}", rand::random::<u128>());
        write_if_changed(&path, &format!("{password}\n"), 0o600)?;
        Ok(password)
    }

    /// Remove nodes beyond the plan (a smaller `--nodes`).
    fn remove_extra_nodes(&self, plan: &[NodePlan], done: &mut Vec<String>) -> Result<()> {
        let listed = self.docker.out(&[
            "ps",
            "--all",
            "--filter",
            &format!("label={}", self.label()),
            "--filter",
            &format!("label={LABEL_KIND}=node"),
            "--format",
            &format!("{{{{.Label \"{LABEL_NODE}\"}}}}"),
        ])?;
        for node in listed.lines().map(str::trim).filter(|n| !n.is_empty()) {
            if plan.iter().any(|p| p.name == node) {
                continue;
            }
            self.docker
                .run(&["rm", "--force", "--volumes", &self.container(node)])?;
            let _ = self
                .docker
                .run(&["volume", "rm", "--force", &self.node_volume(node)]);
            let message = format!("removed {node} (beyond --nodes {})", plan.len());
            self.say(&message);
            done.push(message);
        }
        Ok(())
    }

    /// Remove the bastion of an earlier `lab up --bastion`.
    fn remove_bastion(&self, done: &mut Vec<String>) -> Result<()> {
        let listed = self.docker.out(&[
            "ps",
            "--all",
            "--quiet",
            "--filter",
            &format!("label={}", self.label()),
            "--filter",
            &format!("label={LABEL_KIND}=bastion"),
        ])?;
        if listed.trim().is_empty() {
            return Ok(());
        }
        let name = plan::BASTION;
        self.docker
            .run(&["rm", "--force", "--volumes", &self.container(name)])?;
        let _ = self
            .docker
            .run(&["volume", "rm", "--force", &self.node_volume(name)]);
        let message = format!("removed the {name} (no --bastion)");
        self.say(&message);
        done.push(message);
        Ok(())
    }

    fn ensure_node(&self, node: &NodePlan, done: &mut Vec<String>) -> Result<()> {
        let name = self.container(&node.name);
        let ip = node.ip.to_string();
        let volume = self.node_volume(&node.name);
        let kind = match node.role {
            plan::Role::Bastion => "bastion",
            _ => "node",
        };
        let labels = [
            self.label(),
            format!("{LABEL_NODE}={}", node.name),
            format!("{LABEL_IP}={ip}"),
            format!("{LABEL_KIND}={kind}"),
        ];
        let mount = format!("{volume}:/var/lib/docker");
        let mut args: Vec<&str> = vec![
            "run",
            "--detach",
            "--name",
            &name,
            "--hostname",
            &node.name,
            "--network",
            self.network(),
            "--ip",
            &ip,
            "--restart",
            "unless-stopped",
            "--stop-signal",
            "SIGRTMIN+3",
            // What systemd and a nested dockerd need, without --privileged
            // (CAP_SYS_RESOURCE may be missing from the bounding set).
            "--cap-add",
            "ALL",
            "--cap-drop",
            "SYS_RESOURCE",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "--security-opt",
            "systempaths=unconfined",
            "--device-cgroup-rule",
            "a *:* rwm",
            "--volume",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/run/lock",
            "--volume",
            &mount,
        ];
        for label in &labels {
            args.extend(["--label", label]);
        }
        args.push(images::NODE.reference);

        match self.ensure_container(&name, &ip, &volume, &args)? {
            Some(action) => {
                let message = format!("{action} {} ({ip}, {})", node.name, node.role);
                self.say(&message);
                done.push(message);
            }
            None => {
                self.say(format!("{} running ({ip}, {})", node.name, node.role));
                if let Ok(true) = self.runs_older_image(&name, images::NODE.reference) {
                    self.say(format!(
                        "note: {} runs an older node image; `arpanet lab down` and \
                         `arpanet lab up` to refresh it",
                        node.name
                    ));
                }
            }
        }
        Ok(())
    }

    fn runs_older_image(&self, container: &str, reference: &str) -> Result<bool> {
        let running = self
            .docker
            .out(&["inspect", "--format", "{{.Image}}", container])?;
        let current = self
            .docker
            .out(&["image", "inspect", "--format", "{{.Id}}", reference])?;
        Ok(running != current)
    }

    /// Bring a container to running: leave a running one alone, start a
    /// stopped one (leftovers after a docker restart), recreate one that is
    /// broken or misplaced. `None` when nothing was done, else what was.
    fn ensure_container(
        &self,
        name: &str,
        ip: &str,
        volume: &str,
        run_args: &[&str],
    ) -> Result<Option<&'static str>> {
        let state = self
            .docker
            .out(&[
                "inspect",
                "--format",
                &format!("{{{{.State.Status}}}} {{{{index .Config.Labels \"{LABEL_IP}\"}}}}"),
                name,
            ])
            .ok();
        let mut recreate = false;
        if let Some(state) = &state {
            let (status, label_ip) = state.split_once(' ').unwrap_or((state, ""));
            if label_ip != ip {
                recreate = true;
            } else {
                match status {
                    "running" | "restarting" => return Ok(None),
                    "paused" => {
                        self.docker.run(&["unpause", name])?;
                        return Ok(Some("unpaused"));
                    }
                    "created" | "exited" => {
                        if self.docker.succeeds(&["start", name]) {
                            return Ok(Some("restarted"));
                        }
                        recreate = true;
                    }
                    _ => recreate = true,
                }
            }
            self.docker.run(&["rm", "--force", name])?;
        }
        self.docker
            .run(&["volume", "create", "--label", &self.label(), volume])?;
        self.docker.run(run_args)?;
        Ok(Some(if recreate { "recreated" } else { "created" }))
    }

    /// Wait until every node's systemd runs and its sshd answers; authorise
    /// the lab's key; read each node's host key from the node itself. With
    /// a `bastion`, each node's sshd answers only to it (and is checked from
    /// inside the node); without, to anyone again.
    fn wait_for_nodes(
        &self,
        plan: &[NodePlan],
        public_key: &str,
        password: &str,
        bastion: Option<std::net::Ipv4Addr>,
        done: &mut Vec<String>,
    ) -> Result<Vec<String>> {
        let started = Instant::now();
        let deadline = started + BOOT_TIMEOUT;
        let mut host_keys = Vec::with_capacity(plan.len());
        for node in plan {
            let container = self.container(&node.name);
            let state = node::wait_for_systemd(&self.docker, &container, deadline)
                .map_err(|e| e.with_hint(format!("see `docker logs {container}`")))?;
            if state == "degraded" {
                let failed = self
                    .docker
                    .out(&[
                        "exec",
                        &container,
                        "systemctl",
                        "--failed",
                        "--plain",
                        "--no-legend",
                    ])
                    .unwrap_or_default();
                self.say(format!(
                    "warning: {} is degraded; failed units: {}",
                    node.name,
                    failed.replace('\n', "; ")
                ));
            }
            if node::authorise_key(&self.docker, &container, public_key)? {
                done.push(format!("authorised the lab's key on {}", node.name));
            }
            if node::ensure_sudo_users(&self.docker, &container, public_key, password)? {
                done.push(format!("made the sudo users on {}", node.name));
            }
            host_keys.push(node::host_key(&self.docker, &container)?);
            if node.role != plan::Role::Bastion
                && node::ssh_only_from(&self.docker, &container, bastion)?
            {
                done.push(match bastion {
                    Some(ip) => format!("{}'s sshd answers only the bastion ({ip})", node.name),
                    None => format!("{}'s sshd answers everyone again", node.name),
                });
            }
            let answered = match bastion {
                Some(_) => node::wait_for_sshd_inside(&self.docker, &container, deadline),
                None => node::wait_for_sshd(node.ip, deadline),
            };
            answered.map_err(|e| Error::Lab {
                message: format!("sshd on {} ({}) does not answer: {e}", node.name, node.ip),
                hint: Some(format!(
                    "see `docker exec {container} systemctl status ssh`"
                )),
            })?;
        }
        self.progress.detail(
            started,
            &format!("{} nodes: systemd running, sshd answering", plan.len()),
        );
        Ok(host_keys)
    }

    // ---- down ----------------------------------------------------------------

    fn down(&self, purge: bool) -> Result<i32> {
        let label = format!("label={}", self.label());
        // Everything carrying the lab's label, listed then removed at once.
        let remove = |list: &[&str], rm: &[&str], what: &str| -> Result<usize> {
            let ids = self.docker.out(list)?;
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = rm.to_vec();
                args.extend(&ids);
                self.docker.run(&args)?;
                self.say(format!("removed {} {what}(s)", ids.len()));
            }
            Ok(ids.len())
        };
        let containers = remove(
            &["ps", "--all", "--quiet", "--filter", &label],
            &["rm", "--force", "--volumes"],
            "container",
        )?;
        let volumes = remove(
            &["volume", "ls", "--quiet", "--filter", &label],
            &["volume", "rm", "--force"],
            "volume",
        )?;
        let networks = self
            .docker
            .out(&["network", "ls", "--quiet", "--filter", &label])?;
        for network in networks.split_whitespace() {
            self.docker.run(&["network", "rm", network])?;
            self.say(format!("removed network {}", self.network()));
        }
        let removed_files = remove_lab_files(&self.dir)?;
        if removed_files > 0 {
            self.say(format!(
                "removed {removed_files} file(s) from {}",
                self.dir_arg.display()
            ));
        }
        // Only if nothing else lives there.
        let _ = std::fs::remove_dir(&self.dir);
        if purge {
            self.purge_images()?;
        }
        if containers == 0 && volumes == 0 && networks.is_empty() {
            self.say(format!("lab `{}` was not up", self.name));
        } else {
            self.say(format!("lab `{}` is down", self.name));
        }
        Ok(crate::error::exit::OK)
    }

    /// Remove every image a lab build made: the cached tags and the older
    /// builds they replaced.
    fn purge_images(&self) -> Result<()> {
        let listed = self.docker.out(&[
            "images",
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
            "--filter",
            &format!("label={}", images::RECIPE_LABEL),
        ])?;
        let mut ids: Vec<&str> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for line in listed.lines() {
            let (id, name) = line.split_once(' ').unwrap_or((line, ""));
            if !ids.contains(&id) {
                ids.push(id);
            }
            if !name.ends_with(":<none>") {
                names.push(name);
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        let mut args = vec!["rmi", "--force"];
        args.extend(&ids);
        self.docker.run(&args).map_err(|e| {
            e.with_hint("another lab may still use these images; take it down first")
        })?;
        self.say(format!(
            "removed {} image(s): {}",
            ids.len(),
            if names.is_empty() {
                "untagged".to_owned()
            } else {
                names.join(", ")
            }
        ));
        Ok(())
    }

    // ---- status --------------------------------------------------------------

    fn status(&self) -> Result<i32> {
        let listed = self.docker.out(&[
            "ps",
            "--all",
            "--filter",
            &format!("label={}", self.label()),
            "--format",
            &format!(
                "{{{{.Label \"{LABEL_NODE}\"}}}}\t{{{{.Label \"{LABEL_IP}\"}}}}\t\
                 {{{{.Label \"{LABEL_KIND}\"}}}}\t{{{{.State}}}}\t{{{{.Status}}}}"
            ),
        ])?;
        if listed.trim().is_empty() {
            eprintln!("lab `{}` is not up", self.name);
            eprintln!("hint: `arpanet lab up` starts it");
            return Ok(crate::error::exit::OK);
        }
        let servers = plan::servers_in_inventory(&self.dir.join(INVENTORY_FILE));
        let mut rows: Vec<[String; 5]> = listed
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                let [node, ip, kind, state, detail] = f.as_slice() else {
                    return None;
                };
                let role = match *kind {
                    "registry" => "registry".to_owned(),
                    "bastion" => "bastion".to_owned(),
                    _ => match &servers {
                        Some(servers) if servers.iter().any(|s| s == node) => "server".into(),
                        Some(_) => "client".into(),
                        None => "-".into(),
                    },
                };
                Some([
                    node.to_string(),
                    ip.to_string(),
                    role,
                    state.to_string(),
                    detail.to_string(),
                ])
            })
            .collect();
        rows.sort_by_key(|r| plan::sort_key(&r[0]));
        let header = ["NODE", "ADDRESS", "ROLE", "RUNNING", "STATUS"].map(String::from);
        let rows: Vec<[String; 5]> = rows
            .into_iter()
            .map(|[n, ip, role, state, detail]| {
                let running = if state == "running" { "yes" } else { "no" };
                [n, ip, role, running.to_owned(), detail]
            })
            .collect();
        let mut widths = [0usize; 5];
        for row in std::iter::once(&header).chain(&rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let line: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            println!("{}", line.join("  ").trim_end());
        }
        Ok(crate::error::exit::OK)
    }
}

/// Remove what `lab up` and runs against the lab wrote in `dir`: the key,
/// known_hosts, inventory, name, and the certificate folders made beside
/// the inventory. Returns how many were there.
fn remove_lab_files(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let key_pub = format!("{KEY_FILE}.pub");
    for file in [
        KEY_FILE,
        &key_pub,
        KNOWN_HOSTS_FILE,
        INVENTORY_FILE,
        NAME_FILE,
        BECOME_PASSWORD_FILE,
    ] {
        let path = dir.join(file);
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", path, e)),
        }
    }
    for folder in MADE_BESIDE_INVENTORY {
        let path = dir.join(folder);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", path, e)),
        }
    }
    Ok(removed)
}

fn image_list(specs: &[ImageSpec]) -> String {
    specs
        .iter()
        .map(|s| s.reference)
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))
}

/// Write `text` to `path` (atomically) unless it already holds it; whether
/// it wrote.
fn write_if_changed(path: &Path, text: &str, mode: u32) -> Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("set permissions of", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("write", path, e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(dir: &Path, name: Option<&str>) -> LabTarget {
        LabTarget {
            dir: dir.to_path_buf(),
            name: name.map(str::to_owned),
        }
    }

    #[test]
    fn the_lab_is_the_one_given_else_the_one_dir_records_else_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(lab_name(&target(d, None), false).unwrap(), DEFAULT_NAME);
        assert_eq!(lab_name(&target(d, Some("mine")), true).unwrap(), "mine");
        std::fs::write(d.join(NAME_FILE), "ci-lab\n").unwrap();
        assert_eq!(lab_name(&target(d, None), false).unwrap(), "ci-lab");
        assert_eq!(lab_name(&target(d, None), true).unwrap(), "ci-lab");
        assert_eq!(lab_name(&target(d, Some("other")), false).unwrap(), "other");
        let err = lab_name(&target(d, Some("other")), true).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("holds lab `ci-lab`, not `other`"), "{text}");
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
    }

    #[test]
    fn down_removes_the_key_material_made_beside_the_inventory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for file in [KEY_FILE, INVENTORY_FILE, NAME_FILE] {
            std::fs::write(d.join(file), "x").unwrap();
        }
        for folder in MADE_BESIDE_INVENTORY {
            std::fs::create_dir_all(d.join(folder).join("ca")).unwrap();
            std::fs::write(d.join(folder).join("ca/ca-key.pem"), "secret").unwrap();
        }
        std::fs::write(d.join("notes.txt"), "mine").unwrap();
        assert_eq!(remove_lab_files(d).unwrap(), 5);
        let left: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["notes.txt"]);
    }
}
