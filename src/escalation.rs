//! `become`: running a task's commands as another user (root by default)
//! through `sudo` or `su`, as Ansible does.
//!
//! Where the settings come from, lowest first, as in Ansible (command-line
//! options < playbook keywords < variables): `-b`, `--become-user`,
//! `--become-method`; the keywords `become`, `become_user`,
//! `become_method`, `become_flags` of the play, then of the task (each
//! layer [`Keywords::under`] the next, so a block's layer slots in between);
//! the variables `ansible_become`, `ansible_become_user`,
//! `ansible_become_method`, `ansible_become_flags` (inventory, play or task
//! `vars`, `-e`). The password: `ansible_become_pass` (or
//! `ansible_become_password`), else the run's (`-K` or
//! `$ARPANET_BECOME_PASS`).
//!
//! How a command is run: [`Escalated`] wraps every command a module sends
//! in `sudo -S -p PROMPT -u USER -- /bin/sh -c 'echo LINE; COMMAND'` (or
//! `su USER -c ...`), and the transport feeds it behind a gate
//! ([`Transport::exec_gated`]): the password goes on stdin only when the
//! fresh PROMPT shows on stderr (so a NOPASSWD sudo, or a cached
//! credential, never gets a stray password line), and the module's own
//! stdin (a file upload) only once the fresh LINE shows on stdout, that is
//! once the command runs as the new user. sudo and su read the password a
//! byte at a time up to the newline, so what follows is the command's. The
//! password is never on a command line (nor in `ps`), and is masked in
//! anything the command prints.
//!
//! `su` reads the password from stdin when stdin is no terminal with
//! util-linux's `su` (Debian, Ubuntu, RHEL, Fedora, Arch), through PAM: no
//! pty is needed, so stdout and stderr stay apart and uploads stay binary.
//!
//! File modules need nothing of their own: the whole write script (temp
//! file in the destination's directory, `chmod`/`chown`, rename) runs as
//! the become user, so the file is that user's unless `owner` says
//! otherwise, and its content is never readable by others on the way.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::error::{Error, Location, Result};
use crate::template::Engine;
use crate::transport::{quote, Gate, Gated, Output, Pipe, Sink, Stream, Transport};
use crate::vars::Vars;

/// The environment variable holding the become password for a run.
pub(crate) const PASSWORD_ENV: &str = "ARPANET_BECOME_PASS";

/// How to become another user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Method {
    #[default]
    Sudo,
    Su,
}

impl Method {
    pub(crate) const NAMES: &'static [&'static str] = &["sudo", "su"];

    pub(crate) fn parse(text: &str) -> Option<Method> {
        match text.trim() {
            "sudo" => Some(Method::Sudo),
            "su" => Some(Method::Su),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Method::Sudo => "sudo",
            Method::Su => "su",
        }
    }
}

/// A password that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(Arc<str>);

impl Secret {
    pub(crate) fn new(text: &str) -> Secret {
        Secret(text.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(********)")
    }
}

/// The run's defaults from the command line (`-b`, `--become-user`,
/// `--become-method`) and its password (`-K` or `$ARPANET_BECOME_PASS`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Defaults {
    pub enabled: bool,
    pub user: Option<String>,
    pub method: Option<Method>,
    pub password: Option<Secret>,
}

/// The become keywords of one layer (play, block, task); `None` where the
/// layer says nothing, so the layer above shows through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Keywords {
    pub enabled: Option<bool>,
    /// May be a template, rendered when the task runs.
    pub user: Option<String>,
    pub method: Option<Method>,
    pub flags: Option<String>,
}

impl Keywords {
    /// This layer over `outer` (a task's over its block's over its play's).
    pub(crate) fn under(&self, outer: &Keywords) -> Keywords {
        Keywords {
            enabled: self.enabled.or(outer.enabled),
            user: self.user.clone().or_else(|| outer.user.clone()),
            method: self.method.or(outer.method),
            flags: self.flags.clone().or_else(|| outer.flags.clone()),
        }
    }
}

/// One task's resolved escalation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Become {
    pub user: String,
    pub method: Method,
    pub flags: String,
    pub password: Option<Secret>,
}

impl Become {
    /// How `-vv` shows a command run this way: `  (as `root` via sudo)`.
    pub(crate) fn describe(&self) -> String {
        format!("  (as `{}` via {})", self.user, self.method.name())
    }
}

