//! String kernels over Arrow arrays. Each kernel writes values straight into one output
//! buffer (no per-row `String`), and keeps nulls as they are.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, GenericStringArray, LargeStringArray, OffsetSizeTrait, StringArray, StringViewArray};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType};

/// Map every non-null value of a string array through `f`, which appends the new value
/// to the buffer it is given. Utf8 and LargeUtf8 keep their type; Utf8View becomes Utf8.
pub fn map_strings(array: &ArrayRef, f: &mut dyn FnMut(&str, &mut Vec<u8>)) -> Result<ArrayRef, ArrowError> {
    match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_any().downcast_ref::<StringArray>().expect("Utf8 is StringArray");
            Ok(Arc::new(map_generic::<i32>(a.len(), a.nulls().cloned(), a.value_data().len(), |i| a.value(i), a.is_nullable() && a.null_count() > 0, |i| a.is_null(i), f)?))
        }
        DataType::LargeUtf8 => {
            let a = array.as_any().downcast_ref::<LargeStringArray>().expect("LargeUtf8 is LargeStringArray");
            Ok(Arc::new(map_generic::<i64>(a.len(), a.nulls().cloned(), a.value_data().len(), |i| a.value(i), a.null_count() > 0, |i| a.is_null(i), f)?))
        }
        DataType::Utf8View => {
            let a = array.as_any().downcast_ref::<StringViewArray>().expect("Utf8View is StringViewArray");
            let bytes: usize = (0..a.len()).map(|i| if a.is_null(i) { 0 } else { a.value(i).len() }).sum();
            Ok(Arc::new(map_generic::<i32>(a.len(), a.nulls().cloned(), bytes, |i| a.value(i), a.null_count() > 0, |i| a.is_null(i), f)?))
        }
        other => Err(ArrowError::InvalidArgumentError(format!("expected a string column, found {other}"))),
    }
}

#[allow(clippy::too_many_arguments)]
fn map_generic<'a, O: OffsetSizeTrait>(
    len: usize,
    nulls: Option<arrow_buffer::NullBuffer>,
    capacity: usize,
    value: impl Fn(usize) -> &'a str,
    has_nulls: bool,
    is_null: impl Fn(usize) -> bool,
    f: &mut dyn FnMut(&str, &mut Vec<u8>),
) -> Result<GenericStringArray<O>, ArrowError> {
    let mut values: Vec<u8> = Vec::with_capacity(capacity);
    let mut offsets: Vec<O> = Vec::with_capacity(len + 1);
    offsets.push(O::usize_as(0));
    for i in 0..len {
        if !(has_nulls && is_null(i)) {
            f(value(i), &mut values);
        }
        offsets.push(O::from_usize(values.len()).ok_or_else(|| ArrowError::ComputeError("string column larger than its offset type".into()))?);
    }
    GenericStringArray::<O>::try_new(OffsetBuffer::new(ScalarBuffer::from(offsets)), Buffer::from_vec(values), nulls)
}

/// Python's `str.lower()`: full Unicode lowercase, including the final-sigma rule.
pub fn lower_into(s: &str, out: &mut Vec<u8>) {
    if s.is_ascii() {
        out.extend(s.bytes().map(|b| b.to_ascii_lowercase()));
    } else if s.contains('\u{3a3}') {
        // Σ lowercases by context (σ or ς): only str::to_lowercase knows the rule.
        out.extend_from_slice(s.to_lowercase().as_bytes());
    } else {
        let mut buf = [0u8; 4];
        for c in s.chars() {
            for l in c.to_lowercase() {
                out.extend_from_slice(l.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// Python's `str.upper()`: full Unicode uppercase (ß becomes SS).
pub fn upper_into(s: &str, out: &mut Vec<u8>) {
    if s.is_ascii() {
        out.extend(s.bytes().map(|b| b.to_ascii_uppercase()));
    } else {
        let mut buf = [0u8; 4];
        for c in s.chars() {
            for u in c.to_uppercase() {
                out.extend_from_slice(u.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// Python's `str.strip()`: remove leading and trailing Python whitespace.
pub fn strip_into(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(s.trim_matches(super::pyre::is_python_space).as_bytes());
}

/// Python's `" ".join(s.split())`: runs of whitespace become one space, ends trimmed.
pub fn collapse_whitespace_into(s: &str, out: &mut Vec<u8>) {
    let mut first = true;
    for word in s.split(super::pyre::is_python_space).filter(|w| !w.is_empty()) {
        if !first {
            out.push(b' ');
        }
        out.extend_from_slice(word.as_bytes());
        first = false;
    }
}
