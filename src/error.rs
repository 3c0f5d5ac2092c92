//! Every way arpanet can fail, with the message a person reads and the exit
//! code the shell sees. Bad input carries its file, line and column so the
//! operator can jump straight to the mistake; host faults carry the host and
//! a hint where the cause is known.

use std::fmt;
use std::path::{Path, PathBuf};

/// Exit codes, as `ansible-playbook` uses them.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const HOST_FAILED: i32 = 2;
    pub const HOST_UNREACHABLE: i32 = 4;
    pub const BAD_INPUT: i32 = 5;
    /// Stopped by Ctrl-C (128 + SIGINT); Ansible uses 99.
    pub const INTERRUPTED: i32 = 130;
}

/// Where in an input file a problem sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based; 0 when unknown.
    pub line: usize,
    /// 1-based; 0 when unknown.
    pub column: usize,
    /// The offending source line, if it could be read.
    pub snippet: Option<String>,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location {
            file: file.into(),
            line,
            column,
            snippet: None,
        }
    }

    /// Fill `snippet` with the line from `source`.
    pub fn with_source(mut self, source: &str) -> Self {
        if self.line > 0 {
            self.snippet = source.lines().nth(self.line - 1).map(str::to_owned);
        }
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        Ok(())
    }
}

/// Read an input file (playbook, inventory, vars, template) as text. Bytes
/// that are not UTF-8 are bad input at the line and column where they start.
pub(crate) fn read_input(path: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let valid = std::str::from_utf8(valid).unwrap_or_default();
        let line = valid.matches('\n').count() + 1;
        let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
        let column = valid[line_start..].chars().count() + 1;
        let shown = String::from_utf8_lossy(e.as_bytes());
        let location = Location::new(path, line, column).with_source(&shown);
        InputError::new(location, InputKind::NotUtf8).into()
    })
}

/// How jump hosts are written, for every message about a bad one.
pub(crate) const JUMP_HINT: &str =
    "write jump hosts as `user@host:port`, hops separated by commas \
     (`admin@bastion:2222,10.0.0.5`) or as a list; `none` connects directly";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input at a known place in a file (inventory, playbook, vars,
    /// template).
    #[error("{0}")]
    Input(Box<InputError>),

    /// Bad command-line options or input that has no file position.
    #[error("{message}{}", hint_suffix(.hint.as_deref()))]
    Usage {
        message: String,
        hint: Option<String>,
    },

    /// Bad command-line input of a known kind, with no file position.
    #[error("{kind}{}", hint_suffix(kind.hint().as_deref()))]
    Arg { kind: UsageKind },

    /// A local file could not be read or written.
    #[error("cannot {action} `{}`: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A host could not be reached or authenticated.
    #[error("{host}: {message}{}", hint_suffix(.hint.as_deref()))]
    Unreachable {
        host: String,
        message: String,
        hint: Option<String>,
    },

    /// A remote operation failed on a reachable host (channel error, transfer).
    #[error("{host}: {message}")]
    Remote { host: String, message: String },

    /// A reachable host refused to let a command run as the become user
    /// (wrong or missing password, not in sudoers).
    #[error("{host}: {message}{}", hint_suffix(.hint.as_deref()))]
    Become {
        host: String,
        message: String,
        hint: Option<String>,
    },

    /// Another run holds the cluster's lock (or it cannot be taken): the
    /// run is refused before it changes anything. Exit code 1, a general
    /// error, as ansible-playbook gives for what is neither bad input nor a
    /// host's failure.
    #[error("{message}{}", hint_suffix(.hint.as_deref()))]
    Locked {
        message: String,
        hint: Option<String>,
    },

    /// The local lab could not be built or run.
    #[error("lab: {message}{}", hint_suffix(.hint.as_deref()))]
    Lab {
        message: String,
        hint: Option<String>,
    },

    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) | Error::Usage { .. } | Error::Arg { .. } => exit::BAD_INPUT,
            // An inventory, playbook or vars file that cannot be read.
            Error::Io { action: "read", .. } => exit::BAD_INPUT,
            Error::Unreachable { .. } => exit::HOST_UNREACHABLE,
            Error::Remote { .. } | Error::Become { .. } => exit::HOST_FAILED,
            Error::Io { .. } | Error::Locked { .. } | Error::Lab { .. } | Error::Internal(_) => {
                exit::ERROR
            }
        }
    }

    /// Bad input of `kind` at `location`.
    pub fn input(location: Location, kind: InputKind) -> Self {
        InputError::new(location, kind).into()
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: None,
        }
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Attach or replace the hint of an input, usage, unreachable or lab
    /// error.
    pub fn with_hint(mut self, text: impl Into<String>) -> Self {
        match &mut self {
            Error::Input(input) => input.hint = Some(text.into()),
            Error::Usage { hint, .. }
            | Error::Unreachable { hint, .. }
            | Error::Become { hint, .. }
            | Error::Locked { hint, .. }
            | Error::Lab { hint, .. } => *hint = Some(text.into()),
            _ => {}
        }
        self
    }
}

/// Bad input at a known place: where, and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    pub location: Location,
    pub kind: InputKind,
    /// A hint from the caller, who knows the context, in place of the
    /// kind's own.
    pub hint: Option<String>,
}

