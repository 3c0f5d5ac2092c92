//! INI values as Ansible types them: Python's `ast.literal_eval` on the
//! value, the text itself when that fails.
//!
//! Accepted, as in Python: integers (`42`, `-7`, `1_000`, `0x1f`, `0o17`,
//! `0b101`, `0`/`00`), floats (`3.14`, `.5`, `5.`, `1e3`), strings in single,
//! double or triple quotes with their escapes (adjacent ones concatenate),
//! `True`, `False`, `None`, lists, tuples and sets (as lists) and dicts,
//! nested. `0644` (a syntax error in Python 3), `yes`, `1.2.3` and every
//! other text stay strings. Two Python oddities are kept as Ansible shows
//! them: complex numbers (`2j` → `"2j"`, `1+2j` → `"(1+2j)"`) and `...`
//! become strings.

use serde_json::{Map, Number, Value};

/// `text` as Ansible's INI plugin types it.
pub(crate) fn eval(text: &str) -> Value {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    let parsed = p.expr(0).and_then(|v| {
        p.space();
        (p.i == p.s.len()).then_some(v)
    });
    match parsed {
        Some(Lit::Value(v)) => v,
        Some(Lit::Complex(shown)) => Value::String(shown),
        None => Value::String(text.to_owned()),
    }
}

