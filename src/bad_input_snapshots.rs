//! Snapshots of the full message of every family of bad input that is not a
//! playbook or a YAML inventory (those live beside their parsers): INI
//! inventories, the rc file, `-e`, vars files, templates, `--limit`
//! patterns and built-in playbook names. A change of wording shows up as a
//! snapshot diff to read by eye.

use std::path::Path;

use crate::error::{exit, Error, Location};
use crate::inventory::Inventory;
use crate::playbook::Playbook;
use crate::template::Engine;

/// Snapshot each `(name, error)` under `tests/fixtures/bad_input/snapshots`
/// as `FAMILY__NAME`, with `dir` (a temporary directory) shown as `<dir>`.
fn snap(family: &str, dir: Option<&Path>, cases: Vec<(&str, String, Error)>) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../tests/fixtures/bad_input/snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for (name, input, err) in cases {
            assert_eq!(err.exit_code(), exit::BAD_INPUT, "{err}");
            let mut text = err.to_string();
            if let Some(dir) = dir {
                text = text.replace(&dir.display().to_string(), "<dir>");
            }
            insta::assert_snapshot!(format!("{family}__{name}"), text, &input);
        }
    });
}

#[test]
fn ini_inventory() {
    let cases = [
        ("unclosed_section", "[web\nw1\n"),
        ("after_section", "[web] x\n"),
        ("bad_group_name", "[we b]\n"),
        ("unknown_section_type", "[web:hostz]\n"),
        ("vars_of_undeclared_group", "[web:vars]\na=1\n"),
        ("variable_not_host", "[web]\nansible_user=root\n"),
        ("not_key_value", "[web]\nw1 port\n"),
        ("bad_variable_name", "[web]\nw1 =1\n"),
        ("trailing_colon", "[web]\nw1:\n"),
        ("unterminated_quote", "[web]\nw1 a='x\n"),
        ("vars_colon", "[web]\nw1\n[web:vars]\nport: 80\n"),
        ("bad_port", "[web]\nw1:99999\n"),
        ("port_var", "[web]\nw1 ansible_port=ssh\n"),
        ("range_backwards", "[web]\nn[3:1]\n"),
        ("range_padding", "[web]\nn[01:100]\n"),
        ("range_step", "[web]\nn[1:9:0]\n"),
        ("range_bounds", "[web]\nn[1:c]\n"),
        ("range_shape", "[web]\nn[1]\n"),
        ("range_unclosed", "[web]\nn[1:3\n"),
        ("range_stray_bracket", "[web]\nn1]\n"),
        ("range_too_large", "[web]\nn[1:99999]\n"),
        ("bad_host_name", "[web]\nn[a:c],x\n"),
        ("undefined_child", "[p:children]\nmissing\n[other]\nh\n"),
        ("child_loop", "[a:children]\nb\n[b:children]\na\n"),
        ("all_as_child", "[a:children]\nall\n"),
        ("after_child_group", "[a:children]\nb c\n[b]\n"),
    ];
    let cases = cases
        .into_iter()
        .map(|(name, text)| {
            let err = Inventory::parse(Path::new("hosts"), text).expect_err(name);
            (name, text.to_owned(), err)
        })
        .collect();
    snap("ini", None, cases);
}

#[test]
fn rc_file() {
    let cases = [
        ("not_key_value", "A=1\n\njust words\n"),
        ("bad_name", "A=1\nCONSUL EXPECT=3\n"),
        ("bad_exported_name", "export 9X=1\n"),
        ("unterminated_quote", "A=\"open\n"),
        ("after_quoted_value", "A=\"x\" y\n"),
    ];
    let cases = cases
        .into_iter()
        .map(|(name, text)| {
            let err =
                crate::vars::parse_rc(Path::new("/home/op/.arpanetrc"), text).expect_err(name);
            (name, text.to_owned(), err)
        })
        .collect();
    snap("rc", None, cases);
}

#[test]
fn extra_vars() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        format!("@{}", path.display())
    };
    let cases = vec![
        ("not_key_value", "a=1 oops".to_owned()),
        ("bad_name", "=1".to_owned()),
        ("unterminated_quote", "a='x".to_owned()),
        ("a_list", "[1, 2]".to_owned()),
        ("inline_yaml_syntax", "{\"a\": [}".to_owned()),
        ("inline_yaml_port", "{\"ansible_port\": 0}".to_owned()),
        ("file_syntax", file("syntax.yml", "a: 1\nb: [1,\n")),
        ("file_not_a_mapping", file("string.yml", "just a string\n")),
        (
            "file_bad_port",
            file("port.yml", "a: 1\nansible_port: ssh\n"),
        ),
        ("file_not_utf8", file("latin1.yml", "a: caf\u{e9}\n")),
    ];
    std::fs::write(dir.path().join("latin1.yml"), b"a: caf\xe9\n").unwrap();
    let cases = cases
        .into_iter()
        .map(|(name, arg)| {
            let err = crate::vars::parse_extra(&arg).expect_err(name);
            (name, arg, err)
        })
        .collect();
    snap("extra_vars", Some(dir.path()), cases);
}

