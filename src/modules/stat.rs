//! `stat`: facts about a path on the host, registered as `RESULT.stat` with
//! Ansible's names and types (`exists`, `isdir`, `mode` as `"0644"`, `uid`,
//! `pw_name`, `size`, `mtime` as a float, `checksum` as SHA-1 unless
//! `checksum_algorithm` says otherwise, ...). One round trip; it never
//! changes anything, so check mode is the same.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{args_map, BadArgs, Context, Module, ModuleDef, Outcome};
use crate::error::Result;
use crate::playbook::values::{Flag, Text};
use crate::transport::quote;
use crate::yaml::Node;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Algorithm {
    Md5,
    #[default]
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    /// The coreutils program that computes it.
    fn program(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5sum",
            Algorithm::Sha1 => "sha1sum",
            Algorithm::Sha224 => "sha224sum",
            Algorithm::Sha256 => "sha256sum",
            Algorithm::Sha384 => "sha384sum",
            Algorithm::Sha512 => "sha512sum",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stat {
    pub path: String,
    pub follow: bool,
    pub checksum: Option<Algorithm>,
    pub mime: bool,
}

pub(super) struct Def;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatMap {
    #[serde(alias = "dest", alias = "name")]
    path: Text,
    follow: Option<Flag>,
    get_checksum: Option<Flag>,
    #[serde(alias = "checksum", alias = "checksum_algo")]
    checksum_algorithm: Option<Algorithm>,
    #[serde(alias = "mime", alias = "mime_type", alias = "mime-type")]
    get_mime: Option<Flag>,
    /// Accepted for Ansible's playbooks; attributes are not reported.
    #[serde(alias = "attr", alias = "attributes")]
    get_attributes: Option<Flag>,
}

impl ModuleDef for Def {
    fn name(&self) -> &'static str {
        "stat"
    }

    fn parse(&self, node: &Node) -> Result<Arc<dyn Module>, BadArgs> {
        let m: StatMap = args_map(node, "a mapping with `path`")?;
        let _ = m.get_attributes;
        Ok(Arc::new(Stat {
            path: m.path.0,
            follow: m.follow.is_some_and(|f| f.0),
            checksum: m
                .get_checksum
                .is_none_or(|f| f.0)
                .then(|| m.checksum_algorithm.unwrap_or_default()),
            mime: m.get_mime.is_none_or(|f| f.0),
        }))
    }
}

impl Module for Stat {
    fn name(&self) -> &'static str {
        "stat"
    }

    fn summary(&self) -> String {
        self.path.clone()
    }

    fn templates(&self) -> Vec<&str> {
        vec![&self.path]
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Outcome>> {
        Box::pin(async move {
            let path = ctx.render(&self.path)?;
            let script = script(&path, self);
            let out = match ctx.framed_script(&script).await {
                Ok(out) => out,
                Err(failed) => return Ok(failed),
            };
            Ok(match parse(&path, &out.stdout) {
                Some(stat) => Outcome::ok().with("stat", stat),
                None => Outcome::fail(format!(
                    "cannot read what `stat` said about `{path}`: `{}`",
                    out.stdout.trim_end()
                )),
            })
        })
    }
}

/// The fields `stat -c` prints, in this order, numbers only (the names
/// come last, on their own lines), in the C locale.
const FORMAT: &str = "%f %u %g %s %i %d %h %b %o %.9X %.9Y %.9Z";

/// One script: `missing`, or tagged lines (`stat`, `access`, `owner`,
/// `group`, `target`, `source`, `sum`, `mime`, `charset`).
fn script(path: &str, args: &Stat) -> String {
    let l = if args.follow { "-L " } else { "" };
    let exists = if args.follow {
        "[ -e \"$p\" ]"
    } else {
        "{ [ -e \"$p\" ] || [ -L \"$p\" ]; }"
    };
    let mut s = format!(
        "LC_ALL=C; export LC_ALL; p={}; if {exists}; then \
         echo \"stat $(stat {l}-c '{FORMAT}' -- \"$p\")\"; \
         r=false; w=false; x=false; [ -r \"$p\" ] && r=true; [ -w \"$p\" ] && w=true; \
         [ -x \"$p\" ] && x=true; echo \"access $r $w $x\"; \
         echo \"owner $(stat {l}-c %U -- \"$p\")\"; echo \"group $(stat {l}-c %G -- \"$p\")\"; ",
        quote(path)
    );
    if !args.follow {
        s.push_str(
            "if [ -L \"$p\" ]; then echo \"target $(readlink -- \"$p\")\"; \
             echo \"source $(readlink -f -- \"$p\")\"; fi; ",
        );
    }
    let regular = if args.follow {
        "[ -f \"$p\" ]"
    } else {
        "[ -f \"$p\" ] && [ ! -L \"$p\" ]"
    };
    if let Some(algorithm) = args.checksum {
        s.push_str(&format!(
            "if {regular} && [ -r \"$p\" ]; then echo \"sum $({} < \"$p\")\"; fi; ",
            algorithm.program()
        ));
    }
    if args.mime {
        s.push_str(&format!(
            "if command -v file >/dev/null 2>&1; then \
             echo \"mime $(file -b {} --mime-type -- \"$p\")\"; \
             echo \"charset $(file -b {} --mime-encoding -- \"$p\")\"; fi; ",
            if args.follow { "-L" } else { "-h" },
            if args.follow { "-L" } else { "-h" },
        ));
    }
    s.push_str("else echo missing; fi");
    s
}

/// The registered `stat` mapping, from the script's output.
fn parse(path: &str, stdout: &str) -> Option<Value> {
    if stdout.trim() == "missing" {
        return Some(json!({ "exists": false }));
    }
    let mut out = Map::new();
    out.insert("exists".into(), true.into());
    out.insert("path".into(), path.into());
    for line in stdout.lines() {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "stat" => stat_fields(rest, &mut out)?,
            "access" => {
                let mut it = rest.split(' ').map(|w| w == "true");
                for key in ["readable", "writeable", "executable"] {
                    out.insert(key.into(), it.next()?.into());
                }
            }
            "owner" if rest != "UNKNOWN" => {
                out.insert("pw_name".into(), rest.into());
            }
            "group" if rest != "UNKNOWN" => {
                out.insert("gr_name".into(), rest.into());
            }
            "target" => {
                out.insert("lnk_target".into(), rest.into());
            }
            "source" => {
                out.insert("lnk_source".into(), rest.into());
            }
            "sum" => {
                let sum = rest.split_whitespace().next()?;
                out.insert("checksum".into(), sum.into());
            }
            "mime" => {
                out.insert("mimetype".into(), rest.into());
            }
            "charset" => {
                out.insert("charset".into(), rest.into());
            }
            _ => {}
        }
    }
    out.contains_key("mode").then_some(Value::Object(out))
}

