"""The workshop's cleaning on JSON Lines input, on other engines, for fleetform's
JSON Lines benchmark (reconciler/benches/jsonl.rs).

    python3 bench/competitors_jsonl.py ENGINE INPUT_DIR OUTPUT_DIR [CPUS]

ENGINE is one of
  ray      Ray Data as the workshop's seed writes it: read_json -> map_batches(
           preprocess_text, batch_format="pandas", batch_size=1024) -> write_parquet
  polars   scan_ndjson -> the same expression -> sink_parquet (zstd level 1)
  pyarrow  a JSON read (pyarrow.json, file by file) + a zstd parquet write, no
           cleaning: the floor any engine reading this JSON pays
  duckdb   read_json -> the same expression -> COPY TO parquet

Every engine reads the same *.jsonl / *.jsonl.gz files under INPUT_DIR. Prints one JSON
line: {"engine", "seconds", "rows", "peak_rss_mib"}. Timing covers the work only
(imports, interpreter and `ray.init` start-up excluded: in Ray's world the cluster is
already up). peak_rss_mib is this process and its waited-for children (ru_maxrss); the
benchmark also samples the whole process tree from outside, which is what it reports.
"""
import glob
import json
import os
import re
import resource
import shutil
import sys
import time

PATTERN = r"[^가-힣a-zA-Z0-9\s]"


def preprocess_text(batch):
    """The seed's function (seeds/004), verbatim apart from the docstring."""

    def clean(text):
        text = re.sub(r"[^가-힣a-zA-Z0-9\s]", "", text)
        return text.lower()

    batch["cleaned_text"] = batch["text"].apply(clean)
    return batch


def inputs(inp):
    files = sorted(glob.glob(os.path.join(inp, "*.jsonl")) + glob.glob(os.path.join(inp, "*.jsonl.gz")))
    if not files:
        sys.exit(f"no *.jsonl or *.jsonl.gz files under {inp}")
    return files


def ray_job(inp, out, cpus):
    import ray

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    started = time.perf_counter()
    ds = ray.data.read_json(inputs(inp))
    ds = ds.map_batches(preprocess_text, batch_format="pandas", batch_size=1024, num_cpus=1)
    ds.write_parquet(out, compression="zstd")
    return started


def polars_job(inp, out, _cpus):
    import polars as pl

    started = time.perf_counter()
    (
        pl.scan_ndjson(inputs(inp))
        .with_columns(pl.col("text").str.replace_all(PATTERN, "").str.to_lowercase().alias("cleaned_text"))
        .sink_parquet(os.path.join(out, "polars.parquet"), compression="zstd", compression_level=1)
    )
    return started


def pyarrow_job(inp, out, _cpus):
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    started = time.perf_counter()
    for i, f in enumerate(inputs(inp)):
        # open_json streams record batches (pyarrow >= 18); read_json would hold the file.
        reader = pj.open_json(f)
        with pq.ParquetWriter(os.path.join(out, f"part-{i:05}.parquet"), reader.schema, compression="zstd", compression_level=1) as w:
            for batch in reader:
                w.write_batch(batch)
    return started


def duckdb_job(inp, out, cpus):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {cpus}")
    files = ", ".join(f"'{f}'" for f in inputs(inp))
    started = time.perf_counter()
    con.execute(
        f"""COPY (SELECT *, lower(regexp_replace(text, '{PATTERN}', '', 'g')) AS cleaned_text
                 FROM read_json([{files}], format = 'newline_delimited'))
            TO '{os.path.join(out, "duckdb.parquet")}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"""
    )
    return started


def count_rows(out):
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob(os.path.join(out, "**", "*.parquet"), recursive=True))


def main():
    engine, inp, out = sys.argv[1:4]
    cpus = int(sys.argv[4]) if len(sys.argv) > 4 else os.cpu_count()
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    job = {"ray": ray_job, "polars": polars_job, "pyarrow": pyarrow_job, "duckdb": duckdb_job}[engine]
    started = job(inp, out, cpus)
    seconds = time.perf_counter() - started
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"engine": engine, "seconds": seconds, "rows": count_rows(out), "peak_rss_mib": rss / 1024}))


if __name__ == "__main__":
    main()