impl InputError {
    pub fn new(location: Location, kind: InputKind) -> Self {
        InputError {
            location,
            kind,
            hint: None,
        }
    }

    /// What to do about it, where that is known.
    pub fn hint(&self) -> Option<String> {
        self.hint.clone().or_else(|| self.kind.hint())
    }
}

impl From<UsageKind> for Error {
    fn from(kind: UsageKind) -> Self {
        Error::Arg { kind }
    }
}

impl From<InputError> for Error {
    fn from(e: InputError) -> Self {
        Error::Input(Box::new(e))
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.kind.to_string();
        let hint = self.hint();
        f.write_str(&located(&self.location, &message, hint.as_deref()))
    }
}

/// What is wrong with an input file. `Display` gives the message and
/// [`InputKind::hint`] the hint: all the wording of bad input is here.
/// `field` is the key the bad value sits under, when there is one.
#[derive(Debug, Clone, PartialEq)]
pub enum InputKind {
    /// The YAML parser's own complaint.
    InvalidYaml {
        message: String,
    },
    EmptyPlaybook,
    /// Bytes that are not UTF-8 text.
    NotUtf8,
    /// A value of the wrong type (`found` and `expected` in serde's words).
    WrongType {
        field: Option<String>,
        found: String,
        expected: String,
    },
    /// A value of the right type that is not accepted.
    BadValue {
        field: Option<String>,
        found: String,
        expected: String,
    },
    /// A word that is not one of a fixed set (`state: strated`).
    UnknownValue {
        field: Option<String>,
        value: String,
        expected: Vec<String>,
    },
    UnknownArgument {
        module: Option<String>,
        argument: String,
        expected: Vec<String>,
    },
    MissingArgument {
        module: Option<String>,
        argument: String,
    },
    /// Arguments that are each fine but do not go together, and other
    /// checks a value's type cannot express.
    Invalid {
        field: Option<String>,
        message: String,
        hint: Option<String>,
    },
    UnknownPlayKey {
        key: String,
        suggestion: Option<String>,
        /// The key is a module or task keyword.
        task_key: bool,
        expected: Vec<String>,
    },
    UnknownTaskKey {
        key: String,
        suggestion: Option<String>,
        /// The task has no module yet, so the key may be a misspelt one.
        maybe_module: bool,
        modules: Vec<String>,
        keywords: Vec<String>,
    },
    /// An Ansible key arpanet does not implement.
    Unsupported {
        key: String,
    },
    DuplicateKey {
        key: String,
    },
    NoModule {
        modules: Vec<String>,
    },
    TwoModules {
        first: String,
        second: String,
    },
    NoHosts,
    /// `import_tasks` beside a key it does not take.
    ImportTasksWith {
        key: String,
    },
    /// A role entry or `import_role` beside a key it does not take.
    RoleWith {
        /// `import_role`, or `None` for an entry of `roles:`.
        import: bool,
        key: String,
        suggestion: Option<String>,
        takes: Vec<String>,
    },
    /// `block` beside a key it does not take (`takes` lists those it does).
    BlockWith {
        key: String,
        takes: Vec<String>,
    },
    /// `rescue` or `always` in a task without `block`.
    WithoutBlock {
        key: String,
    },
    /// Two loop keys in one task (`loop` and `with_items`).
    TwoLoops {
        first: String,
        second: String,
    },
    /// `import_playbook` beside another play key.
    ImportPlaybookWith {
        key: String,
    },
    /// `import_playbook` or `import_tasks` nested too deeply.
    ImportCycle {
        keyword: String,
        name: String,
    },
    ImportNotFound {
        keyword: String,
        name: String,
        looked: String,
    },
    UnknownHandler {
        target: String,
        suggestion: Option<String>,
        handlers: Vec<String>,
    },
    LoopNotList {
        key: String,
    },
    /// A template that does not compile or render, in minijinja's words.
    Template {
        problem: String,
        within: Within,
    },
    /// A name no layer defines when the template renders.
    UndefinedVariable {
        name: String,
        within: Within,
        suggestion: Option<String>,
    },
    UndefinedAttribute {
        attribute: String,
        of: String,
        within: Within,
        suggestion: Option<String>,
    },
    /// A name no layer, play, task or loop defines: it could never render.
    DefinedNowhere {
        name: String,
        within: Within,
        suggestion: Option<String>,
    },
    UnknownFilter {
        name: String,
        within: Within,
        suggestion: Option<String>,
    },
    UnknownTest {
        name: String,
        within: Within,
        suggestion: Option<String>,
    },
    /// `ansible_port` (or `port`) that is not a port number.
    BadPort {
        key: String,
        value: String,
    },
    /// A jump host list (`arpanet_jump`) or `ssh` argument variable that
    /// does not parse.
    BadJump {
        key: String,
        why: String,
    },
    /// A quote that is never closed; `within` is the text, when the
    /// location does not point at it.
    UnterminatedQuote {
        quote: char,
        within: Option<String>,
    },
    /// More text after a value that is one quoted string.
    AfterQuotedValue {
        extra: String,
    },
    /// More than eight `[…]` ranges in one host name.
    TooManyRanges,
    StrayCloseBracket,
    UnclosedRange,
    /// A range that is not `[START:END]` or `[START:END:STEP]`.
    BadRange {
        range: String,
    },
    BadRangeStep {
        range: String,
        step: String,
    },
    /// Range ends that are neither numbers nor single letters.
    BadRangeBounds {
        range: String,
    },
    RangeBackwards {
        range: String,
    },
    /// `[01:100]`: a zero-padded start and an end of another width.
    RangePadding {
        range: String,
        start: String,
        end: String,
    },
    RangeTooLarge {
        range: String,
        count: u64,
        max: usize,
    },
    UnclosedSection,
    AfterSectionHeader {
        text: String,
    },
    BadGroupName {
        name: String,
    },
    UnknownSectionType {
        suffix: String,
        section: String,
        group: String,
    },
    VarsOfUndeclaredGroup {
        group: String,
    },
    /// `key=value` where an INI host line wants a host name.
    VariableNotHost {
        variable: String,
        group: String,
    },
    BadHostName {
        name: String,
    },
    /// `w1:` in an INI host line: YAML read as INI, usually.
    HostEndsInColon {
        name: String,
    },
    NotKeyValue {
        found: String,
        within: KeyValueIn,
    },
    BadVariableName {
        name: String,
        within: KeyValueIn,
    },
    AfterChildGroup {
        text: String,
    },
    /// `all` listed as a child (of `parent`, where that is known).
    AllAsChild {
        parent: Option<String>,
    },
    GroupLoop {
        child: String,
        parent: String,
    },
    UndefinedChildGroup {
        parent: String,
        child: String,
    },
    /// A YAML inventory key that is a list or mapping.
    KeyNotName,
    UnknownGroupKey {
        key: String,
        group: String,
        suggestion: Option<String>,
        expected: Vec<String>,
    },
    /// `-e '[…]'`.
    ExtraVarsList,
    /// A `command` task with neither `cmd` nor `argv`.
    NoCommand,
    /// A `mode` that is neither octal nor symbolic.
    BadMode {
        mode: String,
    },
    TemplateNotUtf8 {
        name: String,
    },
    /// `copy` or `template` with neither `src` nor `content`.
    NoContent {
        module: String,
    },
    SrcNotFound {
        src: String,
        dir: String,
    },
    /// `docker_container` starting a container without `image`.
    NoImage,
    /// `wait_for` with none of `port`, `path`, `url` and `consul`.
    NothingToWaitFor,
    /// An argument whose rendered value has the wrong type.
    RenderedWrongType {
        argument: String,
        problem: String,
    },
    EmptySecretsDir {
        host: String,
    },
    /// A `loop` template that rendered to something other than a list.
    LoopGave {
        value: String,
    },
    /// A problem in an OpenSSH client config file.
    SshConfig(SshConfigProblem),
}

