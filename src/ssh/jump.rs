//! How a host is reached when it is not reached directly, as written by the
//! operator: OpenSSH's `ProxyJump` (`[user@]host[:port]`, hops separated by
//! commas, or `none`) and `ProxyCommand`, found in `~/.ssh/config`, in the
//! `ssh` arguments Ansible inventories carry (`ansible_ssh_common_args:
//! '-o ProxyJump=admin@bastion'`, `-J`, `-o ProxyCommand="..."`) or in
//! arpanet's own `arpanet_jump`. Parsed here so that a value ssh would
//! refuse is refused before any host is touched; `config.rs` resolves each
//! hop into a connection target and `ssh.rs` connects through them.

use std::fmt;

use serde_json::Value;

use crate::error::InputKind;

/// The variable naming a host's jump hosts (arpanet's own).
pub(crate) const JUMP_VAR: &str = "arpanet_jump";

/// The variables holding `ssh` arguments, in the order Ansible puts them
/// on ssh's command line.
pub(crate) const SSH_ARG_VARS: [&str; 3] = [
    "ansible_ssh_args",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
];

/// One hop of a `ProxyJump` list, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JumpHost {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl fmt::Display for JumpHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// What one source says about the way to a host; the first source that
/// says anything wins, `none` included (as in OpenSSH).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProxySpec {
    /// `ProxyJump none` / `ProxyCommand none`: connect directly.
    Direct,
    Jump(Vec<JumpHost>),
    /// The command as written, `%` tokens not yet expanded.
    Command(String),
}

/// A `ProxyJump` value: `none`, or `[user@]host[:port]` (or
/// `ssh://[user@]host[:port]`) hops separated by commas, IPv6 addresses in
/// brackets. The error says what is wrong.
pub(crate) fn parse_jump(text: &str) -> Result<ProxySpec, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(ProxySpec::Direct);
    }
    if text.is_empty() {
        return Err("no jump host given".into());
    }
    text.split(',')
        .map(parse_hop)
        .collect::<Result<Vec<_>, _>>()
        .map(ProxySpec::Jump)
}

/// One `[user@]host[:port]` (OpenSSH's `parse_user_host_port`: the user is
/// everything before the last `@`).
fn parse_hop(text: &str) -> Result<JumpHost, String> {
    let text = text.trim();
    let rest = text.strip_prefix("ssh://").unwrap_or(text);
    if rest.is_empty() {
        return Err("an empty hop (two commas, or a comma at an end)".into());
    }
    if rest.chars().any(char::is_whitespace) {
        return Err(format!("`{text}` contains a blank"));
    }
    let (user, host_port) = match rest.rsplit_once('@') {
        Some(("", _)) => return Err(format!("`{text}` has an empty user before `@`")),
        Some((user, host_port)) => (Some(user), host_port),
        None => (None, rest),
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("`{text}` opens `[` without closing it"))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("`{text}`: expected `:PORT` after `]`")),
            },
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(format!("`{text}` names no host"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{p}` in `{text}` is not a port number"))?,
        ),
    };
    Ok(JumpHost {
        user: user.map(str::to_owned),
        host: host.to_owned(),
        port,
    })
}

/// The `ProxyJump` or `ProxyCommand` among `ssh` command-line arguments
/// (`-J HOPS`, `-o ProxyJump=HOPS`, `-o "ProxyCommand CMD"`, `-oKEY=VALUE`),
/// split like a shell as Ansible splits `ansible_ssh_common_args`; the
/// first one wins, as in ssh. Other options are left alone.
pub(crate) fn from_ssh_args(text: &str) -> Result<Option<ProxySpec>, String> {
    let mut args = shlex(text)?.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str, glued: &str| match glued {
            "" => args
                .next()
                .ok_or_else(|| format!("`{flag}` at the end has no value")),
            glued => Ok(glued.to_owned()),
        };
        if let Some(glued) = arg.strip_prefix("-J") {
            return parse_jump(&value("-J", glued)?).map(Some);
        }
        if let Some(glued) = arg.strip_prefix("-o") {
            let option = value("-o", glued)?;
            if let Some(spec) = from_option(&option)? {
                return Ok(Some(spec));
            }
        }
    }
    Ok(None)
}

/// `ProxyJump=HOPS` / `ProxyCommand CMD` as given to `-o`; `None` for any
/// other option.
fn from_option(option: &str) -> Result<Option<ProxySpec>, String> {
    let option = option.trim();
    let end = option
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(option.len());
    let (key, rest) = option.split_at(end);
    let rest = rest.trim_start();
    let value = rest.strip_prefix('=').unwrap_or(rest).trim();
    match key.to_ascii_lowercase().as_str() {
        "proxyjump" => parse_jump(value)
            .map(Some)
            .map_err(|why| format!("`-o {option}`: {why}")),
        "proxycommand" => Ok(Some(command(value))),
        _ => Ok(None),
    }
}

/// Split like Python's `shlex.split`, as Ansible splits the `ssh` argument
/// variables: blanks separate words, `'...'` is literal, a backslash
/// escapes any character outside quotes and `\` or `"` inside `"..."`.
fn shlex(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => words.extend(word.take()),
            '\'' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("no closing `'` quote".into()),
                    }
                }
            }
            '"' => {
                let word = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("no closing `\"` quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("no closing `\"` quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err("a `\\` at the end escapes nothing".into()),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// Refuse, where the inventory or vars file says it, a jump host list
/// (`arpanet_jump`) or `ssh` argument variable whose proxy setting ssh
/// would refuse; templates are checked when they render.
pub(crate) fn check_var(key: &str, value: &Value) -> Result<(), InputKind> {
    let bad = |why: String| InputKind::BadJump {
        key: key.into(),
        why,
    };
    let template = |s: &str| crate::template::is_template(s);
    if key == JUMP_VAR {
        let hops = match value {
            Value::Null => return Ok(()),
            Value::String(s) => vec![s],
            Value::Array(items) => {
                let mut hops = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) => hops.push(s),
                        other => return Err(bad(format!("`{other}` is not a jump host"))),
                    }
                }
                hops
            }
            other => return Err(bad(format!("expected a string or a list, got `{other}`"))),
        };
        for hop in hops.into_iter().filter(|h| !template(h)) {
            parse_jump(hop).map_err(bad)?;
        }
    } else if SSH_ARG_VARS.contains(&key) {
        if let Value::String(s) = value {
            if !template(s) {
                from_ssh_args(s).map_err(bad)?;
            }
        }
    }
    Ok(())
}

