//! Command-line shape, as clap derive types only. Each file of `command/`
//! turns its command's arguments into plain settings (`config.rs`,
//! `cluster/`, `lab.rs`); nothing below that layer sees these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "arpanet", version, about = "Set up and run a Docker cluster over SSH", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run playbooks (built-in names or paths) against an inventory
    Run(RunArgs),
    /// Run one ad-hoc command on every selected host, its output shown as
    /// it arrives (`-t`: interactively on one host's terminal)
    Exec(ExecArgs),
    /// An interactive login shell on one node (`exec -t -l NODE -- $SHELL -l`)
    Shell(ShellArgs),
    /// The logs of the managed containers (the stack's and Consul's) across
    /// nodes, each line prefixed with its node
    // `-f` is `--follow` here, as in `docker logs` and `tail`; `--forks`
    // keeps its long name.
    #[command(mut_arg("forks", |a| a.short(None)))]
    Logs(LogsArgs),
    /// Show the resolved hosts, groups and variables as JSON
    Inventory(InventoryArgs),
    /// Print a template rendered with one host's variables
    Render(RenderArgs),
    /// One table over the cluster: reachability, Docker, Consul, the stack
    Status(StatusArgs),
    /// Per node, each managed container: image and digest, started at,
    /// restart count, health
    Details(DetailsArgs),
    /// Restart managed containers node by node, through the gates upgrades
    /// pass (Consul servers one at a time, the leader last)
    Restart(RestartArgs),
    /// Every service in Consul: instances (node, address:port), health, upstreams
    Services(ServicesArgs),
    /// Consul's key/value store, through one node's agent
    Kv(KvArgs),
    /// Open Consul's or cAdvisor's web UI through a local port forwarded
    /// over SSH (127.0.0.1 only), until Ctrl-C
    Ui(UiArgs),
    /// Run the consul CLI inside a node's Consul container (e.g. `members`)
    Consul(ConsulArgs),
    /// Show or free the cluster's run lock
    Lock(LockArgs),
    /// What was deployed: the records the cluster keeps, or one in full
    History(HistoryArgs),
    /// Return the cluster to an earlier record (default: the previous one),
    /// rolling as `upgrade` does
    Rollback(RollbackArgs),
    /// A new Consul gossip key for the running cluster, through the agents'
    /// keyring (no restart); `--tls`: a new Consul CA and certificates,
    /// rolled; `--certs`: new certificates from the same CA, rolled
    Rotate(RotateArgs),
    /// Manage the local lab cluster
    Lab(LabArgs),
}

