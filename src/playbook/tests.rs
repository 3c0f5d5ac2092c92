use super::*;
use crate::modules::command::{Command, CommandArgs};
use crate::modules::copy::Copy;
use crate::modules::debug::{Debug, DebugArgs};
use crate::modules::docker_container::DockerContainer;
use crate::modules::docker_image::DockerImage;
use crate::modules::file::{File, FileArgs, FileContentArgs, FileState};
use crate::modules::service::{Service, ServiceState};
use crate::modules::set_fact::SetFact;
use crate::modules::shell::Shell;
use crate::modules::systemd::{Systemd, SystemdArgs};
use crate::modules::template::Template;
use crate::modules::wait_for::{PortState, WaitFor, WaitForArgs};
use crate::modules::Module;

/// A task's module as the module type `M`.
fn args<M: Module>(task: &Task) -> &M {
    task.module
        .downcast::<M>()
        .unwrap_or_else(|| panic!("not the expected module: {:?}", task.module))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/playbooks")
}

/// Parsed as `arpanet run` parses it: with the cluster's built-ins (and so
/// its `cluster_secrets` module) available.
fn parse(text: &str) -> Result<Playbook> {
    Playbook::parse_with(Path::new("site.yml"), Path::new("."), text, B)
}

/// The error text for a playbook that must not parse.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("parsed, but should not have:\n{text}"),
        Err(err) => {
            assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT, "{err}");
            err.to_string()
        }
    }
}

/// The tasks of a one-play playbook with these task lines.
fn tasks(yaml_tasks: &str) -> Vec<Task> {
    let text = format!("- hosts: all\n  tasks:\n{yaml_tasks}");
    match parse(&text) {
        Ok(p) => p.plays[0].task_list().into_iter().cloned().collect(),
        Err(err) => panic!("{err}"),
    }
}

fn task(yaml_task: &str) -> Task {
    tasks(yaml_task).remove(0)
}

fn all_modules() -> Playbook {
    Playbook::load(&fixtures().join("good/all_modules.yml")).unwrap()
}

#[test]
fn good_fixture_parses_every_module_form() {
    let pb = all_modules();
    assert_eq!(pb.dir, fixtures().join("good"));
    assert_eq!(pb.plays.len(), 2);
    let play = &pb.plays[0];
    assert_eq!(play.name, "every module");
    assert_eq!(play.hosts, "servers:clients");
    assert_eq!(play.serial, [Serial::Percent(30.0)]);
    assert_eq!(play.max_fail_percentage, Some(10.0));
    assert_eq!(play.tags, ["setup"]);
    assert_eq!(play.vars["consul_port"], 8500);
    assert_eq!(pb.plays[1].serial, [Serial::Count(2)]);
    assert_eq!(pb.plays[1].name, "all");

    let t = &play.task_list();
    let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "command: echo hi",
            "command with args",
            "command with argv",
            "shell pipeline",
            "docker defaults",
            "copy a file",
            "copy content",
            "file: {{ consul_data }}",
            "enable docker",
            "wait_for: 127.0.0.1:8500",
            "wait for a file",
            "debug: port {{ consul_port }}",
            "debug: running.stdout_lines",
            "set_fact: consul_role, consul_join",
            "until leader",
        ]
    );
    assert_eq!(
        args::<Command>(t[1]),
        &Command(CommandArgs {
            cmd: Some("consul members".into()),
            argv: None,
            chdir: Some("/tmp".into()),
            creates: Some("/tmp/done".into()),
            removes: Some("/tmp/todo".into()),
            stdin: Some("yes".into()),
        })
    );
    let Command(argv) = args::<Command>(t[2]);
    assert_eq!(
        argv.argv.as_deref().unwrap(),
        ["docker", "run", "--name", "consul {{ consul_port }}"]
    );
    let Shell(shell) = args::<Shell>(t[3]);
    assert!(shell.cmd.as_deref().unwrap().ends_with("grep -c consul\n"));
    assert_eq!(t[3].register.as_deref(), Some("running"));
    assert_eq!(t[3].changed_when, ["false"]);
    assert_eq!(t[3].failed_when, ["running.rc > 1"]);
    assert_eq!(
        args::<Template>(t[4]),
        &Template(FileContentArgs {
            src: Some("docker.j2".into()),
            content: None,
            dest: "/etc/default/docker".into(),
            mode: Some("0644".into()),
            owner: Some("root".into()),
            group: Some("root".into()),
            backup: true,
        })
    );
    assert_eq!(t[4].notify, ["restart docker"]);
    let Copy(copy) = args::<Copy>(t[5]);
    assert_eq!(copy.src.as_deref(), Some("consul.json"));
    assert_eq!(copy.mode.as_deref(), Some("0600"));
    let Copy(content) = args::<Copy>(t[6]);
    assert_eq!(content.content.as_deref(), Some("{{ consul_data }}\n"));
    assert_eq!(
        args::<File>(t[7]),
        &File(FileArgs {
            path: "{{ consul_data }}".into(),
            state: FileState::Directory,
            mode: Some("0755".into()),
            owner: None,
            group: None,
        })
    );
    assert_eq!(
        args::<Systemd>(t[8]),
        &Systemd(SystemdArgs {
            name: Some("docker".into()),
            state: Some(ServiceState::Started),
            enabled: Some(true),
            daemon_reload: true,
            ..SystemdArgs::default()
        })
    );
    assert_eq!(
        args::<WaitFor>(t[9]),
        &WaitFor(WaitForArgs {
            host: "127.0.0.1".into(),
            port: Some("8500".into()),
            path: None,
            url: None,
            status_code: None,
            consul: None,
            node: None,
            state: PortState::Started,
            delay: 0.0,
            timeout: 60.0,
        })
    );
    let WaitFor(file_wait) = args::<WaitFor>(t[10]);
    assert_eq!(file_wait.path.as_deref(), Some("/tmp/ready"));
    assert_eq!(file_wait.delay, 1.5);
    assert_eq!(file_wait.timeout, 300.0);
    assert_eq!(
        args::<Debug>(t[11]),
        &Debug(DebugArgs::Msg("port {{ consul_port }}".into()))
    );
    assert_eq!(
        args::<Debug>(t[12]),
        &Debug(DebugArgs::Var("running.stdout_lines".into()))
    );
    assert_eq!(
        t[12].when,
        ["running is succeeded", "consul_port | int > 0"]
    );
    assert_eq!(t[12].tags, ["debug", "info"]);
    let SetFact(facts) = args::<SetFact>(t[13]);
    assert_eq!(facts["consul_role"], "server");
    let until = &t[14];
    assert_eq!(until.until, ["'leader = true' in info.stdout"]);
    assert_eq!(until.retries, Some(3));
    assert_eq!(until.delay, Some(5.0));
    assert!(until.ignore_errors && until.run_once && until.no_log);
    assert_eq!(until.vars["extra"], "{{ consul_port }}");

    assert_eq!(play.handlers.len(), 1);
    assert_eq!(play.handlers[0].name, "restart docker");
    let flow = pb.plays[1].task_list()[0];
    assert_eq!(flow.when, ["true"]);
}

#[test]
fn locations_point_at_the_first_key_of_each_play_and_task() {
    let pb = all_modules();
    let file = fixtures().join("good/all_modules.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("`{needle}` not in fixture"))
    };
    let play = &pb.plays[0];
    assert_eq!(play.location.file, file);
    assert_eq!(
        (play.location.line, play.location.column),
        (line_of("- name: every module"), 3)
    );
    assert_eq!(
        play.location.snippet.as_deref(),
        Some("- name: every module")
    );
    let t = &play.task_list();
    assert_eq!(
        (t[0].location.line, t[0].location.column),
        (line_of("- command: echo hi"), 7)
    );
    assert_eq!(t[1].location.line, line_of("- name: command with args"));
    // After a block scalar.
    assert_eq!(t[4].location.line, line_of("- name: docker defaults"));
    // A flow mapping as the module's value.
    assert_eq!(t[5].location.line, line_of("- name: copy a file"));
    assert_eq!(t[7].location.line, line_of("- file:"));
    assert_eq!(t[14].location.line, line_of("- name: until leader"));
    assert_eq!(
        play.handlers[0].location.line,
        line_of("- name: restart docker")
    );
    let second = &pb.plays[1];
    assert_eq!(second.location.line, line_of("- hosts: all"));
    // A task written as a flow mapping: its first key, after the `{`.
    let flow = &second.task_list()[0].location;
    assert_eq!((flow.line, flow.column), (line_of("- {shell:"), 8));
}

