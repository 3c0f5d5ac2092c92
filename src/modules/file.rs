//! `template`, `copy` and `file`: files on the host. Content is compared by
//! SHA-256 before anything is written, so unchanged files are left alone and
//! report `ok`. A write is atomic: the bytes go to a temp file in the
//! destination's directory, which is renamed into place only once its
//! length and SHA-256 match what was sent. A transfer cut short (a lost
//! link, arpanet killed) ends the remote script's input early; it then
//! removes its temp file and leaves the destination alone, however late the
//! host notices. Content is bytes end to end (`copy` of any file);
//! `template` renders text.
//!
//! Each task is one round trip where it can be: content up to
//! [`ONE_TRIP_MAX`] travels with a script that compares and writes on the
//! host, and `file` judges and applies in one script. Larger content, and
//! `--diff` (which needs the old content), take a `stat` first.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{args_map, read_src, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::{Error, InputKind, Result};
use crate::playbook::values::{text, Flag, Mode, Text};
use crate::transport::quote;
use crate::yaml::Node;

/// `template` (src is a template file) and `copy` (`src` file or `content`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FileContentArgs {
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

impl FileContentArgs {
    pub(super) fn templates(&self) -> Vec<&str> {
        let mut out = vec![self.dest.as_str()];
        for s in [
            &self.src,
            &self.content,
            &self.mode,
            &self.owner,
            &self.group,
        ] {
            out.extend(s.as_deref());
        }
        out
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FileState {
    #[default]
    File,
    Directory,
    Absent,
    Touch,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FileArgs {
    pub path: String,
    pub state: FileState,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct File(pub FileArgs);

pub(super) struct Def;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMap {
    #[serde(alias = "dest", alias = "name")]
    path: Text,
    state: Option<FileState>,
    mode: Option<Mode>,
    owner: Option<Text>,
    group: Option<Text>,
}

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "file"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: FileMap = args_map(node, "a mapping with `path`")?;
        Ok(Arc::new(File(FileArgs {
            path: m.path.0,
            state: m.state.unwrap_or_default(),
            mode: m.mode.map(|m| m.0),
            owner: text(m.owner),
            group: text(m.group),
        })))
    }
}

impl Module for File {
    fn name(&self) -> &'static str {
        "file"
    }

    fn summary(&self) -> String {
        self.0.path.clone()
    }

    fn templates(&self) -> Vec<&str> {
        let mut out = vec![self.0.path.as_str()];
        for s in [&self.0.mode, &self.0.owner, &self.0.group] {
            out.extend(s.as_deref());
        }
        out
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(file(&self.0, ctx))
    }
}

/// The arguments `template` and `copy` share, as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ContentMap {
    pub src: Option<Text>,
    pub content: Option<Text>,
    pub dest: Text,
    pub mode: Option<Mode>,
    pub owner: Option<Text>,
    pub group: Option<Text>,
    pub backup: Option<Flag>,
}

impl ContentMap {
    pub(super) fn args(self) -> FileContentArgs {
        FileContentArgs {
            src: text(self.src),
            content: text(self.content),
            dest: self.dest.0,
            mode: self.mode.map(|m| m.0),
            owner: text(self.owner),
            group: text(self.group),
            backup: self.backup.is_some_and(|f| f.0),
        }
    }
}

/// The type of a remote path, from the file-type bits of its raw mode (never
/// from `stat -c %F`, whose words are translated: `reguläre Datei`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Directory,
    Symlink,
    Other,
}

impl Kind {
    /// From `st_mode` as `stat -c %f` prints it (hexadecimal).
    fn from_raw_mode(raw: u32) -> Kind {
        match raw & 0o170000 {
            0o100000 => Kind::File,
            0o040000 => Kind::Directory,
            0o120000 => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::File => "regular file",
            Kind::Directory => "directory",
            Kind::Symlink => "dangling symbolic link",
            Kind::Other => "special file (device, socket or pipe)",
        })
    }
}

/// What `stat` says about a remote path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Remote {
    kind: Kind,
    mode: String,
    owner: String,
    group: String,
    uid: String,
    gid: String,
    sha256: Option<String>,
}

