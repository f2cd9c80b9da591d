//! Deterministic Parquet I/O for Arrow record batches.
//!
//! Datasets are content-addressed by their sha256 in the manifest, so the same
//! batch and metadata must always produce the same bytes. Parquet itself has
//! no timestamps; the only varying field a default writer emits is the
//! `created_by` string (which embeds the library version), so it is pinned here.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, Float64Array, StringArray, UInt32Array, UInt64Array};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ARROW_SCHEMA_META_KEY};
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::atomic::write_atomic_with;
use crate::IoError;

/// The `created_by` string written into every Parquet footer. Fixed (no
/// library version) so upgrading `parquet` does not change dataset hashes by itself.
pub const CREATED_BY: &str = "emsl-io";

/// Writes `batch` to `path` atomically as Snappy-compressed Parquet, with
/// `metadata` as the file's key-value metadata (in key order).
///
/// The output is a pure function of `batch` and `metadata`: writing the same
/// inputs twice gives byte-identical files.
pub fn write_parquet(
    path: &Path,
    batch: &RecordBatch,
    metadata: &BTreeMap<String, String>,
) -> Result<(), IoError> {
    let kv: Vec<KeyValue> = metadata
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(CREATED_BY.to_string())
        .set_key_value_metadata(if kv.is_empty() { None } else { Some(kv) })
        .build();
    let perr = |source| IoError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    write_atomic_with(path, |file| {
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(perr)?;
        writer.write(batch).map_err(perr)?;
        writer.close().map_err(perr)?;
        Ok(())
    })
}

/// Reads a whole Parquet file into one batch and returns it with the file's
/// key-value metadata.
///
/// The `ARROW:schema` entry that the Arrow writer adds on its own is left out,
/// so the map equals what was passed to [`write_parquet`]. The Arrow reader
/// would also copy the file metadata into the batch's schema metadata; it is
/// removed there so that reading back a written batch gives an equal batch (the
/// map is the one place file metadata lives).
pub fn read_parquet(path: &Path) -> Result<(RecordBatch, BTreeMap<String, String>), IoError> {
    let perr = |source| IoError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|e| IoError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
    let metadata: BTreeMap<String, String> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter(|kv| kv.key != ARROW_SCHEMA_META_KEY)
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect();
    let schema = builder.schema().clone();
    let reader = builder.build().map_err(perr)?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| perr(e.into()))?;
    let batch = concat_batches(&schema, &batches).map_err(|e| perr(e.into()))?;
    let mut schema_metadata = schema.metadata().clone();
    schema_metadata.retain(|k, _| !metadata.contains_key(k));
    let schema = Arc::new(Schema::new_with_metadata(
        schema.fields().clone(),
        schema_metadata,
    ));
    let batch =
        RecordBatch::try_new(schema, batch.columns().to_vec()).map_err(|e| perr(e.into()))?;
    Ok((batch, metadata))
}

/// Looks up `name` and downcasts it to `A`, or explains what is there instead.
fn typed_column<'a, A: Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
    expected: DataType,
) -> Result<&'a A, IoError> {
    let err = |found: String| IoError::Column {
        column: name.to_string(),
        expected: expected.to_string(),
        found,
    };
    let col = batch.column_by_name(name).ok_or_else(|| {
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        err(format!("no such column (columns: {})", names.join(", ")))
    })?;
    col.as_any()
        .downcast_ref::<A>()
        .ok_or_else(|| err(col.data_type().to_string()))
}

/// The `Utf8` column `name`.
pub fn column_str<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, IoError> {
    typed_column(batch, name, DataType::Utf8)
}

/// The `UInt32` column `name`.
pub fn column_u32<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a UInt32Array, IoError> {
    typed_column(batch, name, DataType::UInt32)
}

/// The `UInt64` column `name`.
pub fn column_u64<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a UInt64Array, IoError> {
    typed_column(batch, name, DataType::UInt64)
}

/// The `Float64` column `name`.
pub fn column_f64<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Float64Array, IoError> {
    typed_column(batch, name, DataType::Float64)
}

