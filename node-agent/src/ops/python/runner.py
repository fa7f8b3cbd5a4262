"""fleetform's Python worker: runs a job's python steps for one slot of a node agent.

Started by the agent (node-agent/src/ops/python/worker.rs), which embeds this file.
The agent and the worker exchange frames on the worker's stdin and stdout:
    kind (1 byte) | payload length (u64, little-endian) | payload
Agent to worker:
    I  init: JSON {"functions": [{"path", "display", "function", "batch_format"}]}
    B  batch: u32 function index (little-endian), then one Arrow IPC stream
Worker to agent:
    L  output: JSON {"text", "cut"}: what the user's code printed or logged since the
       last reply (`cut`: characters beyond OUTPUT_CAP, dropped); sent before R, B or E
    R  ready: JSON {"python", "pyarrow", "pandas"}
    B  the function's result: one Arrow IPC stream
    E  error: JSON {"message", "traceback"}; the worker keeps serving
The agent closing stdin ends the worker. The protocol runs on private copies of the
original descriptors; the user's print() and logging go through `Output`, which keeps
them for the task's log (the L frame) and still writes them to stderr (the agent's log).
"""

import io
import json
import linecache
import os
import struct
import sys
import threading
import traceback
import types
from collections.abc import Mapping

HEADER = struct.Struct("<cQ")
INDEX = struct.Struct("<I")
PIPE_BUFFER = 1 << 20
# Output kept per call: the agent keeps 1 MiB per task attempt, so more is never used.
OUTPUT_CAP = 1 << 20


class Output:
    """What the user's code writes to sys.stdout and sys.stderr (print, logging's
    handlers, warnings) until the next reply, capped at OUTPUT_CAP characters. Shared by
    both streams and locked: a function's own threads may print too."""

    def __init__(self):
        self.lock = threading.Lock()
        self.parts, self.size, self.cut = [], 0, 0

    def add(self, s):
        with self.lock:
            room = OUTPUT_CAP - self.size
            if len(s) > room:
                self.cut += len(s) - max(room, 0)
                s = s[: max(room, 0)]
            if s:
                self.parts.append(s)
                self.size += len(s)

    def take(self):
        with self.lock:
            text, cut = "".join(self.parts), self.cut
            self.parts, self.size, self.cut = [], 0, 0
        return text, cut


class Tee(io.TextIOBase):
    """sys.stdout or sys.stderr for the user's code: into `Output`, and on to the real
    stderr (the agent's log, line by line, as before)."""

    def __init__(self, output, real):
        self.output, self.real = output, real

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self.output.add(s)
        self.real.write(s)
        return len(s)

    def flush(self):
        self.real.flush()

    def fileno(self):
        return self.real.fileno()  # faulthandler and C code write to fd 2 directly

    def isatty(self):
        return False

    def writable(self):
        return True

    @property
    def buffer(self):
        return TeeBytes(self)

    @property
    def encoding(self):
        return self.real.encoding

    @property
    def errors(self):
        return self.real.errors


class TeeBytes(io.RawIOBase):
    """`sys.stdout.buffer` for code that writes bytes: decoded, then as text."""

    def __init__(self, tee):
        self.tee = tee

    def write(self, b):
        self.tee.write(bytes(b).decode(self.tee.encoding or "utf-8", errors="replace"))
        return len(b)

    def flush(self):
        self.tee.flush()

    def writable(self):
        return True


def protocol_streams(output):
    """Move the protocol off fds 0 and 1, so neither print() nor a C library writing to
    stdout, nor code reading stdin, can touch it; route print() and logging to `output`."""
    proto_in = os.fdopen(os.dup(0), "rb", buffering=PIPE_BUFFER)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=PIPE_BUFFER)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull, "r")
    # Installed before the user's module loads, so a `logging.basicConfig()` at its top
    # binds its handler to the tee, as `logging`'s last-resort handler does at each call.
    real = sys.stderr
    sys.stdout = Tee(output, real)
    sys.stderr = Tee(output, real)
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


def write_output(f, output):
    """What was printed since the last reply, ahead of the reply (nothing if nothing)."""
    text, cut = output.take()
    if text or cut:
        payload = json.dumps({"text": text, "cut": cut}, ensure_ascii=False)
        write_frame(f, b"L", payload.encode("utf-8", errors="replace"))


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

    def call(self, mods, table):
        out = self.fn(self.batch(mods, table))
        # Any of the formats comes back, whatever the input's (as in Ray).
        if mods.pd is not None and isinstance(out, mods.pd.DataFrame):
            try:
                out = mods.pa.Table.from_pandas(out, preserve_index=False)
            except (mods.pa.ArrowException, ValueError, TypeError) as e:
                raise StepError(f"{self.where} returned a DataFrame that Arrow cannot convert: {e}")
        elif isinstance(out, mods.pa.RecordBatch):
            out = mods.pa.Table.from_batches([out])
        elif isinstance(out, Mapping):
            out = columns_table(self.where, mods, out)
        elif not isinstance(out, mods.pa.Table):
            raise StepError(
                f"{self.where} returned {type(out).__module__}.{type(out).__qualname__}; "
                "a python step must return a pandas.DataFrame, a pyarrow.Table or a dict of columns "
                "({name: list, numpy array, pandas Series or pyarrow Array})"
            )
        # pandas' schema metadata differs from batch to batch; the output keeps none.
        return out.replace_schema_metadata(None)

    def batch(self, mods, table):
        if self.batch_format == "pandas":
            return table.to_pandas()
        if self.batch_format == "numpy":
            return {name: numpy_column(mods, col) for name, col in zip(table.column_names, table.columns)}
        return table