#[test]
fn free_form_and_fqcn_commands() {
    let t = task("    - ansible.builtin.shell: echo {{ x }} | wc -l\n");
    assert_eq!(
        args::<Shell>(&t),
        &Shell(CommandArgs {
            cmd: Some("echo {{ x }} | wc -l".into()),
            ..CommandArgs::default()
        })
    );
    assert_eq!(t.name, "shell: echo {{ x }} | wc -l");
    assert_eq!(t.module.name(), "shell");
    let t = task("    - ansible.builtin.systemd: {name: consul, state: reloaded}\n");
    assert_eq!(t.module.name(), "systemd");
    let t = task("    - ansible.builtin.systemd_service: {daemon_reload: true}\n");
    assert_eq!(t.name, "systemd: daemon_reload");
    let t = task("    - ansible.builtin.wait_for: {host: 10.0.0.1, port: \"{{ consul_port }}\"}\n");
    assert_eq!(t.name, "wait_for: 10.0.0.1:{{ consul_port }}");
}

#[test]
fn a_line_of_key_value_words_is_the_modules_mapping() {
    let same = |line: &str, mapping: &str| {
        let (a, b) = (task(line), task(mapping));
        assert_eq!(
            format!("{:?}", a.module),
            format!("{:?}", b.module),
            "{line}"
        );
    };
    same(
        "    - file: path=/srv/x state=directory mode=0755\n",
        "    - file: {path: /srv/x, state: directory, mode: \"0755\"}\n",
    );
    same(
        "    - debug: msg=\"hi {{ name }} =)\"\n",
        "    - debug: {msg: \"hi {{ name }} =)\"}\n",
    );
    same(
        "    - ansible.builtin.copy: content='a b' dest=/x\n      args: {mode: \"0600\"}\n",
        "    - copy: {content: a b, dest: /x, mode: \"0600\"}\n",
    );
    // A module with no value takes its arguments from `args:`.
    same(
        "    - stat:\n      args: {path: /x}\n",
        "    - stat: {path: /x}\n",
    );
    same(
        "    - shell:\n      args: {cmd: echo hi, chdir: /tmp}\n",
        "    - shell: {cmd: echo hi, chdir: /tmp}\n",
    );
    // Escapes are decoded, as Ansible's parse_kv does.
    same(
        "    - copy: content=\"a\\tb\\n\\\"q\\\" \\\\d\\x41\" dest=/x\n",
        "    - copy: {content: \"a\\tb\\n\\\"q\\\" \\\\dA\", dest: /x}\n",
    );
    // A word that is no `key=value` leaves the line as it was: refused.
    let text = error("- hosts: all\n  tasks:\n    - file: path=/x directory\n");
    assert!(text.contains("expected a mapping"), "{text}");
}

#[test]
fn default_names_use_the_first_line_of_the_first_argument() {
    let t = task("    - shell: |\n        set -e\n        docker pull consul\n");
    assert_eq!(t.name, "shell: set -e");
    let t = task("    - template: {src: a.j2, dest: /etc/a}\n");
    assert_eq!(t.name, "template: /etc/a");
    let t = task("    - service: {name: docker, state: started}\n");
    assert_eq!(t.name, "service: docker");
}

#[test]
fn an_unnamed_no_log_task_is_named_without_its_arguments() {
    let t = task("    - command: mysql -p hunter2\n      no_log: true\n");
    assert_eq!(t.name, "command: <hidden by no_log>");
    let t = task("    - name: set password\n      command: mysql -p hunter2\n      no_log: true\n");
    assert_eq!(t.name, "set password");
}

#[test]
fn retries_and_delay_defaults() {
    let t = task("    - command: x\n");
    assert_eq!((t.retries, t.delay), (None, None));
    let t = task("    - command: x\n      until: r.rc == 0\n      register: r\n");
    assert_eq!((t.retries, t.delay), (Some(3), Some(5.0)));
    let t = task("    - command: x\n      until: r.rc == 0\n      retries: 10\n      delay: 1\n");
    assert_eq!((t.retries, t.delay), (Some(10), Some(1.0)));
    let t = task("    - command: x\n      retries: \"2\"\n");
    assert_eq!((t.retries, t.delay), (Some(2), Some(5.0)));
}

#[test]
fn timeout_is_whole_seconds_checked_where_written() {
    assert_eq!(task("    - command: x\n").timeout, None);
    assert_eq!(
        task("    - command: x\n      timeout: 2\n").timeout,
        Some(2)
    );
    assert_eq!(
        task("    - command: x\n      timeout: 0\n").timeout,
        Some(0)
    );
    // Hours are fine (a long backup); more than a week is a typo.
    assert_eq!(
        task("    - command: x\n      timeout: 14400\n").timeout,
        Some(14400)
    );
    for bad in ["-1", "1.5", "soon", "604801"] {
        let text = error(&format!(
            "- hosts: all\n  tasks:\n    - command: x\n      timeout: {bad}\n"
        ));
        assert!(text.starts_with("site.yml:4:16: "), "{text}");
        assert!(text.contains("expected a whole number"), "{text}");
    }
}

#[test]
fn modes_are_strings_never_yaml_octal_numbers() {
    let mode = |m: &str| {
        let t = task(&format!("    - file: {{path: /x, mode: {m}}}\n"));
        args::<File>(&t).0.mode.clone().unwrap()
    };
    assert_eq!(mode("0644"), "0644");
    assert_eq!(mode("'0644'"), "0644");
    assert_eq!(mode("644"), "0644");
    assert_eq!(mode("0o755"), "0755");
    assert_eq!(mode("01777"), "01777");
    assert_eq!(mode("u+x"), "u+x");
    assert_eq!(mode("\"{{ m }}\""), "{{ m }}");
    let text = error("- hosts: all\n  tasks:\n    - file: {path: /x, mode: 64}\n");
    assert!(
        text.contains("site.yml:3:30: `mode`: expected an octal mode"),
        "{text}"
    );
}

#[test]
fn numbers_and_booleans_in_string_arguments_are_strings() {
    let t = task("    - wait_for: {port: 8500, host: 10.0.0.2}\n");
    let WaitFor(w) = args::<WaitFor>(&t).clone();
    assert_eq!(w.port.as_deref(), Some("8500"));
    let t = task("    - service: {name: 42, enabled: no}\n");
    let Service(s) = args::<Service>(&t).clone();
    assert_eq!((s.name.as_str(), s.enabled), ("42", Some(false)));
}

#[test]
fn conditions_accept_strings_bools_and_lists() {
    assert_eq!(task("    - command: x\n      when: true\n").when, ["true"]);
    assert_eq!(task("    - command: x\n      when: no\n").when, ["false"]);
    assert_eq!(
        task("    - command: x\n      when: a == 1\n").when,
        ["a == 1"]
    );
    assert_eq!(
        task("    - command: x\n      when: [a, \"{{ b }}\"]\n").when,
        ["a", "{{ b }}"]
    );
    assert_eq!(
        task("    - command: x\n      failed_when:\n        - r.rc != 0\n        - false\n")
            .failed_when,
        ["r.rc != 0", "false"]
    );
    let text = error("- hosts: all\n  tasks:\n    - command: x\n      when: [[a]]\n");
    assert!(
        text.contains("site.yml:4:14: invalid type: sequence, expected an expression"),
        "{text}"
    );
}