/// Which `key=value` text a problem is in: each has its own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyValueIn {
    /// Variables after an INI inventory host name.
    HostLine,
    /// A line of an INI `[group:vars]` section.
    VarsSection,
    /// A line of `~/.arpanetrc`.
    RcFile,
    /// A `-e KEY=VALUE` argument.
    ExtraVars,
}

/// What is wrong with a line of an OpenSSH client config.
#[derive(Debug, Clone, PartialEq)]
pub enum SshConfigProblem {
    NoArgument { key: String },
    UnbalancedQuotes { key: String },
    OneArgument { key: String },
    NotATime { key: String, value: String },
    NotAPort { value: String },
    BadJump { value: String, why: String },
    NotYesNo { key: String, value: String },
    NotACount { key: String, value: String },
    IncludeTooDeep { max: usize },
    MatchNeedsPattern { criterion: String },
    UnknownMatch { criterion: String },
    MatchEmpty,
}

impl fmt::Display for SshConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SshConfigProblem::*;
        match self {
            NoArgument { key } => write!(f, "`{key}` has no argument"),
            UnbalancedQuotes { key } => write!(f, "unbalanced quotes after `{key}`"),
            OneArgument { key } => write!(f, "`{key}` takes one argument"),
            NotATime { key, value } => {
                write!(f, "`{key} {value}` is not a time (`30`, `1m30s`)")
            }
            NotAPort { value } => write!(f, "`Port {value}` is not a port number"),
            BadJump { value, why } => write!(
                f,
                "`ProxyJump {value}` is not a jump host list: {why} \
                 (expected `[user@]host[:port]`, hops separated by commas, or `none`)"
            ),
            NotYesNo { key, value } => write!(f, "`{key} {value}`: expected `yes` or `no`"),
            NotACount { key, value } => write!(f, "`{key} {value}` is not a count"),
            IncludeTooDeep { max } => {
                write!(f, "`Include` nested more than {max} levels deep (a loop?)")
            }
            MatchNeedsPattern { criterion } => write!(f, "`Match {criterion}` needs a pattern"),
            UnknownMatch { criterion } => write!(
                f,
                "unknown `Match` criterion `{criterion}`; expected `all`, `host`, \
                 `originalhost`, `user`, `localuser`, `canonical`, `final` or `exec`"
            ),
            MatchEmpty => f.write_str("`Match` needs a criterion"),
        }
    }
}

/// Where in a playbook string a template problem is: the location points at
/// the string's key, this says which text.
#[derive(Debug, Clone, PartialEq)]
pub enum Within {
    /// A template file: the location is exact.
    File,
    /// A one-line string from a playbook.
    Inline(String),
    /// Line `line` of a multi-line string from a playbook.
    Line { line: usize, text: String },
}

