//! String literals in templates keep their backslashes, as Ansible 2.19
//! reads them: `regex_replace('(\d+)', '<\1>')` is the pattern `(\d+)`
//! and the group `\1`, and `'\n'` in a template (not in the YAML around
//! it) is a backslash and an `n`. minijinja reads `\1` and `\b` in a
//! literal as control characters and `\n` as a newline, so before a
//! template compiles every backslash inside a literal is doubled, which
//! minijinja reads back as the one written. A backslash before the
//! literal's own quote still escapes it (the quote stays in the string).

use std::borrow::Cow;

/// `source` with the backslashes of its string literals doubled: all of
/// it is code when `code` (an expression), else only what is inside
/// `{{ }}` and `{% %}` (not comments, nor `{% raw %}` blocks).
pub(super) fn raw(source: &str, code: bool) -> Cow<'_, str> {
    if !source.contains('\\') {
        return Cow::Borrowed(source);
    }
    let mut out = String::with_capacity(source.len() + 8);
    let mut rest = source;
    if code {
        code_part(rest, None, &mut out);
        return Cow::Owned(out);
    }
    while let Some(open) = rest.find('{') {
        let (text, tail) = rest.split_at(open);
        out.push_str(text);
        let close = match tail.as_bytes().get(1) {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            Some(b'#') => {
                // A comment, as written, to its end.
                let end = tail.find("#}").map_or(tail.len(), |at| at + 2);
                out.push_str(&tail[..end]);
                rest = &tail[end..];
                continue;
            }
            _ => {
                out.push('{');
                rest = &tail[1..];
                continue;
            }
        };
        out.push_str(&tail[..2]);
        let used = code_part(&tail[2..], Some(close), &mut out);
        let block = &tail[2..2 + used];
        rest = &tail[2 + used..];
        if close == "%}" && is_raw_start(block) {
            // Everything up to `{% endraw %}` is text, as written.
            let end = find_endraw(rest).unwrap_or(rest.len());
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Copy code from `code` into `out` up to and including `close` (or to
/// the end), doubling backslashes inside string literals; returns how
/// many bytes of `code` were used.
fn code_part(code: &str, close: Option<&str>, out: &mut String) -> usize {
    let mut chars = code.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                while let Some((_, d)) = chars.next() {
                    match d {
                        // A backslash and the character after it are one
                        // pair, as the lexer reads them.
                        '\\' => match chars.next() {
                            Some((_, q)) if q == c => {
                                out.push('\\');
                                out.push(q);
                            }
                            Some((_, '\\')) => out.push_str("\\\\\\\\"),
                            Some((_, next)) => {
                                out.push_str("\\\\");
                                out.push(next);
                            }
                            None => out.push_str("\\\\"),
                        },
                        d if d == c => {
                            out.push(d);
                            break;
                        }
                        d => out.push(d),
                    }
                }
            }
            _ => {
                if let Some(close) = close {
                    let tail = &code[at..];
                    // `-}}` / `-%}` start with the trim mark.
                    let end = if tail.starts_with(close) {
                        Some(close.len())
                    } else if tail.starts_with('-') && tail[1..].starts_with(close) {
                        Some(close.len() + 1)
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
    fn backslashes_in_literals_are_doubled_and_nothing_else_changes() {
        assert_eq!(
            raw("no backslash {{ 'x' }}", false),
            "no backslash {{ 'x' }}"
        );
        assert_eq!(raw(r"a\n {{ x }} \d", false), r"a\n {{ x }} \d");
        assert_eq!(
            raw(r"{{ x | regex_replace('(\d+)', '<\1>') }} \1", false),
            r"{{ x | regex_replace('(\\d+)', '<\\1>') }} \1"
        );
        assert_eq!(
            raw(r#"{%- if x == "a\b" -%}y{% endif %}"#, false),
            r#"{%- if x == "a\\b" -%}y{% endif %}"#
        );
        assert_eq!(
            raw(r"{{ 'it\'s' ~ '\\' }}", false),
            r"{{ 'it\'s' ~ '\\\\' }}"
        );
        assert_eq!(
            raw(r"{# '\1' #}{{ '\1' }}", false),
            r"{# '\1' #}{{ '\\1' }}"
        );
        assert_eq!(
            raw(r"{% raw %}{{ '\1' }}{% endraw %}{{ '\1' }}", false),
            r"{% raw %}{{ '\1' }}{% endraw %}{{ '\\1' }}"
        );
        assert_eq!(
            raw(r"x | regex_search('\w+')", true),
            r"x | regex_search('\\w+')"
        );
        assert_eq!(raw(r"{{ '}}\1' }}", false), r"{{ '}}\\1' }}");
    }
}