#[test]
fn tags_and_notify_take_a_string_or_a_list() {
    let ts = tasks(concat!(
        "    - command: x\n      tags: a, b\n      notify: h1\n",
        "    - command: y\n      tags: [c]\n      notify: [h1, h2]\n",
        "  handlers:\n    - {name: h1, command: a}\n    - {name: h2, command: b}\n",
    ));
    assert_eq!(ts[0].tags, ["a", "b"]);
    assert_eq!(ts[1].tags, ["c"]);
    assert_eq!(ts[1].notify, ["h1", "h2"]);
}

#[test]
fn serial_forms() {
    let serial = |s: &str| {
        parse(&format!("- hosts: all\n  serial: {s}\n  tasks: []\n"))
            .map(|p| p.plays[0].serial.clone())
    };
    assert_eq!(serial("3").unwrap(), [Serial::Count(3)]);
    assert_eq!(serial("\"25%\"").unwrap(), [Serial::Percent(25.0)]);
    assert_eq!(serial("0").unwrap(), [Serial::Count(0)]);
    assert_eq!(
        serial("[1, 3, \"50%\"]").unwrap(),
        [Serial::Count(1), Serial::Count(3), Serial::Percent(50.0)]
    );
    assert_eq!(serial("[]").unwrap(), []);
    let text = serial("lots").unwrap_err().to_string();
    assert!(
        text.starts_with("site.yml:2:11: `serial`: expected a number of hosts"),
        "{text}"
    );
    // a bad size in a list points at that size
    let text = serial("[1, \"half\"]").unwrap_err().to_string();
    assert!(
        text.starts_with("site.yml:2:15: `serial`: expected a number of hosts"),
        "{text}"
    );
}

#[test]
fn hosts_may_be_a_list_and_tasks_may_be_absent() {
    let pb = parse("- hosts: [servers, clients]\n").unwrap();
    assert_eq!(pb.plays[0].hosts, "servers,clients");
    assert!(pb.plays[0].tasks.is_empty());
}

#[test]
fn variables_a_playbook_sets_are_yaml_1_1_as_ansible_reads_them() {
    let pb = parse(
        "- hosts: all\n  vars: {ssl: no, on_: on, perms: 0644, t: 1:30, quoted: \"no\", v: 1.10}\n  tasks:\n    \
         - command: x\n      vars: {flag: yes}\n      loop: [yes, off]\n    - set_fact: {f: no}\n",
    )
    .unwrap();
    let vars = &pb.plays[0].vars;
    let expected = serde_json::json!({"ssl": false, "on_": true, "perms": 420, "t": 90, "quoted": "no", "v": 1.1});
    assert_eq!(serde_json::Value::Object(vars.clone()), expected);
    let tasks = pb.plays[0].task_list();
    assert_eq!(tasks[0].vars["flag"], true);
    assert_eq!(
        format!("{:?}", tasks[1].module),
        format!("{:?}", task("    - set_fact: {f: false}\n").module)
    );
}

#[test]
fn vars_files_rank_above_play_vars_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("vars")).unwrap();
    std::fs::write(
        dir.path().join("vars/common.yml"),
        "port: 8080\nflag: yes\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("vars/b.yml"), "name: from-b\n").unwrap();
    let write = |text: &str| {
        let path = dir.path().join("site.yml");
        std::fs::write(&path, text).unwrap();
        Playbook::load(&path)
    };
    let pb = write(
        "- hosts: all\n  vars: {port: 1, name: play}\n  vars_files:\n    - common.yml\n    - [vars/a.yml, vars/b.yml]\n",
    )
    .unwrap();
    let vars = &pb.plays[0].vars;
    assert_eq!(vars["port"], 8080);
    assert_eq!(vars["flag"], true);
    assert_eq!(vars["name"], "from-b");
    let text = write("- hosts: all\n  vars_files:\n    - vars/common.yml\n    - vars/nope.yml\n")
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("site.yml:4:7: no vars file `vars/nope.yml`"),
        "{text}"
    );
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    let text = write("- hosts: all\n  vars_files: [\"vars/{{ env }}.yml\"]\n")
        .unwrap_err()
        .to_string();
    assert!(text.contains("is a template"), "{text}");
}

#[test]
fn unsupported_ansible_keys_say_so() {
    let text = error("- hosts: all\n  vars_prompt: [x]\n");
    assert!(
        text.starts_with("site.yml:2:3: `vars_prompt` is not supported"),
        "{text}"
    );
    let text = error("- hosts: all\n  tasks:\n    - command: x\n      async: 10\n");
    assert!(
        text.starts_with("site.yml:4:7: `async` is not supported"),
        "{text}"
    );
}

#[test]
fn become_keywords_inherit_from_play_to_block_to_task() {
    use crate::escalation::{Keywords, Method};
    let pb = parse(
        "- hosts: all\n  become: yes\n  become_user: app\n  tasks:\n\
         \x20   - command: a\n\
         \x20   - command: b\n      become_user: '{{ who }}'\n      become_method: su\n\
         \x20   - command: c\n      become: false\n      become_flags: -E\n\
         \x20   - block:\n\
         \x20       - command: d\n\
         \x20       - command: e\n          become_user: task\n\
         \x20     rescue:\n\
         \x20       - command: f\n\
         \x20     become_user: block\n  handlers:\n\
         \x20   - command: h\n",
    )
    .unwrap();
    let play = &pb.plays[0];
    let keys: Vec<&Keywords> = Step::tasks(&play.tasks)
        .into_iter()
        .map(|t| &t.escalate)
        .collect();
    let play_keys = Keywords {
        enabled: Some(true),
        user: Some("app".into()),
        ..Keywords::default()
    };
    let with_user = |user: &str| Keywords {
        user: Some(user.into()),
        ..play_keys.clone()
    };
    assert_eq!(keys[0], &play_keys);
    assert_eq!(
        keys[1],
        &Keywords {
            method: Some(Method::Su),
            ..with_user("{{ who }}")
        }
    );
    assert_eq!(
        keys[2],
        &Keywords {
            enabled: Some(false),
            flags: Some("-E".into()),
            ..play_keys.clone()
        }
    );
    assert_eq!(keys[3], &with_user("block"), "the block's over the play's");
    assert_eq!(keys[4], &with_user("task"), "the task's over the block's");
    assert_eq!(keys[5], &with_user("block"), "rescue too");
    assert_eq!(play.handlers[0].escalate, play_keys, "handlers too");
    let text = error("- hosts: all\n  become_method: doas\n  tasks: []\n");
    assert!(text.starts_with("site.yml:2:18: `become_method`"), "{text}");
    assert!(text.contains("`sudo`, `su`"), "{text}");
    let text = error("- hosts: all\n  tasks:\n    - command: x\n      become: maybe\n");
    assert!(text.starts_with("site.yml:4:15:"), "{text}");
}

#[test]
fn duplicate_keys_are_rejected_at_the_second() {
    let text = error("- hosts: all\n  tasks:\n    - command: x\n      name: a\n      name: b\n");
    assert!(
        text.starts_with("site.yml:5:7: duplicate key `name`"),
        "{text}"
    );
}