/// The escalation for a task on a host, `None` when it runs as the login
/// user: the command line's defaults, under the keywords, under the
/// variables.
pub(crate) fn resolve(
    defaults: &Defaults,
    keywords: &Keywords,
    vars: &Vars,
    engine: &Engine,
    location: &Location,
) -> Result<Option<Become>> {
    let text = |names: &[&str]| -> Result<Option<(String, String)>> {
        for name in names {
            let rendered = match vars.get(*name) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) if s.contains("{{") || s.contains("{%") => {
                    engine.render_str(s, vars, location)?
                }
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            return Ok(Some(((*name).to_owned(), rendered)));
        }
        Ok(None)
    };
    let enabled = match text(&["ansible_become"])? {
        Some((name, value)) => crate::truth::parse_bool(&value).ok_or_else(|| {
            Error::usage(format!("`{name}` must be a yes/no value, got `{value}`"))
        })?,
        None => keywords.enabled.unwrap_or(defaults.enabled),
    };
    if !enabled {
        return Ok(None);
    }
    let user = match text(&["ansible_become_user"])? {
        Some((_, user)) => user,
        None => match (&keywords.user, &defaults.user) {
            (Some(user), _) if user.contains("{{") || user.contains("{%") => {
                engine.render_str(user, vars, location)?
            }
            (Some(user), _) | (None, Some(user)) => user.clone(),
            (None, None) => "root".to_owned(),
        },
    };
    if user.trim().is_empty() {
        return Err(Error::usage("the become user is empty")
            .with_hint("set `become_user` (or `ansible_become_user`), or leave it out for root"));
    }
    let method = match text(&["ansible_become_method"])? {
        Some((name, value)) => Method::parse(&value).ok_or_else(|| {
            Error::usage(format!(
                "`{name}` is `{value}`: arpanet can become another user with `sudo` or `su`"
            ))
        })?,
        None => keywords.method.or(defaults.method).unwrap_or_default(),
    };
    let flags = match text(&["ansible_become_flags"])? {
        Some((_, flags)) => flags,
        None => match &keywords.flags {
            Some(flags) => flags.clone(),
            None if method == Method::Sudo => "-H".to_owned(),
            None => String::new(),
        },
    };
    let password = match text(&["ansible_become_pass", "ansible_become_password"])? {
        Some((_, password)) => Some(Secret::new(&password)),
        None => defaults.password.clone(),
    };
    Ok(Some(Become {
        user: user.trim().to_owned(),
        method,
        flags,
        password,
    }))
}

/// Refuse a host's `ansible_become` or `ansible_become_method` that can
/// never work, before any host is contacted (templated values are left to
/// the run).
pub(crate) fn check(host: &str, vars: &Vars) -> Result<()> {
    let literal = |name: &str| match vars.get(name) {
        Some(Value::String(s)) if !s.contains("{{") && !s.contains("{%") => Some(s.clone()),
        Some(Value::Bool(_)) | None | Some(Value::Null) => None,
        Some(other) => Some(other.to_string()),
    };
    if let Some(value) = literal("ansible_become") {
        if crate::truth::parse_bool(&value).is_none() {
            return Err(Error::usage(format!(
                "host `{host}`: `ansible_become` must be a yes/no value, got `{value}`"
            )));
        }
    }
    if let Some(value) = literal("ansible_become_method") {
        if Method::parse(&value).is_none() {
            return Err(Error::usage(format!(
                "host `{host}`: `ansible_become_method` is `{value}`: arpanet can become \
                 another user with `sudo` or `su`"
            )));
        }
    }
    Ok(())
}

/// The become settings of hosts reached outside a playbook (`status`,
/// `consul`): the command line under the host's variables.
pub(crate) fn for_host(defaults: &Defaults, vars: &Vars) -> Result<Option<Become>> {
    resolve(
        defaults,
        &Keywords::default(),
        vars,
        &Engine::new(),
        &nowhere(),
    )
}

/// The script the become user's shell runs: the gate's line, then
/// `command` in the background with the channel's stdin (a background job
/// would get /dev/null), waited for by a shell that passes a HUP, INT or
/// TERM on to the whole process group. sshd stops an abandoned command
/// with a signal to its session's process group, but as the login user it
/// may only signal sudo itself, which passes the signal to its own child
/// alone: a plain `/bin/sh -c` would die and leave `command`'s children
/// running as root.
fn supervised(passed: &str, command: &str) -> String {
    format!(
        "echo {passed}; exec 3<&0; {{\n{command}\n}} <&3 3<&- & p=$!; exec 3<&-; \
         trap 'trap - HUP INT TERM; kill -TERM 0' HUP INT TERM; wait $p"
    )
}