def numpy_column(mods, col):
    """One column as Ray's `batch_format="numpy"` gives it (ArrowBlockAccessor.to_numpy):
    the chunks combined, then `to_numpy(zero_copy_only=False)`, so numbers are typed
    arrays (a null makes ints float with NaN), strings, lists and structs object arrays
    (of str, of ndarrays, of dicts), nulls None."""
    array = col.combine_chunks() if col.num_chunks else mods.pa.array([], type=col.type)
    return array.to_numpy(zero_copy_only=False)


def columns_table(where, mods, columns):
    """A dict of columns returned by the function, as a Table: each a list, a numpy array
    (2-D and more as fixed-size lists), a pandas Series or a pyarrow Array, all of one
    length."""
    pa, np, pd = mods.pa, mods.np, mods.pd
    lengths = {}
    for name, values in columns.items():
        if not isinstance(name, str):
            raise StepError(f"{where} returned a dict with the key {name!r} ({type(name).__name__}); column names are strings")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise StepError(
                f"{where} returned {type(values).__module__}.{type(values).__qualname__} for column `{name}`; "
                "each column is a list, a numpy array, a pandas Series or a pyarrow Array with one value per row"
            )
        lengths[name] = len(values)
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{n} {k}" for n, k in lengths.items())
        raise StepError(f"{where} returned columns of unequal lengths ({sizes}); every column needs one value per row")
    arrays = {}
    for name, values in columns.items():
        try:
            arrays[name] = arrow_column(pa, np, pd, values)
        except (pa.ArrowException, ValueError, TypeError) as e:
            raise StepError(f"{where} returned column `{name}` that Arrow cannot convert ({type(values).__qualname__}): {e}")
    return pa.table(arrays)


def arrow_column(pa, np, pd, values):
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if pd is not None and isinstance(values, pd.Series):
        return pa.Array.from_pandas(values)  # NaN and None are null, as in a DataFrame
    if np is not None and isinstance(values, np.ndarray) and values.ndim > 1:
        # A batch of fixed-shape tensors: a fixed-size list per extra dimension.
        array = pa.array(np.ascontiguousarray(values).reshape(-1))
        for size in reversed(values.shape[1:]):
            array = pa.FixedSizeListArray.from_arrays(array, size)
        return array
    return pa.array(values)


class Modules:
    """pyarrow, and pandas and numpy when installed (None when not)."""

    def __init__(self, pa, pd, np):
        self.pa, self.pd, self.np = pa, pd, np


class StepError(Exception):
    """The function ran but its result is unusable: the message says why, no traceback."""


def ipc_bytes(pa, table):
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def serve(proto_in, proto_out, mods, functions, output):
    pa = mods.pa
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
            out = f.call(mods, table)
            body = ipc_bytes(pa, out)
        except StepError as e:
            write_output(proto_out, output)
            write_error(proto_out, str(e))
            continue
        except BaseException as e:  # SystemExit and KeyboardInterrupt from user code too
            write_output(proto_out, output)
            write_error(proto_out, f"{f.where} raised {type(e).__name__}: {e}", user_traceback(e))
            continue
        write_output(proto_out, output)
        write_frame(proto_out, b"B", body)


def optional(name):
    try:
        return __import__(name), None
    except ImportError as e:
        return None, e


def main():
    output = Output()
    proto_in, proto_out = protocol_streams(output)
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
    formats = {f["batch_format"] for f in init["functions"]}
    pd, pd_missing = optional("pandas")
    if "pandas" in formats and pd is None:
        write_error(proto_out, f"pandas is not installed for {sys.executable} ({pd_missing}): install it on the node (`pip install pandas`, e.g. in setup_commands), or use batch_format: pyarrow")
        return
    np, np_missing = optional("numpy")
    if "numpy" in formats and np is None:
        write_error(proto_out, f"numpy is not installed for {sys.executable} ({np_missing}): install it on the node (`pip install numpy`, e.g. in setup_commands), or use batch_format: pyarrow")
        return
    try:
        functions = [
            Function(i, f["path"], f["display"], f["function"], f["batch_format"]) for i, f in enumerate(init["functions"])
        ]
    except BaseException as e:
        write_output(proto_out, output)
        write_error(proto_out, f"cannot load the python step: {type(e).__name__}: {e}", user_traceback(e))
        return
    versions = {"python": sys.version.split()[0], "pyarrow": pa.__version__, "pandas": getattr(pd, "__version__", None)}
    write_output(proto_out, output)  # what the module printed as it loaded
    write_frame(proto_out, b"R", json.dumps(versions).encode())
    serve(proto_in, proto_out, Modules(pa, pd, np), functions, output)


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        pass  # the agent went away mid-reply: nothing is waiting for the answer
