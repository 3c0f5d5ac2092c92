//! The built-in playbooks' numbers (ports, the gates' seconds, the roll's
//! batch size, `consul_expect`), checked on every host before any host is
//! contacted. A value they cannot use would otherwise fail only when a
//! task reads it: `gate_settle_seconds=-5` after a container was already
//! restarted without its gate, `roll_serial=abc` after plays had run.

use crate::error::{Error, Result};

/// What a setting must be.
#[derive(Clone, Copy)]
enum Kind {
    /// A TCP port, 1-65535.
    Port,
    /// A whole number of seconds (or records), 0 or more.
    Count,
    /// A whole number, 1 or more.
    Positive,
    /// A batch size as `serial` takes it: a whole number (0: every node at
    /// once) or a percentage, or a list of them.
    Batch,
}

impl Kind {
    fn holds(self, value: &str) -> bool {
        let number = |s: &str| s.parse::<u64>().ok();
        match self {
            Kind::Port => number(value).is_some_and(|n| (1..=65535).contains(&n)),
            Kind::Count => number(value).is_some(),
            Kind::Positive => number(value).is_some_and(|n| n >= 1),
            Kind::Batch => match value.strip_suffix('%') {
                Some(p) => p
                    .trim()
                    .parse::<f64>()
                    .is_ok_and(|n| (0.0..=100.0).contains(&n)),
                None => number(value).is_some(),
            },
        }
    }

    fn wanted(self) -> &'static str {
        match self {
            Kind::Port => "a port number (1-65535)",
            Kind::Count => "a whole number, 0 or more",
            Kind::Positive => "a whole number, 1 or more",
            Kind::Batch => "a number of nodes or a percentage (`25%`), or a list of them",
        }
    }
}

/// The settings checked, with what each must be.
const SETTINGS: [(&str, Kind); 10] = [
    ("docker_port", Kind::Port),
    ("cadvisor_port", Kind::Port),
    ("consul_port", Kind::Port),
    ("consul_expect", Kind::Positive),
    ("consul_raft_multiplier", Kind::Positive),
    ("gate_settle_seconds", Kind::Count),
    ("gate_timeout_seconds", Kind::Positive),
    ("gate_autopilot_settle_seconds", Kind::Count),
    ("roll_serial", Kind::Batch),
    ("deployed_history_depth", Kind::Positive),
];

/// Every host's settings, before anything connects: the first a built-in
/// playbook cannot use is an error (exit 5) naming the host, the value and
/// where it is set when a `group_vars`/`host_vars` file sets it. A value
/// still a template here (it needs a fact) is left to the run.
pub(crate) fn check(session: &crate::session::Session) -> Result<()> {
    for host in session.hosts("all")? {
        for (name, kind) in SETTINGS {
            let text = |v: &serde_json::Value| match v {
                serde_json::Value::String(s) => s.trim().to_owned(),
                other => other.to_string(),
            };
            let (value, fine) = match host.vars.get(name) {
                None => continue,
                Some(serde_json::Value::Array(list)) if matches!(kind, Kind::Batch) => {
                    let all = list.iter().all(|v| kind.holds(&text(v)));
                    (text(&serde_json::Value::Array(list.clone())), all)
                }
                Some(v) => {
                    let value = text(v);
                    let fine = crate::template::is_template(&value) || kind.holds(&value);
                    (value, fine)
                }
            };
            if fine {
                continue;
            }
            let message = format!("`{name}` is `{value}`, not {}", kind.wanted());
            let hint = "set it in the inventory or with `-e`; the README's table of the \
                        cluster's variables gives each default";
            if let Some(err) = session
                .scope
                .var_file(&host.name, name)
                .and_then(|file| super::docker_api::locate(&file, name, &message, hint))
            {
                return Err(err);
            }
            return Err(Error::usage(format!("host `{}`: {message}", host.name)).with_hint(hint));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Kind;

    #[test]
    fn each_kind_takes_what_the_playbooks_can_use() {
        assert!(Kind::Port.holds("8500") && !Kind::Port.holds("0") && !Kind::Port.holds("70000"));
        assert!(Kind::Count.holds("0") && !Kind::Count.holds("-5") && !Kind::Count.holds("1.5"));
        assert!(
            Kind::Positive.holds("3")
                && !Kind::Positive.holds("0")
                && !Kind::Positive.holds("oops")
        );
        assert!(Kind::Batch.holds("25%") && Kind::Batch.holds("2") && Kind::Batch.holds("0"));
        assert!(
            !Kind::Batch.holds("abc") && !Kind::Batch.holds("-1") && !Kind::Batch.holds("101%")
        );
    }
}