impl fmt::Display for Within {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Within::File => Ok(()),
            Within::Inline(source) => write!(f, " in `{source}`"),
            Within::Line { line, text } => {
                write!(f, " (line {line} of the template: `{text}`)")
            }
        }
    }
}

/// How `-e` is written: the hint for any bad `-e` value.
pub(crate) const EXTRA_VARS_HINT: &str =
    "use `-e KEY=VALUE`, `-e '{\"key\": value}'` or `-e @vars.yml`";

/// The hint for a YAML problem in a vars file.
pub(crate) const VARS_FILE_HINT: &str =
    "a vars file is a YAML mapping of names to values, like `consul_expect: 3`";

/// `` `a`, `b`, `c` ``
fn ticked<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| format!("`{}`", w.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn did_you_mean(suggestion: &Option<String>) -> Option<String> {
    suggestion.as_ref().map(|s| format!("did you mean `{s}`?"))
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use InputKind::*;
        let field = |field: &Option<String>| match field {
            Some(name) => format!("`{name}`: "),
            None => String::new(),
        };
        match self {
            InvalidYaml { message } => write!(f, "invalid YAML: {message}"),
            EmptyPlaybook => f.write_str("playbook has no plays"),
            NotUtf8 => f.write_str("the file is not UTF-8 text"),
            WrongType {
                field: name,
                found,
                expected,
            } => write!(
                f,
                "{}invalid type: {found}, expected {expected}",
                field(name)
            ),
            BadValue {
                field: name,
                found,
                expected,
            } => write!(f, "{}expected {expected}, found {found}", field(name)),
            UnknownValue {
                field: name, value, ..
            } => write!(f, "{}unknown value `{value}`", field(name)),
            UnknownArgument {
                module, argument, ..
            } => write!(f, "{}unknown argument `{argument}`", field(module)),
            MissingArgument { module, argument } => {
                write!(f, "{}missing argument `{argument}`", field(module))
            }
            Invalid {
                field: name,
                message,
                ..
            } => write!(f, "{}{message}", field(name)),
            UnknownPlayKey { key, .. } => write!(f, "unknown key `{key}` in play"),
            UnknownTaskKey {
                key, maybe_module, ..
            } => match maybe_module {
                true => write!(f, "unknown module or key `{key}` in task"),
                false => write!(f, "unknown key `{key}` in task"),
            },
            Unsupported { key } => write!(f, "`{key}` is not supported by arpanet playbooks"),
            DuplicateKey { key } => write!(f, "duplicate key `{key}`"),
            NoModule { .. } => f.write_str("task has no module"),
            TwoModules { first, second } => {
                write!(f, "a task takes one module, found `{first}` and `{second}`")
            }
            NoHosts => f.write_str("play has no `hosts`"),
            ImportTasksWith { key } => write!(
                f,
                "`import_tasks` takes only `when`, `tags` and `vars` beside it, not `{key}`"
            ),
            BlockWith { key, .. } => write!(f, "a `block` does not take `{key}`"),
            RoleWith {
                import: false,
                key,
                ..
            } => write!(f, "a role entry does not take `{key}`"),
            RoleWith { key, .. } => write!(f, "`import_role` does not take `{key}`"),
            WithoutBlock { key } => write!(f, "`{key}` belongs to a `block`"),
            TwoLoops { first, second } => {
                write!(f, "a task takes one loop, found `{first}` and `{second}`")
            }
            ImportPlaybookWith { key } => write!(
                f,
                "`import_playbook` takes only `name` and `tags` beside it; `{key}` belongs in \
                 the imported playbook"
            ),
            ImportCycle { keyword, name } => write!(f, "`{keyword}: {name}` nests too deeply"),
            ImportNotFound { keyword, name, .. } => match keyword.as_str() {
                "import_tasks" => write!(f, "no task file `{name}` to import"),
                "include_tasks" => write!(f, "no task file `{name}` to include"),
                "role" => write!(f, "no role `{name}`"),
                "vars_files" => write!(f, "no vars file `{name}`"),
                _ => write!(f, "no playbook `{name}` to import"),
            },
            UnknownHandler { target, .. } => {
                write!(f, "`notify` names no handler of this play: `{target}`")
            }
            LoopNotList { key } => write!(f, "`{key}` takes a list, or a template that gives one"),
            Template { problem, within } => write!(f, "{problem}{within}"),
            UndefinedVariable { name, within, .. } => {
                write!(f, "undefined variable `{name}`{within}")
            }
            UndefinedAttribute {
                attribute,
                of,
                within,
                ..
            } => write!(f, "undefined attribute `{attribute}` of `{of}`{within}"),
            DefinedNowhere { name, within, .. } => write!(
                f,
                "undefined variable `{name}`{within}: no inventory, vars file, play, task or `-e` defines it"
            ),
            UnknownFilter { name, within, .. } => write!(f, "unknown filter `{name}`{within}"),
            UnknownTest { name, within, .. } => write!(f, "unknown test `{name}`{within}"),
            BadPort { key, value } => {
                write!(
                    f,
                    "`{key}` must be a port number from 1 to 65535, got `{value}`"
                )
            }
            BadJump { key, why } => write!(f, "`{key}`: {why}"),
            UnterminatedQuote { quote, within } => {
                write!(f, "unterminated `{quote}` quote")?;
                match within {
                    Some(text) => write!(f, " in `{text}`"),
                    None => Ok(()),
                }
            }
            AfterQuotedValue { extra } => write!(f, "unexpected `{extra}` after the quoted value"),
            TooManyRanges => f.write_str("more than 8 ranges in one host name"),
            StrayCloseBracket => f.write_str("`]` without `[` in host name"),
            UnclosedRange => f.write_str("unclosed `[` in host range"),
            BadRange { range } | BadRangeBounds { range } => {
                write!(f, "invalid host range `[{range}]`")
            }
            BadRangeStep { range, step } => {
                write!(f, "invalid step `{step}` in host range `[{range}]`")
            }
            RangeBackwards { range } => write!(f, "host range `[{range}]` runs backwards"),
            RangePadding { range, start, end } => write!(
                f,
                "host range `[{range}]` pads `{start}` with zeros, so `{end}` needs the same width"
            ),
            RangeTooLarge { range, count, max } => write!(
                f,
                "host range `[{range}]` names {count} hosts; at most {max} are allowed"
            ),
            UnclosedSection => f.write_str("unclosed section header"),
            AfterSectionHeader { text } => {
                write!(f, "unexpected `{text}` after section header")
            }
            BadGroupName { name } => write!(f, "invalid group name `{name}`"),
            UnknownSectionType {
                suffix, section, ..
            } => write!(f, "unknown section type `{suffix}` in `[{section}]`"),
            VarsOfUndeclaredGroup { group } => write!(
                f,
                "`[{group}:vars]` sets variables of group `{group}`, which is never declared"
            ),
            VariableNotHost { variable, .. } => {
                write!(f, "expected a host name, found the variable `{variable}`")
            }
            BadHostName { name } => write!(f, "invalid host name `{name}`"),
            HostEndsInColon { name } => {
                write!(f, "invalid host name `{name}`: it ends in `:` without a port")
            }
            NotKeyValue { found, within } => match within {
                KeyValueIn::HostLine => {
                    write!(f, "expected `key=value` after the host name, found `{found}`")
                }
                KeyValueIn::VarsSection => write!(f, "expected `key=value`, found `{found}`"),
                KeyValueIn::RcFile | KeyValueIn::ExtraVars => {
                    write!(f, "expected `KEY=VALUE`, found `{found}`")
                }
            },
            BadVariableName { name, .. } => write!(f, "invalid variable name `{name}`"),
            AfterChildGroup { text } => write!(f, "unexpected `{text}` after child group name"),
            AllAsChild { parent: None } => f.write_str("group `all` cannot be a child group"),
            AllAsChild {
                parent: Some(parent),
            } => write!(f, "group `all` cannot be a child of `{parent}`"),
            GroupLoop { child, parent } => write!(
                f,
                "making `{child}` a child of `{parent}` creates a loop: `{parent}` is already below `{child}`"
            ),
            UndefinedChildGroup { parent, child } => write!(
                f,
                "`[{parent}:children]` includes undefined group `{child}`"
            ),
            KeyNotName => f.write_str("a key must be a name, not a list or mapping"),
            UnknownGroupKey { key, group, .. } => {
                write!(f, "unknown key `{key}` in group `{group}`")
            }
            ExtraVarsList => f.write_str("extra vars must be a mapping, not a list"),
            NoCommand => f.write_str("the task gives no command to run"),
            BadMode { mode } => write!(f, "`mode` `{mode}` is neither octal nor symbolic"),
            TemplateNotUtf8 { name } => write!(f, "template `{name}` is not UTF-8 text"),
            NoContent { module } => write!(f, "`{module}` needs either `src` or `content`"),
            SrcNotFound { src, .. } => write!(f, "`src` file `{src}` not found"),
            NoImage => f.write_str("`docker_container` needs `image` to start a container"),
            NothingToWaitFor => {
                f.write_str("`wait_for` needs a `port`, a `path`, a `url` or `consul`")
            }
            RenderedWrongType { argument, problem } => {
                write!(f, "after templating, `{argument}` is wrong: {problem}")
            }
            EmptySecretsDir { host } => write!(f, "`cluster_secrets` `dir` is empty for `{host}`"),
            LoopGave { value } => write!(f, "`loop` must give a list, got `{value}`"),
            SshConfig(problem) => write!(f, "{problem}"),
        }
    }
}

