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
    /// A number of seconds, as the gates read it (fractions too).
    Seconds,
    /// A whole number, 1 or more.
    Positive,
    /// A batch size as a play's `serial` takes it from a template: a whole
    /// number (0: every node at once) or a percentage above 0.
    Batch,
}

impl Kind {
    fn holds(self, value: &str) -> bool {
        let number = |s: &str| s.parse::<u64>().ok();
        match self {
            Kind::Port => number(value).is_some_and(|n| (1..=65535).contains(&n)),
            Kind::Seconds => value
                .parse::<f64>()
                .is_ok_and(|n| (0.0..=crate::playbook::values::MAX_SECONDS).contains(&n)),
            Kind::Positive => number(value).is_some_and(|n| n >= 1),
            // as a play's `serial` reads it (`serial: "{{ roll_serial }}"`)
            Kind::Batch => crate::playbook::values::parse_serial(value).is_some(),
        }
    }

    fn wanted(self) -> &'static str {
        match self {
            Kind::Port => "a port number (1-65535)",
            Kind::Seconds => "a number of seconds, 0 or more",
            Kind::Positive => "a whole number, 1 or more",
            Kind::Batch => "a number of nodes or a percentage (`25%`)",
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
    ("gate_settle_seconds", Kind::Seconds),
    ("gate_timeout_seconds", Kind::Seconds),
    ("gate_autopilot_settle_seconds", Kind::Seconds),
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
            let Some(value) = host.vars.get(name).map(text) else {
                continue;
            };
            if crate::template::is_template(&value) || kind.holds(&value) {
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
        assert!(
            Kind::Seconds.holds("0") && Kind::Seconds.holds("2.5") && !Kind::Seconds.holds("-5")
        );
        assert!(
            Kind::Positive.holds("3")
                && !Kind::Positive.holds("0")
                && !Kind::Positive.holds("oops")
        );
        assert!(Kind::Batch.holds("25%") && Kind::Batch.holds("2") && Kind::Batch.holds("0"));
        assert!(!Kind::Batch.holds("abc") && !Kind::Batch.holds("-1") && !Kind::Batch.holds("0%"));
        assert!(!Kind::Batch.holds("[1, \"50%\"]"));
    }
}