/// One round trip: the path's type, mode, owner, group and (for regular
/// files) content hash, or `None` when it does not exist.
async fn stat(ctx: &Context<'_>, path: &str, hash: bool) -> Result<Option<Remote>, Outcome> {
    let p = quote(path);
    let hash_cmd = if hash {
        format!("; if [ -f {p} ]; then sha256sum < {p}; fi")
    } else {
        String::new()
    };
    // `-L`: a symlink is judged, and written, through to what it points at.
    // Only numbers and names are read back (`%f` is the raw mode in hex), in
    // the C locale, so a host's language never changes what we parse.
    let script = format!(
        "LC_ALL=C; export LC_ALL; \
         if [ -e {p} ]; then stat -L -c '%f %u %g %U %G' -- {p}{hash_cmd}; \
         elif [ -L {p} ]; then stat -c '%f %u %g %U %G' -- {p}; else echo missing; fi"
    );
    let out = ctx.framed_script(&script).await?;
    let mut lines = out.stdout.lines();
    let first = lines.next().unwrap_or_default();
    if first == "missing" {
        return Ok(None);
    }
    let mut parts = first.splitn(5, ' ');
    let mut next = || parts.next().unwrap_or_default().to_owned();
    let (raw, uid, gid, owner, group) = (next(), next(), next(), next(), next());
    let Ok(raw) = u32::from_str_radix(&raw, 16) else {
        return Err(Outcome::fail(format!(
            "cannot read the mode of `{path}` from `stat`: `{first}`"
        )));
    };
    let (kind, mode) = (Kind::from_raw_mode(raw), format!("{:o}", raw & 0o7777));
    let sha256 = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned);
    Ok(Some(Remote {
        kind,
        mode,
        owner,
        group,
        uid,
        gid,
        sha256,
    }))
}

/// `"0644"`, `"644"` and `"u=rw"` as `stat -c %a` would print them, when
/// numeric.
fn normal_mode(mode: &str) -> Option<String> {
    let digits = mode.trim_start_matches("0o").trim_start_matches('0');
    if digits.is_empty() && !mode.is_empty() {
        return Some("0".into());
    }
    (digits.len() <= 4 && digits.chars().all(|c| ('0'..='7').contains(&c)))
        .then(|| digits.to_owned())
}

/// The mode `chmod SPEC` would give a file whose mode is `mode`, for the
/// symbolic forms (`u=rw,go=r`, `a+x`, `g-w`, `u+s`, `+t`, `X`); `None` for
/// what is not understood (the change is then made and reported).
fn symbolic_mode(mode: u32, spec: &str, is_dir: bool) -> Option<u32> {
    let mut mode = mode & 0o7777;
    for clause in spec.split(',') {
        let split = clause.find(['+', '-', '='])?;
        let (who, mut actions) = clause.split_at(split);
        let mut mask = 0;
        for c in who.chars() {
            mask |= match c {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                'a' => 0o7777,
                _ => return None,
            };
        }
        if who.is_empty() {
            // As chmod does: `a`, less the umask (taken as the usual 022).
            mask = 0o7777 & !0o022;
        }
        while let Some(op) = actions.chars().next() {
            let rest = &actions[1..];
            let end = rest.find(['+', '-', '=']).unwrap_or(rest.len());
            let (perms, next) = rest.split_at(end);
            let mut bits = 0;
            for p in perms.chars() {
                bits |= match p {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' if is_dir || mode & 0o111 != 0 => 0o111,
                    'X' => 0,
                    's' => 0o6000,
                    't' => 0o1000,
                    _ => return None,
                };
            }
            let bits = bits & mask;
            mode = match op {
                '+' => mode | bits,
                '-' => mode & !bits,
                '=' => (mode & !(mask & 0o777)) | bits,
                _ => return None,
            };
            actions = next;
        }
    }
    Some(mode)
}

pub(super) struct Wanted {
    mode: Option<String>,
    owner: Option<String>,
    group: Option<String>,
}

impl Wanted {
    pub(super) fn new(
        mode: Option<&String>,
        owner: Option<&String>,
        group: Option<&String>,
        ctx: &Context<'_>,
    ) -> Result<Self> {
        let mode = ctx.render_opt(mode)?;
        if let Some(m) = &mode {
            if normal_mode(m).is_none() && !m.contains(['=', '+', '-']) {
                return Err(Error::input(
                    ctx.location.clone(),
                    InputKind::BadMode { mode: m.clone() },
                ));
            }
        }
        Ok(Wanted {
            mode,
            owner: ctx.render_opt(owner)?,
            group: ctx.render_opt(group)?,
        })
    }

    /// Whether [`Wanted::remote_fixes`] can judge this remotely: a symbolic
    /// mode is judged by applying it, which check mode must not do.
    fn one_trip(&self, check: bool) -> bool {
        !check
            || self
                .mode
                .as_deref()
                .is_none_or(|m| normal_mode(m).is_some())
    }

