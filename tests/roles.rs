//! Roles end to end, the built binary against real sshd hosts: `roles:`
//! with a `meta/main.yml` dependency, defaults, vars, handlers, templates
//! and files; `include_role` in a loop; `pre_tasks`/`post_tasks` and their
//! handler flushes; a role found through `ARPANET_ROLES_PATH`. What is
//! checked is what only the behaviour makes on the hosts: rendered files,
//! and a log each task appends to.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::{Cluster, TEST_USER};

/// A directory the test user (on the hosts) can write to.
fn workdir(cluster: &Cluster) -> String {
    let dir = cluster.dir().join("work");
    fs::create_dir_all(&dir).unwrap();
    let status = Command::new("chown")
        .arg(format!("{TEST_USER}:"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    dir.to_str().unwrap().to_owned()
}

fn read(work: &str, name: &str) -> String {
    fs::read_to_string(Path::new(work).join(name))
        .unwrap_or_else(|e| panic!("cannot read {name}: {e}"))
}

fn write_roles(cluster: &Cluster) {
    let files: &[(&str, &str)] = &[
        (
            "roles/common/tasks/main.yml",
            "- shell: echo common >> {{ work }}/order-{{ inventory_hostname }}\n",
        ),
        ("roles/common/defaults/main.yml", "common_marker: c\n"),
        (
            "roles/web/meta/main.yml",
            "galaxy_info:\n  author: someone\ndependencies:\n  - common\n",
        ),
        (
            "roles/web/defaults/main.yml",
            "greeting: from-defaults\nport: 80\ntitle: from-defaults\n",
        ),
        ("roles/web/vars/main.yml", "title: from-role-vars\n"),
        (
            "roles/web/templates/page.j2",
            "{{ greeting }} {{ title }} {{ port }} {{ role_name }} {{ common_marker }}\n",
        ),
        // A template of the same name beside the playbook: the role's wins.
        ("templates/page.j2", "the playbook's template\n"),
        ("roles/web/files/static.txt", "static from the role\n"),
        (
            "roles/web/tasks/main.yml",
            r#"
- name: web runs
  shell: echo web >> {{ work }}/order-{{ inventory_hostname }}
- name: page
  template:
    src: page.j2
    dest: "{{ work }}/page-{{ inventory_hostname }}"
  notify: restart web
- name: static
  copy:
    src: static.txt
    dest: "{{ work }}/static-{{ inventory_hostname }}"
"#,
        ),
        (
            "roles/web/handlers/main.yml",
            "- name: restart web\n  shell: echo restarted >> {{ work }}/order-{{ inventory_hostname }}\n",
        ),
        (
            "roles/site/tasks/main.yml",
            r#"
- name: site {{ port }}
  shell: echo site {{ port }} {{ title }} >> {{ work }}/order-{{ inventory_hostname }}
  changed_when: true
  notify: restart web
"#,
        ),
        ("roles/site/defaults/main.yaml", "port: 1\ntitle: site-default\n"),
    ];
    for (path, text) in files {
        cluster.write_file(path, text);
    }
}

#[test]
fn roles_run_dependencies_first_with_their_variables_files_and_handlers() {
    let cluster = Cluster::start(2);
    let work = workdir(&cluster);
    write_roles(&cluster);
    let inventory = cluster.inventory(&[("greeting", "from-inventory")]);
    let playbook = cluster.write_file(
        "site.yml",
        r#"
- hosts: all
  gather_facts: false
  vars:
    title: from-play
  pre_tasks:
    - name: pre
      shell: echo pre >> {{ work }}/order-{{ inventory_hostname }}
      changed_when: true
      notify: pre handler
  roles:
    - common
    - role: web
      port: 8080
  tasks:
    - name: sites
      include_role:
        name: site
      loop: [1, 2]
      vars:
        port: "{{ 9000 + item }}"
    - name: task
      shell: echo task >> {{ work }}/order-{{ inventory_hostname }}
  post_tasks:
    - name: post
      shell: echo post >> {{ work }}/order-{{ inventory_hostname }}
  handlers:
    - name: pre handler
      shell: echo pre-handler >> {{ work }}/order-{{ inventory_hostname }}
"#,
    );
    let work_var = format!("work={work}");
    let out = cluster.run(&[
        "run",
        "-i",
        inventory.to_str().unwrap(),
        playbook.to_str().unwrap(),
        "-e",
        &work_var,
    ]);
    assert_eq!(out.code, 0, "{out}");
    for host in ["node1", "node2"] {
        // pre_tasks and their handler, the dependency once (though listed
        // and depended on), the role, the included role per item, the
        // play's tasks, the handler notified four times run once before
        // post_tasks.
        let order: Vec<String> = read(&work, &format!("order-{host}"))
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            order,
            [
                "pre",
                "pre-handler",
                "common",
                "web",
                // `web`'s vars, from `roles:`, are the play's (as in
                // Ansible), above play vars and the included role's
                // defaults.
                "site 9001 from-role-vars",
                "site 9002 from-role-vars",
                "task",
                "restarted",
                "post"
            ],
            "{host}\n{out}"
        );
        // greeting: the role's default under the inventory's; title: the
        // role's vars over the play's; port: the entry's (inline) parameter over the
        // default; a dependency's defaults are seen too.
        assert_eq!(
            read(&work, &format!("page-{host}")),
            "from-inventory from-role-vars 8080 web c\n"
        );
        assert_eq!(
            read(&work, &format!("static-{host}")),
            "static from the role\n"
        );
    }
}

#[test]
fn a_role_is_found_through_arpanet_roles_path_and_a_missing_one_is_named() {
    let cluster = Cluster::start(1);
    let work = workdir(&cluster);
    cluster.write_file(
        "shared/greeter/tasks/main.yml",
        "- copy:\n    content: \"{{ greeting }}\\n\"\n    dest: \"{{ work }}/greeted\"\n",
    );
    cluster.write_file("shared/greeter/defaults/main.yml", "greeting: hello\n");
    let inventory = cluster.inventory(&[]);
    let playbook = cluster.write_file(
        "plays/site.yml",
        "- hosts: all\n  gather_facts: false\n  roles: [greeter]\n",
    );
    let work_var = format!("work={work}");
    let args = [
        "run",
        "-i",
        inventory.to_str().unwrap(),
        playbook.to_str().unwrap(),
        "-e",
        &work_var,
    ];
    let missing = cluster.run(&args);
    assert_eq!(missing.code, 5, "{missing}");
    assert!(
        missing.stderr.contains("no role `greeter`")
            && missing.stderr.contains("plays/roles/greeter")
            && missing.stderr.contains("ARPANET_ROLES_PATH"),
        "{missing}"
    );
    assert!(!Path::new(&work).join("greeted").exists());

    let shared = cluster.dir().join("shared");
    let path = format!("/nonexistent:{}", shared.display());
    let out = cluster.run_with_env(&args, &[("ARPANET_ROLES_PATH", &path)]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(read(&work, "greeted"), "hello\n");

    // The project file's `roles_path` (relative to it) does too.
    std::fs::remove_file(Path::new(&work).join("greeted")).unwrap();
    cluster.write_file("arpanet.yml", "roles_path: /nonexistent:shared\n");
    let out = cluster.run(&args);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(read(&work, "greeted"), "hello\n");
}
