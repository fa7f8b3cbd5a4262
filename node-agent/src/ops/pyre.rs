//! Python `re` compatibility for job patterns.
//!
//! Job specs are written by people who test their cleaning in Python, so patterns mean
//! what Python's `re` (str patterns) means. The `regex` crate is close; the differences
//! that matter are rewritten here:
//! - `\s` in Python also matches U+001C..U+001F (str.isspace() is true for them); the
//!   crate's `\s` (Unicode White_Space) does not. `\s` becomes `[\s\x1C-\x1F]`, `\S`
//!   becomes `[\S&&[^\x1C-\x1F]]`, inside and outside classes.
//! - Inside a class, Python treats `[`, `&&`, `~~` and `--` literally; the crate treats
//!   them as nested classes and set operations, so they are escaped.
//! - `\Z` (end of string in Python) becomes `\z`.
//! - Replacements use Python's `\1` / `\g<name>` / `\g<1>`; `$` is literal in Python.
//!
//! Known remaining differences (documented in README): `\w`/`\d`/`\b` follow Unicode in
//! both but with slightly different tables (the crate includes combining marks in `\w`);
//! look-around and backreferences in patterns are not supported by the crate and are
//! rejected with a clear error at submit time.

/// Python whitespace (str.isspace()): Unicode White_Space plus U+001C..U+001F.
pub fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

const SPACE_IN_CLASS: &str = r"\s\x1C-\x1F";
const NOT_SPACE_IN_CLASS: &str = r"[\S&&[^\x1C-\x1F]]";

/// Rewrite a Python `re` pattern into the `regex` crate's syntax.
pub fn translate_pattern(py: &str) -> String {
    let chars: Vec<char> = py.chars().collect();
    let mut out = String::with_capacity(py.len() + 16);
    let mut in_class = false;
    let mut class_start = 0usize; // index in `chars` just after `[` or `[^`
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let e = chars[i + 1];
            match (e, in_class) {
                ('s', false) => out.push_str(&format!("[{SPACE_IN_CLASS}]")),
                ('s', true) => out.push_str(SPACE_IN_CLASS),
                ('S', _) => out.push_str(NOT_SPACE_IN_CLASS),
                ('Z', false) => out.push_str(r"\z"),
                _ => {
                    out.push('\\');
                    out.push(e);
                }
            }
            i += 2;
            continue;
        }
        if in_class {
            match c {
                ']' if i > class_start => {
                    in_class = false;
                    out.push(']');
                }
                '[' | '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                '-' if i + 1 < chars.len() && chars[i + 1] == '-' => out.push_str(r"\-"),
                _ => out.push(c),
            }
        } else {
            out.push(c);
            if c == '[' {
                in_class = true;
                if i + 1 < chars.len() && chars[i + 1] == '^' {
                    out.push('^');
                    i += 1;
                }
                class_start = i + 1;
            }
        }
        i += 1;
    }
    out
}

/// Rewrite a Python replacement string (`\1`, `\g<name>`, `\n`, literal `$`) into the
/// crate's `$` syntax.
pub fn translate_replacement(py: &str) -> Result<String, String> {
    let chars: Vec<char> = py.chars().collect();
    let mut out = String::with_capacity(py.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '$' => out.push_str("$$"),
            '\\' if i + 1 < chars.len() => {
                let e = chars[i + 1];
                i += 1;
                match e {
                    d if d.is_ascii_digit() => {
                        let mut n = d.to_string();
                        if i + 1 < chars.len() && chars[i + 1].is_ascii_digit() {
                            n.push(chars[i + 1]);
                            i += 1;
                        }
                        out.push_str(&format!("${{{n}}}"));
                    }
                    'g' => {
                        let rest: String = chars[i + 1..].iter().collect();
                        let Some(end) = rest.find('>').filter(|_| rest.starts_with('<')) else {
                            return Err(format!("bad group reference in replacement `{py}`"));
                        };
                        out.push_str(&format!("${{{}}}", &rest[1..end]));
                        i += end + 1;
                    }
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' => out.push('\\'),
                    other => {
                        // Python keeps unknown escapes of ASCII letters as errors; others literal.
                        if other.is_ascii_alphabetic() {
                            return Err(format!("bad escape `\\{other}` in replacement `{py}`"));
                        }
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_pattern() {
        let t = translate_pattern(r"[^가-힣a-zA-Z0-9\s]");
        assert_eq!(t, r"[^가-힣a-zA-Z0-9\s\x1C-\x1F]");
        let re = regex::Regex::new(&t).unwrap();
        assert_eq!(re.replace_all("a\u{1c}b!\u{1f}c", ""), "a\u{1c}b\u{1f}c");
    }

    #[test]
    fn classes_and_escapes() {
        assert_eq!(translate_pattern(r"\s+"), r"[\s\x1C-\x1F]+");
        assert_eq!(translate_pattern(r"[]a]"), r"[]a]");
        assert_eq!(translate_pattern(r"[a[&~]"), r"[a\[\&\~]");
        assert_eq!(translate_pattern(r"x\Z"), r"x\z");
        let re = regex::Regex::new(&translate_pattern(r"\S")).unwrap();
        assert!(!re.is_match("\u{1d}"));
        assert!(re.is_match("a"));
    }

    #[test]
    fn replacements() {
        assert_eq!(translate_replacement(r"\1-\g<name>$").unwrap(), "${1}-${name}$$");
        assert!(translate_replacement(r"\q").is_err());
    }
}