    /// Shell that compares the metadata of `$d` with this, in the script
    /// itself, fixing (unless `check`) what differs and appending `,mode`,
    /// `,owner`, `,group` to `$c` for each. Owner and group match by name
    /// or number, as [`Wanted::fixes`] does.
    fn remote_fixes(&self, check: bool) -> String {
        let fix = |cmd: String| {
            if check {
                String::new()
            } else {
                format!("{cmd}; ")
            }
        };
        let mut s = String::new();
        if self.mode.is_some() || self.owner.is_some() || self.group.is_some() {
            s.push_str("set -- $(stat -L -c '%a %U %u %G %g' -- \"$d\"); ");
        }
        if let Some(mode) = &self.mode {
            let m = quote(mode);
            match normal_mode(mode) {
                Some(octal) => s.push_str(&format!(
                    "[ \"$1\" = {octal} ] || {{ {}c=\"$c,mode\"; }}; ",
                    fix(format!("chmod {m} \"$d\""))
                )),
                // Only outside check mode (see `one_trip`): applied, then
                // compared with the mode before.
                None => s.push_str(&format!(
                    "chmod {m} \"$d\"; [ \"$(stat -L -c %a -- \"$d\")\" = \"$1\" ] || c=\"$c,mode\"; "
                )),
            }
        }
        if let Some(owner) = &self.owner {
            let o = quote(owner);
            s.push_str(&format!(
                "[ \"$2\" = {o} ] || [ \"$3\" = {o} ] || {{ {}c=\"$c,owner\"; }}; ",
                fix(format!("chown {o} \"$d\""))
            ));
        }
        if let Some(group) = &self.group {
            let g = quote(group);
            s.push_str(&format!(
                "[ \"$4\" = {g} ] || [ \"$5\" = {g} ] || {{ {}c=\"$c,group\"; }}; ",
                fix(format!("chgrp {g} \"$d\""))
            ));
        }
        s
    }

    /// Shell commands that bring `path`'s metadata in line; empty when
    /// `current` already matches.
    fn fixes(&self, path: &str, current: Option<&Remote>) -> Vec<String> {
        let p = quote(path);
        let mut cmds = Vec::new();
        if let Some(mode) = &self.mode {
            let same = current.is_some_and(|c| {
                let wanted = match normal_mode(mode) {
                    Some(octal) => Some(octal),
                    None => u32::from_str_radix(&c.mode, 8)
                        .ok()
                        .and_then(|now| symbolic_mode(now, mode, c.kind == Kind::Directory))
                        .map(|m| format!("{m:o}")),
                };
                wanted.as_deref() == Some(c.mode.as_str())
            });
            if !same {
                cmds.push(format!("chmod {} {p}", quote(mode)));
            }
        }
        let owner = self
            .owner
            .as_ref()
            .filter(|o| current.is_none_or(|c| &c.owner != *o && &c.uid != *o));
        let group = self
            .group
            .as_ref()
            .filter(|g| current.is_none_or(|c| &c.group != *g && &c.gid != *g));
        match (owner, group) {
            (Some(o), Some(g)) => cmds.push(format!("chown {}:{} {p}", quote(o), quote(g))),
            (Some(o), None) => cmds.push(format!("chown {} {p}", quote(o))),
            (None, Some(g)) => cmds.push(format!("chgrp {} {p}", quote(g))),
            (None, None) => {}
        }
        cmds
    }
}

/// `template` and `copy`.
pub(super) async fn content(
    args: &FileContentArgs,
    template: bool,
    ctx: &Context<'_>,
) -> Result<Outcome> {
    let dest = ctx.render(&args.dest)?;
    let data: Vec<u8> = match (&args.content, &args.src) {
        (Some(content), _) => ctx.render(content)?.into_bytes(),
        (None, Some(src)) => {
            let src = ctx.render(src)?;
            let (path, bytes) = read_src(ctx, &src, template)?;
            if template {
                let name = path.display().to_string();
                let Ok(text) = String::from_utf8(bytes) else {
                    let kind = InputKind::TemplateNotUtf8 { name };
                    return Err(Error::input(ctx.location.clone(), kind));
                };
                ctx.engine
                    .render_named(&name, &text, ctx.vars)?
                    .into_bytes()
            } else {
                bytes
            }
        }
        (None, None) => {
            let module = if template { "template" } else { "copy" };
            let kind = InputKind::NoContent {
                module: module.into(),
            };
            return Err(Error::input(ctx.location.clone(), kind));
        }
    };
    let wanted = Wanted::new(
        args.mode.as_ref(),
        args.owner.as_ref(),
        args.group.as_ref(),
        ctx,
    )?;
    let write = Write {
        wanted: &wanted,
        backup: args.backup,
        parents: false,
        validate: None,
    };
    put(ctx, &dest, &data, &write, None).await
}

/// How [`put`] writes a file, beside its content.
pub(super) struct Write<'a> {
    pub wanted: &'a Wanted,
    /// Keep the old file as `DEST.TIMESTAMP~`.
    pub backup: bool,
    /// Create missing parent directories (`lineinfile`'s `create`).
    pub parents: bool,
    /// A command that must accept the new file (`%s` is its path) before
    /// it replaces the old one.
    pub validate: Option<&'a str>,
}

