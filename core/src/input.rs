//! Input formats of file-reading jobs: which format and compression a file is, the
//! column types a user may give in `input.schema`, what a malformed record does, and
//! the CSV options. Pure types; the readers live in the agent (`fleetform_agent::input`).

use serde::{Deserialize, Serialize};

use crate::diag::{Collector, YamlPath};

/// `input.format`. Inferred from the file names when omitted (`InputFormat::of_file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    Parquet,
    /// JSON Lines: one object per line.
    Jsonl,
    /// One top-level array of objects.
    Json,
    Csv,
    /// One row per line, in a column `text`.
    Text,
}

/// How an input file is compressed, from its last extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl InputFormat {
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Parquet => "parquet",
            InputFormat::Jsonl => "jsonl",
            InputFormat::Json => "json",
            InputFormat::Csv => "csv",
            InputFormat::Text => "text",
        }
    }

    fn extensions(self) -> &'static [&'static str] {
        match self {
            InputFormat::Parquet => &["parquet"],
            InputFormat::Jsonl => &["jsonl", "ndjson"],
            InputFormat::Json => &["json"],
            InputFormat::Csv => &["csv"],
            InputFormat::Text => &["txt"],
        }
    }

    /// The format and compression a file name says: `a.jsonl.gz` is gzip'd JSON Lines.
    /// None for names without a known extension.
    pub fn of_file(name: &str) -> Option<(InputFormat, Compression)> {
        let base = name.rsplit('/').next().unwrap_or(name);
        let (stem, compression) = if let Some(s) = base.strip_suffix(".gz") {
            (s, Compression::Gzip)
        } else if let Some(s) = base
            .strip_suffix(".zst")
            .or_else(|| base.strip_suffix(".zstd"))
        {
            (s, Compression::Zstd)
        } else {
            (base, Compression::None)
        };
        let ext = stem.rsplit_once('.')?.1;
        let format = ALL_FORMATS
            .iter()
            .copied()
            .find(|f| f.extensions().contains(&ext))?;
        Some((format, compression))
    }

    /// Whether a task may own a byte range of a file: line-oriented formats, uncompressed
    /// (a compressed stream or a JSON array can only be read from its start).
    pub fn splits_by_bytes(self, compression: Compression) -> bool {
        compression == Compression::None
            && matches!(
                self,
                InputFormat::Jsonl | InputFormat::Csv | InputFormat::Text
            )
    }
}

const ALL_FORMATS: [InputFormat; 5] = [
    InputFormat::Parquet,
    InputFormat::Jsonl,
    InputFormat::Json,
    InputFormat::Csv,
    InputFormat::Text,
];

/// `input.on_error`: what a malformed record (a line that does not parse, a value that
/// does not fit its column) does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The task fails with `FILE:LINE: message` (and is retried up to `max_failures`).
    #[default]
    Fail,
    /// The record is counted, logged and skipped; the count is in the manifest.
    Skip,
}

/// A column type in `input.schema`: a name, `{field: type, ...}` for a JSON object, or
/// `[type]` for a JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Int64,
    Int32,
    Float64,
    Float32,
    Bool,
    /// Days since the epoch, from `YYYY-MM-DD`.
    Date,
    /// Microseconds, no time zone, from RFC 3339 / ISO 8601 text.
    Timestamp,
    /// `{field: type, ...}`: a JSON object with these fields (missing fields are null).
    Struct(InputSchema),
    /// `[type]`: a JSON array of values of one type.
    List(Box<ColumnType>),
}

/// The type names, as written in `input.schema`.
const SCALARS: &[(&str, ColumnType)] = &[
    ("string", ColumnType::String),
    ("int64", ColumnType::Int64),
    ("int32", ColumnType::Int32),
    ("float64", ColumnType::Float64),
    ("float32", ColumnType::Float32),
    ("bool", ColumnType::Bool),
    ("date", ColumnType::Date),
    ("timestamp", ColumnType::Timestamp),
];

impl ColumnType {
    pub fn is_nested(&self) -> bool {
        matches!(self, ColumnType::Struct(_) | ColumnType::List(_))
    }
}