/// A `ProxyCommand` value: `none`, or the command.
pub(crate) fn command(value: &str) -> ProxySpec {
    if value.trim().eq_ignore_ascii_case("none") {
        ProxySpec::Direct
    } else {
        ProxySpec::Command(value.trim().to_owned())
    }
}

/// Expand the `%` tokens OpenSSH expands in a `ProxyCommand`: `%h` (the
/// address connected to), `%p`, `%r` (the remote user), `%n` (the host as
/// given) and `%%`. The error names an unknown token.
pub(crate) fn expand_command(
    raw: &str,
    host: &str,
    port: u16,
    user: &str,
    original: &str,
) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('h') => out.push_str(host),
            Some('p') => out.push_str(&port.to_string()),
            Some('r') => out.push_str(user),
            Some('n') => out.push_str(original),
            other => {
                let shown = other.map_or("%".to_owned(), |c| format!("%{c}"));
                return Err(format!(
                    "`{shown}` is not a token arpanet expands in `ProxyCommand` \
                     (it expands %h, %p, %r, %n and %%)"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(user: Option<&str>, host: &str, port: Option<u16>) -> JumpHost {
        JumpHost {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn jump_lists_parse_as_openssh_writes_them() {
        assert_eq!(
            parse_jump("admin@bastion:2222,10.0.0.5").unwrap(),
            ProxySpec::Jump(vec![
                hop(Some("admin"), "bastion", Some(2222)),
                hop(None, "10.0.0.5", None)
            ])
        );
        assert_eq!(
            parse_jump("ssh://a@b@[2001:db8::1]:22").unwrap(),
            ProxySpec::Jump(vec![hop(Some("a@b"), "2001:db8::1", Some(22))])
        );
        assert_eq!(parse_jump(" None ").unwrap(), ProxySpec::Direct);
        let spec = parse_jump("op@[::1]:2200,b").unwrap();
        let ProxySpec::Jump(hops) = spec else {
            panic!("{spec:?}")
        };
        let shown: Vec<String> = hops.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["op@[::1]:2200", "b"]);
    }

    #[test]
    fn bad_jump_lists_say_what_is_wrong() {
        for (text, says) in [
            ("", "no jump host"),
            ("a,,b", "empty hop"),
            ("a,", "empty hop"),
            ("b:ssh", "`ssh` in `b:ssh` is not a port number"),
            ("b:0", "not a port number"),
            ("@b", "empty user"),
            ("u@", "names no host"),
            ("[::1", "without closing"),
            ("[::1]x", "expected `:PORT`"),
            ("a b", "contains a blank"),
        ] {
            let err = parse_jump(text).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn ssh_arguments_give_the_first_proxy_setting() {
        let jump = |text: &str| from_ssh_args(text).unwrap();
        assert_eq!(
            jump("-o StrictHostKeyChecking=no -o ProxyJump=admin@b:2222"),
            Some(ProxySpec::Jump(vec![hop(Some("admin"), "b", Some(2222))]))
        );
        assert_eq!(
            jump("-J b1 -o ProxyJump=b2"),
            Some(ProxySpec::Jump(vec![hop(None, "b1", None)]))
        );
        assert_eq!(
            jump("-Jb1,u@b2"),
            Some(ProxySpec::Jump(vec![
                hop(None, "b1", None),
                hop(Some("u"), "b2", None)
            ]))
        );
        assert_eq!(
            jump(r#"-o ProxyCommand="ssh -W %h:%p -q admin@b""#),
            Some(ProxySpec::Command("ssh -W %h:%p -q admin@b".into()))
        );
        assert_eq!(jump("-o 'ProxyJump none' -J b"), Some(ProxySpec::Direct));
        assert_eq!(jump("-oProxyCommand=none"), Some(ProxySpec::Direct));
        assert_eq!(jump("-C -o ControlMaster=auto -o ControlPersist=60s"), None);
        assert!(from_ssh_args("-o ProxyJump=a,,b")
            .unwrap_err()
            .contains("empty hop"));
        assert!(from_ssh_args("-J").unwrap_err().contains("no value"));
        assert!(from_ssh_args("-o 'ProxyJump=b").is_err());
    }

    #[test]
    fn ssh_arguments_split_as_python_shlex() {
        assert_eq!(
            shlex(r#"-o 'a b' "c \"d\" \$e" f\ g h'i'"j" "#).unwrap(),
            ["-o", "a b", r#"c "d" \$e"#, "f g", "hij"]
        );
        assert_eq!(shlex("  ").unwrap(), Vec::<String>::new());
        assert_eq!(shlex("''").unwrap(), [""]);
        assert!(shlex("'a").unwrap_err().contains("closing"));
        assert!(shlex("\"a\\").unwrap_err().contains("closing"));
        assert!(shlex("a\\").unwrap_err().contains("escapes nothing"));
    }

    #[test]
    fn variables_are_checked_where_they_are_written() {
        use serde_json::json;
        assert!(check_var("arpanet_jump", &json!("a@b:22,c")).is_ok());
        assert!(check_var("arpanet_jump", &json!(["a", "{{ jump }}"])).is_ok());
        assert!(check_var("arpanet_jump", &json!(null)).is_ok());
        assert!(check_var("ansible_ssh_common_args", &json!("-o ProxyJump={{ b }}")).is_ok());
        assert!(check_var("other", &json!("-J a,,b")).is_ok());
        for (key, value, says) in [
            ("arpanet_jump", json!("a,,b"), "empty hop"),
            ("arpanet_jump", json!(["b", 3]), "`3` is not a jump host"),
            ("arpanet_jump", json!(7), "expected a string or a list"),
            ("ansible_ssh_extra_args", json!("-J b:x"), "`x` in `b:x`"),
        ] {
            let err = check_var(key, &value).unwrap_err().to_string();
            assert!(err.contains(says), "{key}: {err}");
            assert!(err.starts_with(&format!("`{key}`")), "{err}");
        }
    }

    #[test]
    fn proxy_commands_expand_ssh_tokens() {
        assert_eq!(
            expand_command(
                "ssh -W %h:%p %r@b # %n 100%%",
                "10.0.0.5",
                2222,
                "op",
                "web1"
            )
            .unwrap(),
            "ssh -W 10.0.0.5:2222 op@b # web1 100%"
        );
        assert!(expand_command("nc %x", "h", 1, "u", "n")
            .unwrap_err()
            .contains("`%x`"));
    }
}