impl InputKind {
    /// What to do about it, where that is known.
    pub fn hint(&self) -> Option<String> {
        use InputKind::*;
        match self {
            EmptyPlaybook => Some("a playbook is a list of plays, such as `- hosts: all`".into()),
            BadJump { .. } => Some(JUMP_HINT.into()),
            NotUtf8 => Some("save it as UTF-8 (binary files belong in `copy`'s `src`)".into()),
            UnknownValue {
                value, expected, ..
            } => crate::suggest::did_you_mean(value, expected.iter().map(String::as_str))
                .or_else(|| Some(format!("expected one of {}", ticked(expected)))),
            UnknownArgument {
                module,
                argument,
                expected,
            } => crate::suggest::did_you_mean(argument, expected.iter().map(String::as_str))
                .or_else(|| match module {
                    Some(module) if !expected.is_empty() => {
                        Some(format!("`{module}` takes {}", ticked(expected)))
                    }
                    _ => None,
                }),
            Invalid { hint, .. } => hint.clone(),
            UnknownPlayKey {
                suggestion,
                task_key,
                expected,
                ..
            } => did_you_mean(suggestion).or_else(|| match task_key {
                true => Some("tasks go in a list under `tasks:`".into()),
                false => Some(format!("a play takes {}", ticked(expected))),
            }),
            UnknownTaskKey {
                suggestion,
                modules,
                keywords,
                ..
            } => did_you_mean(suggestion).or_else(|| {
                Some(format!(
                    "a task takes one module ({}) and keywords ({})",
                    ticked(modules),
                    ticked(keywords)
                ))
            }),
            NoModule { modules } => Some(format!("add one of {}", ticked(modules))),
            TwoModules { .. } => Some("split it into two tasks".into()),
            NoHosts => Some("add `hosts: all`, or a group such as `hosts: servers`".into()),
            ImportCycle { keyword, .. } => Some(match keyword.as_str() {
                "import_tasks" => "task files import each other in a cycle".into(),
                _ => "playbooks import each other in a cycle".into(),
            }),
            ImportNotFound { looked, .. } => Some(looked.clone()),
            UnknownHandler {
                suggestion,
                handlers,
                ..
            } => did_you_mean(suggestion).or_else(|| match handlers.is_empty() {
                true => Some("define it under the play's `handlers:`".into()),
                false => Some(format!("handlers in this play: {}", ticked(handlers))),
            }),
            UndefinedVariable { suggestion, .. }
            | UnknownFilter { suggestion, .. }
            | UnknownTest { suggestion, .. } => did_you_mean(suggestion),
            UndefinedAttribute { suggestion, of, .. } => suggestion
                .as_ref()
                .map(|s| format!("did you mean `{of}.{s}`?")),
            UnterminatedQuote { quote, .. } => Some(format!("close it with another `{quote}`")),
            AfterQuotedValue { .. } => {
                Some("quote the whole value, or put a `#` before a comment".into())
            }
            TooManyRanges => Some("split the name into several entries".into()),
            StrayCloseBracket | UnclosedRange | BadRange { .. } => {
                Some("a range is `[START:END]` or `[START:END:STEP]`, as in `node[1:3]`".into())
            }
            BadRangeStep { .. } => Some("the step is a whole number from 1, as in `[0:10:2]`".into()),
            BadRangeBounds { .. } => {
                Some("use numbers (`[1:3]`) or single letters (`[a:c]`)".into())
            }
            RangeBackwards { .. } => Some("put the smaller end first".into()),
            RangePadding { .. } => Some("write both ends with the same number of digits, as in `[01:10]`".into()),
            RangeTooLarge { .. } => Some("split it into smaller ranges".into()),
            UnclosedSection => Some(
                "a section header looks like `[servers]`, `[servers:vars]` or `[servers:children]`"
                    .into(),
            ),
            UnknownSectionType { group, .. } => Some(format!(
                "use `[{group}]`, `[{group}:vars]` or `[{group}:children]`"
            )),
            AfterSectionHeader { .. } => Some("a comment after a header starts with `#` or `;`".into()),
            BadGroupName { .. } => {
                Some("group names cannot contain spaces or any of `:,[]=!&~*?'\"#;`".into())
            }
            VarsOfUndeclaredGroup { group } => Some(format!(
                "add a `[{group}]` section, or list `{group}` under some `[group:children]` and declare it"
            )),
            VariableNotHost { group, .. } => Some(format!(
                "variables for every host of a group go in a `[{group}:vars]` section"
            )),
            BadHostName { .. } => Some("a host name cannot be empty or contain `,` or `=`".into()),
            HostEndsInColon { .. } => Some(
                "write a port after the colon (`w1:2222`); a YAML inventory is read as YAML \
                 when its name ends in `.yml`, `.yaml` or has no extension"
                    .into(),
            ),
            NotKeyValue { found, within } => Some(match within {
                KeyValueIn::HostLine => {
                    "put one host per line; host variables are written `name=value`".into()
                }
                KeyValueIn::VarsSection if found.contains(':') => {
                    "INI variables are written `key=value`, not `key: value`".into()
                }
                KeyValueIn::VarsSection => "each line of a `:vars` section is `key=value`".into(),
                KeyValueIn::RcFile => {
                    "each line of the rc file is `KEY=VALUE`, e.g. `CONSUL_EXPECT=3`".into()
                }
                KeyValueIn::ExtraVars => EXTRA_VARS_HINT.into(),
            }),
            BadVariableName { within, .. } => Some(match within {
                KeyValueIn::HostLine | KeyValueIn::VarsSection => {
                    "a variable name cannot be empty or contain spaces".into()
                }
                KeyValueIn::RcFile | KeyValueIn::ExtraVars => {
                    "a variable name is letters, digits and `_`, and does not start with a digit"
                        .into()
                }
            }),
            AfterChildGroup { .. } => Some("list one child group per line".into()),
            AllAsChild { .. } => Some("every group is already below `all`".into()),
            GroupLoop { .. } => Some("groups may not contain themselves, directly or not".into()),
            UndefinedChildGroup { child, .. } => Some(format!(
                "declare it with a `[{child}]` or `[{child}:children]` section"
            )),
            KeyNotName => Some("write the key as a plain word, such as `servers`".into()),
            UnknownGroupKey {
                suggestion,
                expected,
                ..
            } => did_you_mean(suggestion)
                .or_else(|| Some(format!("a group takes {}", ticked(expected)))),
            ExtraVarsList => Some(EXTRA_VARS_HINT.into()),
            NoCommand => Some("give the command after `command:`, or as `cmd` or `argv`".into()),
            BadMode { .. } => Some("write it in octal (`'0644'`) or symbolically (`u=rw,go=r`)".into()),
            TemplateNotUtf8 { .. } => {
                Some("`template` renders text; send other bytes with `copy`".into())
            }
            SrcNotFound { dir, .. } => Some(format!(
                "looked in `{dir}` and its `templates/` and `files/` folders"
            )),
            NoImage => Some("add `image`, such as `image: nginx:1.27`".into()),
            LoopGave { .. } => Some("`loop` takes a list, or a template that gives one".into()),
            BlockWith { key, takes } => Some(format!(
                "a block takes {}; put `{key}` on the tasks inside it",
                ticked(takes)
            )),
            RoleWith {
                import,
                key,
                suggestion,
                takes,
            } => did_you_mean(suggestion).or_else(|| {
                Some(match import {
                    true => format!("beside `import_role` a task takes {}", ticked(takes)),
                    false => format!(
                        "a role entry takes `role`, {} and role parameters, which are \
                         variable names (`{key}` is not one)",
                        ticked(takes)
                    ),
                })
            }),
            WithoutBlock { key } => Some(format!(
                "add `block:` with the tasks that `{key}` follows, as in Ansible"
            )),
            TwoLoops { .. } => Some("keep one; `loop` is the current form".into()),
            DefinedNowhere { suggestion, .. } => did_you_mean(suggestion).or_else(|| {
                Some("define it in the inventory, the play's `vars`, or with `-e`".into())
            }),
            InvalidYaml { .. }
            | Template { .. }
            | WrongType { .. }
            | BadValue { .. }
            | MissingArgument { .. }
            | Unsupported { .. }
            | DuplicateKey { .. }
            | ImportTasksWith { .. }
            | ImportPlaybookWith { .. }
            | LoopNotList { .. }
            | BadPort { .. }
            | NoContent { .. }
            | NothingToWaitFor
            | RenderedWrongType { .. }
            | EmptySecretsDir { .. }
            | SshConfig(_) => None,
        }
    }
}