/// Bring `dest` to the content `data` and the metadata of `how`: compare,
/// write atomically when different, report changed and the diff. `before`
/// is the current text when the caller has read it already (`lineinfile`):
/// `Some(None)` for a missing file; the diff is then made without reading
/// it again.
pub(super) async fn put(
    ctx: &Context<'_>,
    dest: &str,
    data: &[u8],
    how: &Write<'_>,
    before: Option<Option<&str>>,
) -> Result<Outcome> {
    let wanted = how.wanted;
    let new_hash = hex::encode(Sha256::digest(data));
    let sent = Sent {
        len: data.len(),
        sha256: &new_hash,
    };
    // One round trip, unless the diff needs the old content first or the
    // content is too large to send on the chance that it changed.
    if data.len() <= ONE_TRIP_MAX && (!ctx.diff || before.is_some()) && wanted.one_trip(ctx.check) {
        let script = one_trip_script(dest, how, &sent, ctx.check);
        return Ok(match one_trip(ctx, &script, Some(data)).await {
            Ok(Verdict::Ok) => Outcome::ok(),
            Ok(Verdict::Changed(what)) => {
                let mut outcome = Outcome::changed(true);
                let content = what.iter().any(|w| w == "content" || w == "created");
                if let (true, true, Some(old)) = (ctx.diff, content, before) {
                    outcome.diff = Some(text_diff(dest, old, data));
                }
                outcome
            }
            Ok(Verdict::Kind(kind)) => {
                Outcome::fail(format!("`{dest}` exists and is a {kind}, not a file"))
            }
            // The content script creates a missing file.
            Ok(Verdict::Missing) => Outcome::fail(format!("`{dest}` went missing")),
            Err(failed) => failed,
        });
    }
    let current = match stat(ctx, dest, true).await {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    if let Some(c) = &current {
        if c.kind != Kind::File {
            return Ok(Outcome::fail(format!(
                "`{dest}` exists and is a {}, not a file",
                c.kind
            )));
        }
    }
    let content_differs =
        current.as_ref().and_then(|c| c.sha256.as_deref()) != Some(new_hash.as_str());
    let fixes = wanted.fixes(dest, current.as_ref());
    if !content_differs && fixes.is_empty() {
        return Ok(Outcome::ok());
    }
    let mut outcome = Outcome::changed(true);
    if ctx.diff && content_differs {
        let old = match (before, &current) {
            (Some(old), _) => old.map(str::to_owned),
            (None, Some(_)) => match ctx.framed_script(&format!("cat -- {}", quote(dest))).await {
                Ok(out) => Some(out.stdout),
                Err(outcome) => return Ok(outcome),
            },
            (None, None) => None,
        };
        outcome.diff = Some(text_diff(dest, old.as_deref(), data));
    }
    if ctx.check {
        return Ok(outcome);
    }
    let script = if content_differs {
        write_script(dest, how, &sent)
    } else {
        format!("set -e; {}", fixes.join("; "))
    };
    let stdin = content_differs.then_some(data);
    if let Err(failed) = ctx.script(&script, stdin).await {
        return Ok(failed);
    }
    Ok(outcome)
}

/// The diff from `old` (`None`: no file) to `new`, or a line saying binary
/// content differs.
fn text_diff(path: &str, old: Option<&str>, new: &[u8]) -> String {
    match std::str::from_utf8(new) {
        Ok(new) => unified_diff(path, old.unwrap_or_default(), new, old.is_none()),
        Err(_) => format!("binary content of `{path}` differs\n"),
    }
}

/// The most a text-editing module (`lineinfile`, `blockinfile`) reads back
/// from a host: well under the transport's output cap.
pub(super) const READ_MAX: usize = 256 * 1024;

/// The text of the regular file `path` (through a symlink), `None` when
/// it does not exist; one round trip. A file that is not UTF-8 text, too
/// large, or not a regular file fails the task.
pub(super) async fn read_text(ctx: &Context<'_>, path: &str) -> Result<Option<String>, Outcome> {
    let script = format!(
        "LC_ALL=C; export LC_ALL; d={}; \
         if [ ! -e \"$d\" ]; then echo missing; \
         elif [ ! -f \"$d\" ]; then echo \"kind $(stat -L -c %f -- \"$d\")\"; \
         else n=$(wc -c < \"$d\"); if [ \"$n\" -gt {READ_MAX} ]; then echo \"big $n\"; \
         else echo file; cat -- \"$d\"; fi; fi",
        quote(path)
    );
    let out = ctx.framed_script(&script).await?;
    let (head, body) = out.stdout.split_once('\n').unwrap_or((&out.stdout, ""));
    match head {
        "missing" => Ok(None),
        "file" if body.contains('\u{fffd}') => Err(Outcome::fail(format!(
            "`{path}` is not UTF-8 text; arpanet edits text files only"
        ))),
        "file" => Ok(Some(body.to_owned())),
        _ => Err(Outcome::fail(
            match (head.strip_prefix("kind "), head.strip_prefix("big ")) {
                (Some(raw), _) => {
                    let kind =
                        u32::from_str_radix(raw, 16).map_or(Kind::Other, Kind::from_raw_mode);
                    format!("`{path}` exists and is a {kind}, not a file")
                }
                (_, Some(n)) => {
                    format!("`{path}` is {n} bytes; arpanet edits text files of at most {READ_MAX} bytes")
                }
                _ => format!("cannot read `{path}`: `{}`", out.stdout.trim_end()),
            },
        )),
    }
}

/// Content up to this size is compared and written in one remote script
/// (see [`one_trip_script`]), which means it travels even when the file is
/// unchanged. Above it, a `stat` with the remote hash comes first and the
/// content is sent only when it differs: two round trips, but no needless
/// transfer of a large file.
pub(crate) const ONE_TRIP_MAX: usize = 64 * 1024;

/// One remote script that does what `stat` + compare + write do in two or
/// three: it resolves `dest` through a symlink, compares the file's SHA-256
/// with the one sent, and only when they differ (or the file is missing)
/// writes stdin with [`write_body`] (length and hash verified before the
/// rename, temp file removed on any failure); otherwise it only brings mode,
/// owner and group in line. It prints one line, read framed (see
/// `probe.rs`): a [`Verdict`]. In check mode it compares and changes
/// nothing.
fn one_trip_script(dest: &str, how: &Write<'_>, sent: &Sent<'_>, check: bool) -> String {
    let wanted = how.wanted;
    let write = if check {
        String::new()
    } else {
        write_body(how, sent)
    };
    format!(
        "LC_ALL=C; export LC_ALL; {TRAPS}d={}; {KIND_GUARD}\
         if [ -L \"$d\" ]; then d=$(readlink -f -- \"$d\"); fi; \
         if [ -e \"$d\" ] && [ ! -f \"$d\" ]; then echo \"kind $(stat -c %f -- \"$d\")\"; exit 0; fi; \
         c=; if [ ! -e \"$d\" ]; then c=created; \
         else h=$(sha256sum < \"$d\"); [ \"${{h%% *}}\" = {hash} ] || c=content; fi; \
         if [ -n \"$c\" ]; then {write}echo \"changed $c\"; exit 0; fi; {}{VERDICT}",
        quote(dest),
        wanted.remote_fixes(check),
        hash = sent.sha256,
    )
}

/// Stops a one-trip script at a dangling symlink in `$d`: nothing to write
/// through.
const KIND_GUARD: &str = "if [ -L \"$d\" ] && [ ! -e \"$d\" ]; then \
     echo \"kind $(stat -c %f -- \"$d\")\"; exit 0; fi; ";

/// Prints the verdict of a one-trip script from the changes listed in `$c`.
const VERDICT: &str = "if [ -n \"$c\" ]; then echo \"changed ${c#,}\"; else echo ok; fi";

/// What a one-trip script reports.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Ok,
    /// What changed (or would): `created`, `content`, `mode`, `owner`, ...
    Changed(Vec<String>),
    /// The path exists but is not of the kind the task needs.
    Kind(Kind),
    /// The path does not exist (`file` with `state: file`).
    Missing,
}

