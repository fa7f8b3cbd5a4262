//! String kernels over Arrow arrays. Each kernel appends a row's new value to a reused
//! `String` (no per-row allocation, no UTF-8 re-validation), and nulls stay null.

use std::sync::Arc;

use arrow_array::builder::GenericStringBuilder;
use arrow_array::{Array, ArrayRef, GenericStringArray, LargeStringArray, OffsetSizeTrait, StringArray, StringViewArray};
use arrow_schema::{ArrowError, DataType};

/// Map every non-null value of a string array through `f`, which appends the new value
/// to the `String` it is given (reused across rows, so no per-row allocation). Values go
/// through Arrow's builder as `&str`: nothing is validated twice. Utf8 and LargeUtf8 keep
/// their type; Utf8View becomes Utf8.
pub fn map_strings(array: &ArrayRef, f: &mut dyn FnMut(&str, &mut String)) -> Result<ArrayRef, ArrowError> {
    match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_any().downcast_ref::<StringArray>().expect("Utf8 is StringArray");
            Ok(Arc::new(map_generic::<i32>(a.len(), a.value_data().len(), |i| (!a.is_null(i)).then(|| a.value(i)), f)))
        }
        DataType::LargeUtf8 => {
            let a = array.as_any().downcast_ref::<LargeStringArray>().expect("LargeUtf8 is LargeStringArray");
            Ok(Arc::new(map_generic::<i64>(a.len(), a.value_data().len(), |i| (!a.is_null(i)).then(|| a.value(i)), f)))
        }
        DataType::Utf8View => {
            let a = array.as_any().downcast_ref::<StringViewArray>().expect("Utf8View is StringViewArray");
            let bytes: usize = (0..a.len()).map(|i| if a.is_null(i) { 0 } else { a.value(i).len() }).sum();
            Ok(Arc::new(map_generic::<i32>(a.len(), bytes, |i| (!a.is_null(i)).then(|| a.value(i)), f)))
        }
        other => Err(ArrowError::InvalidArgumentError(format!("expected a string column, found {other}"))),
    }
}

/// Visit every value of a string array in order (None for nulls), building nothing.
pub fn visit_strings(array: &ArrayRef, f: &mut dyn FnMut(Option<&str>)) -> Result<(), ArrowError> {
    match array.data_type() {
        DataType::Utf8 => array.as_any().downcast_ref::<StringArray>().expect("Utf8 is StringArray").iter().for_each(f),
        DataType::LargeUtf8 => array.as_any().downcast_ref::<LargeStringArray>().expect("LargeUtf8").iter().for_each(f),
        DataType::Utf8View => array.as_any().downcast_ref::<StringViewArray>().expect("Utf8View").iter().for_each(f),
        other => return Err(ArrowError::InvalidArgumentError(format!("expected a string column, found {other}"))),
    }
    Ok(())
}

fn map_generic<'a, O: OffsetSizeTrait>(
    len: usize,
    capacity: usize,
    value: impl Fn(usize) -> Option<&'a str>,
    f: &mut dyn FnMut(&str, &mut String),
) -> GenericStringArray<O> {
    let mut builder = GenericStringBuilder::<O>::with_capacity(len, capacity);
    let mut scratch = String::with_capacity(1024);
    for i in 0..len {
        match value(i) {
            None => builder.append_null(),
            Some(v) => {
                scratch.clear();
                f(v, &mut scratch);
                builder.append_value(&scratch);
            }
        }
    }
    builder.finish()
}

/// Python's `str.lower()`: full Unicode lowercase, including the final-sigma rule.
pub fn lower_into(s: &str, out: &mut String) {
    if s.is_ascii() {
        let start = out.len();
        out.push_str(s);
        out[start..].make_ascii_lowercase();
        return;
    }
    if s.contains('\u{3a3}') {
        // Σ lowercases by context (σ or ς): only str::to_lowercase knows the rule.
        out.push_str(&s.to_lowercase());
        return;
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // A run of ASCII: copy, then lowercase in place.
        let run = bytes[i..].iter().position(|b| *b >= 0x80).unwrap_or(bytes.len() - i);
        if run > 0 {
            let start = out.len();
            out.push_str(&s[i..i + run]);
            out[start..].make_ascii_lowercase();
            i += run;
            continue;
        }
        let c = s[i..].chars().next().expect("i is at a char boundary");
        let len = c.len_utf8();
        if caseless(c) {
            out.push_str(&s[i..i + len]);
        } else {
            out.extend(c.to_lowercase());
        }
        i += len;
    }
}

/// Python's `str.upper()`: full Unicode uppercase (ß becomes SS).
pub fn upper_into(s: &str, out: &mut String) {
    if s.is_ascii() {
        let start = out.len();
        out.push_str(s);
        out[start..].make_ascii_uppercase();
    } else {
        for c in s.chars() {
            out.extend(c.to_uppercase());
        }
    }
}

/// Python's `str.strip()`: remove leading and trailing Python whitespace.
pub fn strip_into(s: &str, out: &mut String) {
    out.push_str(s.trim_matches(super::pyre::is_python_space));
}

/// Python's `" ".join(s.split())`: runs of whitespace become one space, ends trimmed.
pub fn collapse_whitespace_into(s: &str, out: &mut String) {
    let mut first = true;
    for word in s.split(super::pyre::is_python_space).filter(|w| !w.is_empty()) {
        if !first {
            out.push(' ');
        }
        out.push_str(word);
        first = false;
    }
}

/// A character that lowercases and uppercases to itself.
pub fn has_no_case(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_alphabetic();
    }
    if caseless(c) {
        return true;
    }
    let mut l = c.to_lowercase();
    let mut u = c.to_uppercase();
    l.next() == Some(c) && l.next().is_none() && u.next() == Some(c) && u.next().is_none()
}

/// Blocks with no case at all (kana, CJK, Hangul syllables and jamo extensions, private
/// use, emoji and symbols): their characters lowercase to themselves, so the per-character
/// case table lookup is skipped. A test checks every code point of these ranges.
fn caseless(c: char) -> bool {
    matches!(c as u32, 0x3040..=0xA63F | 0xA800..=0xAB2F | 0xAC00..=0xD7FF | 0xE000..=0xF8FF | 0x1F000..=0x1FAFF)
}

#[cfg(test)]
mod tests {
    #[test]
    fn caseless_ranges_have_no_case() {
        for c in (0u32..=0x10FFFF).filter_map(char::from_u32).filter(|c| super::caseless(*c)) {
            let l: Vec<char> = c.to_lowercase().collect();
            let u: Vec<char> = c.to_uppercase().collect();
            assert_eq!(l, vec![c], "{c:?} has a lowercase mapping");
            assert_eq!(u, vec![c], "{c:?} has an uppercase mapping");
        }
    }
}
