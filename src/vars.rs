//! Variables as data, and where the layers that are not the inventory come
//! from: the built-in defaults, `~/.arpanetrc`, `-e` and vars files (which
//! the inventory also reads for `group_vars/` and `host_vars/`). How the
//! layers combine is [`crate::scope`]'s business; this module only reads
//! them, so the inventory can use it without knowing about precedence.
//!
//! Old upper-case names: every key made only of `A-Z`, `0-9` and `_` with at
//! least one letter (`CONSUL_EXPECT`) is also set under its lower-case name
//! (`consul_expect`) in the same layer (each rc file, `-e` argument, vars
//! file, inventory line or section is its own layer), unless that layer sets
//! the lower-case name itself. So a later layer's `CONSUL_EXPECT` overrides
//! an earlier `consul_expect` and the other way round, as precedence says.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, InputKind, KeyValueIn, Location, Result};

/// A set of variables; insertion-ordered JSON values.
pub type Vars = serde_json::Map<String, serde_json::Value>;

/// The layers that do not come from the inventory.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    pub defaults: Vars,
    /// A layer the product fills before the plays start, just above its
    /// defaults (the cluster's deployed record): it replaces what would
    /// come from the defaults and nothing the user set.
    pub provided: Vars,
    pub rc: Vars,
    pub extra: Vars,
}

impl Layers {
    /// The product's `defaults` (YAML text, see `playbook::Builtins`),
    /// `rc_file` if it exists, and each `-e` argument.
    pub fn load(defaults: &str, rc_file: Option<&Path>, extra_args: &[String]) -> Result<Self> {
        let rc = match rc_file {
            Some(path) if path.exists() => parse_rc(path, &crate::error::read_input(path)?)?,
            _ => Vars::new(),
        };
        let mut extra = Vars::new();
        for arg in extra_args {
            merge(&mut extra, &parse_extra(arg)?);
        }
        Ok(Layers {
            defaults: parse_defaults(defaults)?,
            provided: Vars::new(),
            rc,
            extra,
        })
    }
}

/// The product's default variables, embedded YAML.
pub fn parse_defaults(text: &str) -> Result<Vars> {
    let vars: Option<Vars> = crate::yaml::load(Path::new("<builtin>/vars/defaults.yml"), text)
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(vars.unwrap_or_default())
}

/// Set each key of `layer` in `into`, replacing whole values.
pub fn merge(into: &mut Vars, layer: &Vars) {
    for (k, v) in layer {
        into.insert(k.clone(), v.clone());
    }
}

