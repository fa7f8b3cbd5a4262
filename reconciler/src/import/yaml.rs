//! The pieces of YAML text the imported spec is written from (`emit`, and `network` for
//! its block): scalars that read back as the same string, flow lists, and the comment
//! after a value.

/// `   # text`, the comment after a value.
pub fn comment(text: &str) -> String {
    format!("   # {text}")
}

/// A YAML scalar for `s`: plain when the YAML parser reads it back as the same string
/// (and no YAML 1.1 reader would take it for a boolean), else quoted.
pub fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.starts_with(['-', '.'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !["yes", "no", "on", "off", "y", "n"].contains(&s.to_ascii_lowercase().as_str())
        && serde_norway::from_str::<serde_norway::Value>(s)
            .ok()
            .is_some_and(|v| v.as_str() == Some(s));
    if plain {
        s.to_string()
    } else if s.chars().any(char::is_control) {
        // JSON's escapes are valid in a YAML double-quoted scalar.
        serde_json::Value::String(s.to_string()).to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// `[a, b]`: a flow sequence of [`scalar`]s.
pub fn flow_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| scalar(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}
