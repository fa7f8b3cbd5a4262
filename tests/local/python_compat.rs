//! The seed job's output equals Python's `lower(re.sub(r"[^가-힣a-zA-Z0-9\s]", "", text))`
//! on every code point. Needs python3 (which the README requires), so it is not a unit test.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use fleetform_agent::ops::Pipeline;
use fleetform_core::JobSpec;

const PYTHON: &str = r#"
import json, re, sys
rows = json.load(sys.stdin)
pat = re.compile(r"[^가-힣a-zA-Z0-9\s]")
json.dump([None if t is None else pat.sub("", t).lower() for t in rows], sys.stdout)
"#;

fn corpus() -> Vec<Option<String>> {
    let mut rows: Vec<Option<String>> = Vec::new();
    // Every Unicode scalar value, 512 per row.
    let all: Vec<char> = (0u32..=0x10FFFF).filter_map(char::from_u32).collect();
    for chunk in all.chunks(512) {
        rows.push(Some(chunk.iter().collect()));
    }
    // Mixed cases in context: whitespace of every kind, the separators Python counts as
    // whitespace, Hangul jamo next to syllables, emoji, fullwidth, final sigma, nulls.
    rows.push(Some("Tab\tNL\nVT\u{b}FF\u{c}CR\r FS\u{1c}GS\u{1d}RS\u{1e}US\u{1f} NEL\u{85} NBSP\u{a0} OGHAM\u{1680} EM\u{2003} LS\u{2028} PS\u{2029} NNBSP\u{202f} MMSP\u{205f} IDEO\u{3000}".into()));
    rows.push(Some("각 각 ㄱㅏ 한국어 텍스트 ＡＢＣ１２３ 😀🚀✨ ΌΣΟΣ ΣΑΣ İstanbul ǅ ß".into()));
    rows.push(None);
    rows.push(Some(String::new()));
    rows.push(None);
    rows
}

#[test]
fn seed_job_matches_python_re_and_lower_on_every_code_point() {
    let rows = corpus();
    let job = JobSpec::from_yaml("clean-text.yaml", include_str!("../../examples/jobs/clean-text.yaml")).unwrap();
    let pipeline = Pipeline::compile(&job.steps).unwrap();
    let texts: ArrayRef = Arc::new(StringArray::from(rows.iter().map(|r| r.as_deref()).collect::<Vec<_>>()));
    let batch = RecordBatch::try_from_iter(vec![("text", texts)]).unwrap();
    let out = pipeline.apply(batch).unwrap();
    let cleaned = out.column_by_name("cleaned_text").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
    let ours: Vec<Option<String>> = (0..cleaned.len()).map(|i| (!cleaned.is_null(i)).then(|| cleaned.value(i).to_string())).collect();

    let mut py = Command::new("python3")
        .args(["-c", PYTHON])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is required by the README and by this test");
    py.stdin.take().unwrap().write_all(serde_json::to_string(&rows).unwrap().as_bytes()).unwrap();
    let output = py.wait_with_output().unwrap();
    assert!(output.status.success(), "python3 failed");
    let theirs: Vec<Option<String>> = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        if a != b {
            let (a, b) = (a.clone().unwrap_or_default(), b.clone().unwrap_or_default());
            let at = a.chars().zip(b.chars()).position(|(x, y)| x != y).unwrap_or(a.chars().count().min(b.chars().count()));
            panic!(
                "row {i} differs from Python at char {at}: ours {:?} python {:?}",
                a.chars().skip(at).take(5).collect::<String>(),
                b.chars().skip(at).take(5).collect::<String>()
            );
        }
    }
    assert!(ours.iter().filter(|r| r.is_none()).count() == 2, "nulls stay null");
}
