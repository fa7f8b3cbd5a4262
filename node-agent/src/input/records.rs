//! Record framing: where one record ends and the next begins, before any parsing.
//! jsonl, csv and text records are lines; a `json` file's records are the elements of
//! its top-level array. Framing is kept apart from parsing (arrow-json, arrow-csv do
//! that) so that each record has a position for error messages and can be skipped alone.

use std::io::{BufRead, Read};

use anyhow::{bail, Result};

/// A record longer than this is refused instead of buffered: a file without line breaks
/// (a binary, a one-line JSON dump) must not take the node's memory.
pub const MAX_RECORD_BYTES: u64 = 64 << 20;

/// Records back to back, each ending in `\n`, with where each came from.
#[derive(Debug, Default)]
pub struct RawBlock {
    pub bytes: Vec<u8>,
    /// End offset in `bytes` of each record.
    ends: Vec<usize>,
    /// Where each record starts in its file: a byte offset (byte ranges) or a line
    /// number (streams); `Position` says which.
    positions: Vec<u64>,
}

impl RawBlock {
    pub fn push(&mut self, record: &[u8], position: u64) {
        self.bytes.extend_from_slice(record);
        if record.last() != Some(&b'\n') {
            self.bytes.push(b'\n'); // the last line of a file without a final newline
        }
        self.ends.push(self.bytes.len());
        self.positions.push(position);
    }
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    pub fn record(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
    pub fn position(&self, i: usize) -> u64 {
        self.positions[i]
    }
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.positions.clear();
    }
}

/// Lines of a reader that starts at byte `pos` of its file.
pub struct LineReader<R> {
    reader: R,
    /// File offset of the next unread byte.
    pub pos: u64,
    /// Lines read so far (1-based number of the last line) when reading from byte 0.
    pub line: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(reader: R, pos: u64) -> Self {
        LineReader {
            reader,
            pos,
            line: 0,
            buf: Vec::new(),
        }
    }

    /// The next line with its terminator, and the file offset where it starts; None at
    /// the end of the file.
    pub fn next_line(&mut self) -> Result<Option<(&[u8], u64)>> {
        self.buf.clear();
        let start = self.pos;
        let n = (&mut self.reader)
            .take(MAX_RECORD_BYTES + 1)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        if n as u64 > MAX_RECORD_BYTES {
            bail!("the line starting at byte {start} is longer than {} MiB: is this line-oriented input?", MAX_RECORD_BYTES >> 20);
        }
        self.pos += n as u64;
        self.line += 1;
        Ok(Some((&self.buf, start)))
    }
}

/// Whether a jsonl/csv line holds nothing: such lines are not records (a text line is a
/// row even when empty).
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// The elements of one top-level JSON array, read as a stream: `[`, elements separated
/// by commas, `]`. Tracks only nesting and strings; the elements are parsed by arrow-json.
pub struct JsonArrayReader<R> {
    reader: R,
    /// The file, for error messages (`FILE:LINE: ...`).
    name: String,
    /// 1-based line of the next unread byte.
    line: u64,
    state: ArrayState,
    buf: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    BeforeArray,
    /// After `[`, or after an element's comma.
    BeforeElement {
        first: bool,
    },
    AfterElement,
    Done,
}

impl<R: BufRead> JsonArrayReader<R> {
    pub fn new(reader: R, name: &str) -> Self {
        JsonArrayReader {
            reader,
            name: name.to_string(),
            line: 1,
            state: ArrayState::BeforeArray,
            buf: Vec::new(),
        }
    }

    /// The next element's bytes and the line it starts on; None after the closing `]`.
    pub fn next_element(&mut self) -> Result<Option<(&[u8], u64)>> {
        loop {
            let Some(b) = self.next_non_space()? else {
                match self.state {
                    ArrayState::BeforeArray => bail!(
                        "{}:{}: the file is empty; `json` input is one array `[{{...}}, ...]`",
                        self.name,
                        self.line
                    ),
                    ArrayState::Done => return Ok(None),
                    _ => bail!(
                        "{}:{}: the file ends inside the top-level array (no closing `]`)",
                        self.name,
                        self.line
                    ),
                }
            };
            match (self.state, b) {
                (ArrayState::BeforeArray, b'[') => self.state = ArrayState::BeforeElement { first: true },
                (ArrayState::BeforeArray, _) => bail!(
                    "{}:{}: `json` input is one top-level array of objects (`[{{...}}, ...]`); for one object per line use `format: jsonl`",
                    self.name, self.line
                ),
                (ArrayState::BeforeElement { first: true }, b']') | (ArrayState::AfterElement, b']') => self.state = ArrayState::Done,
                (ArrayState::AfterElement, b',') => self.state = ArrayState::BeforeElement { first: false },
                (ArrayState::AfterElement, other) => {
                    bail!("{}:{}: expected `,` or `]` after an array element, found `{}`", self.name, self.line, other as char)
                }
                (ArrayState::BeforeElement { .. }, b']' | b',') => bail!("{}:{}: an empty array element", self.name, self.line),
                (ArrayState::BeforeElement { .. }, first) => {
                    let line = self.line;
                    self.read_element(first)?;
                    self.state = ArrayState::AfterElement;
                    return Ok(Some((&self.buf, line)));
                }
                (ArrayState::Done, other) => bail!("{}:{}: `{}` after the closing `]` of the array", self.name, self.line, other as char),
            }
        }
    }