#[test]
fn module_argument_checks() {
    let cases = [
        (
            "copy: {dest: /x}",
            "give exactly one of `src` and `content`",
        ),
        (
            "command: {chdir: /tmp}",
            "missing argument `cmd` (or `argv`)",
        ),
        ("command: {cmd: a, argv: [b]}", "either `cmd` or `argv`"),
        ("service: {name: docker}", "at least one of `state`"),
        (
            "wait_for: {timeout: 5}",
            "exactly one of `port`, `path`, `url` and `consul`",
        ),
        (
            "wait_for: {url: \"https://x/\"}",
            "must start with `http://`",
        ),
        (
            "wait_for: {consul: member}",
            "`consul: member` needs `node`",
        ),
        (
            "wait_for: {port: 80, status_code: 200}",
            "`status_code` goes with `url`",
        ),
        ("debug: {msg: a, var: b}", "exactly one of `msg` and `var`"),
        (
            "debug: hello",
            "invalid type: string \"hello\", expected a mapping with `msg` or `var`",
        ),
        ("set_fact: {}", "at least one variable"),
        ("file: {path: /x, state: gone}", "unknown value `gone`"),
        (
            "command: {cmd: x, stdin: [a]}",
            "`stdin`: invalid type: sequence, expected a string",
        ),
        (
            "command: x\n      ignore_errors: maybe",
            "expected true or false",
        ),
    ];
    for (module, expected) in cases {
        let text = error(&format!("- hosts: all\n  tasks:\n    - {module}\n"));
        assert!(text.contains(expected), "{module}: {text}");
        assert!(text.starts_with("site.yml:"), "{text}");
    }
}

#[test]
fn templates_in_vars_names_and_conditions_are_checked() {
    let text = error("- hosts: all\n  vars:\n    a: \"{{ b \"\n  tasks: []\n");
    assert!(text.starts_with("site.yml:2:3: syntax error"), "{text}");
    let text = error("- hosts: all\n  tasks:\n    - name: \"{% if %}\"\n      command: x\n");
    assert!(text.starts_with("site.yml:3:7: syntax error"), "{text}");
    let text = error("- hosts: all\n  tasks:\n    - command: x\n      until: \"{{ a ==\"\n");
    assert!(text.starts_with("site.yml:4:7: syntax error"), "{text}");
    let text = error("- hosts: all\n  tasks:\n    - set_fact:\n        a: \"{{ [ }}\"\n");
    assert!(text.starts_with("site.yml:3:7: syntax error"), "{text}");
}

#[test]
fn handlers_may_notify_handlers() {
    let pb = parse(concat!(
        "- hosts: all\n  tasks:\n    - command: x\n      notify: a\n",
        "  handlers:\n    - name: a\n      command: y\n      notify: b\n",
        "    - name: b\n      command: z\n",
    ))
    .unwrap();
    assert_eq!(pb.plays[0].handlers[0].notify, ["b"]);
    let text = error("- hosts: all\n  tasks:\n    - command: x\n      notify: nope\n");
    assert!(
        text.contains("define it under the play's `handlers:`"),
        "{text}"
    );
}

/// Every bad fixture starts with `# expect: LINE:COL: message | hint`; its
/// error must name the file at that line and column, show the line, and
/// carry the message and hint.
#[test]
fn bad_fixtures_fail_with_located_errors() {
    let dir = fixtures().join("bad");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks `# expect:`", path.display()));
        let (position, rest) = expect.split_once(": ").unwrap();
        let (message, hint) = match rest.split_once(" | ") {
            Some((m, h)) => (m, Some(h)),
            None => (rest, None),
        };
        let err = Playbook::load(&path).expect_err(&path.display().to_string());
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
        let shown = err.to_string();
        let head = format!("{}:{position}: {message}", path.display());
        assert!(shown.starts_with(&head), "expected `{head}`, got:\n{shown}");
        let line: usize = position.split(':').next().unwrap().parse().unwrap();
        let source_line = text.lines().nth(line - 1).unwrap();
        assert!(
            shown.contains(&format!("{line} | {source_line}")),
            "offending line not shown:\n{shown}"
        );
        if let Some(hint) = hint {
            assert!(
                shown.contains(&format!("hint: {hint}")),
                "no hint `{hint}`:\n{shown}"
            );
        }
        count += 1;
    }
    assert!(count >= 15, "only {count} bad fixtures");
}

#[test]
fn load_reports_a_missing_file() {
    let err = Playbook::load(Path::new("/nonexistent/site.yml")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/site.yml"));
}

/// The product's built-ins, as `run` passes them.
const B: Builtins = crate::cluster::builtin::BUILTINS;

#[test]
fn builtins_parse() {
    // The names `run` takes, and those only their own commands run.
    for name in B.names.iter().chain(&[
        "rotate",
        "rotate-tls",
        "rotate-tokens",
        "rotate-certs",
        "restart",
        "restart-roll",
        "rotate-docker-tls",
    ]) {
        let text = B
            .playbook(name)
            .unwrap_or_else(|| panic!("no text for `{name}`"));
        let source = PathBuf::from(format!("<builtin>/{name}.yml"));
        if let Err(err) = Playbook::parse_with(&source, Path::new("."), text, B) {
            panic!("{err}");
        }
    }
    assert_eq!(
        B.playbooks.len(),
        B.names.len() + 10,
        "three imported parts, the five `rotate`s, `restart` and its roll"
    );
    assert!(B.playbook("nope").is_none());
    assert!(B.template("nope.j2").is_none());
}

#[test]
fn resolve_finds_files_then_builtins_then_suggests() {
    let dir = tempfile::tempdir().unwrap();
    let pb = resolve_in("info", dir.path(), B).unwrap();
    assert_eq!(pb.plays[0].location.file, Path::new("<builtin>/info.yml"));
    assert!(pb.dir.is_absolute());

    // A local NAME.yml overrides the built-in NAME.
    std::fs::write(dir.path().join("info.yml"), "- hosts: mine\n").unwrap();
    let pb = resolve_in("info", dir.path(), B).unwrap();
    assert_eq!(pb.plays[0].hosts, "mine");
    assert_eq!(pb.dir, dir.path());

    std::fs::write(dir.path().join("site.yml"), "- hosts: web\n").unwrap();
    assert_eq!(
        resolve_in("site.yml", dir.path(), B).unwrap().plays[0].hosts,
        "web"
    );
    let absolute = dir.path().join("site.yml");
    let pb = resolve_in(absolute.to_str().unwrap(), Path::new("/"), B).unwrap();
    assert_eq!(pb.plays[0].location.file, absolute);

    let err = resolve_in("inf", dir.path(), B).unwrap_err();
    assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
    let text = err.to_string();
    assert!(
        text.contains("no playbook file or built-in playbook named `inf`"),
        "{text}"
    );
    assert!(text.contains("did you mean `info`?"), "{text}");
    assert!(
        text.contains("built-in playbooks: `bootstrap`, `setup`"),
        "{text}"
    );
    let text = resolve_in("nope/site.yml", dir.path(), B)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("playbook file `nope/site.yml` does not exist"),
        "{text}"
    );
}

#[test]
fn stray_files_in_the_cwd_override_a_top_level_builtin_not_its_imports() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["pull.yml", "preflight.yml", "consul-agent.yml"] {
        std::fs::write(
            dir.path().join(name),
            "- hosts: stray
",
        )
        .unwrap();
    }
    std::fs::create_dir(dir.path().join("tasks")).unwrap();
    std::fs::write(
        dir.path().join("tasks/consul-agent.yml"),
        "- stray: x
",
    )
    .unwrap();
    let boot = resolve_in("bootstrap", dir.path(), B).unwrap();
    let hosts: Vec<&str> = boot.plays.iter().map(|p| p.hosts.as_str()).collect();
    assert!(!hosts.contains(&"stray"), "{hosts:?}");
    assert_eq!(boot.plays[0].name, "check the cluster shape");
    assert!(boot
        .plays
        .iter()
        .all(|p| p.location.file.starts_with("<builtin>")));
    // Asked for by name, the local file still wins.
    let pull = resolve_in("pull", dir.path(), B).unwrap();
    assert_eq!(pull.plays[0].hosts, "stray");
}