impl Verdict {
    fn parse(line: &str) -> Option<Verdict> {
        let line = line.trim_end_matches('\n');
        match line {
            "ok" => return Some(Verdict::Ok),
            "missing" => return Some(Verdict::Missing),
            _ => {}
        }
        if let Some(what) = line.strip_prefix("changed ") {
            return Some(Verdict::Changed(
                what.split(',').map(str::to_owned).collect(),
            ));
        }
        let raw = line.strip_prefix("kind ")?;
        u32::from_str_radix(raw, 16)
            .ok()
            .map(|raw| Verdict::Kind(Kind::from_raw_mode(raw)))
    }
}

/// Run a one-trip script (framed, `stdin` fed) and read its verdict.
async fn one_trip(
    ctx: &Context<'_>,
    script: &str,
    stdin: Option<&[u8]>,
) -> Result<Verdict, Outcome> {
    let out = match crate::probe::exec(ctx.transport, ctx.host, script, stdin).await {
        Ok(out) if out.success() => out,
        Ok(out) => return Err(Outcome::failed_command(script, &out)),
        Err(err) => return Err(Outcome::from_error(err)),
    };
    Verdict::parse(&out.stdout).ok_or_else(|| {
        Outcome::fail(format!(
            "cannot read the result of arpanet's file script: `{}`",
            out.stdout.trim_end()
        ))
    })
}

/// What arpanet sends on stdin for a write, as the remote side checks it.
struct Sent<'a> {
    len: usize,
    sha256: &'a str,
}