/// Bad command-line input that has no file position: what is wrong, in
/// `Display`, and what to do, in [`UsageKind::hint`].
#[derive(Debug, Clone, PartialEq)]
pub enum UsageKind {
    /// A `--limit` or `hosts:` pattern longer than `max` bytes; `start` is
    /// its beginning.
    PatternTooLong {
        start: String,
        max: usize,
    },
    EmptyPattern {
        pattern: String,
    },
    /// A pattern that matches no host: a near name, or the inventory's
    /// groups (at most eight, and how many more).
    NoMatch {
        pattern: String,
        suggestion: Option<String>,
        inventory: String,
        groups: Vec<String>,
        more: usize,
    },
    RegexPattern {
        term: String,
        pattern: String,
        message: String,
    },
    /// A name in `--limit` that is no host or group: a typo, which would
    /// otherwise drop out of the pattern unseen (`all:!nod1` runs on node1).
    UnknownLimitName {
        name: String,
        limit: String,
        suggestion: Option<String>,
    },
    /// `--limit @FILE` names a file that cannot be read.
    LimitFile {
        path: String,
        message: String,
    },
    UnknownHost {
        host: String,
        inventory: String,
        suggestion: Option<String>,
    },
    /// Neither a playbook file nor a built-in playbook.
    NoPlaybook {
        name: String,
        suggestion: Option<String>,
        builtins: Vec<String>,
    },
}