    /// Read one element whose first byte `first` was consumed: until its brackets or
    /// quotes close (objects, arrays, strings) or a delimiter follows it (other scalars,
    /// which arrow-json then rejects as rows).
    fn read_element(&mut self, first: u8) -> Result<()> {
        self.buf.clear();
        self.buf.push(first);
        let mut depth = i64::from(matches!(first, b'{' | b'['));
        let mut strings = JsonStrings { inside: first == b'"', escaped: false };
        let scalar = depth == 0 && !strings.inside;
        while scalar || depth > 0 || strings.inside {
            let Some(b) = self.peek()? else {
                bail!(
                    "{}:{}: the file ends inside an array element",
                    self.name,
                    self.line
                )
            };
            if scalar && (b == b',' || b == b']' || b.is_ascii_whitespace()) {
                break;
            }
            self.consume();
            if b == b'\n' {
                self.line += 1;
            }
            self.buf.push(b);
            if self.buf.len() as u64 > MAX_RECORD_BYTES {
                bail!(
                    "{}:{}: an array element longer than {} MiB",
                    self.name,
                    self.line,
                    MAX_RECORD_BYTES >> 20
                );
            }
            if !scalar && !strings.step(b) {
                match b {
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => depth -= 1,
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn next_non_space(&mut self) -> Result<Option<u8>> {
        while let Some(b) = self.peek()? {
            self.consume();
            match b {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                other => return Ok(Some(other)),
            }
        }
        Ok(None)
    }

    fn peek(&mut self) -> Result<Option<u8>> {
        Ok(self.reader.fill_buf()?.first().copied())
    }

    fn consume(&mut self) {
        self.reader.consume(1);
    }
}

/// Where JSON text is inside a string, byte by byte (escapes honoured): what the array
/// reader and the trailing-comma check need of JSON's grammar.
#[derive(Default)]
pub(super) struct JsonStrings {
    pub inside: bool,
    escaped: bool,
}

impl JsonStrings {
    /// Take the next byte; true when it belongs to a string (its quotes included).
    pub fn step(&mut self, b: u8) -> bool {
        if self.inside {
            match (self.escaped, b) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.inside = false,
                _ => {}
            }
            return true;
        }
        self.inside = b == b'"';
        self.inside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(src: &str) -> Result<Vec<(String, u64)>> {
        let mut r = JsonArrayReader::new(src.as_bytes(), "t.json");
        let mut out = Vec::new();
        while let Some((e, line)) = r.next_element()? {
            out.push((String::from_utf8(e.to_vec()).unwrap(), line));
        }
        Ok(out)
    }

    #[test]
    fn array_elements_with_their_lines() {
        let src = "[\n {\"a\": \"x,]}\\\"\"},\n {\"b\": [1, {\"c\": 2}]}, 3 ,\n\"s\"]\n";
        let got = elements(src).unwrap();
        let want = vec![
            ("{\"a\": \"x,]}\\\"\"}".to_string(), 2),
            ("{\"b\": [1, {\"c\": 2}]}".to_string(), 3),
            ("3".to_string(), 3),
            ("\"s\"".to_string(), 4),
        ];
        assert_eq!(got, want);
        assert!(elements("[]").unwrap().is_empty());
    }

    #[test]
    fn array_framing_errors_name_the_line() {
        let err = |s: &str| elements(s).unwrap_err().to_string();
        assert!(
            err("{\"a\": 1}\n").starts_with("t.json:1: `json` input is one top-level array"),
            "{}",
            err("{\"a\": 1}\n")
        );
        assert_eq!(
            err("[\n{\"a\": 1}\n{\"a\": 2}]"),
            "t.json:3: expected `,` or `]` after an array element, found `{`"
        );
        assert_eq!(
            err("[{\"a\": 1},\n"),
            "t.json:2: the file ends inside the top-level array (no closing `]`)"
        );
        assert_eq!(
            err("[{\"a\": 1}] x"),
            "t.json:1: `x` after the closing `]` of the array"
        );
    }
}