/// `command` as run by `how`'s user on a terminal (`exec -t`): there sudo
/// and su ask for the password themselves, so no gate is needed.
pub(crate) fn interactive(how: &Become, command: &str) -> String {
    let mut words: Vec<String> = vec![how.method.name().to_owned()];
    words.extend(how.flags.split_whitespace().map(str::to_owned));
    let script = quote(command);
    match how.method {
        Method::Sudo => {
            let user = quote(&how.user);
            words.extend([
                "-u".into(),
                user,
                "--".into(),
                "/bin/sh".into(),
                "-c".into(),
            ]);
        }
        Method::Su => words.extend([quote(&how.user), "-c".into()]),
    }
    words.push(script);
    words.join(" ")
}

/// The location of settings that come from no file.
fn nowhere() -> Location {
    Location::new("<become>", 0, 0)
}

/// A connection whose commands run as another user (see the module docs).
pub(crate) struct Escalated {
    inner: Arc<dyn Transport>,
    how: Become,
    host: String,
}

impl Escalated {
    pub(crate) fn wrap(
        inner: Arc<dyn Transport>,
        how: Option<Become>,
        host: &str,
    ) -> Arc<dyn Transport> {
        match how {
            None => inner,
            Some(how) => Arc::new(Escalated {
                inner,
                how,
                host: host.to_owned(),
            }),
        }
    }

    async fn run(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        sink: Option<&Sink<'_>>,
    ) -> Result<Output> {
        let nonce: u64 = rand::random();
        let passed = format!("__ARPANET_{nonce:016x}_BECOME__");
        let how = &self.how;
        let script = quote(&supervised(&passed, command));
        let user = quote(&how.user);
        // The flags are the user's words, passed on as written.
        let mut flags: Vec<&str> = how.flags.split_whitespace().collect();
        let (words, prompt) = match how.method {
            Method::Sudo => {
                let prompt = format!("[arpanet-become-{nonce:016x}] password: ");
                if how.password.is_some() {
                    // As Ansible: `-n` would refuse to ask for it.
                    flags.retain(|f| *f != "-n");
                }
                let quoted = quote(&prompt);
                let mut words = vec!["sudo"];
                words.extend(flags);
                words.extend([
                    "-S", "-p", &quoted, "-u", &user, "--", "/bin/sh", "-c", &script,
                ]);
                (words.join(" "), prompt)
            }
            // util-linux su, in the C locale so its prompt reads as below.
            Method::Su => {
                let mut words = vec!["LC_ALL=C", "su"];
                words.extend(flags);
                words.extend([user.as_str(), "-c", &script]);
                (words.join(" "), "Password:".to_owned())
            }
        };
        let wrapped = words;
        let password = how.password.as_ref().map(|p| p.expose().as_bytes());
        let gate = Gate {
            prompt: &prompt,
            passed: &passed,
            password,
        };
        let gated = match sink {
            None => self.inner.exec_gated(&wrapped, stdin, &gate).await?,
            Some(sink) => {
                // Lines hold no newline, so a password is masked whole.
                let masked = |pipe: Pipe, line: &str| match self.secret() {
                    Some(password) if line.contains(password) => {
                        sink(pipe, &line.replace(password, "********"))
                    }
                    _ => sink(pipe, line),
                };
                self.inner
                    .exec_streamed(&wrapped, stdin, Some(&gate), &masked)
                    .await?
            }
        };
        let mut gated = self.mask(gated);
        if gated.passed {
            return Ok(gated.output);
        }
        gated.output.stderr = gated.output.stderr.replace(&prompt, "");
        Err(self.failure(&gated))
    }

    /// The password to mask in output: masking a one- or two-letter
    /// password would garble the output without hiding anything.
    fn secret(&self) -> Option<&str> {
        let password = self.how.password.as_ref()?.expose();
        (password.len() >= 3).then_some(password)
    }

    /// The output with every occurrence of the password replaced.
    fn mask(&self, mut gated: Gated) -> Gated {
        if let Some(password) = self.secret() {
            for text in [&mut gated.output.stdout, &mut gated.output.stderr] {
                if text.contains(password) {
                    *text = text.replace(password, "********");
                }
            }
        }
        gated
    }