/// A parsed literal: a JSON value, or a complex number as Python prints it.
enum Lit {
    Value(Value),
    Complex(String),
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

/// Nesting deeper than this is refused (becomes a string), as Python's own
/// parser refuses absurd depths.
const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn space(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        self.space();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self, depth: usize) -> Option<Lit> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.space();
        let first = self.peek()?;
        match first {
            b'[' | b'(' | b'{' => self.collection(first, depth),
            b'\'' | b'"' => self.strings().map(|s| Lit::Value(Value::String(s))),
            b'-' | b'+' => {
                self.i += 1;
                let inner = self.expr(depth + 1)?;
                let negate = first == b'-';
                match inner {
                    Lit::Value(Value::Number(n)) => Some(Lit::Value(Value::Number(if negate {
                        negate_number(&n)?
                    } else {
                        n
                    }))),
                    // `-True` is `-1` in Python; rare enough to leave as text
                    _ => None,
                }
                .and_then(|v| self.complex_tail(v))
            }
            b'.' if self.s[self.i..].starts_with(b"...") => {
                self.i += 3;
                Some(Lit::Value(Value::String("...".into())))
            }
            b'0'..=b'9' | b'.' => self.number(),
            _ => self.name(),
        }
    }

    /// `a + bj` / `a - bj`: Python's complex literals, shown as strings.
    fn complex_tail(&mut self, real: Lit) -> Option<Lit> {
        let save = self.i;
        self.space();
        let Some(op @ (b'+' | b'-')) = self.peek() else {
            self.i = save;
            return Some(real);
        };
        let Lit::Value(Value::Number(re)) = &real else {
            return None;
        };
        self.i += 1;
        self.space();
        let start = self.i;
        match self.number()? {
            Lit::Complex(_) => {
                let imag = self.text[start..self.i].trim_end_matches(['j', 'J']);
                let sign = if op == b'-' { '-' } else { '+' };
                Some(Lit::Complex(format!(
                    "({}{sign}{}j)",
                    python_number(re),
                    python_float_text(imag)
                )))
            }
            Lit::Value(_) => None,
        }
    }

    fn name(&mut self) -> Option<Lit> {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
        {
            self.i += 1;
        }
        let word = &self.text[start..self.i];
        // string prefixes: r'', b'', u'' and combinations (f-strings are not literals)
        if matches!(self.peek(), Some(b'\'' | b'"')) {
            let lower = word.to_ascii_lowercase();
            if matches!(lower.as_str(), "r" | "u" | "b" | "br" | "rb") {
                self.i = start;
                return self.strings().map(|s| Lit::Value(Value::String(s)));
            }
            return None;
        }
        match word {
            "True" => Some(Lit::Value(Value::Bool(true))),
            "False" => Some(Lit::Value(Value::Bool(false))),
            "None" => Some(Lit::Value(Value::Null)),
            _ => None,
        }
    }

    fn collection(&mut self, open: u8, depth: usize) -> Option<Lit> {
        self.i += 1;
        let close = match open {
            b'[' => b']',
            b'(' => b')',
            _ => b'}',
        };
        if open == b'{' {
            if self.eat(b'}') {
                return Some(Lit::Value(Value::Object(Map::new())));
            }
            let first = value(self.expr(depth + 1)?)?;
            if self.eat(b':') {
                let mut map = Map::new();
                let v = value(self.expr(depth + 1)?)?;
                map.insert(key_text(&first), v);
                while self.eat(b',') {
                    if self.eat(b'}') {
                        return Some(Lit::Value(Value::Object(map)));
                    }
                    let k = value(self.expr(depth + 1)?)?;
                    if !self.eat(b':') {
                        return None;
                    }
                    let v = value(self.expr(depth + 1)?)?;
                    map.insert(key_text(&k), v);
                }
                return self.eat(b'}').then_some(Lit::Value(Value::Object(map)));
            }
            // a set: Ansible turns it into a list (Python's own order for
            // small ints; otherwise arbitrary, so keep the written order)
            let mut items = vec![first];
            while self.eat(b',') {
                if self.eat(b'}') {
                    return Some(Lit::Value(Value::Array(dedup(items))));
                }
                items.push(value(self.expr(depth + 1)?)?);
            }
            return self
                .eat(b'}')
                .then_some(Lit::Value(Value::Array(dedup(items))));
        }
        let mut items = Vec::new();
        if self.eat(close) {
            return Some(Lit::Value(Value::Array(items)));
        }
        let mut commas = 0;
        loop {
            items.push(value(self.expr(depth + 1)?)?);
            if self.eat(close) {
                break;
            }
            if !self.eat(b',') {
                return None;
            }
            commas += 1;
            if self.eat(close) {
                break;
            }
        }
        // `(1)` is just 1; `(1,)` a tuple
        if open == b'(' && items.len() == 1 && commas == 0 {
            return items.pop().map(Lit::Value);
        }
        Some(Lit::Value(Value::Array(items)))
    }

    /// One or more adjacent string literals, concatenated.
    fn strings(&mut self) -> Option<String> {
        let mut out = String::new();
        let mut any = false;
        loop {
            self.space();
            let start = self.i;
            let mut raw = false;
            while let Some(c) = self.peek() {
                match c.to_ascii_lowercase() {
                    b'r' => raw = true,
                    b'u' | b'b' => {}
                    _ => break,
                }
                self.i += 1;
            }
            let Some(quote @ (b'\'' | b'"')) = self.peek() else {
                self.i = start;
                return any.then_some(out);
            };
            let triple = self.s[self.i..].starts_with(&[quote; 3]);
            self.i += if triple { 3 } else { 1 };
            loop {
                let c = self.peek()?;
                if c == quote && (!triple || self.s[self.i..].starts_with(&[quote; 3])) {
                    self.i += if triple { 3 } else { 1 };
                    break;
                }
                if c == b'\n' && !triple {
                    return None;
                }
                if c == b'\\' {
                    let next = *self.s.get(self.i + 1)?;
                    if raw {
                        out.push('\\');
                        out.push(next as char);
                        self.i += 2;
                        continue;
                    }
                    self.i += 2;
                    match next {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'0' => out.push('\0'),
                        b'a' => out.push('\x07'),
                        b'b' => out.push('\x08'),
                        b'f' => out.push('\x0c'),
                        b'v' => out.push('\x0b'),
                        b'\\' | b'\'' | b'"' => out.push(next as char),
                        b'\n' => {}
                        b'x' => {
                            let hex = self.text.get(self.i..self.i + 2)?;
                            out.push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
                            self.i += 2;
                        }
                        _ => {
                            out.push('\\');
                            // a multi-byte character after `\`: copy it whole
                            self.i -= 1;
                            let ch = self.text[self.i..].chars().next()?;
                            out.push(ch);
                            self.i += ch.len_utf8();
                        }
                    }
                    continue;
                }
                let ch = self.text[self.i..].chars().next()?;
                out.push(ch);
                self.i += ch.len_utf8();
            }
            any = true;
        }
    }

    fn number(&mut self) -> Option<Lit> {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || matches!(self.s[self.i], b'_' | b'.'))
        {
            // an exponent's sign belongs to the number
            if matches!(self.s[self.i], b'e' | b'E')
                && matches!(self.s.get(self.i + 1), Some(b'+' | b'-'))
                && !self.text[start..self.i].starts_with("0x")
                && !self.text[start..self.i].starts_with("0X")
            {
                self.i += 1;
            }
            self.i += 1;
        }
        let word = &self.text[start..self.i];
        if let Some(imag) = word.strip_suffix(['j', 'J']) {
            parse_float(imag).or_else(|| parse_number(imag).and_then(|n| n.as_f64()))?;
            return Some(Lit::Complex(format!("{}j", python_float_text(imag))));
        }
        let n = parse_number(word)?;
        self.complex_tail(Lit::Value(Value::Number(n)))
    }
}

fn value(lit: Lit) -> Option<Value> {
    match lit {
        Lit::Value(v) => Some(v),
        Lit::Complex(s) => Some(Value::String(s)),
    }
}