impl UsageKind {
    fn looks_like_path(name: &str) -> bool {
        name.contains('/') || name.ends_with(".yml") || name.ends_with(".yaml")
    }

    /// What to do about it, where that is known.
    pub fn hint(&self) -> Option<String> {
        use UsageKind::*;
        match self {
            PatternTooLong { .. } => None,
            EmptyPattern { .. } => Some("use a group or host name, `all`, or `name1,name2`".into()),
            UnknownLimitName { suggestion, .. } => did_you_mean(suggestion).or_else(|| {
                Some("a glob (`web*`) or `~regex` may match nothing; a plain name must be a host or group".into())
            }),
            NoMatch {
                suggestion,
                inventory,
                groups,
                more,
                ..
            } => did_you_mean(suggestion).or_else(|| {
                let more = match more {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                };
                Some(format!("groups in `{inventory}`: {}{more}", ticked(groups)))
            }),
            RegexPattern { .. } => Some(
                "a `~` pattern is a regular expression matched from the start of each name".into(),
            ),
            LimitFile { .. } => Some("`@FILE` is a file of host names, one per line".into()),
            UnknownHost { suggestion, .. } => did_you_mean(suggestion),
            NoPlaybook {
                suggestion,
                builtins,
                ..
            } => Some(match suggestion {
                Some(s) => format!(
                    "did you mean `{s}`? built-in playbooks: {}",
                    ticked(builtins)
                ),
                None => format!("built-in playbooks: {}", ticked(builtins)),
            }),
        }
    }
}

