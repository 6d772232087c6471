"""Generation into batches of binary COPY tuples, produced ahead of the COPY by a thread or a
forked process (bodies cross the pipe raw, the rest in small pickled frames), or inline."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from data_gen import GenerationParams, generate
from data_gen.tables import TABLES
from ibcbench.data.pgcopy import encode_rows_view
from ibcbench.errors import ConfigError, LoadError

OVERLAP_MODES = ("process", "thread", "none")
_PIPE_BYTES = 1 << 20
ENCODE_ROWS = 200_000  # rows encoded at once; more only adds peak memory
_QUEUE_DEPTH = 4  # encoded batches waiting for COPY (about 40 MB each at the default batch size)


@dataclass(frozen=True)
class EncodedBatch:
    """One generated batch as binary COPY tuples (no header or trailer)."""

    table: str
    rows: int
    body: bytes | memoryview


def encoded_batches(params: GenerationParams) -> Iterator[EncodedBatch | dict[str, Any]]:
    """Generate and encode; the last item is the generator's manifest (with span end and next ids)."""
    gen = generate(params)
    for batch in gen:
        # a span's derived tables come in one batch (565k channel hours for 10M packets): encode
        # them in slices so peak memory stays that of a packet batch
        for lo in range(0, max(batch.rows, 1), ENCODE_ROWS):
            hi = min(lo + ENCODE_ROWS, batch.rows)
            columns = batch.columns if hi - lo == batch.rows else _rows(batch.columns, lo, hi)
            yield EncodedBatch(
                batch.table, hi - lo, encode_rows_view(TABLES[batch.table], columns, hi - lo)
            )
    manifest = gen.manifest()
    state = gen.next_state
    assert state is not None and state.start is not None
    manifest["span_start"] = params.start_time.isoformat()
    manifest["span_end"] = state.start.isoformat()
    manifest["first_packet_id"] = params.resume.next_packet_id if params.resume else 1
    manifest["next_packet_id"] = state.next_packet_id
    yield manifest


def _rows(columns: Mapping[str, Any], lo: int, hi: int) -> dict[str, Any]:
    """Rows lo..hi of a batch's columns (numpy arrays, Categoricals and ScaledInts all slice)."""
    return {name: values[lo:hi] for name, values in columns.items()}


class _Stopped(Exception):
    """The loading side stopped reading: the filling thread ends quietly."""


def _produce(params: GenerationParams, put: Callable[[Any], None]) -> None:
    """Generate into ``put``; a failure travels as a LoadError, the end as None."""
    try:
        for item in encoded_batches(params):
            put(item)
    except _Stopped:
        return
    except BaseException as exc:  # handed to the loading side, which raises it
        put(LoadError(f"generation failed: {type(exc).__name__}: {exc}"))
        return
    put(None)


def _queued(fill: Callable[[Callable[[Any], None]], None]) -> Generator[Any, None, None]:
    """Run ``fill(put)`` in a thread feeding a bounded queue; yield what it puts until None.

    An exception put in the queue is raised here. When this side stops early the thread's next
    ``put`` raises _Stopped, so it never blocks forever.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_DEPTH)
    stop = threading.Event()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def run() -> None:
        with contextlib.suppress(_Stopped):
            fill(put)

    worker = threading.Thread(target=run, name="ibcbench-producer", daemon=True)
    worker.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=30)


def _from_thread(params: GenerationParams) -> Iterator[EncodedBatch | dict[str, Any]]:
    """Batches from a producer thread (numpy and Arrow release the GIL for much of the work)."""
    return _queued(lambda put: _produce(params, put))


def _from_process(params: GenerationParams) -> Iterator[EncodedBatch | dict[str, Any]]:
    """Batches from a forked producer process: generation runs free of this process's GIL.

    The bodies cross a pipe as raw bytes (no pickling); the manifest, an error and the end travel
    as small pickled frames. A thread here reads the pipe into the bounded queue, so the producer
    keeps generating while this side COPYs.
    """
    import fcntl  # Linux only, like fork

    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError, AttributeError):  # a larger pipe: fewer wake-ups
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    proc = mp.get_context("fork").Process(
        target=_pipe_producer,
        args=(params, read_fd, write_fd),
        daemon=True,
        name="ibcbench-generate",
    )
    proc.start()
    os.close(write_fd)
    pipe = open(read_fd, "rb", buffering=0)  # noqa: SIM115 - closed below, after the reader
    items = _queued(lambda put: _read_frames(pipe, put))
    try:
        for item in items:  # noqa: UP028 - the producer must end before the reader is joined
            yield item
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(timeout=10)
        items.close()
        pipe.close()


def _pipe_producer(params: GenerationParams, read_fd: int, write_fd: int) -> None:
    """The forked process: generate, encode and write frames to the pipe."""
    os.close(read_fd)

    def send(data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view) :]

    def put(item: Any) -> None:
        if isinstance(item, EncodedBatch):
            header = pickle.dumps(("batch", item.table, item.rows, len(item.body)))
        else:
            header = pickle.dumps(("item", item))
        send(len(header).to_bytes(4, "big") + header)
        if isinstance(item, EncodedBatch):
            send(item.body)

    try:
        _produce(params, put)
    except BrokenPipeError:  # the loading side stopped reading
        pass
    finally:
        os.close(write_fd)


def _read_frames(pipe: Any, put: Callable[[Any], None]) -> None:
    """Turn the producer's frames back into batches, the manifest, an error or the end."""
    try:
        while True:
            header = pickle.loads(_read_exact(pipe, int.from_bytes(_read_exact(pipe, 4), "big")))
            if header[0] == "batch":
                _, table, rows, size = header
                put(EncodedBatch(table, rows, _read_exact(pipe, size)))
            else:
                put(header[1])
                if header[1] is None or isinstance(header[1], Exception):
                    return
    except (OSError, ValueError, EOFError) as exc:
        put(LoadError(f"the generating process ended early ({exc}): try overlap='thread'"))


def _read_exact(pipe: Any, size: int) -> memoryview:
    view = memoryview(bytearray(size))
    got = 0
    while got < size:
        n = pipe.readinto(view[got:])
        if not n:
            raise EOFError(f"pipe closed after {got} of {size} bytes")
        got += n
    return view


def overlapped_batches(
    params: GenerationParams, overlap: str = "thread"
) -> Iterator[EncodedBatch | dict[str, Any]]:
    """``encoded_batches(params)`` produced ahead of the consumer by a process, a thread, or inline."""
    if overlap not in OVERLAP_MODES:
        raise ConfigError(f"overlap must be one of {', '.join(OVERLAP_MODES)}, not {overlap!r}")
    if overlap == "process" and sys.platform != "linux":
        overlap = "thread"  # fork is only dependable on Linux
    if overlap == "process":
        return _from_process(params)
    if overlap == "thread":
        return _from_thread(params)
    return _inline(params)


def _inline(params: GenerationParams) -> Iterator[EncodedBatch | dict[str, Any]]:
    try:
        yield from encoded_batches(params)
    except Exception as exc:  # the same error as from a producer thread or process
        raise LoadError(f"generation failed: {type(exc).__name__}: {exc}") from exc