#[test]
fn resolve_src_looks_beside_the_playbook_then_in_templates_or_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("templates")).unwrap();
    std::fs::create_dir_all(root.join("files")).unwrap();
    std::fs::write(root.join("templates/docker.j2"), "x").unwrap();
    std::fs::write(root.join("files/consul.json"), "{}").unwrap();
    std::fs::write(root.join("both.txt"), "").unwrap();
    std::fs::write(root.join("templates/both.txt"), "").unwrap();
    let pb = Playbook::parse(&root.join("site.yml"), root, "- hosts: all\n").unwrap();
    assert_eq!(
        pb.resolve_src("docker.j2", SrcKind::Template, None),
        Some(root.join("templates/docker.j2"))
    );
    assert_eq!(pb.resolve_src("docker.j2", SrcKind::File, None), None);
    assert_eq!(
        pb.resolve_src("consul.json", SrcKind::File, None),
        Some(root.join("files/consul.json"))
    );
    assert_eq!(
        pb.resolve_src("both.txt", SrcKind::Template, None),
        Some(root.join("both.txt"))
    );
    let absolute = root.join("files/consul.json");
    assert_eq!(
        pb.resolve_src(absolute.to_str().unwrap(), SrcKind::Template, None),
        Some(absolute)
    );
}

#[test]
fn anchors_and_aliases_keep_the_parse_in_step() {
    let pb = parse(concat!(
        "- hosts: all\n",
        "  vars: &common\n    port: 8500\n",
        "  tasks:\n",
        "    - &check\n      name: check\n      command: echo {{ port }}\n",
        "    - *check\n",
        "    - name: after\n      debug: {var: port}\n",
        "- hosts: clients\n  vars: *common\n",
    ))
    .unwrap();
    let tasks = &pb.plays[0].task_list();
    assert_eq!(tasks.len(), 3);
    assert_eq!(tasks[0].name, "check");
    assert_eq!(tasks[0].location.line, 6);
    assert_eq!(tasks[1].name, "check");
    assert_eq!(tasks[2].name, "after");
    assert_eq!(tasks[2].location.line, 9);
    assert_eq!(pb.plays[1].vars["port"], 8500);
    assert_eq!(pb.plays[1].location.line, 11);
}

#[test]
fn every_builtin_playbook_parses_and_bootstrap_imports_the_four_steps() {
    for name in B.names.iter() {
        let pb = resolve_in(name, Path::new("/nonexistent-dir"), B)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!pb.plays.is_empty(), "{name}");
    }
    let boot = resolve_in("bootstrap", Path::new("/nonexistent-dir"), B).unwrap();
    let names: Vec<&str> = boot.plays.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "check the cluster shape",
            "cluster secrets, the running cluster's or made on this machine",
            "cluster secrets, the running cluster's or made on this machine",
            "configure docker",
            "restart docker where its configuration changed",
            "a restart roll begins",
            "restart on the nodes that are not consul servers, in batches",
            "restart on the consul followers, one at a time",
            "restart on the consul leader, last",
            "pull missing images",
            "consul servers not running yet, started together, then a leader",
            "consul clients not running yet, started once there is a leader",
            "which consul agents the roll changes",
            "roll the consul clients, in batches",
            "roll the consul followers, one at a time",
            "roll the consul leader, last",
            "consul ACL policies and tokens",
            "each consul agent uses its own token",
            "consul ACL tokens no agent uses any more",
            "which nodes' stack changes",
            "service stack",
            "the linking watcher"
        ]
    );
    // `bootstrap`, `consul` and `upgrade` recreate agents through the same
    // roll: which nodes change asked of all at once, then clients by the
    // quarter, servers one at a time, and a failed batch stops it.
    let roll = |name: &str| {
        let pb = resolve_in(name, Path::new("/nonexistent-dir"), B).unwrap();
        pb.plays
            .iter()
            .skip_while(|p| !p.name.starts_with("consul servers not running"))
            .take(6)
            .map(|p| (p.name.clone(), p.serial.clone(), p.max_fail_percentage))
            .collect::<Vec<_>>()
    };
    let shared = roll("bootstrap");
    assert_eq!(shared.len(), 6);
    assert!(shared[..3].iter().all(|p| p.1.is_empty()), "{shared:?}");
    assert_eq!(shared[3].1, [Serial::Template("{{ roll_serial }}".into())]);
    assert_eq!(
        (&shared[4].1, &shared[5].1),
        (&vec![Serial::Count(1)], &vec![Serial::Count(1)])
    );
    assert!(shared.iter().all(|p| p.2 == Some(0.0)), "{shared:?}");
    assert_eq!(roll("consul"), shared);
    assert_eq!(roll("upgrade"), shared);
}

#[test]
fn loop_check_mode_and_docker_modules_parse() {
    let pb = parse(
        "- hosts: all\n  tasks:\n    - docker_container:\n        name: c\n        image: i\n      loop: \"{{ stack }}\"\n      check_mode: false\n    - docker_image:\n        name: x\n      with_items: [a, b]\n",
    )
    .unwrap();
    let t = &pb.plays[0].task_list();
    args::<DockerContainer>(t[0]);
    args::<DockerImage>(t[1]);
    assert_eq!(t[0].loop_items, Some(serde_json::json!("{{ stack }}")));
    assert_eq!(t[0].check_mode, Some(false));
    assert_eq!(t[1].loop_items, Some(serde_json::json!(["a", "b"])));
    let text = error(
        "- hosts: all\n  tasks:\n    - docker_container:\n        name: c\n        imgae: i\n",
    );
    assert!(text.contains("unknown argument `imgae`"), "{text}");
    assert!(text.contains("did you mean `image`?"), "{text}");
    let text = error("- import_playbook: nope.yml\n");
    assert!(
        text.starts_with("site.yml:1:3: no playbook `nope.yml` to import"),
        "{text}"
    );
}

/// One-letter typos of `word`: each letter dropped, and each replaced.
fn typos(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = Vec::new();
    for i in 0..chars.len() {
        let mut dropped = chars.clone();
        dropped.remove(i);
        out.push(dropped.into_iter().collect());
        let mut altered = chars.clone();
        altered[i] = if chars[i] == 'x' { 'q' } else { 'x' };
        out.push(altered.into_iter().collect());
    }
    out
}

#[test]
fn every_module_name_and_alias_is_suggested_for_a_one_letter_typo() {
    let mut checked = 0;
    for name in B.registry().names() {
        let mut forms = vec![name.to_owned()];
        if !name.contains('.') {
            forms.push(format!("ansible.builtin.{name}"));
        }
        for form in forms {
            let (prefix, word) = match form.strip_prefix("ansible.builtin.") {
                Some(word) => ("ansible.builtin.", word),
                None => ("", form.as_str()),
            };
            for typo in typos(word) {
                let key = format!("{prefix}{typo}");
                // A typo one edit from another module too (`fil`: `file`,
                // `fail`) may fairly suggest either.
                let ambiguous = B
                    .registry()
                    .names()
                    .any(|n| n != word && strsim::damerau_levenshtein(&typo, n) <= 1);
                if key.contains(' ') || B.registry().find(&key).is_some() || ambiguous {
                    continue;
                }
                let text = error(&format!("- hosts: all\n  tasks:\n    - {key}: x\n"));
                assert!(
                    text.contains(&format!("hint: did you mean `{form}`?")),
                    "`{key}` should suggest `{form}`:\n{text}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 300, "only {checked} typos checked");
}

#[test]
fn every_name_alias_and_builtin_form_finds_its_module() {
    let find = |key: &str| B.registry().find(key);
    for def in B.registry().all() {
        for name in std::iter::once(def.name()).chain(def.aliases().iter().copied()) {
            assert_eq!(find(name).map(|m| m.name()), Some(def.name()), "{name}");
            if !name.contains('.') {
                for prefix in ["ansible.builtin.", "ansible.legacy."] {
                    let full = format!("{prefix}{name}");
                    assert_eq!(find(&full).map(|m| m.name()), Some(def.name()), "{full}");
                }
            }
        }
    }
    let mut names: Vec<&str> = B.registry().names().collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "a name is listed twice");
    assert!(find("ansible.builtin.community.docker.docker_image").is_none());
    assert_eq!(find("systemd_service").map(|m| m.name()), Some("systemd"));
}

#[test]
fn the_no_module_hint_lists_every_module() {
    let text = error("- hosts: all\n  tasks:\n    - name: nothing\n");
    for def in B.registry().all() {
        assert!(
            text.contains(&format!("`{}`", def.name())),
            "`{}` missing from:\n{text}",
            def.name()
        );
    }
}

#[test]
fn docker_arguments_are_typed_at_load_unless_templated() {
    let text = error(
        "- hosts: all\n  tasks:\n    - docker_container:\n        name: c\n        ports: {a: 1}\n",
    );
    assert!(text.starts_with("site.yml:5:16: `ports`:"), "{text}");
    let text = error("- hosts: all\n  tasks:\n    - docker_image: {force: yes}\n");
    assert!(
        text.starts_with("site.yml:3:21: `docker_image`: missing argument `name`"),
        "{text}"
    );
    let t = task("    - docker_container:\n        name: \"{{ n }}\"\n        ports: \"{{ ports }}\"\n        privileged: \"{{ p }}\"\n");
    assert_eq!(t.name, "docker_container: {{ n }}");
    let text =
        error("- hosts: all\n  tasks:\n    - docker_container: {name: c, ports: \"{{ x \"}\n");
    assert!(text.starts_with("site.yml:3:7: syntax error"), "{text}");
}

/// The full message of every bad fixture, as the operator reads it.
#[test]
fn bad_fixture_messages() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../../tests/fixtures/playbooks/snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        insta::glob!("../../tests/fixtures/playbooks/bad", "*.yml", |path| {
            let text = std::fs::read_to_string(path).unwrap();
            let name = path.file_name().unwrap();
            let err = Playbook::parse_with(Path::new(name), &fixtures().join("bad"), &text, B)
                .expect_err("a bad fixture parsed");
            insta::assert_snapshot!(err.to_string());
        });
    });
}