/// Whether `key` is an old upper-case name (`CONSUL_EXPECT`).
fn is_upper_name(key: &str) -> bool {
    key.bytes().any(|b| b.is_ascii_uppercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Also expose every upper-case key under its lower-case name, unless
/// `vars` sets that name itself.
pub fn add_aliases(vars: &mut Vars) {
    let aliases: Vec<(String, Value)> = vars
        .iter()
        .filter(|(k, _)| is_upper_name(k))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| !vars.contains_key(k))
        .collect();
    vars.extend(aliases);
}

/// Read a YAML (or JSON) vars file: a mapping, or empty. Upper-case names
/// get their aliases. YAML 1.1, as Ansible reads it (see
/// [`crate::yaml::parse_yaml11`]); a repeated key keeps its last value.
pub fn load_vars_file(path: &Path) -> Result<Vars> {
    load_vars_file_warn(path, &mut Vec::new())
}

/// [`load_vars_file`], adding a located warning to `warnings` for each
/// repeated key.
pub(crate) fn load_vars_file_warn(path: &Path, warnings: &mut Vec<String>) -> Result<Vars> {
    let text = crate::error::read_input(path)?;
    parse_vars_yaml_warn(path, &text, crate::error::VARS_FILE_HINT, warnings)
}

fn parse_vars_yaml(path: &Path, text: &str, hint: &str) -> Result<Vars> {
    parse_vars_yaml_warn(path, text, hint, &mut Vec::new())
}

fn parse_vars_yaml_warn(
    path: &Path,
    text: &str,
    hint: &str,
    warnings: &mut Vec<String>,
) -> Result<Vars> {
    let (doc, duplicates) = crate::yaml::parse_yaml11(text)
        .map_err(|e| crate::yaml::syntax_error(path, text, e).with_hint(hint))?;
    for d in duplicates {
        let warning = crate::error::InputWarning::SetTwice { key: d.key };
        warnings.push(crate::error::located_warning(path, d.pos.line, warning));
    }
    let vars: Option<Vars> = match &doc {
        None => None,
        Some(node) => node.to::<Option<Vars>>().map_err(|e| {
            let (pos, kind) = e.into_input(node.pos, None);
            crate::yaml::input_error(path, text, pos, kind).with_hint(hint)
        })?,
    };
    let mut vars = vars.unwrap_or_default();
    if let Some((key, kind)) = vars
        .iter()
        .find_map(|(k, v)| check_connection(k, v).err().map(|kind| (k, kind)))
    {
        // Rare: parse again for the value's position.
        let doc = crate::yaml::parse(text).ok().flatten();
        let pos = doc
            .as_ref()
            .and_then(|d| d.entries())
            .and_then(|e| e.iter().find(|(k, _)| k.text() == Some(key.as_str())))
            .map_or(crate::yaml::Pos { line: 1, column: 1 }, |(_, v)| v.pos);
        return Err(crate::yaml::input_error(path, text, pos, kind));
    }
    add_aliases(&mut vars);
    Ok(vars)
}

/// Parse `~/.arpanetrc`: `KEY=VALUE` lines, `#` comments, blank lines, an
/// optional `export `, values optionally in single or double quotes (a
/// ` #` after an unquoted value starts a comment). Values are strings; no
/// `$VAR` expansion.
pub fn parse_rc(path: &Path, text: &str) -> Result<Vars> {
    let mut out = Vars::new();
    for (index, raw) in text.lines().enumerate() {
        let lineno = index + 1;
        let err = |column: usize, kind: InputKind| {
            Error::input(Location::new(path, lineno, column).with_source(text), kind)
        };
        let indent = raw.chars().take_while(|c| c.is_whitespace()).count();
        let mut line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut column = indent + 1;
        if let Some(rest) = line.strip_prefix("export") {
            if rest.starts_with([' ', '\t']) {
                let rest_trimmed = rest.trim_start();
                column += line.chars().count() - rest_trimmed.chars().count();
                line = rest_trimmed;
            }
        }
        let Some((key, value)) = line.split_once('=') else {
            let kind = InputKind::NotKeyValue {
                found: line.into(),
                within: KeyValueIn::RcFile,
            };
            return Err(err(column, kind));
        };
        if !valid_name(key) {
            let kind = InputKind::BadVariableName {
                name: key.into(),
                within: KeyValueIn::RcFile,
            };
            return Err(err(column, kind));
        }
        let value_column = column + key.chars().count() + 1;
        let value = rc_value(value).map_err(|(c, kind)| err(value_column + c - 1, kind))?;
        out.insert(key.to_owned(), Value::String(value));
    }
    add_aliases(&mut out);
    Ok(out)
}

/// A shell-like variable name.
fn valid_name(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// One rc value; on error the 1-based column within `raw` and what is
/// wrong.
fn rc_value(raw: &str) -> std::result::Result<String, (usize, InputKind)> {
    if raw.starts_with(['\'', '"']) {
        let words = words(raw)?;
        return match words.as_slice() {
            [] => Ok(String::new()),
            [one] => Ok(one.text.clone()),
            [_, extra, ..] => Err((
                extra.column,
                InputKind::AfterQuotedValue {
                    extra: extra.text.clone(),
                },
            )),
        };
    }
    let mut end = raw.len();
    let mut prev_space = false;
    for (i, c) in raw.char_indices() {
        if c == '#' && prev_space {
            end = i;
            break;
        }
        prev_space = c.is_whitespace();
    }
    Ok(raw[..end].trim().to_owned())
}

/// One `-e` argument: `@FILE` (YAML or JSON), an inline YAML/JSON mapping
/// (`{"a": 1}`), or `KEY=VALUE` pairs separated by spaces (values are
/// strings, quotes group). Errors point into the argument as if it were a
/// one-line file named `-e`.
pub fn parse_extra(arg: &str) -> Result<Vars> {
    let trimmed = arg.trim();
    if trimmed.is_empty() {
        return Ok(Vars::new());
    }
    if let Some(file) = trimmed.strip_prefix('@') {
        return load_vars_file(Path::new(file));
    }
    if trimmed.starts_with('{') {
        return parse_vars_yaml(Path::new("-e"), arg, crate::error::EXTRA_VARS_HINT);
    }
    let bad = |column: usize, kind: InputKind| {
        Error::input(Location::new("-e", 1, column).with_source(arg), kind)
    };
    if trimmed.starts_with('[') {
        let column = arg.chars().take_while(|c| c.is_whitespace()).count() + 1;
        return Err(bad(column, InputKind::ExtraVarsList));
    }
    let words = words(arg).map_err(|(column, kind)| bad(column, kind))?;
    let mut out = Vars::new();
    for w in words {
        let Some((key, value)) = w.text.split_once('=') else {
            let kind = InputKind::NotKeyValue {
                found: w.text,
                within: KeyValueIn::ExtraVars,
            };
            return Err(bad(w.column, kind));
        };
        if !valid_name(key) {
            let kind = InputKind::BadVariableName {
                name: key.into(),
                within: KeyValueIn::ExtraVars,
            };
            return Err(bad(w.column, kind));
        }
        out.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    add_aliases(&mut out);
    Ok(out)
}

/// One whitespace-separated word of a line, quotes removed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Word {
    pub text: String,
    /// 1-based column (in characters) of the word's first character.
    pub column: usize,
    /// Whether any part of the word was quoted.
    pub quoted: bool,
}

/// Split `line` into words like a shell: `'…'` and `"…"` group and are
/// removed (`\` escapes in and outside double quotes), unquoted `[…]` and
/// `{…}` group too, a word starting with `#` ends the line. On error, the
/// 1-based column and what is wrong.
pub(crate) fn words(line: &str) -> std::result::Result<Vec<Word>, (usize, InputKind)> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        if chars[i] == '#' {
            break;
        }
        let start = i;
        let mut word = Word {
            text: String::new(),
            column: start + 1,
            quoted: false,
        };
        let mut depth = 0usize;
        while i < chars.len() && (depth > 0 || !chars[i].is_whitespace()) {
            let c = chars[i];
            match c {
                '\'' | '"' => {
                    word.quoted = true;
                    let open = i;
                    i += 1;
                    loop {
                        match chars.get(i) {
                            None => {
                                let kind = InputKind::UnterminatedQuote {
                                    quote: c,
                                    within: None,
                                };
                                return Err((open + 1, kind));
                            }
                            Some(&q) if q == c => break,
                            Some('\\') if c == '"' && i + 1 < chars.len() => {
                                word.text.push(chars[i + 1]);
                                i += 1;
                            }
                            Some(&other) => word.text.push(other),
                        }
                        i += 1;
                    }
                }
                '\\' if i + 1 < chars.len() => {
                    word.text.push(chars[i + 1]);
                    i += 1;
                }
                '[' | '{' => {
                    depth += 1;
                    word.text.push(c);
                }
                ']' | '}' => {
                    depth = depth.saturating_sub(1);
                    word.text.push(c);
                }
                _ => word.text.push(c),
            }
            i += 1;
        }
        out.push(word);
    }
    Ok(out)
}

