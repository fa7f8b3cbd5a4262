"""The same cleaning work on other engines, for fleetform's data-plane benchmark.

    python3 bench/competitors.py ENGINE INPUT_DIR OUTPUT_DIR

ENGINE is polars, duckdb, pyarrow (the I/O floor: a read-and-write copy that writes the
bytes the cleaning job writes, i.e. the input plus its `text` column a second time as
`cleaned_text`, with no cleaning) or pyarrow-input (a copy of the input alone: half the
bytes out). Prints one JSON line: {"engine", "seconds", "rows"}. Timing covers the work only (imports and
interpreter start-up excluded). Every engine reads the same part-*.parquet files and
writes zstd parquet.

INPUT_DIR and OUTPUT_DIR may be s3://BUCKET/PREFIX: the endpoint and credentials come
from AWS_ENDPOINT_URL (plain http), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
AWS_REGION. Rows are then not counted here (that would add requests to the benchmark's
counts); "rows" is null.
"""
import glob
import json
import os
import shutil
import sys
import time

PATTERN = r"[^가-힣a-zA-Z0-9\s]"


def polars_job(inp, out):
    import polars as pl

    (
        pl.scan_parquet(os.path.join(inp, "part-*.parquet"))
        .with_columns(pl.col("text").str.replace_all(PATTERN, "").str.to_lowercase().alias("cleaned_text"))
        .sink_parquet(os.path.join(out, "polars.parquet"), compression="zstd", compression_level=1)
    )


def duckdb_job(inp, out):
    import duckdb

    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT *, lower(regexp_replace(text, '{PATTERN}', '', 'g')) AS cleaned_text
                 FROM read_parquet('{os.path.join(inp, "part-*.parquet")}'))
            TO '{os.path.join(out, "duckdb.parquet")}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"""
    )


def same_bytes_out(source):
    """The input's batches with `text` again as `cleaned_text`: what the cleaning job
    writes, without the cleaning. Returns (batches, schema) for write_dataset."""
    import pyarrow as pa

    schema = source.schema.append(pa.field("cleaned_text", pa.string()))
    batches = (b.append_column("cleaned_text", b.column("text")) for b in source.to_batches())
    return batches, schema


def pyarrow_copy(inp, out, same_bytes=True):
    import pyarrow.dataset as ds

    source = ds.dataset(sorted(glob.glob(os.path.join(inp, "part-*.parquet"))), format="parquet")
    opts = ds.ParquetFileFormat().make_write_options(compression="zstd", compression_level=1)
    data, schema = same_bytes_out(source) if same_bytes else (source, None)
    ds.write_dataset(data, out, schema=schema, format="parquet", file_options=opts, existing_data_behavior="overwrite_or_ignore")


def s3_options():
    """The endpoint and credentials from the standard AWS variables."""
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    return {
        "endpoint": endpoint,
        "host": endpoint.split("://", 1)[1].rstrip("/"),
        "key": os.environ["AWS_ACCESS_KEY_ID"],
        "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
        "region": os.environ.get("AWS_REGION", "us-east-1"),
    }


def polars_s3(inp, out):
    import polars as pl

    o = s3_options()
    storage = {
        "aws_endpoint_url": o["endpoint"],
        "aws_access_key_id": o["key"],
        "aws_secret_access_key": o["secret"],
        "aws_region": o["region"],
        "aws_allow_http": "true",
    }
    (
        pl.scan_parquet(f"{inp}/part-*.parquet", storage_options=storage)
        .with_columns(pl.col("text").str.replace_all(PATTERN, "").str.to_lowercase().alias("cleaned_text"))
        .sink_parquet(f"{out}/polars.parquet", compression="zstd", compression_level=1, storage_options=storage)
    )


def duckdb_s3(inp, out):
    import duckdb

    o = s3_options()
    con = duckdb.connect()
    load_httpfs(con)
    for setting, value in [
        ("s3_endpoint", o["host"]),
        ("s3_url_style", "path"),
        ("s3_use_ssl", "false"),
        ("s3_region", o["region"]),
        ("s3_access_key_id", o["key"]),
        ("s3_secret_access_key", o["secret"]),
    ]:
        con.execute(f"SET {setting} = '{value}'")
    con.execute(
        f"""COPY (SELECT *, lower(regexp_replace(text, '{PATTERN}', '', 'g')) AS cleaned_text
                 FROM read_parquet('{inp}/part-*.parquet'))
            TO '{out}/duckdb.parquet' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"""
    )


def load_httpfs(con):
    """DuckDB's httpfs: installed in DuckDB's extension directory, else from the PyPI
    package duckdb-extension-httpfs (DuckDB cannot download extensions offline)."""
    try:
        con.execute("LOAD httpfs")
    except Exception:
        import duckdb_extension_httpfs

        root = os.path.dirname(duckdb_extension_httpfs.__file__)
        (path,) = glob.glob(os.path.join(root, "extensions", "*", "httpfs.duckdb_extension"))
        con.execute(f"LOAD '{path}'")


def pyarrow_s3_copy(inp, out, same_bytes=True):
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    o = s3_options()
    fs = pafs.S3FileSystem(
        access_key=o["key"],
        secret_key=o["secret"],
        region=o["region"],
        endpoint_override=o["host"],
        scheme="http",
    )
    # The files by one LIST (as the local copy globs them); a directory path would also
    # HEAD the prefix as a key, which s3s-fs answers with an error instead of a 404.
    listed = fs.get_file_info(pafs.FileSelector(inp.removeprefix("s3://")))
    files = sorted(f.path for f in listed if f.path.endswith(".parquet"))
    source = ds.dataset(files, filesystem=fs, format="parquet")
    opts = ds.ParquetFileFormat().make_write_options(compression="zstd", compression_level=1)
    data, schema = same_bytes_out(source) if same_bytes else (source, None)
    ds.write_dataset(
        data, out.removeprefix("s3://"), schema=schema, filesystem=fs, format="parquet", file_options=opts, existing_data_behavior="overwrite_or_ignore"
    )


def count_rows(out):
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob(os.path.join(out, "*.parquet")))


def main():
    engine, inp, out = sys.argv[1:4]
    s3 = inp.startswith("s3://")
    if s3:
        # The caller empties the output prefix (on the server's disk).
        job = {"polars": polars_s3, "duckdb": duckdb_s3, "pyarrow": pyarrow_s3_copy,
               "pyarrow-input": lambda i, o: pyarrow_s3_copy(i, o, same_bytes=False)}[engine]
    else:
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        job = {"polars": polars_job, "duckdb": duckdb_job, "pyarrow": pyarrow_copy,
               "pyarrow-input": lambda i, o: pyarrow_copy(i, o, same_bytes=False)}[engine]
    # Import outside the timed region.
    __import__({"polars": "polars", "duckdb": "duckdb"}.get(engine, "pyarrow.dataset"))
    if engine.startswith("pyarrow"):
        __import__("pyarrow.fs")
    started = time.perf_counter()
    job(inp, out)
    seconds = time.perf_counter() - started
    print(json.dumps({"engine": engine, "seconds": seconds, "rows": None if s3 else count_rows(out)}))


if __name__ == "__main__":
    main()
