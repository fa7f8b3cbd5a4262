//! The workshop's data generator (C9), deterministic: every row is drawn from its own
//! RNG seeded by (seed, id), so the bytes do not depend on how rows are split into
//! tasks, row groups or nodes, and a retried task rewrites identical files.
//!
//! Python original: `id`, `''.join(random.choices(string.ascii_letters + ' ', k=1000))`,
//! `random.choice(['news', 'blog', 'forum', 'wiki'])`.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use fleetform_core::job::GenerateSpec;
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

const ALPHABET: &[u8; 53] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ";
const LABELS: [&str; 4] = ["news", "blog", "forum", "wiki"];
/// What `noise` mixes in: punctuation, Hangul, emoji, fullwidth forms and the control
/// separators Python counts as whitespace — the cases the cleaning job must get right.
const NOISE: &[&str] = &[
    ",", ".", "!", "?", ";", ":", "'", "\"", "(", ")", "-", "#", "가", "힣", "한", "국", "어", "ᄀ", "😀", "🚀", "✨",
    "Ａ", "ｂ", "１", "\u{1c}", "\u{1f}", "\u{3000}", "é", "Σ",
];

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, false),
    ]))
}

fn row_rng(seed: u64, id: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Rows `[first, first + count)` as one batch.
pub fn batch(spec: &GenerateSpec, first: u64, count: usize) -> RecordBatch {
    let len = spec.text_length;
    let mut text: Vec<u8> = Vec::with_capacity(count * (len + len / 8));
    let mut offsets: Vec<i32> = Vec::with_capacity(count + 1);
    let mut labels: Vec<&str> = Vec::with_capacity(count);
    offsets.push(0);
    // Noise threshold on a 32-bit draw.
    let noise_threshold = (spec.noise.clamp(0.0, 1.0) * u32::MAX as f64) as u32;
    for id in first..first + count as u64 {
        let mut rng = row_rng(spec.seed, id);
        let mut produced = 0;
        while produced < len {
            // 53^8 < 2^64: eight nearly uniform picks per 64-bit draw (multiply-high).
            let mut x = rng.next_u64();
            for _ in 0..8.min(len - produced) {
                let m = x as u128 * ALPHABET.len() as u128;
                text.push(ALPHABET[(m >> 64) as usize]);
                x = m as u64;
                produced += 1;
            }
        }
        if noise_threshold > 0 {
            let start = offsets[offsets.len() - 1] as usize;
            noisify(&mut text, start, &mut rng, noise_threshold);
        }
        labels.push(LABELS[(rng.next_u64() % 4) as usize]);
        offsets.push(i32::try_from(text.len()).expect("a generated batch stays under 2 GiB"));
    }
    let text = StringArray::try_new(OffsetBuffer::new(ScalarBuffer::from(offsets)), Buffer::from_vec(text), None)
        .expect("generated text is ASCII or whole UTF-8 characters");
    let ids = Int64Array::from_iter_values(first as i64..(first + count as u64) as i64);
    RecordBatch::try_new(
        schema(),
        vec![Arc::new(ids) as ArrayRef, Arc::new(text) as ArrayRef, Arc::new(StringArray::from(labels)) as ArrayRef],
    )
    .expect("columns match the schema")
}

/// Replace characters of the row that starts at `start` with noise, each with
/// probability threshold / 2^32. Rebuilds the row's tail since noise may be multi-byte.
fn noisify(text: &mut Vec<u8>, start: usize, rng: &mut Xoshiro256PlusPlus, threshold: u32) {
    let row: Vec<u8> = text.split_off(start);
    for b in row {
        let draw = rng.next_u64();
        if (draw as u32) < threshold {
            let pick = NOISE[((draw >> 32) % NOISE.len() as u64) as usize];
            text.extend_from_slice(pick.as_bytes());
        } else {
            text.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    fn spec(noise: f64) -> GenerateSpec {
        GenerateSpec { rows: 100, seed: 7, text_length: 1000, noise }
    }

    #[test]
    fn deterministic_and_split_independent() {
        let whole = batch(&spec(0.0), 0, 10);
        let tail = batch(&spec(0.0), 5, 5);
        let t = |b: &RecordBatch, i: usize| b.column(1).as_any().downcast_ref::<StringArray>().unwrap().value(i).to_string();
        assert_eq!(t(&whole, 7), t(&tail, 2));
        assert_eq!(t(&whole, 0).chars().count(), 1000);
        assert!(t(&whole, 0).bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(t(&whole, 0), t(&whole, 1));
        let labels = whole.column(2).as_any().downcast_ref::<StringArray>().unwrap();
        assert!((0..labels.len()).all(|i| LABELS.contains(&labels.value(i))));
    }

    #[test]
    fn noise_mixes_in_unicode() {
        let b = batch(&spec(0.05), 0, 20);
        let texts = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        let non_ascii = (0..texts.len()).filter(|&i| !texts.value(i).is_ascii()).count();
        assert!(non_ascii > 15, "5% noise puts non-ASCII characters in nearly every row");
        assert!((0..texts.len()).all(|i| texts.value(i).chars().count() == 1000));
    }
}