/// The full message of each bad input of the tests above.
#[test]
fn bad_input_messages() {
    let cases = [
        ("empty_playbook", "# nothing\n"),
        ("role_not_found", "- hosts: all\n  roles: [consul]\n"),
        (
            "role_entry_unknown_key",
            "- hosts: all\n  roles:\n    - role: consul\n      whne: x\n",
        ),
        (
            "role_entry_inline_param",
            "- hosts: all\n  roles:\n    - { role: consul, consul-port: 80 }\n",
        ),
        (
            "role_entry_without_role",
            "- hosts: all\n  roles:\n    - tags: [x]\n",
        ),
        (
            "import_role_with_module",
            "- hosts: all\n  tasks:\n    - import_role: {name: x}\n      command: y\n",
        ),
        (
            "include_role_unknown_arg",
            "- hosts: all\n  tasks:\n    - include_role: {name: x, task_from: y}\n",
        ),
        (
            "become_method_unknown",
            "- hosts: all\n  tasks:\n    - command: x\n      become: true\n      become_method: doas\n",
        ),
        (
            "duplicate_key",
            "- hosts: all\n  tasks:\n    - command: x\n      name: a\n      name: b\n",
        ),
        (
            "copy_without_src",
            "- hosts: all\n  tasks:\n    - copy: {dest: /x}\n",
        ),
        (
            "command_without_cmd",
            "- hosts: all\n  tasks:\n    - command: {chdir: /tmp}\n",
        ),
        (
            "shell_with_argv",
            "- hosts: all\n  tasks:\n    - shell: {argv: [a]}\n",
        ),
        (
            "debug_free_form",
            "- hosts: all\n  tasks:\n    - debug: hello\n",
        ),
        (
            "file_state_unknown",
            "- hosts: all\n  tasks:\n    - file: {path: /x, state: gone}\n",
        ),
        (
            "stdin_not_a_string",
            "- hosts: all\n  tasks:\n    - command: {cmd: x, stdin: [a]}\n",
        ),
        (
            "flag_not_yes_or_no",
            "- hosts: all\n  tasks:\n    - command: x\n      ignore_errors: maybe\n",
        ),
        (
            "nested_condition",
            "- hosts: all\n  tasks:\n    - command: x\n      when: [[a]]\n",
        ),
        ("serial_word", "- hosts: all\n  serial: lots\n  tasks: []\n"),
        (
            "mode_too_short",
            "- hosts: all\n  tasks:\n    - file: {path: /x, mode: 64}\n",
        ),
        (
            "vars_template_syntax",
            "- hosts: all\n  vars:\n    a: \"{{ b \"\n  tasks: []\n",
        ),
        (
            "notify_without_handlers",
            "- hosts: all\n  tasks:\n    - command: x\n      notify: nope\n",
        ),
        (
            "docker_unknown_argument",
            "- hosts: all\n  tasks:\n    - docker_container:\n        name: c\n        imgae: i\n",
        ),
        ("import_missing", "- import_playbook: nope.yml\n"),
        (
            "import_playbook_with_hosts",
            "- import_playbook: x.yml\n  hosts: all\n",
        ),
        (
            "import_tasks_with_module",
            "- hosts: all\n  tasks:\n    - import_tasks: x.yml\n      command: y\n",
        ),
        (
            "builtin_module_typo",
            "- hosts: all\n  tasks:\n    - ansible.builtin.comand: x\n",
        ),
        ("task_key_in_play", "- hosts: all\n  command: x\n"),
        (
            "loop_not_a_list",
            "- hosts: all\n  tasks:\n    - command: x\n      loop: 3\n",
        ),
        ("two_documents", "- hosts: a\n---\n- hosts: b\n"),
        ("tab_indent", "- hosts: all\n  tasks:\n\t- command: x\n"),
    ];
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../../tests/fixtures/playbooks/snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for (name, yaml) in cases {
            insta::assert_snapshot!(name, error(yaml), yaml);
        }
    });
}

#[test]
fn durations_and_counts_have_limits_reported_at_the_value() {
    let task = |extra: &str| {
        error(&format!(
            "- hosts: all\n  tasks:\n    - command: x\n{extra}"
        ))
    };
    for (extra, key) in [
        ("      delay: 1e20\n      retries: 1\n", "delay"),
        ("      delay: .inf\n", "delay"),
        ("      delay: 604801\n", "delay"),
        ("      retries: 4294967295\n", "retries"),
    ] {
        let text = task(extra);
        assert!(text.starts_with("site.yml:4:"), "{text}");
        assert!(text.contains(&format!("`{key}`: expected")), "{text}");
    }
    let text = error("- hosts: all\n  tasks:\n    - wait_for: {port: 22, timeout: 1e20}\n");
    assert!(text.starts_with("site.yml:3:"), "{text}");
    assert!(text.contains("`timeout`"), "{text}");
    assert!(parse(
        "- hosts: all\n  tasks:\n    - command: x\n      delay: 604800\n      retries: 10000\n"
    )
    .is_ok());
}

#[test]
fn unknown_filters_and_tests_are_found_at_load() {
    let text = error("- hosts: all\n  tasks:\n    - command: echo {{ x | tojsn }}\n");
    assert!(
        text.starts_with("site.yml:3:7: unknown filter `tojsn` in `echo {{ x | tojsn }}`"),
        "{text}"
    );
    assert!(text.ends_with("hint: did you mean `tojson`?"), "{text}");
    let text = error("- hosts: all\n  tasks:\n    - command: x\n      when: r is sucess\n");
    assert!(
        text.starts_with("site.yml:4:7: unknown test `sucess` in `r is sucess`"),
        "{text}"
    );
    assert!(text.ends_with("hint: did you mean `success`?"), "{text}");
    // filters inside blocks and `{% filter %}` sections count too
    let text = error(
        "- hosts: all\n  tasks:\n    - debug:\n        msg: \"{% filter nosuch %}x{% endfilter %}\"\n",
    );
    assert!(text.contains("unknown filter `nosuch`"), "{text}");
    // known ones, ours and minijinja's, pass
    parse("- hosts: all\n  tasks:\n    - command: echo {{ x | to_json | upper | b64encode }}\n      when: r is succeeded and y is defined\n").unwrap();
}