/// Refuse, where it is written, a connection variable ssh would refuse:
/// `ansible_port` or `port` not a port number, a jump host list or `ssh`
/// argument variable that does not parse (templates are checked when they
/// render).
pub(crate) fn check_connection(
    key: &str,
    value: &serde_json::Value,
) -> std::result::Result<(), InputKind> {
    check_port(key, value)?;
    crate::ssh::jump::check_var(key, value)
}

fn check_port(key: &str, value: &serde_json::Value) -> std::result::Result<(), InputKind> {
    use serde_json::Value;
    if key != "ansible_port" && key != "port" {
        return Ok(());
    }
    let fine = match value {
        Value::Number(n) => n.as_u64().is_some_and(|n| (1..=65535).contains(&n)),
        Value::String(s) => {
            crate::template::is_template(s) || s.trim().parse::<u16>().is_ok_and(|p| p > 0)
        }
        _ => false,
    };
    match fine {
        true => Ok(()),
        false => Err(InputKind::BadPort {
            key: key.into(),
            value: match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Vars {
        v.as_object().unwrap().clone()
    }

    fn rc(text: &str) -> Result<Vars> {
        parse_rc(Path::new("/home/op/.arpanetrc"), text)
    }

    #[test]
    fn words_split_like_a_shell() {
        let w = words(r#"node1 a=1 b="x y" c='q' d=[1, 2] # note"#).unwrap();
        let texts: Vec<&str> = w.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts, ["node1", "a=1", "b=x y", "c=q", "d=[1, 2]"]);
        assert_eq!(w[2].column, 11);
        assert!(w[2].quoted && !w[1].quoted);
        assert_eq!(words(r#"a="x\"y""#).unwrap()[0].text, r#"a=x"y"#);
        assert_eq!(words("a='open").unwrap_err().0, 3);
    }

    #[test]
    fn defaults_are_the_old_tools() {
        let d = parse_defaults(crate::cluster::builtin::BUILTINS.defaults).unwrap();
        assert_eq!(d["docker_port"], json!(2375));
        assert_eq!(d["cadvisor_port"], json!(8080));
        assert_eq!(d["consul_port"], json!(8500));
        assert_eq!(d["consul_data"], json!("/mnt/arpanet-consul"));
        assert_eq!(d["consul_kv_path"], json!("/arpanet"));
    }

    #[test]
    fn rc_lines() {
        let vars = rc(concat!(
            "# comment\n",
            "\n",
            "DOCKER_PORT=2376\n",
            "export CONSUL_EXPECT=5\n",
            "  CONSUL_DATA=\"/data/consul dir\"  # why\n",
            "NAME='it''s'\n",
            "EMPTY=\n",
            "PLAIN=a b # c\n",
            "consul_kv_path=/x\n",
            "CONSUL_KV_PATH=/ignored-alias\n",
        ))
        .unwrap();
        assert_eq!(vars["DOCKER_PORT"], json!("2376"));
        assert_eq!(vars["docker_port"], json!("2376"));
        assert_eq!(vars["consul_expect"], json!("5"));
        assert_eq!(vars["consul_data"], json!("/data/consul dir"));
        assert_eq!(vars["NAME"], json!("its"));
        assert_eq!(vars["EMPTY"], json!(""));
        assert_eq!(vars["PLAIN"], json!("a b"));
        // the layer's own lower-case name wins over the alias
        assert_eq!(vars["consul_kv_path"], json!("/x"));
    }

    #[test]
    fn rc_errors_are_located() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "A=1\nCONSUL EXPECT=3\n",
                ".arpanetrc:2:1",
                "invalid variable name `CONSUL EXPECT`",
            ),
            (
                "A=1\n\njust words\n",
                ".arpanetrc:3:1",
                "expected `KEY=VALUE`, found `just words`",
            ),
            (
                "export 9X=1\n",
                ".arpanetrc:1:8",
                "invalid variable name `9X`",
            ),
            ("A=\"open\n", ".arpanetrc:1:3", "unterminated `\"` quote"),
            ("A=\"x\" y\n", ".arpanetrc:1:7", "unexpected `y`"),
        ];
        for (text, at, msg) in cases {
            let err = rc(text).expect_err(text);
            let shown = err.to_string();
            assert!(shown.contains(at), "{at} in {shown}");
            assert!(shown.contains(msg), "{msg} in {shown}");
            assert!(shown.contains("\nhint: "), "{shown}");
        }
        let shown = rc("just words\n").unwrap_err().to_string();
        assert!(shown.contains("hint: each line of the rc file"), "{shown}");
        let shown = rc("A=1\nB C=3\n").unwrap_err().to_string();
        assert!(shown.contains("2 | B C=3"), "{shown}");
    }

    #[test]
    fn layers_load_reads_rc_if_present() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none");
        let layers = Layers::load(
            crate::cluster::builtin::BUILTINS.defaults,
            Some(&missing),
            &[],
        )
        .unwrap();
        assert!(layers.rc.is_empty() && layers.extra.is_empty());
        assert_eq!(layers.defaults["consul_port"], json!(8500));
        let file = dir.path().join("rc");
        std::fs::write(&file, "CONSUL_PORT=9500\n").unwrap();
        let layers =
            Layers::load(crate::cluster::builtin::BUILTINS.defaults, Some(&file), &[]).unwrap();
        assert_eq!(layers.rc["consul_port"], json!("9500"));
        let err = Layers::load(
            crate::cluster::builtin::BUILTINS.defaults,
            Some(dir.path()),
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("cannot read"), "{err}");
    }

    #[test]
    fn extra_vars_forms() {
        assert_eq!(parse_extra("a=1").unwrap(), obj(json!({"a": "1"})));
        assert_eq!(
            parse_extra("a=1 b=\"x y\" CONSUL_EXPECT=3").unwrap(),
            obj(json!({"a": "1", "b": "x y", "CONSUL_EXPECT": "3", "consul_expect": "3"}))
        );
        assert_eq!(
            parse_extra("url=http://x/?a=b").unwrap()["url"],
            json!("http://x/?a=b")
        );
        assert_eq!(
            parse_extra(r#"{"a": 1, "b": [true], "c": {"d": null}}"#).unwrap(),
            obj(json!({"a": 1, "b": [true], "c": {"d": null}}))
        );
        assert_eq!(
            parse_extra("{a: 1, b: two}").unwrap(),
            obj(json!({"a": 1, "b": "two"}))
        );
        assert!(parse_extra("  ").unwrap().is_empty());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("extra.yml");
        std::fs::write(&file, "consul_expect: 3\nservices:\n  - name: web\n").unwrap();
        let vars = parse_extra(&format!("@{}", file.display())).unwrap();
        assert_eq!(
            vars,
            obj(json!({"consul_expect": 3, "services": [{"name": "web"}]}))
        );

        let layers = Layers::load(
            crate::cluster::builtin::BUILTINS.defaults,
            None,
            &["a=1 b=2".into(), "{\"b\": 3}".into()],
        )
        .unwrap();
        assert_eq!(layers.extra, obj(json!({"a": "1", "b": 3})));
    }

    #[test]
    fn extra_vars_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yml");
        std::fs::write(&file, "a: 1\nb: [1,\n").unwrap();
        let err = parse_extra(&format!("@{}", file.display())).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("bad.yml:3:1"), "{text}");
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);

        std::fs::write(&file, "just a string\n").unwrap();
        let text = parse_extra(&format!("@{}", file.display()))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("bad.yml:1:1") && text.contains("invalid type: string"),
            "{text}"
        );

        let text = parse_extra("@/no/such/file.yml").unwrap_err().to_string();
        assert!(
            text.starts_with("cannot read `/no/such/file.yml`"),
            "{text}"
        );

        let text = parse_extra("{\"a\": [}").unwrap_err().to_string();
        assert!(text.starts_with("-e:1:"), "{text}");
        assert!(text.contains("1 | {\"a\": [}"), "{text}");
        assert!(text.contains("hint: use `-e KEY=VALUE`"), "{text}");

        for (arg, msg, hint) in [
            (
                "a=1 oops",
                "-e:1:5: expected `KEY=VALUE`, found `oops`",
                "use `-e KEY=VALUE`",
            ),
            (
                "=1",
                "-e:1:1: invalid variable name ``",
                "a variable name is",
            ),
            ("a='x", "-e:1:3: unterminated `'` quote", "close it"),
            (
                "[1, 2]",
                "-e:1:1: extra vars must be a mapping",
                "use `-e KEY=VALUE`",
            ),
        ] {
            let err = parse_extra(arg).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with(msg), "{msg} in {text}");
            assert!(text.contains(&format!("1 | {arg}")), "{text}");
            assert!(text.contains(&format!("hint: {hint}")), "{text}");
            assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
        }
    }

    #[test]
    fn aliases_stay_in_their_layer() {
        let mut v =
            obj(json!({"CONSUL_EXPECT": 3, "Mixed_Case": 1, "X_1": 2, "_9": 0, "consul_port": 1}));
        add_aliases(&mut v);
        assert_eq!(v["consul_expect"], json!(3));
        assert_eq!(v["x_1"], json!(2));
        assert!(!v.contains_key("mixed_case"));
        assert!(!v.contains_key("_9") || v["_9"] == json!(0));
    }

    #[test]
    fn merging_replaces_whole_values() {
        let mut a = obj(json!({"m": {"x": 1, "y": 2}, "k": 1}));
        merge(&mut a, &obj(json!({"m": {"x": 3}})));
        assert_eq!(a, obj(json!({"m": {"x": 3}, "k": 1})));
    }
}
