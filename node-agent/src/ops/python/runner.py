"""fleetform's Python worker: runs a job's python steps for one slot of a node agent.

Started by the agent (node-agent/src/ops/python/worker.rs), which embeds this file.
The agent and the worker exchange frames on the worker's stdin and stdout:
    kind (1 byte) | payload length (u64, little-endian) | payload
Agent to worker:
    I  init: JSON {"functions": [{"path", "display", "function", "batch_format"}]}
    B  batch: u32 function index (little-endian), then one Arrow IPC stream
Worker to agent:
    R  ready: JSON {"python", "pyarrow", "pandas"}
    B  the function's result: one Arrow IPC stream
    E  error: JSON {"message", "traceback"}; the worker keeps serving
The agent closing stdin ends the worker. The user's own print() goes to stderr (the
agent's log): the protocol runs on private copies of the original descriptors.
"""

import json
import linecache
import os
import struct
import sys
import traceback
import types

HEADER = struct.Struct("<cQ")
INDEX = struct.Struct("<I")
PIPE_BUFFER = 1 << 20


def protocol_streams():
    """Move the protocol off fds 0 and 1, so neither print() nor a C library writing to
    stdout, nor code reading stdin, can touch it."""
    proto_in = os.fdopen(os.dup(0), "rb", buffering=PIPE_BUFFER)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=PIPE_BUFFER)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull, "r")
    sys.stdout = sys.stderr
    return proto_in, proto_out


def read_frame(f):
    head = f.read(HEADER.size)
    if len(head) < HEADER.size:
        return None, None  # the agent closed the pipe: it is done with this worker
    kind, n = HEADER.unpack(head)
    payload = f.read(n)
    if len(payload) < n:
        return None, None
    return kind, payload


def write_frame(f, kind, payload):
    f.write(HEADER.pack(kind, len(payload)))
    f.write(payload)
    f.flush()


def write_error(f, message, tb=""):
    write_frame(f, b"E", json.dumps({"message": message, "traceback": tb}).encode())


def user_traceback(e):
    """The traceback without this runner's own frames: it starts in the user's code."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb))


class Function:
    """One python step: the user's function, loaded from the shipped file."""

    def __init__(self, index, path, display, name, batch_format):
        self.display, self.name, self.batch_format = display, name, batch_format
        with open(path, "rb") as f:
            source = f.read()
        # Compiled under the job's own file name, and its lines put in linecache, so a
        # traceback reads `File "preprocess.py", line 7, in clean` with the line itself.
        code = compile(source, display, "exec")
        text = source.decode("utf-8", errors="replace")
        linecache.cache[display] = (len(text), None, text.splitlines(True), display)
        stem = os.path.splitext(os.path.basename(display))[0]
        module = types.ModuleType(f"_fleetform_step{index}_{stem}")
        module.__file__ = display
        sys.modules[module.__name__] = module
        exec(code, module.__dict__)
        fn = module.__dict__.get(name)
        if fn is None:
            raise LookupError(f"{display} defines no `{name}` at its top level")
        if not callable(fn):
            raise LookupError(f"`{name}` in {display} is a {type(fn).__name__}, not a function")
        self.fn = fn
        line = getattr(getattr(fn, "__code__", None), "co_firstlineno", None)
        self.where = f"{name} ({display}:{line})" if line else f"{name} ({display})"

    def call(self, pa, pd, table):
        batch = table.to_pandas() if self.batch_format == "pandas" else table
        out = self.fn(batch)
        if pd is not None and isinstance(out, pd.DataFrame):
            try:
                out = pa.Table.from_pandas(out, preserve_index=False)
            except (pa.ArrowException, ValueError, TypeError) as e:
                raise StepError(f"{self.where} returned a DataFrame that Arrow cannot convert: {e}")
        elif isinstance(out, pa.RecordBatch):
            out = pa.Table.from_batches([out])
        elif not isinstance(out, pa.Table):
            raise StepError(
                f"{self.where} returned {type(out).__module__}.{type(out).__qualname__}; "
                "a python step must return a pandas.DataFrame or a pyarrow.Table"
            )
        # pandas' schema metadata differs from batch to batch; the output keeps none.
        return out.replace_schema_metadata(None)


class StepError(Exception):
    """The function ran but its result is unusable: the message says why, no traceback."""


def ipc_bytes(pa, table):
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def serve(proto_in, proto_out, pa, pd, functions):
    while True:
        kind, payload = read_frame(proto_in)
        if kind is None:
            return
        if kind != b"B":
            write_error(proto_out, f"unexpected frame {kind!r} from the agent")
            continue
        (index,) = INDEX.unpack_from(payload)
        f = functions[index]
        try:
            table = pa.ipc.open_stream(pa.py_buffer(memoryview(payload)[INDEX.size:])).read_all()
            out = f.call(pa, pd, table)
            body = ipc_bytes(pa, out)
        except StepError as e:
            write_error(proto_out, str(e))
            continue
        except BaseException as e:  # SystemExit and KeyboardInterrupt from user code too
            write_error(proto_out, f"{f.where} raised {type(e).__name__}: {e}", user_traceback(e))
            continue
        write_frame(proto_out, b"B", body)


def main():
    proto_in, proto_out = protocol_streams()
    kind, payload = read_frame(proto_in)
    if kind != b"I":
        return
    try:
        import pyarrow as pa
        import pyarrow.ipc  # noqa: F401
    except ImportError as e:
        write_error(proto_out, f"pyarrow is not installed for {sys.executable} ({e}): install it on the node (`pip install pyarrow pandas`, e.g. in setup_commands)")
        return
    init = json.loads(payload)
    needs_pandas = any(f["batch_format"] == "pandas" for f in init["functions"])
    pd = None
    try:
        import pandas as pd
    except ImportError as e:
        if needs_pandas:
            write_error(proto_out, f"pandas is not installed for {sys.executable} ({e}): install it on the node (`pip install pandas`, e.g. in setup_commands), or use batch_format: pyarrow")
            return
    try:
        functions = [
            Function(i, f["path"], f["display"], f["function"], f["batch_format"]) for i, f in enumerate(init["functions"])
        ]
    except BaseException as e:
        write_error(proto_out, f"cannot load the python step: {type(e).__name__}: {e}", user_traceback(e))
        return
    versions = {"python": sys.version.split()[0], "pyarrow": pa.__version__, "pandas": getattr(pd, "__version__", None)}
    write_frame(proto_out, b"R", json.dumps(versions).encode())
    serve(proto_in, proto_out, pa, pd, functions)


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        pass  # the agent went away mid-reply: nothing is waiting for the answer
