//! The Arrow schema of jsonl/json/csv/text input: from `input.schema`, or inferred at
//! submit from a sample of the first file with arrow-json's / arrow-csv's inference,
//! then stored in the job record so every task parses with the same one.

use std::io::Cursor;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use fleetform_core::input::{ColumnType, CsvOptions, InputFormat, InputSchema};

/// Text input: one column.
pub const TEXT_COLUMN: &str = "text";

pub fn arrow_type(t: &ColumnType) -> DataType {
    match t {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Float32 => DataType::Float32,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        ColumnType::Struct(fields) => DataType::Struct(from_user(fields).fields().clone()),
        ColumnType::List(item) => DataType::List(Arc::new(Field::new("item", arrow_type(item), true))),
    }
}

fn from_user(schema: &InputSchema) -> Schema {
    Schema::new(
        schema
            .0
            .iter()
            .map(|(name, t)| Field::new(name, arrow_type(t), true))
            .collect::<Vec<_>>(),
    )
}

/// A sample of the first records of a file, each ending in `\n`.
pub struct Sample {
    pub bytes: Vec<u8>,
    pub records: usize,
}

/// What submit learned about the input's columns.
pub struct Resolved {
    pub schema: Schema,
    /// Problems worth a warning that do not stop the job (fields dropped).
    pub warnings: Vec<String>,
}

/// The schema of a job's input. `sample` holds whole records of `file` (for csv, the
/// header line first when `csv.header`).
pub fn resolve(
    format: InputFormat,
    user: Option<&InputSchema>,
    csv: &CsvOptions,
    file: &str,
    sample: &Sample,
) -> Result<Resolved> {
    if user.is_some_and(|u| u.0.is_empty()) {
        bail!("input.schema is empty: give at least one column, e.g. `{{text: string}}`");
    }
    match format {
        InputFormat::Text => Ok(Resolved {
            schema: Schema::new(vec![Field::new(TEXT_COLUMN, DataType::Utf8, true)]),
            warnings: vec![],
        }),
        InputFormat::Jsonl | InputFormat::Json => resolve_json(user, file, sample),
        InputFormat::Csv => resolve_csv(user, csv, file, sample),
        InputFormat::Parquet => bail!("parquet input has no sampled schema"),
    }
}

fn resolve_json(user: Option<&InputSchema>, file: &str, sample: &Sample) -> Result<Resolved> {
    // Records that are not JSON are left out here: their tasks report them (or skip
    // them) with their line, as they would any later malformed record.
    let mut values = Vec::new();
    let mut order: Vec<String> = Vec::new();
    for record in sample.bytes.split_inclusive(|&b| b == b'\n') {
        if let (Ok(v), Ok(KeyOrder(keys))) = (
            serde_json::from_slice::<serde_json::Value>(record),
            serde_json::from_slice::<KeyOrder>(record),
        ) {
            values.push(v);
            for k in keys {
                if !order.contains(&k) {
                    order.push(k);
                }
            }
        }
    }
    let inferred = if values.is_empty() {
        None
    } else {
        let schema = arrow_json::reader::infer_json_schema_from_iterator(values.into_iter().map(Ok))
            .map_err(|e| anyhow!("{file}: cannot infer the columns from the first {} records: {e}; give `input.schema`", sample.records))?;
        Some(in_key_order(schema, &order))
    };
    match (user, inferred) {
        (Some(u), inferred) => {
            let schema = from_user(u);
            let dropped: Vec<String> = inferred
                .iter()
                .flat_map(|s| s.fields().iter())
                .filter(|f| schema.field_with_name(f.name()).is_err())
                .map(|f| format!("`{}`", f.name()))
                .collect();
            let warnings = if dropped.is_empty() {
                vec![]
            } else {
                vec![format!("{file}: field(s) {} are not in `input.schema`: they are dropped", dropped.join(", "))]
            };
            Ok(Resolved { schema, warnings })
        }
        (None, None) => bail!("{file}: no JSON object in its first {} records to infer the columns from: give `input.schema`", sample.records),
        (None, Some(s)) => Ok(Resolved { schema: nullable_without_null_type(s), warnings: vec![] }),
    }
}

