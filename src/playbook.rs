//! The typed playbook model: plays, tasks and a `Module` enum, parsed from
//! Ansible-shaped YAML. Unknown keys and modules are rejected with their
//! file, line and a suggestion for near misses. String arguments are
//! templates, rendered per host when the task runs.

use std::path::{Path, PathBuf};

use crate::error::{Location, Result};
use crate::vars::Vars;

#[derive(Debug, Clone)]
pub struct Playbook {
    /// The file it came from, or `<builtin>/NAME.yml`.
    pub source: PathBuf,
    /// Where relative `src:` paths are looked up (the playbook's directory).
    pub dir: PathBuf,
    pub plays: Vec<Play>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Serial {
    Count(usize),
    Percent(f64),
}

#[derive(Debug, Clone)]
pub struct Play {
    pub name: String,
    /// Host pattern, same language as `--limit`.
    pub hosts: String,
    pub serial: Option<Serial>,
    pub max_fail_percentage: Option<f64>,
    pub vars: Vars,
    pub tags: Vec<String>,
    pub tasks: Vec<Task>,
    pub handlers: Vec<Task>,
    pub location: Location,
}

/// A condition: one or more minijinja expressions that must all be true.
/// A YAML bool becomes `"true"` or `"false"`.
pub type Condition = Vec<String>;

#[derive(Debug, Clone)]
pub struct Task {
    /// The given name, else `MODULE: first argument` (e.g. `command: echo hi`).
    pub name: String,
    pub module: Module,
    pub when: Condition,
    pub tags: Vec<String>,
    pub notify: Vec<String>,
    pub register: Option<String>,
    /// Extra attempts after the first; defaults to 3 when `until` is set.
    pub retries: Option<u32>,
    /// Seconds between attempts (default 5).
    pub delay: Option<f64>,
    pub until: Condition,
    pub ignore_errors: bool,
    pub run_once: bool,
    pub changed_when: Condition,
    pub failed_when: Condition,
    pub no_log: bool,
    /// Extra vars for this task (`vars:`), templated.
    pub vars: Vars,
    /// Where the task starts in its file.
    pub location: Location,
}

/// One task kind and its arguments. `String` fields are templates.
#[derive(Debug, Clone, PartialEq)]
pub enum Module {
    Command(CommandArgs),
    Shell(CommandArgs),
    Template(FileContentArgs),
    Copy(FileContentArgs),
    File(FileArgs),
    Service(ServiceArgs),
    WaitFor(WaitForArgs),
    Debug(DebugArgs),
    SetFact(Vars),
}

impl Module {
    /// The name as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            Module::Command(_) => "command",
            Module::Shell(_) => "shell",
            Module::Template(_) => "template",
            Module::Copy(_) => "copy",
            Module::File(_) => "file",
            Module::Service(_) => "service",
            Module::WaitFor(_) => "wait_for",
            Module::Debug(_) => "debug",
            Module::SetFact(_) => "set_fact",
        }
    }
}

/// `command` and `shell`. `command: echo hi` sets `cmd`; `argv:` a list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandArgs {
    pub cmd: Option<String>,
    /// `command` only: each item is one argument, quoted for the remote shell.
    pub argv: Option<Vec<String>>,
    pub chdir: Option<String>,
    /// Skip when this path exists.
    pub creates: Option<String>,
    /// Skip unless this path exists.
    pub removes: Option<String>,
    pub stdin: Option<String>,
}

/// `template` (src is a template file) and `copy` (`src` file or `content`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileContentArgs {
    pub src: Option<String>,
    /// `copy` only.
    pub content: Option<String>,
    pub dest: String,
    /// Octal string such as `"0644"`.
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// Keep the old file as `DEST.TIMESTAMP~` before replacing it.
    pub backup: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FileState {
    #[default]
    File,
    Directory,
    Absent,
    Touch,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileArgs {
    pub path: String,
    pub state: FileState,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceArgs {
    pub name: String,
    pub state: Option<ServiceState>,
    pub enabled: Option<bool>,
    pub daemon_reload: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PortState {
    #[default]
    Started,
    Stopped,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WaitForArgs {
    /// Default `127.0.0.1`, as seen from the remote host.
    pub host: String,
    /// A template so `{{ consul_port }}` works; must render to a port number.
    pub port: Option<String>,
    /// File to wait for, instead of a port.
    pub path: Option<String>,
    pub state: PortState,
    /// Seconds before the first check.
    pub delay: f64,
    /// Seconds before giving up (default 300).
    pub timeout: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DebugArgs {
    Msg(String),
    Var(String),
}

impl Playbook {
    /// Read and parse a playbook file.
    pub fn load(path: &Path) -> Result<Self> {
        let _ = path;
        todo!("Playbook::load")
    }

    /// Parse `text` as if read from `source`; relative paths resolve in `dir`.
    pub fn parse(source: &Path, dir: &Path, text: &str) -> Result<Self> {
        let _ = (source, dir, text);
        todo!("Playbook::parse")
    }
}

/// The YAML text of a built-in playbook (`bootstrap`, `setup`, ...).
pub fn builtin(name: &str) -> Option<&'static str> {
    let _ = name;
    None
}

/// Which folder beside a playbook a relative `src:` may live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrcKind {
    Template,
    File,
}

impl Playbook {
    pub fn resolve_src(&self, src: &str, kind: SrcKind) -> Option<PathBuf> {
        let _ = (src, kind);
        todo!()
    }
}

pub fn resolve(arg: &str) -> Result<Playbook> {
    let _ = arg;
    todo!()
}

pub fn builtin_template(name: &str) -> Option<&'static str> {
    let _ = name;
    None
}