/// The numeric fields of [`FORMAT`], named and typed as Ansible's.
fn stat_fields(line: &str, out: &mut Map<String, Value>) -> Option<()> {
    let f: Vec<&str> = line.split(' ').collect();
    if f.len() != 12 {
        return None;
    }
    let raw = u32::from_str_radix(f[0], 16).ok()?;
    let int = |s: &str| s.parse::<u64>().ok();
    let float = |s: &str| s.parse::<f64>().ok();
    let perm = raw & 0o7777;
    let kind = raw & 0o170000;
    out.insert("mode".into(), format!("{perm:04o}").into());
    for (key, bits) in [
        ("isdir", 0o040000),
        ("ischr", 0o020000),
        ("isblk", 0o060000),
        ("isreg", 0o100000),
        ("isfifo", 0o010000),
        ("islnk", 0o120000),
        ("issock", 0o140000),
    ] {
        out.insert(key.into(), (kind == bits).into());
    }
    for (key, bit) in [
        ("isuid", 0o4000),
        ("isgid", 0o2000),
        ("rusr", 0o400),
        ("wusr", 0o200),
        ("xusr", 0o100),
        ("rgrp", 0o040),
        ("wgrp", 0o020),
        ("xgrp", 0o010),
        ("roth", 0o004),
        ("woth", 0o002),
        ("xoth", 0o001),
    ] {
        out.insert(key.into(), (perm & bit != 0).into());
    }
    for (key, i) in [
        ("uid", 1),
        ("gid", 2),
        ("size", 3),
        ("inode", 4),
        ("dev", 5),
        ("nlink", 6),
        ("blocks", 7),
        ("block_size", 8),
    ] {
        out.insert(key.into(), int(f[i])?.into());
    }
    for (key, i) in [("atime", 9), ("mtime", 10), ("ctime", 11)] {
        out.insert(key.into(), float(f[i])?.into());
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_named_and_typed_as_ansible_does() {
        let out = "stat 81a4 1000 1000 12 99 2049 1 8 4096 1700000000.100000000 1700000001.500000000 1700000002.000000000\n\
                   access true true false\nowner alice\ngroup UNKNOWN\nsum 356a192b7913b04c54574d18c28d46e6395428ab  -\n";
        let v = parse("/etc/x", out).unwrap();
        assert_eq!(v["mode"], "0644");
        assert_eq!(v["isreg"], true);
        assert_eq!(v["isdir"], false);
        assert_eq!(v["size"], 12);
        assert_eq!(v["uid"], 1000);
        assert_eq!(v["mtime"], 1700000001.5);
        assert_eq!(v["pw_name"], "alice");
        assert!(v.get("gr_name").is_none(), "an unknown group has no name");
        assert_eq!(v["checksum"], "356a192b7913b04c54574d18c28d46e6395428ab");
        assert_eq!(v["executable"], false);
        assert_eq!(parse("/x", "missing\n").unwrap(), json!({"exists": false}));
        assert!(parse("/x", "stat garbage\n").is_none());
    }
}