/// Write stdin to `dest` atomically: a temp file in the same directory,
/// checked against the length and hash that were sent, given the final mode
/// and owner, then renamed. On any failure, and on a signal (a hangup when
/// the session goes), the temp file is removed and `dest` is untouched; an
/// input that ends early fails the check.
fn write_script(dest: &str, how: &Write<'_>, sent: &Sent<'_>) -> String {
    // Through a symlink to the file it points at, as `stat -L` judged it.
    format!(
        "{TRAPS}d={}; if [ -L \"$d\" ]; then d=$(readlink -f -- \"$d\"); fi; {}",
        quote(dest),
        write_body(how, sent)
    )
}

/// `set -e` and the traps that remove the temp file `$t` (when set) on any
/// exit; set before the temp file exists. A trapped signal exits, which runs
/// the EXIT trap.
const TRAPS: &str = "set -e; t=; trap '[ -z \"$t\" ] || rm -f -- \"$t\"' EXIT; \
     trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM; ";

/// The write itself, to the (resolved) path in `$d`, after [`TRAPS`]:
/// stdin to a temp file, length and hash verified, mode and owner (those of
/// the file it replaces, else 0644, then the wanted ones), backup, rename.
fn write_body(how: &Write<'_>, sent: &Sent<'_>) -> String {
    let (wanted, backup) = (how.wanted, how.backup);
    let len = sent.len;
    let mut s = String::new();
    if how.parents {
        s.push_str("mkdir -p -- \"$(dirname -- \"$d\")\"; ");
    }
    s += &format!(
        "t=$(mktemp \"$(dirname -- \"$d\")/.arpanet.XXXXXX\"); cat > \"$t\"; \
         n=$(wc -c < \"$t\"); if [ \"$n\" -ne {len} ]; then \
         echo \"received $n of {len} bytes for $d: the transfer was cut; $d is unchanged\" >&2; exit 1; fi; \
         h=$(sha256sum < \"$t\"); if [ \"${{h%% *}}\" != {hash} ]; then \
         echo \"the content received for $d does not match its sha256 {hash}; $d is unchanged\" >&2; exit 1; fi; ",
        hash = sent.sha256,
    );
    let d = "\"$d\"";
    // A symbolic mode changes the file's current mode, or 0644 for a new one.
    s.push_str(&format!(
        "if [ -e {d} ]; then chmod --reference={d} \"$t\"; \
         chown --reference={d} \"$t\" 2>/dev/null || true; else chmod 0644 \"$t\"; fi; "
    ));
    if let Some(mode) = &wanted.mode {
        s.push_str(&format!("chmod {} \"$t\"; ", quote(mode)));
    }
    match (&wanted.owner, &wanted.group) {
        (Some(o), Some(g)) => s.push_str(&format!("chown {}:{} \"$t\"; ", quote(o), quote(g))),
        (Some(o), None) => s.push_str(&format!("chown {} \"$t\"; ", quote(o))),
        (None, Some(g)) => s.push_str(&format!("chgrp {} \"$t\"; ", quote(g))),
        (None, None) => {}
    }
    if let Some(validate) = how.validate {
        let command = validate.replace("%s", "\"$t\"");
        s.push_str(&format!(
            "if ! ( {command} ) >&2; then echo \"the new content of $d failed validation: \"{}; exit 1; fi; ",
            quote(validate)
        ));
    }
    if backup {
        s.push_str(&format!(
            "if [ -e {d} ]; then cp -p -- {d} {d}.$(date +%Y%m%d%H%M%S)~; fi; "
        ));
    }
    s.push_str(&format!("mv -f -- \"$t\" {d}; t=; trap - EXIT; "));
    s
}

fn unified_diff(path: &str, old: &str, new: &str, created: bool) -> String {
    let before = if created {
        "/dev/null".to_owned()
    } else {
        format!("{path} (before)")
    };
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&before, &format!("{path} (after)"))
        .to_string()
}

