//! `apt`: Debian and Ubuntu packages installed, upgraded or removed, and the
//! package index refreshed (`update_cache`, skipped while younger than
//! `cache_valid_time`), as Ansible's `apt` does, in one remote script. Only
//! packages that are actually installed, upgraded or removed make the task
//! `changed` (and, as in Ansible, a refresh of the index when the task names
//! no package). `apt-get` runs with `DEBIAN_FRONTEND=noninteractive` and
//! waits up to `lock_timeout` seconds for another apt or dpkg (an unattended
//! upgrade at boot) to let go of its lock. `package` is this module under
//! Ansible's generic name.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::{Flag, List, Text};
use crate::transport::quote;
use crate::yaml::Node;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PkgState {
    #[default]
    #[serde(alias = "installed")]
    Present,
    #[serde(alias = "removed")]
    Absent,
    Latest,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AptArgs {
    /// Package names, each optionally `NAME=VERSION` (a shell pattern).
    pub names: Vec<String>,
    pub state: PkgState,
    pub update_cache: bool,
    /// Seconds the index stays fresh enough not to be refreshed; 0: always.
    pub cache_valid_time: u64,
    pub purge: bool,
    pub autoremove: bool,
    pub install_recommends: Option<bool>,
    pub lock_timeout: u64,
    /// `dpkg` options, comma-separated (`force-confdef,force-confold`).
    pub dpkg_options: String,
}

/// Ansible's default: keep a changed config file, take the package's
/// default where there is one, never ask.
pub(super) const DPKG_OPTIONS: &str = "force-confdef,force-confold";

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Apt(pub AptArgs);

pub(super) struct Def;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AptMap {
    #[serde(alias = "pkg", alias = "package")]
    name: Option<List>,
    state: Option<PkgState>,
    #[serde(alias = "update-cache")]
    update_cache: Option<Flag>,
    cache_valid_time: Option<Text>,
    purge: Option<Flag>,
    autoremove: Option<Flag>,
    #[serde(alias = "install-recommends")]
    install_recommends: Option<Flag>,
    lock_timeout: Option<Text>,
    dpkg_options: Option<Text>,
}

/// A whole number of seconds, for `cache_valid_time` and `lock_timeout`.
fn seconds(value: Option<Text>, name: &str, default: u64) -> Result<u64, BadArgs> {
    match value {
        None => Ok(default),
        Some(t) => t.0.trim().parse().map_err(|_| {
            BadArgs::invalid(format!(
                "`{name}` must be a whole number of seconds, got `{}`",
                t.0
            ))
        }),
    }
}

/// Ansible's default wait for the dpkg lock.
const LOCK_TIMEOUT: u64 = 60;

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "apt"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: AptMap = args_map(node, "a mapping with `name` or `update_cache`")?;
        let update_cache = m.update_cache.is_some_and(|f| f.0) || m.cache_valid_time.is_some();
        let args = AptArgs {
            names: m.name.map(|l| l.0).unwrap_or_default(),
            state: m.state.unwrap_or_default(),
            update_cache,
            cache_valid_time: seconds(m.cache_valid_time, "cache_valid_time", 0)?,
            purge: m.purge.is_some_and(|f| f.0),
            autoremove: m.autoremove.is_some_and(|f| f.0),
            install_recommends: m.install_recommends.map(|f| f.0),
            lock_timeout: seconds(m.lock_timeout, "lock_timeout", LOCK_TIMEOUT)?,
            dpkg_options: m
                .dpkg_options
                .map_or_else(|| DPKG_OPTIONS.to_owned(), |t| t.0),
        };
        if args.names.is_empty() && !args.update_cache {
            return Err(BadArgs::invalid("give `name` (packages) or `update_cache`"));
        }
        Ok(Arc::new(Apt(args)))
    }
}

impl Module for Apt {
    fn name(&self) -> &'static str {
        "apt"
    }

    fn summary(&self) -> String {
        summary(&self.0)
    }

    fn templates(&self) -> Vec<&str> {
        self.0.names.iter().map(String::as_str).collect()
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(run(&self.0, ctx))
    }
}

pub(super) fn summary(args: &AptArgs) -> String {
    match args.names.is_empty() {
        true => "update_cache".into(),
        false => args.names.join(", "),
    }
}

/// Run the apt script on one host and read its verdict.
pub(super) async fn run(args: &AptArgs, ctx: &Context<'_>) -> Result<Outcome> {
    let mut names = Vec::new();
    for name in &args.names {
        let rendered = ctx.render(name)?;
        // A template may give a list (`"{{ packages }}"`): split on commas
        // and blanks as Ansible's list of names does.
        names.extend(
            rendered
                .split([',', ' ', '\n'])
                .map(|s| s.trim_matches(['[', ']', '\'', '"']))
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
    }
    let script = script(args, &names, ctx.check);
    let out = match ctx.framed_script(&script).await {
        Ok(out) => out,
        Err(mut failed) => {
            if let Some(f) = &mut failed.failure {
                if failed.stderr.contains("Could not get lock") {
                    f.hint = Some(format!(
                        "another apt or dpkg held its lock for more than `lock_timeout` ({} s)",
                        args.lock_timeout
                    ));
                }
            }
            return Ok(failed);
        }
    };
    let mut updated = false;
    let mut update_time = None;
    let mut changed = Vec::new();
    for line in out.stdout.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("cache") => {
                updated = words.next() == Some("1");
                update_time = words.next().and_then(|t| t.parse::<u64>().ok());
            }
            Some("changed") => changed.extend(words.map(str::to_owned)),
            _ => {}
        }
    }
    let mut outcome = Outcome::changed(!changed.is_empty() || (names.is_empty() && updated))
        .with("cache_updated", updated);
    if let Some(t) = update_time {
        outcome = outcome.with("cache_update_time", t);
    }
    outcome.stderr = out.stderr;
    if !changed.is_empty() {
        let verb = match args.state {
            PkgState::Absent => "removed",
            PkgState::Present => "installed",
            PkgState::Latest => "installed or upgraded",
        };
        outcome.msg = Some(format!("{verb}: {}", changed.join(", ")));
    }
    Ok(outcome)
}

