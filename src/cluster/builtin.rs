//! The cluster's built-in playbooks, task files and templates, embedded
//! from the repository's `playbooks/` and `templates/` folders. The engine
//! knows none of these names: `command/run.rs` hands this table to the
//! playbook resolver as its built-in source, after the files on disk (a
//! `NAME.yml` in the current directory overrides the built-in `NAME` named
//! on the command line, never one a built-in imports).

use crate::playbook::Builtins;

/// The cluster's modules, beside the engine's.
const MODULES: &[&dyn crate::modules::ModuleDef] = &[
    &super::secrets::Def,
    &super::keyring::Def,
    &super::ca_rotation::Def,
    &super::consul_gate::Def,
    &super::services::Def,
    &super::acl::Def,
];

pub(crate) const BUILTINS: Builtins = Builtins {
    names: &[
        "bootstrap",
        "setup",
        "pull",
        "consul",
        "stack",
        "upgrade",
        "stop",
        "info",
    ],
    playbooks: &[
        ("bootstrap", include_str!("../../playbooks/bootstrap.yml")),
        ("setup", include_str!("../../playbooks/setup.yml")),
        ("pull", include_str!("../../playbooks/pull.yml")),
        ("consul", include_str!("../../playbooks/consul.yml")),
        ("stack", include_str!("../../playbooks/stack.yml")),
        ("stop", include_str!("../../playbooks/stop.yml")),
        ("upgrade", include_str!("../../playbooks/upgrade.yml")),
        ("info", include_str!("../../playbooks/info.yml")),
        // Parts imported by the playbooks above.
        ("preflight", include_str!("../../playbooks/preflight.yml")),
        ("secrets", include_str!("../../playbooks/secrets.yml")),
        ("rotate", include_str!("../../playbooks/rotate.yml")),
        ("rotate-tls", include_str!("../../playbooks/rotate-tls.yml")),
        (
            "rotate-tokens",
            include_str!("../../playbooks/rotate-tokens.yml"),
        ),
        (
            "rotate-certs",
            include_str!("../../playbooks/rotate-certs.yml"),
        ),
        ("restart", include_str!("../../playbooks/restart.yml")),
        (
            "rotate-docker-tls",
            include_str!("../../playbooks/rotate-docker-tls.yml"),
        ),
        (
            "restart-roll",
            include_str!("../../playbooks/restart-roll.yml"),
        ),
        (
            "consul-agents",
            include_str!("../../playbooks/consul-agents.yml"),
        ),
    ],
    tasks: &[
        (
            "consul-agent.yml",
            include_str!("../../playbooks/tasks/consul-agent.yml"),
        ),
        (
            "stack-services.yml",
            include_str!("../../playbooks/tasks/stack-services.yml"),
        ),
        (
            "linking-watcher.yml",
            include_str!("../../playbooks/tasks/linking-watcher.yml"),
        ),
        (
            "roll-node.yml",
            include_str!("../../playbooks/tasks/roll-node.yml"),
        ),
        (
            "restart-node.yml",
            include_str!("../../playbooks/tasks/restart-node.yml"),
        ),
        (
            "pull-images.yml",
            include_str!("../../playbooks/tasks/pull-images.yml"),
        ),
        (
            "docker-bridge.yml",
            include_str!("../../playbooks/tasks/docker-bridge.yml"),
        ),
        (
            "docker-restart.yml",
            include_str!("../../playbooks/tasks/docker-restart.yml"),
        ),
    ],
    // By the name a playbook gives as `src:`; a file of the same name beside
    // the playbook (or in its `templates/`) wins.
    templates: &[
        (
            "arpanet-watcher.sh.j2",
            include_str!("../../templates/arpanet-watcher.sh.j2"),
        ),
        (
            "arpanet-watcher.service.j2",
            include_str!("../../templates/arpanet-watcher.service.j2"),
        ),
        (
            "docker.default.j2",
            include_str!("../../templates/docker.default.j2"),
        ),
        (
            "docker-dropin.conf.j2",
            include_str!("../../templates/docker-dropin.conf.j2"),
        ),
    ],
    modules: MODULES,
    // The old tool's variables and the cluster's settings, below everything
    // else a host's variables come from.
    defaults: include_str!("../../playbooks/vars/defaults.yml"),
};