/// The one-trip script of `file` (see [`one_trip_script`]): judges the path
/// and applies `state` and the metadata in one remote command, printing a
/// [`Verdict`]; in check mode it only judges.
fn file_script(path: &str, state: FileState, wanted: &Wanted, check: bool) -> String {
    let run = |cmd: &str| {
        if check {
            String::new()
        } else {
            format!("{cmd}; ")
        }
    };
    // What is done to a missing path; in check mode the metadata of a path
    // that is not there cannot be judged, so the verdict is given at once.
    let create = |cmd: &str| {
        let stop = if check {
            "echo 'changed created'; exit 0; "
        } else {
            ""
        };
        format!(
            "if [ ! -e \"$d\" ]; then {}{stop}c=,created; fi; ",
            run(cmd)
        )
    };
    let body = match state {
        FileState::Absent => {
            return format!(
            "set -e; d={}; c=; if [ -e \"$d\" ] || [ -L \"$d\" ]; then {}c=,removed; fi; {VERDICT}",
            quote(path),
            run("rm -rf -- \"$d\"")
        )
        }
        FileState::Directory => format!(
            "{KIND_GUARD}if [ -e \"$d\" ] && [ ! -d \"$d\" ]; then \
             echo \"kind $(stat -L -c %f -- \"$d\")\"; exit 0; fi; {}",
            create("mkdir -p -- \"$d\"")
        ),
        FileState::Touch => format!(
            "{}{}c=\"$c,touched\"; ",
            create(":"),
            run("touch -- \"$d\"")
        ),
        FileState::File => "if [ ! -e \"$d\" ]; then echo missing; exit 0; fi; ".to_owned(),
    };
    format!(
        "LC_ALL=C; export LC_ALL; set -e; d={}; c=; {body}{}{VERDICT}",
        quote(path),
        wanted.remote_fixes(check)
    )
}