#[test]
fn template_files_are_checked_at_load_where_they_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("templates")).unwrap();
    let task = |src: &str| {
        let text = format!("- hosts: all\n  tasks:\n    - template: {{src: {src}, dest: /x}}\n");
        Playbook::parse(&root.join("site.yml"), root, &text)
    };
    std::fs::write(root.join("templates/bad.j2"), "ok\n{{ x | upperr }}\n").unwrap();
    let text = task("bad.j2").unwrap_err().to_string();
    let file = root.join("templates/bad.j2");
    assert!(
        text.starts_with(&format!("{}:2:", file.display())),
        "{text}"
    );
    assert!(text.contains("unknown filter `upperr`"), "{text}");
    assert!(text.contains("2 | {{ x | upperr }}"), "{text}");
    std::fs::write(root.join("templates/broken.j2"), "a\n{% if x %}\nno end\n").unwrap();
    let text = task("broken.j2").unwrap_err().to_string();
    assert!(text.contains("syntax error"), "{text}");
    assert!(
        text.starts_with(&root.join("templates/broken.j2").display().to_string()),
        "{text}"
    );
    std::fs::write(root.join("templates/good.j2"), "{{ x | upper }}\n").unwrap();
    task("good.j2").unwrap();
    // not found, or templated: left for the run, which looks again
    task("missing.j2").unwrap();
    task("\"{{ name }}.j2\"").unwrap();
}

/// `check_names` of one playbook, with `inventory_var` as the only name
/// the inventory and vars layers define.
fn names_check(text: &str) -> Result<()> {
    let pb = parse(text)?;
    let known = |name: &str| name == "inventory_var";
    Playbook::check_names(&[pb], &known, &["inventory_var".to_owned()])
}

#[test]
fn variables_defined_nowhere_are_refused_before_the_run() {
    let play = |tasks: &str| format!("- hosts: all\n  vars:\n    play_var: 1\n  tasks:\n{tasks}");
    let err = names_check(&play("    - command: echo {{ inventory_vra }}\n")).unwrap_err();
    assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
    let text = err.to_string();
    assert!(
        text.starts_with(
            "site.yml:5:7: undefined variable `inventory_vra` in `echo {{ inventory_vra }}`"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("hint: did you mean `inventory_var`?"),
        "{text}"
    );
    let text = names_check(&play("    - command: x\n      changed_when: nowhere > 1\n"))
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("site.yml:6:7: undefined variable `nowhere`"),
        "{text}"
    );

    // defined somewhere, or never certain to be needed: fine
    for tasks in [
        "    - command: echo {{ inventory_var }} {{ play_var }} {{ hostvars['x'].y }}\n",
        "    - command: echo {{ ansible_host }} {{ inventory_hostname }} {{ groups.all }}\n",
        "    - command: x\n      register: out\n    - command: echo {{ out.stdout }}\n",
        "    - command: echo {{ later }}\n    - set_fact: {later: 1}\n",
        "    - command: echo {{ item }}\n      loop: [1, 2]\n",
        "    - command: echo {{ task_var }}\n      vars: {task_var: 1}\n",
        "    - command: echo {{ maybe | default('x') }}\n",
        "    - command: echo {% if maybe is defined %}{{ maybe }}{% endif %}\n",
        "    - command: echo {{ nowhere }}\n      when: false\n",
        "    - command: echo {{ nowhere }}\n      when: inventory_var is defined\n",
        "    - command: echo {{ nowhere }}\n      ignore_errors: true\n",
        "    - command: echo {{ nowhere }}\n      tags: never\n",
        "    - command: echo {% for n in range(3) %}{{ n }}{% endfor %}\n",
    ] {
        names_check(&play(tasks)).unwrap_or_else(|e| panic!("{tasks}: {e}"));
    }
    // a name only another playbook of the same run defines is fine too
    let first = parse("- hosts: all\n  tasks:\n    - set_fact: {shared: 1}\n").unwrap();
    let second = parse("- hosts: all\n  tasks:\n    - command: echo {{ shared }}\n").unwrap();
    Playbook::check_names(&[first, second], &|_| false, &[]).unwrap();
}

#[test]
fn a_block_hands_its_keywords_down_and_keeps_its_three_lists() {
    let text = r#"
- hosts: all
  environment: {A: play}
  any_errors_fatal: true
  tasks:
    - name: outer
      when: first
      tags: [web]
      vars: {v: block, w: block}
      environment: {B: block}
      delegate_to: "{{ jump }}"
      become: true
      become_user: deploy
      block:
        - name: inner
          when: second
          vars: {v: task}
          environment: {B: task}
          command: echo one
      rescue:
        - name: saved
          command: echo two
      always:
        - name: done
          command: echo three
          delegate_to: localhost
"#;
    let pb = parse(text).unwrap();
    let play = &pb.plays[0];
    assert!(play.any_errors_fatal);
    assert_eq!(play.environment["A"], "play");
    let [Step::Block(block)] = &play.tasks[..] else {
        panic!("one block: {:?}", play.tasks);
    };
    let names = |steps: &[Step]| -> Vec<String> {
        Step::tasks(steps).iter().map(|t| t.name.clone()).collect()
    };
    assert_eq!(names(&block.body), ["inner"]);
    assert_eq!(names(&block.rescue), ["saved"]);
    assert_eq!(names(&block.always), ["done"]);
    let inner = Step::tasks(&block.body)[0];
    assert_eq!(inner.when, ["first", "second"]);
    assert_eq!(inner.tags, ["web"]);
    assert_eq!(
        (&inner.vars["v"], &inner.vars["w"]),
        (&"task".into(), &"block".into())
    );
    assert_eq!(inner.environment["B"], "task");
    assert_eq!(inner.delegate_to.as_deref(), Some("{{ jump }}"));
    assert_eq!(inner.escalate.enabled, Some(true));
    assert_eq!(inner.escalate.user.as_deref(), Some("deploy"));
    let saved = Step::tasks(&block.rescue)[0];
    assert_eq!(saved.when, ["first"]);
    assert_eq!(saved.environment["B"], "block");
    assert_eq!(saved.escalate.user.as_deref(), Some("deploy"));
    let done = Step::tasks(&block.always)[0];
    assert_eq!(done.delegate_to.as_deref(), Some("localhost"));
}

#[test]
fn loops_take_ansibles_forms_and_loop_control() {
    let t = tasks(
        r#"
    - command: echo {{ thing }}
      with_items: [[a, b], c]
      loop_control: {loop_var: thing, index_var: i, label: "{{ thing }}", pause: 0.5}
    - command: echo {{ item.key }}
      with_dict: {a: 1}
    - command: echo {{ item.0 }}
      with_indexed_items: [x]
"#,
    );
    assert_eq!(t[0].loop_kind, LoopKind::Items);
    assert_eq!(t[0].loop_control.loop_var, "thing");
    assert_eq!(t[0].loop_control.index_var.as_deref(), Some("i"));
    assert_eq!(t[0].loop_control.label.as_deref(), Some("{{ thing }}"));
    assert_eq!(t[0].loop_control.pause, Some(0.5));
    assert_eq!(t[1].loop_kind, LoopKind::Dict);
    assert_eq!(t[1].loop_control, LoopControl::default());
    assert_eq!(t[2].loop_kind, LoopKind::Indexed);
    let text =
        error("- hosts: all\n  tasks:\n    - command: x\n      loop: [a]\n      with_items: [b]\n");
    assert!(
        text.contains("a task takes one loop, found `loop` and `with_items`"),
        "{text}"
    );
    let text = error("- hosts: all\n  tasks:\n    - command: x\n      with_dict: [a]\n");
    assert!(text.contains("`with_dict` takes"), "{text}");
}

