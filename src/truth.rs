//! Ansible's yes/no words, in one place. The playbook parser, the modules,
//! the `bool` filter and every built-in decision (`docker_tcp`, `purge`, ...)
//! ask here, so `-e docker_tcp=y` means the same everywhere.

use serde_json::Value;

/// A yes/no word as Ansible reads it (`boolean()` in ansible-core): `y`,
/// `yes`, `on`, `true`, `t`, `1` and `n`, `no`, `off`, `false`, `f`, `0`,
/// in any case and with surrounding blanks ignored. `None` for anything else.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "on" | "true" | "t" | "1" => Some(true),
        "n" | "no" | "off" | "false" | "f" | "0" => Some(false),
        _ => None,
    }
}

/// A variable's value as a yes/no: booleans as they are, the words of
/// [`parse_bool`], numbers non-zero (Ansible takes 1 and 1.0 only; any other
/// number is not a boolean word and reads as false), anything else `None`.
pub fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => parse_bool(s),
        Value::Number(n) => n.as_f64().map(|f| f == 1.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_ansible_word_in_any_case() {
        for word in [
            "y", "Y", "yes", "YES", "on", "On", "true", "True", "t", "1", " yes ",
        ] {
            assert_eq!(parse_bool(word), Some(true), "{word}");
        }
        for word in [
            "n", "N", "no", "No", "off", "OFF", "false", "False", "f", "0",
        ] {
            assert_eq!(parse_bool(word), Some(false), "{word}");
        }
        for word in ["", "2", "maybe", "yess", "enabled"] {
            assert_eq!(parse_bool(word), None, "{word}");
        }
    }

    #[test]
    fn values_of_every_type() {
        assert_eq!(as_bool(&json!(true)), Some(true));
        assert_eq!(as_bool(&json!("y")), Some(true));
        assert_eq!(as_bool(&json!(1)), Some(true));
        assert_eq!(as_bool(&json!(0)), Some(false));
        assert_eq!(as_bool(&json!("off")), Some(false));
        assert_eq!(as_bool(&json!(null)), None);
        assert_eq!(as_bool(&json!("maybe")), None);
        assert_eq!(as_bool(&json!([1])), None);
    }
}