impl Serialize for ColumnType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        match self {
            ColumnType::Struct(fields) => fields.serialize(s),
            ColumnType::List(item) => {
                let mut seq = s.serialize_seq(Some(1))?;
                seq.serialize_element(item.as_ref())?;
                seq.end()
            }
            scalar => {
                let name = SCALARS.iter().find(|(_, t)| t == scalar).map(|(n, _)| *n).unwrap_or("string");
                s.serialize_str(name)
            }
        }
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ColumnType;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let names: Vec<&str> = SCALARS.iter().map(|(n, _)| *n).collect();
                write!(f, "a type ({}), `{{field: type, ...}}` for an object or `[type]` for an array", names.join(", "))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ColumnType, E> {
                SCALARS
                    .iter()
                    .find(|(n, _)| *n == v)
                    .map(|(_, t)| t.clone())
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<ColumnType, A::Error> {
                InputSchema::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ColumnType::Struct)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ColumnType, A::Error> {
                let item: ColumnType = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::custom("an array type names its element type: `[string]`"))?;
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::custom("an array type names one element type: `[string]`"));
                }
                Ok(ColumnType::List(Box::new(item)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `input.schema`: column name → type, in the order written (a YAML mapping).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InputSchema(pub Vec<(String, ColumnType)>);

impl Serialize for InputSchema {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (name, ty) in &self.0 {
            m.serialize_entry(name, ty)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for InputSchema {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = InputSchema;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "a mapping of column name to type, e.g. `{{id: int64, text: string}}`"
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<InputSchema, A::Error> {
                let mut columns: Vec<(String, ColumnType)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let ty = map.next_value()?;
                    if columns.iter().any(|(n, _)| *n == name) {
                        return Err(serde::de::Error::custom(format!(
                            "column `{name}` is listed twice"
                        )));
                    }
                    columns.push((name, ty));
                }
                Ok(InputSchema(columns))
            }
        }
        d.deserialize_map(V)
    }
}

/// `input.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// One ASCII character (`,`, `;`, `\t`, `|`).
    #[serde(default = "CsvOptions::default_delimiter")]
    pub delimiter: String,
    /// The first line names the columns; without it they are `column_1`, `column_2`...
    #[serde(default = "CsvOptions::default_header")]
    pub header: bool,
}

impl CsvOptions {
    fn default_delimiter() -> String {
        ",".into()
    }
    fn default_header() -> bool {
        true
    }
    /// The delimiter byte (validated to be one ASCII character).
    pub fn delimiter_byte(&self) -> u8 {
        self.delimiter.as_bytes().first().copied().unwrap_or(b',')
    }
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: Self::default_delimiter(),
            header: Self::default_header(),
        }
    }
}

/// The input options of a job that reads files (`uri`), checked without the data:
/// options that do not apply to an explicit format, an empty schema, a bad delimiter.
pub fn validate_options(
    format: Option<InputFormat>,
    schema: Option<&InputSchema>,
    on_error: OnError,
    csv: &CsvOptions,
    c: &mut Collector<'_>,
) {
    // (An empty `schema` is refused at submit: here it may be what is left of a schema
    // whose bad entries were already reported.)
    let input = YamlPath::root().key("input");
    let bytes = csv.delimiter.as_bytes();
    if bytes.len() != 1 || !bytes[0].is_ascii() || matches!(bytes[0], b'\n' | b'\r' | b'"') {
        c.error(
            input.key("csv").key("delimiter"),
            format!("`{}` is not one ASCII character (other than a quote or a line break); use e.g. `,`, `;`, `|` or \"\\t\"", csv.delimiter.escape_debug()),
        );
    }
    match format {
        Some(InputFormat::Parquet) => {
            if schema.is_some() {
                c.error(
                    input.key("schema"),
                    "parquet files carry their own schema: remove `input.schema`",
                );
            }
            if on_error == OnError::Skip {
                c.error(input.key("on_error"), "applies to jsonl, json, csv and text input (a parquet file is valid or not as a whole)");
            }
        }
        Some(InputFormat::Csv) => {
            for (name, ty) in schema.map(|s| s.0.as_slice()).unwrap_or_default() {
                if ty.is_nested() {
                    c.error(
                        input.key("schema").key(name.clone()),
                        "csv fields are flat: an object or array type applies to jsonl and json input",
                    );
                }
            }
        }
        Some(InputFormat::Text) if schema.is_some() => {
            c.error(
                input.key("schema"),
                "text input has one column, `text` (string): remove `input.schema`",
            );
        }
        _ => {}
    }
    if *csv != CsvOptions::default() && format.is_some_and(|f| f != InputFormat::Csv) {
        c.error(
            input.key("csv"),
            format!(
                "applies to csv input, and `input.format` is {}",
                format.map(|f| f.name()).unwrap_or("")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_compression_come_from_the_file_name() {
        let cases = [
            ("a.parquet", Some((InputFormat::Parquet, Compression::None))),
            ("dir/a.jsonl", Some((InputFormat::Jsonl, Compression::None))),
            ("a.ndjson.gz", Some((InputFormat::Jsonl, Compression::Gzip))),
            ("a.json.zst", Some((InputFormat::Json, Compression::Zstd))),
            ("a.b.csv.gz", Some((InputFormat::Csv, Compression::Gzip))),
            ("notes.txt", Some((InputFormat::Text, Compression::None))),
            ("a.gz", None),
            ("README", None),
            ("a.log", None),
        ];
        for (name, want) in cases {
            assert_eq!(InputFormat::of_file(name), want, "{name}");
        }
        assert!(InputFormat::Csv.splits_by_bytes(Compression::None));
        assert!(!InputFormat::Csv.splits_by_bytes(Compression::Gzip));
        assert!(!InputFormat::Json.splits_by_bytes(Compression::None));
    }
}