#[test]
fn vars_files() {
    let cases = [
        ("group_vars_syntax", "group_vars/web.yml", "a: [1,\n"),
        ("group_vars_a_list", "group_vars/web.yml", "- a\n- b\n"),
        (
            "host_vars_bad_port",
            "host_vars/w1.yml",
            "ansible_port: 70000\n",
        ),
        ("host_vars_tab", "host_vars/w1", "a:\n\tb: 1\n"),
    ];
    let root = tempfile::tempdir().unwrap();
    let cases = cases
        .into_iter()
        .map(|(name, file, text)| {
            let dir = root.path().join(name);
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            std::fs::write(dir.join("hosts"), "[web]\nw1\n").unwrap();
            let err = Inventory::load(&dir.join("hosts")).expect_err(name);
            (name, format!("{file}:\n{text}"), err)
        })
        .collect();
    snap("vars_file", Some(root.path()), cases);
}

#[test]
fn templates() {
    let engine = Engine::new();
    let vars = |v: serde_json::Value| match v {
        serde_json::Value::Object(map) => map,
        _ => unreachable!(),
    };
    let known = vars(serde_json::json!({"consul_expect": 3, "node": {"ip": "10.0.0.1"}}));
    let play = |task: &str| format!("- hosts: all\n  tasks:\n    - {task}\n");
    let playbook = |text: &str| Playbook::parse(Path::new("site.yml"), Path::new("."), text);
    let defined_nowhere = |text: &str| {
        let pb = playbook(text)?;
        Playbook::check_names(&[pb], &|n| n == "consul_expect", &["consul_expect".into()])
    };
    let rendered = |source: &str| {
        let line = format!("- hosts: all\n  tasks:\n    - command: {source}\n");
        let origin = Location::new("site.yml", 3, 7).with_source(&line);
        engine.render_str(source, &known, &origin)
    };
    let mut cases: Vec<(&str, String, Error)> = Vec::new();
    for (name, text) in [
        ("inline_syntax", play("command: echo {{ x }")),
        ("unknown_filter", play("command: echo {{ x | uper }}")),
        (
            "unknown_test",
            play("command: x\n      when: x is definedd"),
        ),
        (
            "multi_line_syntax",
            play("shell: |\n        echo one\n        echo {% if %}"),
        ),
    ] {
        let err = playbook(&text).expect_err(name);
        cases.push((name, text, err));
    }
    let text = play("command: echo {{ consul_expct }}");
    cases.push((
        "defined_nowhere_typo",
        text.clone(),
        defined_nowhere(&text).expect_err("typo"),
    ));
    let text = play("command: echo {{ nobody_sets_this }}");
    cases.push((
        "defined_nowhere",
        text.clone(),
        defined_nowhere(&text).expect_err("nowhere"),
    ));
    for (name, source) in [
        ("undefined_variable", "echo {{ consul_expct }}"),
        ("undefined_attribute", "echo {{ node.ipp }}"),
    ] {
        cases.push((name, source.into(), rendered(source).expect_err(name)));
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("file_syntax", "ok\n{% if x %}\nno end\n"),
        ("file_undefined", "# header\nEXPECT={{ consul_expct }}\n"),
        ("file_unknown_filter", "A={{ consul_expect | tojsn }}\n"),
    ] {
        let path = dir.path().join(format!("{name}.j2"));
        std::fs::write(&path, text).unwrap();
        let err = engine.render_file(&path, &known).expect_err(name);
        cases.push((name, text.into(), err));
    }
    snap("template", Some(dir.path()), cases);
}

#[test]
fn limit_patterns() {
    let inv = Inventory::parse(
        Path::new("hosts"),
        "[servers]\nnode1\nnode2\n[clients]\nnode3\n[empty:children]\n",
    )
    .unwrap();
    let long = format!("node{}", "1".repeat(2000));
    let cases = [
        ("no_match_typo", "sevrers"),
        ("no_match", "databases"),
        ("no_match_intersection", "servers:&clients"),
        ("no_match_subscript", "servers[7]"),
        ("empty", ","),
        ("regex", "~node(.*"),
        ("too_long", long.as_str()),
    ];
    let cases = cases
        .into_iter()
        .map(|(name, pattern)| {
            let err = inv.select(pattern).expect_err(name);
            (name, pattern.to_owned(), err)
        })
        .collect();
    snap("limit", None, cases);
    let text = inv.select("nodex").unwrap_err().to_string();
    assert!(text.contains("did you mean `node1`?"), "{text}");
}

#[test]
fn builtin_playbook_names() {
    let cases = [
        ("typo", "bootstrp"),
        ("unknown", "deploy-everything"),
        ("missing_file", "plays/site.yml"),
    ];
    let cases = cases
        .into_iter()
        .map(|(name, arg)| {
            let err =
                crate::playbook::resolve(arg, crate::cluster::builtin::BUILTINS).expect_err(name);
            (name, arg.to_owned(), err)
        })
        .collect();
    snap("playbook_name", None, cases);
}