#[test]
fn local_action_runs_its_module_on_this_machine() {
    let t = tasks(
        r#"
    - local_action: command echo hi
    - local_action:
        module: ansible.builtin.shell
        cmd: echo there
"#,
    );
    assert_eq!(args::<Command>(&t[0]).0.cmd.as_deref(), Some("echo hi"));
    assert_eq!(t[0].delegate_to.as_deref(), Some("localhost"));
    assert_eq!(t[1].module.name(), "shell");
    assert_eq!(t[1].delegate_to.as_deref(), Some("localhost"));
    let text = error("- hosts: all\n  tasks:\n    - local_action: comand echo hi\n");
    assert!(text.contains("did you mean `command`"), "{text}");
}

#[test]
fn include_tasks_files_are_checked_at_load_unless_templated() {
    let text = error("- hosts: all\n  tasks:\n    - name: steps\n      ansible.builtin.include_tasks: stepz.yml\n");
    assert!(
        text.starts_with("site.yml:4:7: no task file `stepz.yml` to include"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("steps.yml"),
        "- set_fact: {made: 1}\n- include_tasks: steps.yml\n  when: false\n",
    )
    .unwrap();
    let text = "- hosts: all\n  tasks:\n    - include_tasks: {file: steps.yml}\n    - command: echo {{ made }}\n";
    let pb = Playbook::parse(&dir.path().join("site.yml"), dir.path(), text).unwrap();
    // what the included file defines is known, and it may include itself
    assert!(pb.defines.contains("made") && !pb.dynamic);
    let text = "- hosts: all\n  tasks:\n    - include_tasks: \"{{ which }}.yml\"\n";
    assert!(
        Playbook::parse(&dir.path().join("site.yml"), dir.path(), text)
            .unwrap()
            .dynamic
    );
}

#[test]
fn import_tasks_by_its_collection_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("more.yml"), "- command: echo more\n").unwrap();
    let text =
        "- hosts: all\n  tasks:\n    - ansible.builtin.import_tasks: more.yml\n      tags: [x]\n";
    let pb = Playbook::parse(&dir.path().join("site.yml"), dir.path(), text).unwrap();
    let tasks = pb.plays[0].task_list();
    assert_eq!(tasks[0].name, "command: echo more");
    assert_eq!(tasks[0].tags, ["x"]);
}

/// Write `files` under a fresh directory and load its `site.yml`.
fn load_tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Playbook>) {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let pb = Playbook::load(&dir.path().join("site.yml"));
    (dir, pb)
}

const ROLE_A: &[(&str, &str)] = &[
    (
        "roles/a/tasks/main.yml",
        "- name: a task\n  command: a\n  notify: a handler\n",
    ),
    (
        "roles/a/handlers/main.yml",
        "- name: a handler\n  command: h\n",
    ),
    ("roles/b/meta/main.yml", "dependencies: [a]\n"),
    ("roles/b/tasks/main.yaml", "- name: b task\n  command: b\n"),
];

#[test]
fn roles_run_after_pre_tasks_with_dependencies_once_and_their_handlers_join_the_play() {
    let site = "- hosts: all\n  pre_tasks:\n    - {name: pre, command: p}\n  roles: [a, b]\n  tasks:\n    - {name: t, command: t}\n  post_tasks:\n    - {name: post, command: q}\n";
    let files: Vec<_> = ROLE_A.iter().copied().chain([("site.yml", site)]).collect();
    let (_dir, pb) = load_tree(&files);
    let pb = pb.unwrap();
    let play = &pb.plays[0];
    let names: Vec<&str> = play.task_list().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["pre", "a : a task", "b : b task", "t", "post"]);
    let handlers: Vec<&str> = play.handlers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(handlers, ["a : a handler"]);
    let role = play.task_list()[1].role.clone().expect("a role's task");
    assert_eq!(role.name, "a");

    // other values, or `allow_duplicates`, run it again
    let site = "- hosts: all\n  roles:\n    - a\n    - {role: a, vars: {x: 1}}\n    - a\n";
    let files: Vec<_> = ROLE_A.iter().copied().chain([("site.yml", site)]).collect();
    let (_dir, pb) = load_tree(&files);
    assert_eq!(pb.unwrap().plays[0].task_list().len(), 2);
    let mut files = files.clone();
    files.push(("roles/a/meta/main.yml", "allow_duplicates: true\n"));
    let (_dir, pb) = load_tree(&files);
    assert_eq!(pb.unwrap().plays[0].task_list().len(), 3);
}

#[test]
fn inline_role_parameters_join_the_entry_s_vars_and_win_over_them() {
    let site = "- hosts: all\n  roles:\n    - {role: a, port: 80, vars: {port: 1, x: 2}}\n    - {role: a, y: 3}\n";
    let files: Vec<_> = ROLE_A.iter().copied().chain([("site.yml", site)]).collect();
    let (_dir, pb) = load_tree(&files);
    let pb = pb.unwrap();
    let tasks = pb.plays[0].task_list();
    // Other values: the role runs twice.
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].vars["port"], serde_json::json!(80));
    assert_eq!(tasks[0].vars["x"], serde_json::json!(2));
    assert_eq!(tasks[1].vars["y"], serde_json::json!(3));
}

#[test]
fn bad_roles_are_refused_before_any_host_where_they_are() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        (
            "- hosts: all\n  tasks:\n    - include_role: {name: nowhere}\n",
            &[],
            "site.yml:3:7: no role `nowhere`",
        ),
        (
            "- hosts: all\n  roles: [a]\n",
            &[("roles/a/tasks/main.yml", "- command: x\n  notify: nobody\n")],
            "roles/a/tasks/main.yml:2:3: `notify` names no handler of this play: `nobody`",
        ),
        (
            "- hosts: all\n  roles: [a]\n",
            &[(
                "roles/a/meta/main.yml",
                "dependencies:\n  - {role: ghost}\n",
            )],
            "roles/a/meta/main.yml:2:6: no role `ghost`",
        ),
        (
            "- hosts: all\n  tasks:\n    - import_role: {name: a, tasks_from: other}\n",
            &[("roles/a/tasks/main.yml", "- command: x\n")],
            "site.yml:3:7: no task file `other` to include",
        ),
        (
            "- hosts: all\n  roles: [a]\n",
            &[("roles/a/defaults/main.yml", "[not a mapping\n")],
            "roles/a/defaults/main.yml:",
        ),
    ];
    for (site, files, expected) in cases {
        let files: Vec<_> = files.iter().copied().chain([("site.yml", *site)]).collect();
        let (dir, pb) = load_tree(&files);
        let text = pb.unwrap_err().to_string();
        let text = text.replace(&format!("{}/", dir.path().display()), "");
        assert!(text.starts_with(expected), "{expected}\n{text}");
    }
}

#[test]
fn a_role_entry_hands_down_its_keywords_and_the_play_its_become_to_every_section() {
    let site = "- hosts: all\n  become_user: app\n  pre_tasks:\n    - {name: pre, command: p}\n  roles:\n    - role: a\n      become: true\n      when: go\n      tags: [web]\n      vars: {x: 1}\n  post_tasks:\n    - {name: post, command: q}\n";
    let files: Vec<_> = ROLE_A.iter().copied().chain([("site.yml", site)]).collect();
    let (_dir, pb) = load_tree(&files);
    let pb = pb.unwrap();
    let play = &pb.plays[0];
    let tasks = play.task_list();
    let role_task = tasks[1];
    assert_eq!(role_task.escalate.enabled, Some(true));
    assert_eq!(role_task.when, ["go"]);
    assert_eq!(role_task.tags, ["web"]);
    assert_eq!(role_task.vars["x"], serde_json::json!(1));
    // the role's handler takes the entry's keywords too
    assert_eq!(play.handlers[0].escalate.enabled, Some(true));
    for task in tasks {
        assert_eq!(task.escalate.user.as_deref(), Some("app"), "{}", task.name);
    }
}