impl Command {
    /// The options for reaching hosts, for the commands that have them.
    pub fn connect(&self) -> Option<&ConnectArgs> {
        use Command::*;
        match self {
            Run(a) => Some(&a.connect),
            Exec(a) => Some(&a.connect),
            Shell(a) => Some(&a.connect),
            Logs(a) => Some(&a.connect),
            Status(a) => Some(&a.connect),
            Details(a) => Some(&a.connect),
            Restart(a) => Some(&a.connect),
            Services(a) => Some(&a.connect),
            Kv(a) => Some(&a.connect),
            Ui(a) => Some(&a.connect),
            Consul(a) => Some(&a.connect),
            Lock(a) => Some(&a.connect),
            History(a) => Some(&a.connect),
            Rollback(a) => Some(&a.connect),
            Rotate(a) => Some(&a.connect),
            Inventory(_) | Render(_) | Lab(_) => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub op: LockOp,
}

#[derive(Debug, Subcommand)]
pub enum LockOp {
    /// Who holds the lock, since when, with what command
    Status,
    /// Free the lock whoever holds it (asks first; `--yes` without a terminal)
    Release {
        /// Go ahead without asking; needed when stdin is not a terminal
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Show this record in full (env values masked)
    #[arg(value_name = "N")]
    pub number: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The record to return to [default: the one before the current]
    #[arg(value_name = "N")]
    pub number: Option<u64>,
    /// Change nothing; report what would change
    #[arg(short = 'C', long)]
    pub check: bool,
    /// Show differences in changed containers and files
    #[arg(short = 'D', long)]
    pub diff: bool,
    /// Seconds a task may run on a host before it is stopped and fails
    /// (0: no limit)
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub task_timeout: u64,
    /// Go ahead without asking; needed when stdin is not a terminal
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Rotate the Consul CA instead: a new CA and new certificates for
    /// every agent, rolled in three phases without losing the quorum (a
    /// rotation cut short resumes)
    #[arg(long, conflicts_with = "certs")]
    pub tls: bool,
    /// Issue every agent a new certificate from the cluster's CA instead,
    /// rolled one agent at a time
    #[arg(long)]
    pub certs: bool,
    /// Replace Consul's ACL tokens instead: a new management token and a
    /// new token for every agent, handed out, then the old ones deleted
    /// (the servers restart one at a time)
    #[arg(long, conflicts_with_all = ["tls", "certs"])]
    pub tokens: bool,
    /// Replace the CA of Docker's TLS API (`docker_tcp`) instead: a new CA
    /// and new certificates for the nodes and this checkout's client,
    /// Docker restarted once on each node, in the roll
    #[arg(long, conflicts_with_all = ["tls", "certs", "tokens"])]
    pub docker_tls: bool,
    /// Change nothing; report what would change
    #[arg(short = 'C', long)]
    pub check: bool,
    /// Seconds a task may run on a host before it is stopped and fails
    /// (0: no limit)
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub task_timeout: u64,
    /// Go ahead without asking; needed when stdin is not a terminal
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Ask again every `--interval` seconds until Ctrl-C: redrawn in place
    /// on a terminal, a new block each time otherwise
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Seconds between two looks with `--watch`
    #[arg(
        long,
        default_value_t = 2.0,
        value_name = "SECONDS",
        requires = "watch"
    )]
    pub interval: f64,
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct DetailsArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Seconds a task may run on a host before it is stopped and fails
    /// (0: no limit)
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub task_timeout: u64,
    /// Managed containers to restart (`consul`, the `stack` entries'
    /// names), or `docker`: the Docker daemon, with every container on the
    /// node
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KvArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub op: KvOp,
}

#[derive(Debug, Subcommand)]
pub enum KvOp {
    /// Print a key's value
    Get { key: String },
    /// Set a key's value
    Set { key: String, value: String },
    /// Delete a key, or a whole tree with `--recurse` (or `KEY?recurse`)
    Del {
        key: String,
        #[arg(long)]
        recurse: bool,
    },
    /// List the keys under a prefix
    Ls {
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Show the leader, the raft peers and the KV prefix in use
    Info,
}

#[derive(Debug, Args)]
pub struct UiArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Local port, on 127.0.0.1 only [default: the UI's own (consul 8500,
    /// cadvisor 8080), or a free one when that is taken; 0: a free one]
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Open the URL in a browser (`$BROWSER`, else `xdg-open`)
    #[arg(long)]
    pub open: bool,
    /// `consul` (on the first server whose agent answers) or `cadvisor`
    /// (the first server's containers); `-l NODE` picks the node
    #[arg(value_name = "UI")]
    pub ui: String,
}

#[derive(Debug, Args)]
pub struct ConsulArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Arguments for the consul CLI (`members`); after `--` when they
    /// hold an option that arpanet has too (`-- members -detailed -v`)
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

/// Options shared by every command that reaches hosts. Global, so they are
/// taken after a subcommand's arguments too (`kv get KEY -i INV`).
#[derive(Debug, Args, Clone)]
pub struct ConnectArgs {
    /// Inventory file or directory (INI or YAML; repeatable) [default:
    /// `$ARPANET_INVENTORY`, else `inventory:` of an `arpanet.yml` here or
    /// in a parent]
    #[arg(global = true, short, long, value_name = "INVENTORY")]
    pub inventory: Vec<PathBuf>,
    /// Only hosts matching this pattern (`web*`, `a:b`, `a:&b`, `a:!b`,
    /// `@FILE`: the hosts listed in FILE, such as a retry file)
    #[arg(global = true, short, long, value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Extra variables: KEY=VALUE or @file.yml (repeatable)
    #[arg(global = true, short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
    /// Hosts in flight at once [default: `forks:` of the project file,
    /// else 20]
    #[arg(global = true, short, long, value_name = "N")]
    pub forks: Option<usize>,
    /// Default remote user [default: `user:` of the project file]
    #[arg(global = true, short, long, value_name = "USER")]
    pub user: Option<String>,
    /// Private key file to try after the agent [default: `private_key:`
    /// of the project file]
    #[arg(global = true, long, value_name = "FILE")]
    pub private_key: Option<PathBuf>,
    /// known_hosts file to check host keys against [default:
    /// `known_hosts:` of the project file]
    #[arg(global = true, long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// How strictly host keys are checked
    #[arg(global = true, long, value_enum, default_value_t = HostKeyCheckingArg::Strict)]
    pub host_key_checking: HostKeyCheckingArg,
    /// Run tasks as another user (root unless `--become-user`), as
    /// `ansible-playbook -b`
    #[arg(global = true, short = 'b', long = "become")]
    pub become_: bool,
    /// The user `--become` runs tasks as [default: root]
    #[arg(global = true, long, value_name = "USER")]
    pub become_user: Option<String>,
    /// How to become that user [default: sudo]
    #[arg(global = true, long, value_enum, value_name = "METHOD")]
    pub become_method: Option<BecomeMethodArg>,
    /// Ask for the become password once, on the terminal [default: none, or
    /// `$ARPANET_BECOME_PASS`]
    #[arg(global = true, short = 'K', long)]
    pub ask_become_pass: bool,
    /// Seconds to wait for a TCP connection and the login [default: 10,
    /// or `ConnectTimeout` from ~/.ssh/config]
    #[arg(global = true, long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// How commands run on a host: through one long-lived shell
    /// (`persistent`), or a new SSH channel each (`exec`); the variable
    /// `arpanet_session` wins per host
    #[arg(global = true, long, value_enum, env = "ARPANET_SESSION",
          default_value_t = SessionArg::Persistent, value_name = "MODE")]
    pub session: SessionArg,
    /// Output format
    #[arg(global = true, short, long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// More detail: -v each command sent to each host (secrets masked),
    /// -vv also what it printed, -vvv also how each host was reached and
    /// how each command ended
    #[arg(global = true, short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

/// How commands run on a host (`--session`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SessionArg {
    Persistent,
    Exec,
}

