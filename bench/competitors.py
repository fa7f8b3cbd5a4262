"""The same cleaning work on other engines, for fleetform's data-plane benchmark.

    python3 bench/competitors.py ENGINE INPUT_DIR OUTPUT_DIR

ENGINE is polars, duckdb or pyarrow (a read-and-write copy: the I/O floor). Prints one
JSON line: {"engine", "seconds", "rows"}. Timing covers the work only (imports and
interpreter start-up excluded). Every engine reads the same part-*.parquet files and
writes zstd parquet.
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


def pyarrow_copy(inp, out):
    import pyarrow.dataset as ds

    source = ds.dataset(sorted(glob.glob(os.path.join(inp, "part-*.parquet"))), format="parquet")
    opts = ds.ParquetFileFormat().make_write_options(compression="zstd", compression_level=1)
    ds.write_dataset(source, out, format="parquet", file_options=opts, existing_data_behavior="overwrite_or_ignore")


def count_rows(out):
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob(os.path.join(out, "*.parquet")))


def main():
    engine, inp, out = sys.argv[1:4]
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    job = {"polars": polars_job, "duckdb": duckdb_job, "pyarrow": pyarrow_copy}[engine]
    # Import outside the timed region.
    __import__({"polars": "polars", "duckdb": "duckdb", "pyarrow": "pyarrow.dataset"}[engine])
    started = time.perf_counter()
    job(inp, out)
    seconds = time.perf_counter() - started
    print(json.dumps({"engine": engine, "seconds": seconds, "rows": count_rows(out)}))


if __name__ == "__main__":
    main()