    /// Why the command never ran as the become user.
    fn failure(&self, gated: &Gated) -> Error {
        let how = &self.how;
        let (user, host, method) = (&how.user, &self.host, how.method.name());
        let said = crate::modules::tail(&gated.output.stderr, 3)
            .map(|t| format!(": {}", t.replace('\n', "; ")))
            .unwrap_or_default();
        let refused = gated.answered
            && (gated.asked > 1 || {
                let lower = gated.output.stderr.to_lowercase();
                lower.contains("incorrect password")
                    || lower.contains("authentication failure")
                    || lower.contains("try again")
            });
        let (message, hint) = if refused {
            (
                format!("become password refused for `{user}` on `{host}` ({method})"),
                format!(
                    "check the password given by -K, ${PASSWORD_ENV} or `ansible_become_pass` \
                     for this host ({})",
                    match how.method {
                        Method::Sudo => "sudo asks for the login user's own password".to_owned(),
                        Method::Su => format!("su asks for `{user}`'s password"),
                    }
                ),
            )
        } else if gated.asked > 0 && !gated.answered {
            (
                format!(
                    "{method} on `{host}` asks for a password to become `{user}`, and none was given"
                ),
                format!(
                    "give it with -K (--ask-become-pass), ${PASSWORD_ENV}, or the variable \
                     `ansible_become_pass`{}",
                    match how.method {
                        Method::Sudo => "; or allow the login user NOPASSWD in sudoers",
                        Method::Su => "",
                    }
                ),
            )
        } else if gated.output.stderr.contains("must be run from a terminal") {
            (
                format!("`su` on `{host}` reads passwords only from a terminal"),
                "arpanet feeds su's password on stdin, which util-linux's su accepts (Debian, \
                 Ubuntu, RHEL, Fedora, Arch); use `become_method: sudo` on this host"
                    .to_owned(),
            )
        } else if gated.output.status == 127 {
            (
                format!("cannot become `{user}` on `{host}`: `{method}` is not installed{said}"),
                format!("install `{method}` on the host, or set `become_method`"),
            )
        } else {
            (
                format!(
                    "cannot become `{user}` on `{host}` with {method} (exit {}){said}",
                    gated.output.status
                ),
                match how.method {
                    Method::Sudo => {
                        "is the login user allowed to run commands as this user in sudoers?"
                            .to_owned()
                    }
                    Method::Su => "does the user exist, with a login shell?".to_owned(),
                },
            )
        };
        Error::Become {
            host: host.clone(),
            message,
            hint: Some(hint),
        }
    }
}

impl Transport for Escalated {
    fn exec<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<Output>> {
        Box::pin(self.run(command, stdin, None))
    }

