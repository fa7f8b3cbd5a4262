use super::*;
use arrow_array::{Int64Array, StringArray};
use fleetform_core::JobSpec;

fn batch(texts: Vec<Option<&str>>) -> RecordBatch {
    let ids = Int64Array::from_iter_values(0..texts.len() as i64);
    RecordBatch::try_from_iter(vec![
        ("id", Arc::new(ids) as ArrayRef),
        ("text", Arc::new(StringArray::from(texts)) as ArrayRef),
    ])
    .unwrap()
}

fn strings(b: &RecordBatch, col: &str) -> Vec<Option<String>> {
    let a = b.column_by_name(col).unwrap().as_any().downcast_ref::<StringArray>().unwrap();
    (0..a.len()).map(|i| if a.is_null(i) { None } else { Some(a.value(i).to_string()) }).collect()
}

#[test]
fn seed_job_on_a_batch() {
    let job = JobSpec::from_yaml("j", include_str!("../../../examples/jobs/clean-text.yaml")).unwrap();
    let p = Pipeline::compile(&job.steps).unwrap();
    assert!(matches!(p.ops[0], Op::Replace { replace: Replacer::Class { .. }, lower: true, .. }), "seed pattern takes the class fast path, lowercase fused");
    assert_eq!(p.ops.len(), 1);
    let out = p.apply(batch(vec![Some("Hello, World! 안녕하세요 😀 ＡＢ"), None, Some("A\u{1c}B\tC")])).unwrap();
    assert_eq!(
        strings(&out, "cleaned_text"),
        vec![Some("hello world 안녕하세요  ".to_string()), None, Some("a\u{1c}b\tc".to_string())]
    );
    assert_eq!(strings(&out, "text")[0].as_deref(), Some("Hello, World! 안녕하세요 😀 ＡＢ"), "input column kept");
}

#[test]
fn class_fast_path_matches_the_regex() {
    let pattern = r"[^가-힣a-zA-Z0-9\s]";
    let Replacer::Class { set, .. } = Replacer::compile(pattern, "").unwrap() else { panic!("class") };
    let re = Regex::new(&pyre::translate_pattern(pattern)).unwrap();
    let sample: String = (0u32..0x3_0000).step_by(7).filter_map(char::from_u32).collect();
    let mut fast = String::new();
    set.replace_into(&sample, "", false, &mut fast);
    assert_eq!(fast, re.replace_all(&sample, ""));
}

#[test]
fn other_steps() {
    let steps: Vec<Step> = serde_norway::from_str(
        "- strip: {column: text}\n- collapse_whitespace: {column: text, output: c}\n- uppercase: {column: c}\n\
         - filter: {column: c, min_length: 2}\n- unicode_normalize: {column: c, form: NFKC}\n- drop_columns: {columns: [id]}\n\
         - regex_replace: {column: c, pattern: '(\\w)(\\w)', replacement: '\\2\\1'}\n",
    )
    .unwrap();
    let p = Pipeline::compile(&steps).unwrap();
    let out = p.apply(batch(vec![Some("  a  b\u{1f} ſtraße "), Some(" x "), None])).unwrap();
    assert_eq!(out.num_columns(), 2, "id dropped, c added");
    // Python: re.sub(r"(\w)(\w)", r"\2\1", " ".join("  a  b\x1f ſtraße ".strip().split()).upper())
    assert_eq!(strings(&out, "c"), vec![Some("A B TSARSSE".to_string())]);
}

#[test]
fn compile_errors_name_the_step() {
    let steps: Vec<Step> = serde_norway::from_str("- lowercase: {column: t}\n- regex_replace: {column: t, pattern: '(', replacement: ''}\n").unwrap();
    let err = Pipeline::compile(&steps).err().unwrap().to_string();
    assert!(err.starts_with("steps[1] (regex_replace): pattern `(` does not compile"), "{err}");
}

#[test]
fn fused_lowercase_matches_two_passes() {
    let steps: Vec<Step> = serde_norway::from_str(
        "- regex_replace: {column: text, pattern: '[^가-힣a-zA-Z0-9\\s]', replacement: '', output: c}\n- lowercase: {column: c}\n",
    )
    .unwrap();
    let fused = Pipeline::compile(&steps).unwrap();
    assert_eq!(fused.ops.len(), 1);
    // The same two steps without fusion: lowercase writes another column first.
    let two: Vec<Step> = serde_norway::from_str(
        "- regex_replace: {column: text, pattern: '[^가-힣a-zA-Z0-9\\s]', replacement: '', output: c}\n- lowercase: {column: c, output: d}\n",
    )
    .unwrap();
    let unfused = Pipeline::compile(&two).unwrap();
    assert_eq!(unfused.ops.len(), 2);
    let input = vec![Some("ÀB Ç 한국 ΣΑΣ Hello, WORLD! ＡＢ İ"), None, Some("")];
    let a = fused.apply(batch(input.clone())).unwrap();
    let b = unfused.apply(batch(input)).unwrap();
    assert_eq!(strings(&a, "c"), strings(&b, "d"));
    // A class that keeps Σ is not fused (its lowercase depends on context).
    let greek: Vec<Step> = serde_norway::from_str("- regex_replace: {column: text, pattern: '[0-9]', replacement: ''}\n- lowercase: {column: text}\n").unwrap();
    assert_eq!(Pipeline::compile(&greek).unwrap().ops.len(), 2);
}