impl fmt::Display for UsageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use UsageKind::*;
        match self {
            PatternTooLong { start, max } => {
                write!(f, "host pattern `{start}…` is longer than {max} bytes")
            }
            EmptyPattern { pattern } => write!(f, "empty host pattern `{pattern}`"),
            NoMatch { pattern, .. } => write!(f, "no hosts match `{pattern}`"),
            UnknownLimitName { name, limit, .. } => write!(
                f,
                "`--limit {limit}`: `{name}` is no host or group of the inventory"
            ),
            RegexPattern {
                term,
                pattern,
                message,
            } => write!(
                f,
                "invalid regular expression `{term}` in `{pattern}`: {message}"
            ),
            LimitFile { path, message } => write!(f, "cannot read limit file `{path}`: {message}"),
            UnknownHost {
                host, inventory, ..
            } => write!(f, "unknown host `{host}` in `{inventory}`"),
            NoPlaybook { name, .. } if Self::looks_like_path(name) => {
                write!(f, "playbook file `{name}` does not exist")
            }
            NoPlaybook { name, .. } => {
                write!(f, "no playbook file or built-in playbook named `{name}`")
            }
        }
    }
}

fn hint_suffix(hint: Option<&str>) -> String {
    hint.map(|h| format!("\nhint: {h}")).unwrap_or_default()
}

fn located(location: &Location, message: &str, hint: Option<&str>) -> String {
    let mut out = format!("{location}: {message}");
    if let Some(snippet) = &location.snippet {
        let number = location.line.to_string();
        let pad = " ".repeat(number.len());
        let (snippet, column) = window(snippet, location.column);
        out.push_str(&format!("\n{pad} |\n{number} | {snippet}"));
        if column > 0 {
            let caret_pad: String = snippet
                .chars()
                .take(column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("\n{pad} | {caret_pad}^"));
        }
    }
    out.push_str(&hint_suffix(hint));
    out
}

/// At most this many characters of a source line are shown.
const SNIPPET_WIDTH: usize = 100;

/// The part of a long `line` around 1-based `column` (0: its start), with
/// `…` where it was cut, and the column within that part.
fn window(line: &str, column: usize) -> (String, usize) {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= SNIPPET_WIDTH {
        return (line.to_owned(), column);
    }
    let at = column.saturating_sub(1).min(chars.len());
    let start = at.saturating_sub(SNIPPET_WIDTH * 2 / 3);
    let end = (start + SNIPPET_WIDTH).min(chars.len());
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push('…');
    }
    let column = match column {
        0 => 0,
        _ => at - start + 1 + usize::from(start > 0),
    };
    (out, column)
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn located_error_shows_file_line_and_caret() {
        let loc = Location::new("site.yml", 2, 5).with_source("- hosts: all\n    nmae: x\n");
        let kind = InputKind::UnknownPlayKey {
            key: "nmae".into(),
            suggestion: Some("name".into()),
            task_key: false,
            expected: Vec::new(),
        };
        let err = Error::input(loc, kind);
        let text = err.to_string();
        assert!(
            text.starts_with("site.yml:2:5: unknown key `nmae` in play"),
            "{text}"
        );
        assert!(text.contains("2 |     nmae: x"), "{text}");
        assert!(text.contains("  |     ^"), "{text}");
        assert!(text.ends_with("hint: did you mean `name`?"), "{text}");
        assert_eq!(err.exit_code(), exit::BAD_INPUT);
    }

    #[test]
    fn long_lines_show_a_window_around_the_column() {
        let line = format!("{}X{}", "a".repeat(5000), "b".repeat(5000));
        let loc = Location::new("f.yml", 1, 5001).with_source(&line);
        let text = Error::input(loc, InputKind::NoHosts).to_string();
        let lines: Vec<&str> = text.lines().collect();
        let shown = lines[2].strip_prefix("1 | ").unwrap();
        let caret = lines[3].strip_prefix("  | ").unwrap();
        assert!(shown.chars().count() <= SNIPPET_WIDTH + 2, "{shown}");
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        let caret_at = caret.chars().count() - 1;
        assert_eq!(shown.chars().nth(caret_at), Some('X'), "{text}");
    }
}

/// Something in an input file that arpanet reads as Ansible does but that
/// is probably a mistake: printed as a warning with its place, never fatal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InputWarning {
    /// A key set twice in one host line, `:vars` section or YAML mapping.
    SetTwice { key: String },
    /// A host listed twice in one group.
    HostListedTwice { host: String, group: String },
}

impl fmt::Display for InputWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputWarning::SetTwice { key } => {
                write!(f, "`{key}` is set twice; the last value wins, as in Ansible")
            }
            InputWarning::HostListedTwice { host, group } => write!(
                f,
                "host `{host}` is listed twice in group `{group}`; it keeps its first place and gets both lines' variables, as in Ansible"
            ),
        }
    }
}

/// A warning at `file:line`.
pub(crate) fn located_warning(file: &Path, line: usize, warning: InputWarning) -> String {
    format!("{}:{line}: {warning}", file.display())
}