/// The `Boolean` column `name`.
pub fn column_bool<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a BooleanArray, IoError> {
    typed_column(batch, name, DataType::Boolean)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::ArrayRef;

    /// A small batch with one column of each supported type.
    pub(crate) fn sample_batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "text",
                Arc::new(StringArray::from(vec!["a", "bb", "ccc"])) as ArrayRef,
            ),
            (
                "n32",
                Arc::new(UInt32Array::from(vec![1, 2, 3])) as ArrayRef,
            ),
            (
                "n64",
                Arc::new(UInt64Array::from(vec![10, 20, u64::MAX])) as ArrayRef,
            ),
            (
                "x",
                Arc::new(Float64Array::from(vec![0.5, -1.0, 1e300])) as ArrayRef,
            ),
            (
                "flag",
                Arc::new(BooleanArray::from(vec![true, false, true])) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    fn sample_metadata() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("seed".to_string(), "42".to_string()),
            ("generator".to_string(), "finetune".to_string()),
        ])
    }

    #[test]
    fn same_input_gives_identical_bytes_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, p2) = (
            dir.path().join("one.parquet"),
            dir.path().join("two.parquet"),
        );
        let batch = sample_batch();
        let md = sample_metadata();
        write_parquet(&p1, &batch, &md).unwrap();
        write_parquet(&p2, &batch, &md).unwrap();
        let (b1, b2) = (std::fs::read(&p1).unwrap(), std::fs::read(&p2).unwrap());
        assert_eq!(b1, b2);

        // Rewriting in place is also stable (nothing depends on the old file).
        write_parquet(&p1, &batch, &md).unwrap();
        assert_eq!(std::fs::read(&p1).unwrap(), b2);

        let (read, read_md) = read_parquet(&p1).unwrap();
        assert_eq!(read, batch);
        assert_eq!(read_md, md);
        // Only our file is left: the atomic writer cleaned up after itself.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn schema_metadata_survives_separately_from_file_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let b = sample_batch();
        let schema = Schema::new_with_metadata(
            b.schema().fields().clone(),
            [("schema-key".to_string(), "v".to_string())].into(),
        );
        let b = RecordBatch::try_new(Arc::new(schema), b.columns().to_vec()).unwrap();
        write_parquet(&p, &b, &sample_metadata()).unwrap();
        let (read, md) = read_parquet(&p).unwrap();
        assert_eq!(read, b);
        assert_eq!(md, sample_metadata());
    }

    #[test]
    fn created_by_is_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        write_parquet(&p, &sample_batch(), &BTreeMap::new()).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&p).unwrap()).unwrap();
        let fm = builder.metadata().file_metadata();
        assert_eq!(fm.created_by(), Some(CREATED_BY));
        let (_, md) = read_parquet(&p).unwrap();
        assert!(md.is_empty());
    }

    #[test]
    fn typed_columns() {
        let b = sample_batch();
        assert_eq!(column_str(&b, "text").unwrap().value(1), "bb");
        assert_eq!(column_u32(&b, "n32").unwrap().value(2), 3);
        assert_eq!(column_u64(&b, "n64").unwrap().value(2), u64::MAX);
        assert_eq!(column_f64(&b, "x").unwrap().value(0), 0.5);
        assert!(!column_bool(&b, "flag").unwrap().value(1));
    }

    #[test]
    fn wrong_type_or_missing_column_is_a_column_error() {
        let b = sample_batch();
        match column_u64(&b, "n32") {
            Err(IoError::Column {
                column,
                expected,
                found,
            }) => {
                assert_eq!(column, "n32");
                assert_eq!(expected, "UInt64");
                assert_eq!(found, "UInt32");
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = column_str(&b, "nope").unwrap_err();
        assert!(matches!(err, IoError::Column { .. }));
        let msg = err.to_string();
        assert!(msg.contains("'nope'") && msg.contains("text, n32"), "{msg}");
    }

    #[test]
    fn unreadable_file_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("junk.parquet");
        std::fs::write(&p, b"not parquet").unwrap();
        let err = read_parquet(&p).unwrap_err();
        assert!(matches!(err, IoError::Parquet { .. }));
        assert!(err.to_string().contains("junk.parquet"));
    }
}