/// One script: refresh the index when asked and stale, judge each package
/// with `dpkg-query` (and `apt-cache policy` for `latest`), then one
/// `apt-get` for those that need it. Prints `cache UPDATED MTIME` and
/// `changed NAME...`; in check mode it only judges.
fn script(args: &AptArgs, names: &[String], check: bool) -> String {
    let lock = format!("-o DPkg::Lock::Timeout={}", args.lock_timeout);
    let mut s = String::from(
        "LC_ALL=C; DEBIAN_FRONTEND=noninteractive; export LC_ALL DEBIAN_FRONTEND; set -e; \
         stamp=/var/lib/apt/periodic/update-success-stamp; [ -e $stamp ] || stamp=/var/lib/apt/lists; \
         mtime() { stat -c %Y -- \"$stamp\" 2>/dev/null || echo 0; }; u=0; ",
    );
    if args.update_cache {
        let update = if check {
            "u=1".to_owned()
        } else {
            format!("apt-get {lock} -q update >&2; u=1")
        };
        s.push_str(&format!(
            "age=$(( $(date +%s) - $(mtime) )); \
             if [ {valid} -eq 0 ] || [ $age -gt {valid} ]; then {update}; fi; ",
            valid = args.cache_valid_time
        ));
    }
    s.push_str("echo \"cache $u $(mtime)\"; todo=; ");
    if !names.is_empty() {
        let list: Vec<String> = names.iter().map(|n| quote(n)).collect();
        // `${db:Status-Abbrev}`: desired state, then the current one
        // (`i` installed, `n` not, `c` only config files left).
        let judge = match args.state {
            PkgState::Present => {
                "case \"$st\" in ?i*) case \"$v\" in $want) ;; *) todo=\"$todo $p\";; esac;; \
                 *) todo=\"$todo $p\";; esac"
            }
            PkgState::Latest => {
                "case \"$st\" in ?i*) c=$(apt-cache policy -- \"$n\" | sed -n 's/^ *Candidate: //p'); \
                 if [ -n \"$c\" ] && [ \"$c\" != \"(none)\" ] && [ \"$c\" != \"$v\" ]; then todo=\"$todo $n\"; fi;; \
                 *) todo=\"$todo $p\";; esac"
            }
            PkgState::Absent if args.purge => {
                "case \"$st\" in ?n*|'') ;; *) todo=\"$todo $n\";; esac"
            }
            PkgState::Absent => "case \"$st\" in ?n*|?c*|'') ;; *) todo=\"$todo $n\";; esac",
        };
        s.push_str(&format!(
            "for p in {}; do n=${{p%%=*}}; want='*'; case \"$p\" in *=*) want=${{p#*=}};; esac; \
             st=$(dpkg-query -W -f='${{db:Status-Abbrev}}' -- \"$n\" 2>/dev/null || true); \
             v=$(dpkg-query -W -f='${{Version}}' -- \"$n\" 2>/dev/null || true); {judge}; done; ",
            list.join(" ")
        ));
        let mut flags = format!("{lock} -y -q");
        for option in args
            .dpkg_options
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
        {
            flags.push_str(&format!(" -o Dpkg::Options::=--{}", quote(option)));
        }
        if args.autoremove {
            flags.push_str(" --auto-remove");
        }
        let action = match args.state {
            PkgState::Absent if args.purge => format!("apt-get {flags} purge"),
            PkgState::Absent => format!("apt-get {flags} remove"),
            _ => {
                match args.install_recommends {
                    Some(true) => flags.push_str(" --install-recommends"),
                    Some(false) => flags.push_str(" --no-install-recommends"),
                    None => {}
                }
                format!("apt-get {flags} install")
            }
        };
        let act = if check {
            String::new()
        } else {
            format!("{action} $todo >&2; ")
        };
        s.push_str(&format!(
            "if [ -n \"$todo\" ]; then {act}echo \"changed$todo\"; fi"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_mode_judges_without_apt_get() {
        let args = AptArgs {
            names: vec!["curl".into()],
            update_cache: true,
            cache_valid_time: 3600,
            lock_timeout: 60,
            dpkg_options: DPKG_OPTIONS.into(),
            ..AptArgs::default()
        };
        let real = script(&args, &args.names, false);
        assert!(real.contains("DEBIAN_FRONTEND=noninteractive"), "{real}");
        assert!(
            real.contains("apt-get -o DPkg::Lock::Timeout=60 -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install $todo"),
            "{real}"
        );
        assert!(real.contains("[ $age -gt 3600 ]"), "{real}");
        let check = script(&args, &args.names, true);
        assert!(!check.contains("apt-get"), "{check}");
    }
}