/// `file`: directories, absent paths, touched files and metadata.
async fn file(args: &FileArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let path = ctx.render(&args.path)?;
    let p = quote(&path);
    let wanted = Wanted::new(
        args.mode.as_ref(),
        args.owner.as_ref(),
        args.group.as_ref(),
        ctx,
    )?;
    if wanted.one_trip(ctx.check) {
        let script = file_script(&path, args.state, &wanted, ctx.check);
        return Ok(match one_trip(ctx, &script, None).await {
            Ok(Verdict::Ok) => Outcome::ok(),
            Ok(Verdict::Changed(_)) => Outcome::changed(true),
            Ok(Verdict::Kind(kind)) => {
                Outcome::fail(format!("`{path}` exists and is a {kind}, not a directory"))
            }
            Ok(Verdict::Missing) => Outcome::fail(format!(
                "`{path}` does not exist (use `state: touch` to create it)"
            )),
            Err(failed) => failed,
        });
    }
    let current = match stat(ctx, &path, false).await {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    let mut cmds = Vec::new();
    match args.state {
        FileState::Absent => {
            if current.is_some() {
                cmds.push(format!("rm -rf -- {p}"));
            }
        }
        FileState::Directory => match &current {
            Some(c) if c.kind != Kind::Directory => {
                return Ok(Outcome::fail(format!(
                    "`{path}` exists and is a {}, not a directory",
                    c.kind
                )));
            }
            Some(c) => cmds.extend(wanted.fixes(&path, Some(c))),
            None => {
                cmds.push(format!("mkdir -p -- {p}"));
                cmds.extend(wanted.fixes(&path, None));
            }
        },
        FileState::Touch => {
            cmds.push(format!("touch -- {p}"));
            cmds.extend(wanted.fixes(&path, current.as_ref()));
        }
        FileState::File => match &current {
            None => {
                return Ok(Outcome::fail(format!(
                    "`{path}` does not exist (use `state: touch` to create it)"
                )))
            }
            Some(c) => cmds.extend(wanted.fixes(&path, Some(c))),
        },
    }
    if cmds.is_empty() {
        return Ok(Outcome::ok());
    }
    if !ctx.check {
        if let Err(failed) = ctx
            .script(&format!("set -e; {}", cmds.join("; ")), None)
            .await
        {
            return Ok(failed);
        }
    }
    Ok(Outcome::changed(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_normalise_to_what_stat_prints() {
        assert_eq!(normal_mode("0644").as_deref(), Some("644"));
        assert_eq!(normal_mode("644").as_deref(), Some("644"));
        assert_eq!(normal_mode("0o755").as_deref(), Some("755"));
        assert_eq!(normal_mode("01777").as_deref(), Some("1777"));
        assert_eq!(normal_mode("u=rw"), None);
        assert_eq!(normal_mode("0999"), None);
    }

    #[test]
    fn path_types_come_from_the_raw_mode_bits() {
        // `stat -c %f` of a file 0644, a directory 0755, a symlink, a socket.
        assert_eq!(Kind::from_raw_mode(0x81a4), Kind::File);
        assert_eq!(Kind::from_raw_mode(0x41ed), Kind::Directory);
        assert_eq!(Kind::from_raw_mode(0xa1ff), Kind::Symlink);
        assert_eq!(Kind::from_raw_mode(0xc1ed), Kind::Other);
        assert_eq!(format!("{:o}", 0x81a4 & 0o7777), "644");
    }

    #[test]
    fn symbolic_modes_give_the_mode_chmod_would() {
        assert_eq!(symbolic_mode(0o600, "u=rw,go=r", false), Some(0o644));
        assert_eq!(symbolic_mode(0o644, "a+x", false), Some(0o755));
        assert_eq!(symbolic_mode(0o775, "g-w,o=", false), Some(0o750));
        assert_eq!(symbolic_mode(0o644, "a+X", false), Some(0o644));
        assert_eq!(symbolic_mode(0o755, "u=rwx,go=", true), Some(0o700));
        assert_eq!(symbolic_mode(0o755, "+t", true), Some(0o1755));
        assert_eq!(symbolic_mode(0o644, "g=u", false), None);
        assert_eq!(
            symbolic_mode(0o600, "=rw", false),
            Some(0o644),
            "umask 022 applies without who"
        );
    }

    #[test]
    fn metadata_fixes_only_what_differs() {
        let wanted = Wanted {
            mode: Some("0640".into()),
            owner: Some("root".into()),
            group: None,
        };
        let current = Remote {
            kind: Kind::File,
            mode: "640".into(),
            owner: "daemon".into(),
            group: "root".into(),
            uid: "1".into(),
            gid: "0".into(),
            sha256: None,
        };
        assert_eq!(
            wanted.fixes("/etc/x y", Some(&current)),
            ["chown root '/etc/x y'"]
        );
        let matching = Remote {
            owner: "root".into(),
            ..current
        };
        assert!(wanted.fixes("/etc/x", Some(&matching)).is_empty());
        let by_number = Wanted {
            mode: None,
            owner: Some("1".into()),
            group: Some("0".into()),
        };
        assert!(
            by_number.fixes("/etc/x", Some(&matching)).is_empty(),
            "uid 1 and gid 0 already match"
        );
    }

    /// Run the write script for `new` with the local `sh`, feeding it
    /// `input`; whether it succeeded, and the names left in the directory.
    fn write_locally(dest: &std::path::Path, new: &[u8], input: &[u8]) -> (bool, Vec<String>) {
        use std::io::Write;
        let wanted = Wanted {
            mode: None,
            owner: None,
            group: None,
        };
        let sha256 = hex::encode(Sha256::digest(new));
        let sent = Sent {
            len: new.len(),
            sha256: &sha256,
        };
        let how = super::Write {
            wanted: &wanted,
            backup: false,
            parents: false,
            validate: None,
        };
        let script = write_script(dest.to_str().unwrap(), &how, &sent);
        let mut child = std::process::Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let ok = child.wait().unwrap().success();
        let mut names: Vec<String> = std::fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        (ok, names)
    }

    #[test]
    fn a_write_renames_only_complete_verified_content_and_keeps_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("conf");
        std::fs::write(&dest, "old\n").unwrap();
        std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let new: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();

        let (ok, names) = write_locally(&dest, &new, &new[..40_000]);
        assert!(!ok, "a short input must fail");
        assert_eq!(names, ["conf"], "no temp file stays");
        assert_eq!(std::fs::read(&dest).unwrap(), b"old\n");

        let mut forged = new.clone();
        forged[7] ^= 1;
        let (ok, names) = write_locally(&dest, &new, &forged);
        assert!(
            !ok,
            "content of the right length but another hash must fail"
        );
        assert_eq!(names, ["conf"]);
        assert_eq!(std::fs::read(&dest).unwrap(), b"old\n");

        let (ok, names) = write_locally(&dest, &new, &new);
        assert!(ok);
        assert_eq!(names, ["conf"]);
        assert_eq!(std::fs::read(&dest).unwrap(), new);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&dest).unwrap().permissions(),
        );
        assert_eq!(mode & 0o7777, 0o600, "the old file's mode is kept");
    }

    #[test]
    fn an_empty_file_is_written_and_a_new_file_gets_0644() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("empty");
        let (ok, names) = write_locally(&dest, b"", b"");
        assert!(ok);
        assert_eq!(names, ["empty"]);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&dest).unwrap().permissions(),
        );
        assert_eq!(mode & 0o7777, 0o644);
    }

    #[test]
    fn write_script_backs_up_through_symlinks() {
        let wanted = Wanted {
            mode: None,
            owner: None,
            group: None,
        };
        let sent = Sent {
            len: 3,
            sha256: "ab",
        };
        let how = Write {
            wanted: &wanted,
            backup: true,
            parents: false,
            validate: None,
        };
        let s = write_script("/etc/default/docker", &how, &sent);
        assert!(
            s.contains(
                "d=/etc/default/docker; if [ -L \"$d\" ]; then d=$(readlink -f -- \"$d\"); fi;"
            ),
            "{s}"
        );
        assert!(s.contains("cp -p -- \"$d\" \"$d\".$(date"), "{s}");
        assert!(
            s.ends_with("mv -f -- \"$t\" \"$d\"; t=; trap - EXIT; "),
            "{s}"
        );
    }

    #[test]
    fn diff_of_a_new_file_comes_from_dev_null() {
        let d = unified_diff("/etc/x", "", "a\n", true);
        assert!(d.contains("--- /dev/null"), "{d}");
        assert!(d.contains("+a"), "{d}");
    }
}
