//! One schema for batches that a python step returned separately. pandas types a column
//! of only None as Arrow `null`, so one batch of a sparse column can come back `null` and
//! the next `string`: such a column is unified to the typed one (its nulls become nulls of
//! that type). Any other disagreement (another type, other columns) is an error naming
//! both schemas, since a task's output parquet has one schema.

use std::sync::Arc;

use arrow_array::{new_null_array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// The schema both can be conformed to, or a message naming where they differ.
pub fn unify(a: &SchemaRef, b: &SchemaRef) -> Result<SchemaRef, String> {
    let names = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
    };
    if names(a) != names(b) {
        return Err(format!(
            "columns differ: [{}] and [{}]",
            describe(a),
            describe(b)
        ));
    }
    let mut fields = Vec::with_capacity(a.fields().len());
    for (fa, fb) in a.fields().iter().zip(b.fields()) {
        let ty = match (fa.data_type(), fb.data_type()) {
            (x, y) if x == y => x.clone(),
            (DataType::Null, y) => y.clone(),
            (x, DataType::Null) => x.clone(),
            (x, y) => {
                return Err(format!(
                    "column `{}` is {x} in one batch and {y} in another: [{}] and [{}]",
                    fa.name(),
                    describe(a),
                    describe(b)
                ))
            }
        };
        fields.push(Field::new(
            fa.name(),
            ty,
            fa.is_nullable() || fb.is_nullable(),
        ));
    }
    Ok(Arc::new(Schema::new_with_metadata(
        fields,
        a.metadata().clone(),
    )))
}

/// `batch` under `target` (a schema `unify` returned for it): `null` columns become
/// nulls of the target's type.
pub fn conform(batch: RecordBatch, target: &SchemaRef) -> Result<RecordBatch, String> {
    if batch.schema() == *target {
        return Ok(batch);
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                c.clone()
            } else {
                new_null_array(f.data_type(), c.len())
            }
        })
        .collect();
    RecordBatch::try_new(target.clone(), columns)
        .map_err(|e| format!("cannot conform a batch to [{}]: {e}", describe(target)))
}

/// `id: Int64, text: LargeUtf8`
pub fn describe(s: &Schema) -> String {
    s.fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, Int64Array, NullArray, StringArray};

    use super::*;

    fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(cols).unwrap()
    }

    #[test]
    fn a_null_typed_column_takes_the_other_batches_type() {
        let ids = || Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef;
        let nulls = batch(vec![("id", ids()), ("x", Arc::new(NullArray::new(2)))]);
        let typed = batch(vec![
            ("id", ids()),
            ("x", Arc::new(StringArray::from(vec![Some("a"), None]))),
        ]);
        for (first, second) in [(&nulls, &typed), (&typed, &nulls)] {
            let target = unify(&first.schema(), &second.schema()).unwrap();
            assert_eq!(target.field(1).data_type(), &DataType::Utf8);
            let conformed = conform(nulls.clone(), &target).unwrap();
            assert_eq!(conformed.schema(), target);
            assert_eq!(conformed.column(1).null_count(), 2, "nulls stay null");
        }
    }

    #[test]
    fn other_differences_name_the_column_and_both_schemas() {
        let a = batch(vec![("x", Arc::new(Int64Array::from(vec![1])) as ArrayRef)]);
        let b = batch(vec![(
            "x",
            Arc::new(StringArray::from(vec!["1"])) as ArrayRef,
        )]);
        let err = unify(&a.schema(), &b.schema()).unwrap_err();
        assert_eq!(
            err,
            "column `x` is Int64 in one batch and Utf8 in another: [x: Int64] and [x: Utf8]"
        );
        let c = batch(vec![("y", Arc::new(Int64Array::from(vec![1])) as ArrayRef)]);
        assert_eq!(
            unify(&a.schema(), &c.schema()).unwrap_err(),
            "columns differ: [x: Int64] and [y: Int64]"
        );
    }
}