fn dedup(items: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in items {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// A dict key as JSON shows it (Python's `json.dumps` of a non-string key).
fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn negate_number(n: &Number) -> Option<Number> {
    if let Some(i) = n.as_i64() {
        return Some(Number::from(i.checked_neg()?));
    }
    if let Some(u) = n.as_u64() {
        return i64::try_from(u).ok().map(|i| Number::from(-i));
    }
    Number::from_f64(-n.as_f64()?)
}

/// Python's integer and float literal grammar.
fn parse_number(word: &str) -> Option<Number> {
    let valid_underscores = |digits: &str| {
        !digits.is_empty()
            && !digits.starts_with('_')
            && !digits.ends_with('_')
            && !digits.contains("__")
    };
    let lower = word.to_ascii_lowercase();
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = lower.strip_prefix(prefix) {
            let digits = digits.strip_prefix('_').unwrap_or(digits);
            if !valid_underscores(digits) {
                return None;
            }
            return u64::from_str_radix(&digits.replace('_', ""), radix)
                .ok()
                .map(Number::from);
        }
    }
    if word.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        if !valid_underscores(word) {
            return None;
        }
        let digits = word.replace('_', "");
        // `0644` is a syntax error in Python 3; `00` is fine
        if digits.len() > 1 && digits.starts_with('0') && digits.bytes().any(|b| b != b'0') {
            return None;
        }
        return match digits.parse::<u64>() {
            Ok(n) => Some(Number::from(n)),
            // beyond u64: as a float (JSON cannot tell the difference)
            Err(_) => digits.parse::<f64>().ok().and_then(Number::from_f64),
        };
    }
    Number::from_f64(parse_float(word)?)
}

fn parse_float(word: &str) -> Option<f64> {
    let (mantissa, exponent) = match word.find(['e', 'E']) {
        Some(i) => (&word[..i], Some(&word[i + 1..])),
        None => (word, None),
    };
    let ok_digits = |d: &str| {
        d.is_empty()
            || (d.bytes().all(|b| b.is_ascii_digit() || b == b'_')
                && !d.starts_with('_')
                && !d.ends_with('_')
                && !d.contains("__"))
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !ok_digits(int) || !ok_digits(frac) || (int.is_empty() && frac.is_empty()) {
        return None;
    }
    if !mantissa.contains('.') && exponent.is_none() {
        return None;
    }
    if let Some(e) = exponent {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        if digits.is_empty() || !ok_digits(digits) {
            return None;
        }
    }
    word.replace('_', "")
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
}

/// A number as Python's `repr` writes it inside a complex.
fn python_number(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => python_float_text(&f.to_string()),
        _ => n.to_string(),
    }
}

/// A float literal's text as Python prints the part of a complex number:
/// integral values lose their `.0`.
fn python_float_text(text: &str) -> String {
    match parse_float(text).or_else(|| text.replace('_', "").parse().ok()) {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e16 => format!("{}", f as i64),
        Some(f) => f.to_string(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::eval;
    use serde_json::json;

    #[test]
    fn literals_as_python_reads_them() {
        let cases = [
            ("42", json!(42)),
            ("-7", json!(-7)),
            ("+5", json!(5)),
            ("-0", json!(0)),
            ("1_000", json!(1000)),
            ("0xff", json!(255)),
            ("0o17", json!(15)),
            ("0b101", json!(5)),
            ("00", json!(0)),
            ("0644", json!("0644")),
            ("2.5", json!(2.5)),
            ("1.10", json!(1.1)),
            (".5", json!(0.5)),
            ("5.", json!(5.0)),
            ("1e3", json!(1000.0)),
            ("1_0.2_5", json!(10.25)),
            ("True", json!(true)),
            ("true", json!("true")),
            ("None", json!(null)),
            ("yes", json!("yes")),
            ("1.2.3", json!("1.2.3")),
            ("10.0.0.1", json!("10.0.0.1")),
            ("'quoted'", json!("quoted")),
            ("'a' 'b'", json!("ab")),
            ("\"a\\tb\"", json!("a\tb")),
            ("r'\\d'", json!("\\d")),
            (
                "[1, 'two', 3.0, True, None]",
                json!([1, "two", 3.0, true, null]),
            ),
            ("(1, 2)", json!([1, 2])),
            ("(1)", json!(1)),
            ("{1}", json!([1])),
            ("{'k': [1, {'x': None}]}", json!({"k": [1, {"x": null}]})),
            ("{1: 'a'}", json!({"1": "a"})),
            ("[]", json!([])),
            ("{}", json!({})),
            ("2j", json!("2j")),
            ("1+2j", json!("(1+2j)")),
            ("1.5-2.5j", json!("(1.5-2.5j)")),
            ("...", json!("...")),
            ("", json!("")),
            ("[1, 2", json!("[1, 2")),
            ("a=b", json!("a=b")),
            ("value # not a comment", json!("value # not a comment")),
            ("123456789012345678", json!(123456789012345678u64)),
        ];
        for (text, want) in cases {
            assert_eq!(eval(text), want, "{text}");
        }
        let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
        assert_eq!(eval(&deep), json!(deep));
    }
}
