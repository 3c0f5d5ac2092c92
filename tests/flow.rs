//! Playbook flow keywords end to end, the built binary against real sshd
//! hosts: `block`/`rescue`/`always` with what blocks hand down, dynamic
//! `include_tasks` in a loop, `delegate_to` (this machine, another host),
//! `local_action`, `environment`, `loop_control` and roles. Ordering and recaps are
//! compared with ansible-playbook's (`tests/fixtures/flow/`).

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::serial::replay_in;
use crate::support::{Cluster, Run, TEST_USER};

#[test]
fn flow_scenarios_match_ansible_over_ssh() {
    let cluster = Cluster::start(3);
    for name in [
        "rescue_and_always",
        "always_without_rescue",
        "nested_blocks",
        "any_errors_fatal_play",
        "any_errors_fatal_rescued",
        "include_loop",
        "any_errors_fatal_always",
        "rescued_under_mfp",
        "include_in_rescue_serial",
        "roles",
    ] {
        replay_in(&cluster, "flow", name);
    }
}

/// A directory both the test user (on the hosts) and this process (for
/// delegated tasks) can write to.
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

fn read(work: &str, name: &str) -> Option<String> {
    fs::read_to_string(Path::new(work).join(name))
        .ok()
        .map(|s| s.trim().to_owned())
}

fn recap<'a>(run: &'a Run, host: &str) -> &'a str {
    let start = run.stdout.find("PLAY RECAP").expect("a recap");
    run.stdout[start..]
        .lines()
        .find(|l| l.split_whitespace().next() == Some(host))
        .unwrap_or_else(|| panic!("no recap line for {host}\n{run}"))
}

#[test]
fn a_rescued_block_sees_the_failed_task_and_hands_down_when_tags_and_vars() {
    let cluster = Cluster::start(2);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[]);
    let playbook = cluster.write_file(
        "blocks.yml",
        r#"
- name: blocks
  hosts: all
  gather_facts: false
  tasks:
    - name: guarded
      when: inventory_hostname == 'node1'
      tags: [web]
      vars:
        marker: from-block
      block:
        - name: breaks here
          command: "false"
        - name: never reached
          shell: echo no > {{ work }}/never-{{ inventory_hostname }}
      rescue:
        - name: note the failure
          shell: echo "{{ ansible_failed_task.name }} {{ marker }}" > {{ work }}/rescued-{{ inventory_hostname }}
      always:
        - name: always runs
          shell: echo yes > {{ work }}/always-{{ inventory_hostname }}
    - name: untagged
      shell: echo x > {{ work }}/untagged-{{ inventory_hostname }}
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
        "--tags",
        "web",
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        read(&work, "rescued-node1").as_deref(),
        Some("breaks here from-block"),
        "{out}"
    );
    assert_eq!(read(&work, "always-node1").as_deref(), Some("yes"));
    assert_eq!(read(&work, "never-node1"), None);
    // the block's `when` holds each of its tasks on node2, always included
    assert_eq!(read(&work, "always-node2"), None);
    // the block's tag selected its tasks; the untagged task stayed out
    assert_eq!(read(&work, "untagged-node1"), None);
    let node1 = recap(&out, "node1");
    assert!(
        node1.contains("failed=0") && node1.contains("rescued=1"),
        "{out}"
    );
}

#[test]
fn includes_delegation_environment_and_loop_labels_over_ssh() {
    let cluster = Cluster::start(2);
    let work = workdir(&cluster);
    let inventory = cluster.inventory(&[]);
    cluster.write_file(
        "step.yml",
        "- name: step\n  shell: echo \"{{ thing }} {{ idx }}\" > {{ work }}/step-{{ thing }}-{{ inventory_hostname }}\n",
    );
    let playbook = cluster.write_file(
        "reach.yml",
        r#"
- name: reach
  hosts: all
  gather_facts: false
  environment:
    GREETING: hello
  tasks:
    - name: per item
      include_tasks: "{{ kind }}.yml"
      vars:
        kind: step
      loop: [a, b]
      loop_control:
        loop_var: thing
        index_var: idx
    - name: on this machine
      shell: echo "$(id -un) ${SSH_CONNECTION:-none} {{ inventory_hostname }}" > {{ work }}/local-{{ inventory_hostname }}
      delegate_to: localhost
    - name: on node2
      shell: echo "$(id -un) ${SSH_CONNECTION:-none} {{ inventory_hostname }}" > {{ work }}/delegated-{{ inventory_hostname }}
      delegate_to: node2
      when: inventory_hostname == 'node1'
    - name: local action
      local_action: shell echo "${SSH_CONNECTION:-none}" > {{ work }}/action-{{ inventory_hostname }}
    - name: environment
      shell: echo "$GREETING $TARGET" > {{ work }}/env-{{ inventory_hostname }}
      environment:
        TARGET: "{{ inventory_hostname }}"
    - name: labelled
      command: echo {{ item.id }}
      loop:
        - { id: first, token: tok-one-hidden }
        - { id: second, token: tok-two-hidden }
      loop_control:
        label: "{{ item.id }}"
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
        // include_tasks: once per item, with the loop and index variables
        assert_eq!(read(&work, &format!("step-a-{host}")).unwrap(), "a 0");
        assert_eq!(read(&work, &format!("step-b-{host}")).unwrap(), "b 1");
        // delegate_to localhost: this process's user, no SSH session
        let me = Command::new("id").arg("-un").output().unwrap();
        let me = String::from_utf8(me.stdout).unwrap();
        let local = read(&work, &format!("local-{host}")).unwrap();
        assert_eq!(local, format!("{} none {host}", me.trim()), "{out}");
        assert_eq!(read(&work, &format!("action-{host}")).unwrap(), "none");
        // environment: the play's and the task's, rendered per host
        let env = read(&work, &format!("env-{host}")).unwrap();
        assert_eq!(env, format!("hello {host}"));
    }
    // delegate_to node2: run over node2's connection with node1's variables
    let delegated = read(&work, "delegated-node1").unwrap();
    let node2 = &cluster.hosts[1];
    let fields: Vec<&str> = delegated.split_whitespace().collect();
    assert_eq!(fields[0], cluster.user, "{delegated}");
    assert_eq!(
        fields[3..5],
        [node2.address.as_str(), &node2.port.to_string()],
        "{delegated}"
    );
    assert_eq!(fields[5], "node1", "{delegated}");
    assert_eq!(read(&work, "delegated-node2"), None);
    // loop_control.label names the items instead of their whole value
    assert!(
        out.stdout.contains("first") && out.stdout.contains("second"),
        "{out}"
    );
    assert!(!out.stdout.contains("tok-one-hidden"), "{out}");
}