/// How `--become` becomes another user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BecomeMethodArg {
    Sudo,
    Su,
}

/// How strictly a host's key is checked against known_hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostKeyCheckingArg {
    /// Unknown or changed keys make the host unreachable.
    Strict,
    /// Unknown keys are recorded; changed keys are refused.
    AcceptNew,
    /// Any key is accepted (a warning is printed).
    Off,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Only tasks with one of these tags (comma-separated, repeatable)
    #[arg(short, long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Skip tasks with one of these tags
    #[arg(long, value_delimiter = ',')]
    pub skip_tags: Vec<String>,
    /// Change nothing; report what would change
    #[arg(short = 'C', long)]
    pub check: bool,
    /// Show differences in changed files
    #[arg(short = 'D', long)]
    pub diff: bool,
    /// Seconds a task may run on a host before it is stopped and fails
    /// (tasks' own `timeout:` wins; 0: no limit)
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub task_timeout: u64,
    /// Go ahead with a destructive run (`stop -e purge=true`) without
    /// asking; needed when stdin is not a terminal
    #[arg(long)]
    pub yes: bool,
    /// Print the hosts each play would run on, and stop
    #[arg(long)]
    pub list_hosts: bool,
    /// Print the tasks each play would run (after `--tags`), and stop
    #[arg(long)]
    pub list_tasks: bool,
    /// Print the tags of each play's tasks, and stop
    #[arg(long)]
    pub list_tags: bool,
    /// Check the playbooks (syntax, modules, arguments, templates), and stop
    #[arg(long)]
    pub syntax_check: bool,
    /// Start at the first task with this name (or glob), skipping those before
    #[arg(long, value_name = "NAME")]
    pub start_at_task: Option<String>,
    /// Ask before each task: (N)o, (y)es or (c)ontinue without asking; needs
    /// a terminal
    #[arg(long)]
    pub step: bool,
    /// Write no retry file (`PLAYBOOK.retry`, the failed and unreachable
    /// hosts, for `--limit @PLAYBOOK.retry`) [env: ARPANET_RETRY_FILES_ENABLED=false]
    #[arg(long)]
    pub no_retry_file: bool,
    /// Run user playbooks without taking the cluster's lock (built-in
    /// playbooks always take it)
    #[arg(long)]
    pub no_lock: bool,
    /// Built-in playbook names or paths to playbook files
    #[arg(required = true, value_name = "PLAYBOOK")]
    pub playbooks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Seconds the command may run on a host before it is stopped and fails
    /// (0: no limit)
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub task_timeout: u64,
    /// Print each host's output together under its result, rather than
    /// line by line as it arrives
    #[arg(long, conflicts_with = "tty")]
    pub group: bool,
    /// Run on a terminal (pty) on the one selected host, interactively:
    /// keys, window size and exit status pass through, as `ssh -t`
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command to run, after `--`
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The node to log in to
    #[arg(value_name = "NODE")]
    pub node: String,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Keep printing new lines as they are written, until Ctrl-C
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Lines to show from the end of each container's log [default: 100,
    /// or all since `--since`]
    #[arg(short = 'n', long = "tail", value_name = "LINES")]
    pub tail: Option<u64>,
    /// Only lines since this time: a duration (`10m`, `1h30m`), an RFC 3339
    /// date (`2026-11-02T13:00:00Z`, `2026-11-02`) or a Unix timestamp
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only lines matching this regular expression (applied here, on
    /// each line as it arrives)
    #[arg(long, value_name = "REGEX")]
    pub grep: Option<String>,
    /// Services (container names: `consul`, the `stack` entries' names)
    /// [default: every managed container]
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Inventory file or directory (INI or YAML; repeatable) [default:
    /// `$ARPANET_INVENTORY`, else `inventory:` of an `arpanet.yml` here or
    /// in a parent]
    #[arg(short, long, value_name = "INVENTORY")]
    pub inventory: Vec<PathBuf>,
    /// Show one host's resolved variables
    #[arg(long, value_name = "HOST", conflicts_with_all = ["list", "list_hosts"])]
    pub host: Option<String>,
    /// Print exactly what `ansible-inventory --list` prints: each host's
    /// inventory variables only (no defaults, rc file or magic variables)
    #[arg(long, conflicts_with = "list_hosts")]
    pub list: bool,
    /// Print the hosts `--limit` selects (every host without it), one per
    /// line, in Ansible's order, as `ansible PATTERN --list-hosts` does
    #[arg(long)]
    pub list_hosts: bool,
    /// Only hosts matching this pattern
    #[arg(short, long, value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Extra variables: KEY=VALUE or @file.yml
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Inventory file or directory (INI or YAML; repeatable) [default:
    /// `$ARPANET_INVENTORY`, else `inventory:` of an `arpanet.yml` here or
    /// in a parent]
    #[arg(short, long, value_name = "INVENTORY")]
    pub inventory: Vec<PathBuf>,
    /// Host whose variables fill the template
    #[arg(long, value_name = "HOST")]
    pub host: String,
    /// Extra variables: KEY=VALUE or @file.yml
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
    /// Template file, or the name of a built-in template
    #[arg(value_name = "TEMPLATE")]
    pub template: String,
}

#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build images if missing and start the lab's nodes
    Up {
        #[command(flatten)]
        lab: LabTarget,
        /// Number of nodes
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// How many of them are Consul servers
        #[arg(long, default_value_t = 3)]
        servers: usize,
        /// The lab's private network (a /24; the registry gets .2, nodes .11 up)
        #[arg(
            long,
            env = "ARPANET_LAB_SUBNET",
            default_value = "10.77.0.0/24",
            value_name = "CIDR"
        )]
        subnet: String,
        /// Add a bastion node (.10): the nodes' SSH port then answers only
        /// to it, and the inventory reaches them through it (`arpanet_jump`)
        #[arg(long)]
        bastion: bool,
    },
    /// Remove the lab's nodes, network, volumes and registry
    Down {
        #[command(flatten)]
        lab: LabTarget,
        /// Also remove the cached images
        #[arg(long)]
        purge: bool,
    },
    /// Show each node, its address and whether it runs
    Status {
        #[command(flatten)]
        lab: LabTarget,
    },
}

/// Which lab a `lab` command acts on.
#[derive(Debug, Args, Clone)]
pub struct LabTarget {
    /// Where the lab keeps its key, known_hosts and inventory
    #[arg(long, default_value = ".arpanet-lab", value_name = "DIR")]
    pub dir: PathBuf,
    /// Prefix of the lab's containers, network and volumes (several labs can
    /// live side by side under different names) [default: the name `lab up`
    /// recorded in DIR, else `arpanet-lab`]
    #[arg(long, env = "ARPANET_LAB_NAME", value_name = "NAME")]
    pub name: Option<String>,
}