    fn exec_streamed<'a>(
        &'a self,
        command: &'a str,
        stdin: Option<&'a [u8]>,
        gate: Option<&'a Gate<'a>>,
        sink: &'a Sink<'a>,
    ) -> BoxFuture<'a, Result<Gated>> {
        Box::pin(async move {
            if gate.is_some() {
                return Err(Error::Internal(
                    "a command cannot become another user twice".into(),
                ));
            }
            Ok(Gated {
                output: self.run(command, stdin, Some(sink)).await?,
                passed: true,
                ..Gated::default()
            })
        })
    }

    fn forward<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, Result<Box<dyn Stream>>> {
        self.inner.forward(host, port)
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.inner.close()
    }

    fn details(&self) -> Option<String> {
        self.inner.details()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, Value)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn resolved(defaults: &Defaults, keywords: &Keywords, vars: &Vars) -> Option<Become> {
        resolve(defaults, keywords, vars, &Engine::new(), &nowhere()).unwrap()
    }

    #[test]
    fn command_line_under_keywords_under_variables() {
        let cli = Defaults {
            enabled: true,
            user: Some("cli".into()),
            ..Defaults::default()
        };
        let none = Keywords::default();
        assert_eq!(resolved(&cli, &none, &Vars::new()).unwrap().user, "cli");
        let off = Keywords {
            enabled: Some(false),
            ..Keywords::default()
        };
        assert_eq!(
            resolved(&cli, &off, &Vars::new()),
            None,
            "a play's `become: no` wins over -b"
        );
        let on = vars(&[("ansible_become", json!("yes"))]);
        assert!(
            resolved(&cli, &off, &on).is_some(),
            "the variable wins over the keyword"
        );
        let play = Keywords {
            enabled: Some(true),
            user: Some("play".into()),
            method: Some(Method::Su),
            ..Keywords::default()
        };
        let task = Keywords {
            user: Some("task".into()),
            ..Keywords::default()
        };
        let both = task.under(&play);
        let b = resolved(&Defaults::default(), &both, &Vars::new()).unwrap();
        assert_eq!((b.user.as_str(), b.method), ("task", Method::Su));
        assert_eq!(b.flags, "", "su has no default flags");
        let user = vars(&[("ansible_become_user", json!("var"))]);
        assert_eq!(
            resolved(&Defaults::default(), &both, &user).unwrap().user,
            "var"
        );
        let b = resolved(
            &Defaults::default(),
            &Keywords {
                enabled: Some(true),
                ..none
            },
            &Vars::new(),
        )
        .unwrap();
        assert_eq!(
            (b.user.as_str(), b.method, b.flags.as_str()),
            ("root", Method::Sudo, "-H")
        );
    }

    #[test]
    fn the_variable_password_wins_and_never_prints() {
        let cli = Defaults {
            enabled: true,
            password: Some(Secret::new("from-cli")),
            ..Defaults::default()
        };
        let none = Keywords::default();
        let b = resolved(&cli, &none, &Vars::new()).unwrap();
        assert_eq!(b.password, Some(Secret::new("from-cli")));
        let v = vars(&[("ansible_become_password", json!("from-var"))]);
        let b = resolved(&cli, &none, &v).unwrap();
        assert_eq!(b.password, Some(Secret::new("from-var")));
        assert!(!format!("{b:?}").contains("from-var"));
    }

    #[test]
    fn bad_variables_are_refused() {
        let bad = vars(&[("ansible_become", json!("maybe"))]);
        let err = resolve(
            &Defaults::default(),
            &Keywords::default(),
            &bad,
            &Engine::new(),
            &nowhere(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`ansible_become`"), "{err}");
        let bad = vars(&[
            ("ansible_become", json!(true)),
            ("ansible_become_method", json!("doas")),
        ]);
        let err = resolve(
            &Defaults::default(),
            &Keywords::default(),
            &bad,
            &Engine::new(),
            &nowhere(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("doas"), "{err}");
    }

    /// Answers every gated command as if it ran as the become user and
    /// printed `said`.
    struct Says(&'static str);

    impl Transport for Says {
        fn exec<'a>(&'a self, _: &'a str, _: Option<&'a [u8]>) -> BoxFuture<'a, Result<Output>> {
            Box::pin(async { Err(Error::Internal("only gated commands".into())) })
        }

        fn exec_gated<'a>(
            &'a self,
            _: &'a str,
            _: Option<&'a [u8]>,
            _: &'a Gate<'a>,
        ) -> BoxFuture<'a, Result<Gated>> {
            Box::pin(async {
                Ok(Gated {
                    output: Output {
                        stdout: self.0.to_owned(),
                        ..Output::default()
                    },
                    passed: true,
                    ..Gated::default()
                })
            })
        }

        fn forward<'a>(&'a self, _: &'a str, _: u16) -> BoxFuture<'a, Result<Box<dyn Stream>>> {
            Box::pin(async { Err(Error::Internal("no forwarding".into())) })
        }

        fn close(&self) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    #[test]
    fn interactive_commands_leave_the_password_to_the_terminal() {
        let how = |method, flags: &str| Become {
            user: "db admin".into(),
            method,
            flags: flags.into(),
            password: Some(Secret::new("hunter22")),
        };
        assert_eq!(
            interactive(&how(Method::Sudo, "-H"), "docker exec -it consul sh"),
            "sudo -H -u 'db admin' -- /bin/sh -c 'docker exec -it consul sh'"
        );
        assert_eq!(
            interactive(&how(Method::Su, ""), "id"),
            "su 'db admin' -c id"
        );
    }

    #[tokio::test]
    async fn streamed_lines_never_show_the_password() {
        let how = Become {
            user: "root".into(),
            method: Method::Sudo,
            flags: String::new(),
            password: Some(Secret::new("hunter22")),
        };
        let conn = Escalated::wrap(Arc::new(Says("ok hunter22 ok\nfine\n")), Some(how), "node1");
        let lines = std::sync::Mutex::new(Vec::new());
        let sink = |pipe: Pipe, line: &str| lines.lock().unwrap().push((pipe, line.to_owned()));
        let out = conn.exec_streamed("id", None, None, &sink).await.unwrap();
        assert_eq!(
            *lines.lock().unwrap(),
            [
                (Pipe::Stdout, "ok ******** ok".to_owned()),
                (Pipe::Stdout, "fine".to_owned())
            ]
        );
        assert_eq!(out.output.stdout, "ok ******** ok\nfine\n");
    }
}
