//! String literals in `{{ }}` keep their backslashes, as Ansible 2.19
//! reads the templates of playbook strings: `regex_replace('(\d+)',
//! '<\1>')` is the pattern `(\d+)` and the group `\1`, and `'\n'` there
//! (not in the YAML around it) is a backslash and an `n`. minijinja reads
//! `\1` and `\b` in a literal as control characters and `\n` as a
//! newline, so before such a template compiles every backslash inside a
//! literal of a `{{ }}` is doubled, which minijinja reads back as the one
//! written. Ansible keeps Jinja's escapes in `{% %}` statements,
//! conditions (`when`, `that`, `failed_when`, ...) and template files, and
//! so does arpanet.

use std::borrow::Cow;

/// `source` with the backslashes of the string literals inside its
/// `{{ }}` doubled: all of it when `expression` (a bare `{{ }}` body).
/// `{% %}` tags, comments and the text around stay as written, as Ansible
/// reads them (it keeps backslashes raw in `{{ }}` only).
pub(super) fn raw(source: &str, expression: bool) -> Cow<'_, str> {
    if !source.contains('\\') {
        return Cow::Borrowed(source);
    }
    let mut out = String::with_capacity(source.len() + 8);
    if expression {
        code_part(source, false, &mut out);
        return Cow::Owned(out);
    }
    let mut rest = source;
    while let Some(open) = rest.find('{') {
        let (text, tail) = rest.split_at(open);
        out.push_str(text);
        let close = match tail.as_bytes().get(1) {
            Some(b'{') => None,
            Some(b'%') => Some("%}"),
            Some(b'#') => Some("#}"),
            _ => {
                out.push('{');
                rest = &tail[1..];
                continue;
            }
        };
        if let Some(close) = close {
            // A tag or a comment, as written, to its end; after `{% raw %}`
            // everything up to `{% endraw %}` too.
            let mut end = tail.find(close).map_or(tail.len(), |at| at + 2);
            if close == "%}" && is_raw_start(&tail[2..end]) {
                end += find_endraw(&tail[end..]).unwrap_or(tail.len() - end);
            }
            out.push_str(&tail[..end]);
            rest = &tail[end..];
            continue;
        }
        out.push_str("{{");
        let used = code_part(&tail[2..], true, &mut out);
        rest = &tail[2 + used..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Copy code from `code` into `out`, doubling backslashes inside string
/// literals, up to and including the `}}` that closes it when `closed`
/// (one outside brackets, as minijinja ends a `{{ }}`), else to the end;
/// returns how many bytes of `code` were used.
fn code_part(code: &str, closed: bool, out: &mut String) -> usize {
    let mut depth = 0usize;
    let mut chars = code.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                while let Some((_, d)) = chars.next() {
                    match d {
                        // A backslash and the character after it are one
                        // pair, as the lexer reads them; both stay.
                        '\\' => {
                            out.push_str("\\\\");
                            match chars.next() {
                                // `\'` in the literal: `\\` then `\'`.
                                Some((_, q)) if q == c => {
                                    out.push('\\');
                                    out.push(q);
                                }
                                Some((_, '\\')) => out.push_str("\\\\"),
                                Some((_, next)) => out.push(next),
                                None => {}
                            }
                        }
                        d if d == c => {
                            out.push(d);
                            break;
                        }
                        d => out.push(d),
                    }
                }
            }
            '(' | '[' | '{' => {
                depth += 1;
                out.push(c);
            }
            ')' | ']' => {
                depth = depth.saturating_sub(1);
                out.push(c);
            }
            '}' if depth > 0 => {
                depth -= 1;
                out.push(c);
            }
            _ => {
                if closed {
                    let tail = &code[at..];
                    // `}}` or `-}}` (trimming) ends it.
                    let end = if tail.starts_with("}}") {
                        Some(2)
                    } else if tail.starts_with("-}}") || tail.starts_with("+}}") {
                        Some(3)
                    } else {
                        None
                    };
                    if let Some(len) = end {
                        out.push_str(&tail[..len]);
                        return at + len;
                    }
                }
                out.push(c);
            }
        }
    }
    code.len()
}

/// Whether the inside of a `{% %}` tag (with its close) is `raw`.
fn is_raw_start(block: &str) -> bool {
    let inner = block.trim_end_matches("%}").trim_end_matches('-');
    let inner = inner.trim_start_matches(['-', '+']);
    inner.trim() == "raw"
}

/// Where the `{% endraw %}` tag starts in `text`.
fn find_endraw(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find("{%") {
        let start = from + at;
        let tag = &text[start + 2..];
        let inner = tag.trim_start_matches(['-', '+']).trim_start();
        if inner.starts_with("endraw") {
            return Some(start);
        }
        from = start + 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::raw;

    #[test]
    fn backslashes_in_expression_literals_are_doubled_and_nothing_else_changes() {
        let cases = [
            ("no backslash {{ 'x' }}", "no backslash {{ 'x' }}"),
            (r"a\n {{ x }} \d", r"a\n {{ x }} \d"),
            (
                r"{{ x | regex_replace('(\d+)', '<\1>') }} \1",
                r"{{ x | regex_replace('(\\d+)', '<\\1>') }} \1",
            ),
            // Statements, comments and raw blocks keep Jinja's escapes.
            (
                r#"{%- if x == "a\b" -%}y{% endif %}"#,
                r#"{%- if x == "a\b" -%}y{% endif %}"#,
            ),
            (r"{# '\1' #}{{ '\1' }}", r"{# '\1' #}{{ '\\1' }}"),
            (
                r"{% raw %}{{ '\1' }}{% endraw %}{{ '\1' }}",
                r"{% raw %}{{ '\1' }}{% endraw %}{{ '\\1' }}",
            ),
            // An escaped quote keeps its backslash, as Ansible's raw string.
            (r"{{ 'it\'s' ~ '\\' }}", r"{{ 'it\\\'s' ~ '\\\\' }}"),
            (r"{{ '}}\1' }}", r"{{ '}}\\1' }}"),
            // A `}}` inside brackets does not end the expression.
            (
                r"{{ {'a': {'b': 1}} | f('\1') }} \1",
                r"{{ {'a': {'b': 1}} | f('\\1') }} \1",
            ),
        ];
        for (source, expected) in cases {
            assert_eq!(raw(source, false), expected, "{source}");
        }
        assert_eq!(
            raw(r"x | regex_search('\w+')", true),
            r"x | regex_search('\\w+')"
        );
    }
}
