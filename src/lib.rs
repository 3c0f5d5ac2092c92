//! arpanet: push ordered task lists over SSH to many machines at once, and
//! build a Docker cluster with Consul from them.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod consul;
pub mod error;
pub mod executor;
pub mod inventory;
pub mod lab;
pub mod modules;
pub mod plan;
pub mod playbook;
pub mod report;
pub mod session;
pub mod ssh;
pub mod suggest;
pub mod template;
pub mod tls;
pub mod transport;
pub mod truth;
pub mod vars;

use std::sync::Arc;

use crate::cli::{Cli, Command, ConnectArgs, ExecArgs, InventoryArgs, RenderArgs, RunArgs};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::playbook::Playbook;
use crate::report::Printer;
use crate::session::Session;
use crate::template::Engine;
use crate::transport::{HostKeyChecking, Target};
use crate::vars::{Layers, Vars};

/// Run a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            let message = err.to_string();
            eprintln!("error: {message}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                let text = cause.to_string();
                if !message.contains(&text) {
                    eprintln!("  caused by: {text}");
                }
                source = cause.source();
            }
            err.exit_code()
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(args) => run_playbooks(args),
        Command::Exec(args) => exec(args),
        Command::Inventory(args) => show_inventory(args),
        Command::Render(args) => render(args),
        Command::Status(args) => cluster::status(args),
        Command::Kv(args) => cluster::kv(args),
        Command::Consul(args) => cluster::consul_cli(args),
        Command::Lab(args) => lab::run(args.command),
    }
}

fn run_playbooks(args: RunArgs) -> Result<i32> {
    let playbooks = args
        .playbooks
        .iter()
        .map(|p| playbook::resolve(p))
        .collect::<Result<Vec<_>>>()?;
    let settings = Settings {
        forks: args.connect.forks,
        limit: args.connect.limit.clone(),
        check: args.check,
        diff: args.diff,
        tags: args.tags,
        skip_tags: args.skip_tags,
        // `-v` shows what each command printed, as Ansible's does.
        show_output: args.connect.verbose > 0,
    };
    execute(&args.connect, settings, &playbooks)
}

fn exec(args: ExecArgs) -> Result<i32> {
    let cmd = match args.command.as_slice() {
        [line] => line.clone(),
        words => words
            .iter()
            .map(|w| transport::quote(w))
            .collect::<Vec<_>>()
            .join(" "),
    };
    // The command is taken literally: in `{{.Names}}` the braces are
    // docker's, not ours. JSON strings are valid YAML scalars.
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    let text = format!(
        "- name: ad-hoc\n  hosts: all\n  tasks:\n    - shell: {}\n",
        quoted(&format!("{{% raw %}}{cmd}{{% endraw %}}")),
    );
    let cwd = std::env::current_dir().map_err(|e| Error::io("read", ".", e))?;
    let mut playbook = Playbook::parse(std::path::Path::new("<command line>"), &cwd, &text)?;
    playbook.plays[0].tasks[0].name = format!("exec: {cmd}");
    let settings = Settings {
        forks: args.connect.forks,
        limit: args.connect.limit.clone(),
        show_output: true,
        ..Settings::default()
    };
    execute(&args.connect, settings, &[playbook])
}

/// Load the inventory and variables, resolve every host's connection, then
/// run the playbooks and print the recap.
fn execute(connect: &ConnectArgs, settings: Settings, playbooks: &[Playbook]) -> Result<i32> {
    let mut session = Session::open(connect)?;
    let hosts = session.hosts_of(
        playbooks
            .iter()
            .flat_map(|p| &p.plays)
            .map(|p| p.hosts.as_str()),
    )?;
    let docker = session.prepare_docker_tls(&hosts)?;
    let consul = session.prepare_consul_security(&hosts)?;
    let made = [
        ("docker TLS", docker),
        ("consul TLS and gossip key", consul),
    ];
    for (what, (dir, report)) in made
        .into_iter()
        .filter_map(|(what, m)| m.map(|m| (what, m)))
    {
        if !report.created.is_empty() {
            eprintln!(
                "{what}: wrote {} files in `{}`",
                report.created.len(),
                dir.display()
            );
        }
    }
    let targets: Vec<Target> = hosts.into_iter().map(|h| h.target).collect();
    let printer = Printer::start(connect.output, connect.verbose);
    if session.defaults.host_key_checking == HostKeyChecking::Off {
        printer
            .reporter()
            .warn("host key checking is off: any machine can pose as your hosts");
    }
    let runtime = session::runtime()?;
    let mut executor = executor::Executor::new(
        session.inventory.clone(),
        session.layers.clone(),
        Engine::new(),
        Arc::new(session.connector()),
        printer.reporter(),
        settings,
        targets,
    );
    let result = runtime.block_on(executor.run(playbooks));
    let code = printer.finish();
    result.map(|()| code)
}

fn show_inventory(args: InventoryArgs) -> Result<i32> {
    let inventory = Inventory::load(&args.inventory)?;
    let layers = Layers::load(config::rc_file().as_deref(), &args.extra_vars)?;
    let mut value = inventory.to_json(&layers, args.host.as_deref())?;
    if let (Some(limit), None) = (&args.limit, &args.host) {
        let keep = inventory.select(limit)?;
        if let Some(serde_json::Value::Object(meta)) = value.get_mut("_meta") {
            if let Some(serde_json::Value::Object(hostvars)) = meta.get_mut("hostvars") {
                hostvars.retain(|h, _| keep.contains(h));
            }
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
    Ok(error::exit::OK)
}

fn render(args: RenderArgs) -> Result<i32> {
    let inventory = Inventory::load(&args.inventory)?;
    let layers = Layers::load(config::rc_file().as_deref(), &args.extra_vars)?;
    if !inventory.hosts.iter().any(|h| h.name == args.host) {
        return Err(Error::usage(format!(
            "no host `{}` in `{}`",
            args.host,
            args.inventory.display()
        )));
    }
    let engine = Engine::new();
    let vars = session::resolved(
        &engine,
        &vars::for_host(&inventory, &args.host, &layers, &Vars::new()),
    );
    let path = std::path::Path::new(&args.template);
    let text = if path.exists() {
        engine.render_file(path, &vars)?
    } else if let Some(source) = playbook::builtin_template(&args.template) {
        engine.render_named(
            &format!("<builtin>/templates/{}", args.template),
            source,
            &vars,
        )?
    } else {
        return Err(Error::usage(format!(
            "no template file `{}`",
            args.template
        )));
    };
    print!("{text}");
    Ok(error::exit::OK)
}