fn resolve_csv(
    user: Option<&InputSchema>,
    csv: &CsvOptions,
    file: &str,
    sample: &Sample,
) -> Result<Resolved> {
    if sample.bytes.is_empty() {
        bail!("{file}: the file is empty: no header to name the columns");
    }
    let format = arrow_csv::reader::Format::default()
        .with_header(csv.header)
        .with_delimiter(csv.delimiter_byte());
    let (inferred, _) = format
        .infer_schema(Cursor::new(&sample.bytes), None)
        .map_err(|e| {
            anyhow!(
                "{file}: cannot infer the columns from the first {} lines: {e}",
                sample.records
            )
        })?;
    let Some(user) = user else {
        return Ok(Resolved {
            schema: nullable_without_null_type(inferred),
            warnings: vec![],
        });
    };
    if let Some((nested, _)) = user.0.iter().find(|(_, t)| t.is_nested()) {
        bail!("input.schema: column `{nested}` of {file} has an object or array type, but csv fields are flat (those types apply to jsonl and json)");
    }
    // `input.schema` sets the types of the header's columns by name; the rest are inferred.
    let names: Vec<&str> = inferred
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    if let Some((unknown, _)) = user.0.iter().find(|(n, _)| !names.contains(&n.as_str())) {
        bail!(
            "input.schema: column `{unknown}` is not in the header of {file}; its columns are: {}",
            names.join(", ")
        );
    }
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| match user.0.iter().find(|(n, _)| n == f.name()) {
            Some((_, t)) => Field::new(f.name(), arrow_type(t), true),
            None => f.as_ref().clone(),
        })
        .collect();
    Ok(Resolved {
        schema: nullable_without_null_type(Schema::new(fields)),
        warnings: vec![],
    })
}

/// The top-level keys of a JSON object in the order written (serde_json's `Value` sorts
/// them, and so does the schema arrow-json infers from it).
struct KeyOrder(Vec<String>);

impl<'de> serde::Deserialize<'de> for KeyOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = KeyOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeyOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(KeyOrder(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// The inferred fields in the order the records first name them.
fn in_key_order(schema: Schema, order: &[String]) -> Schema {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.sort_by_key(|f| {
        order
            .iter()
            .position(|k| k == f.name())
            .unwrap_or(usize::MAX)
    });
    Schema::new(fields)
}

/// Every column nullable (a record may lack a field), and a column seen only as null in
/// the sample read as text: a Null column would drop every later value.
fn nullable_without_null_type(s: Schema) -> Schema {
    let fields: Vec<Field> = s
        .fields()
        .iter()
        .map(|f| {
            let t = match f.data_type() {
                DataType::Null => DataType::Utf8,
                // arrow-csv infers `2026-01-01T00:00:00` as seconds, a unit parquet has no
                // type for: written as it is, the column is a bare INT64 that pyarrow,
                // DuckDB and Spark read as integers. Microseconds are the `timestamp` of
                // `input.schema` (pyarrow coerces seconds the same way, to milliseconds).
                DataType::Timestamp(TimeUnit::Second, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
                t => t.clone(),
            };
            Field::new(f.name(), t, true)
        })
        .collect();
    Schema::new(fields)
}

/// The schema as stored in the job record, and back.
pub fn to_record(schema: &Schema) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(schema)?)
}

pub fn from_record(value: &serde_json::Value) -> Result<Arc<Schema>> {
    let s: Schema = serde_json::from_value(value.clone())
        .map_err(|e| anyhow!("the job record's input_schema is not an Arrow schema: {e}"))?;
    Ok(Arc::new(s))
}
