"""Where the per-file and per-batch work of `scan` and `audit` runs.

- `local` (the default): this machine, a pool of single-threaded worker processes, one
  per core, started once for the command. Scan decodes batches of files on it, taken as
  they finish (`map_unordered`); the audit's per-image work (descriptor batches,
  verification chunks, photo statistics, blank checks, treated copies of self-training)
  runs on it in input order (`map`). The pool is concurrent.futures' (multiprocessing.Pool
  polls its workers in a loop for as long as results wait to be read: on a scan of small
  files that loop took a core). Numpy's batched small matrix products and element-wise
  work scale better over processes than over BLAS threads (on 2 cores the near-duplicate
  check takes about half the time it takes in one process with 2 threads).
- `ray`: Ray. Without an address, a Ray sized to this machine is started for the command
  (a capped object store, a short temp path, no dashboard) and shut down after it; with
  `ray_address` (`--ray-address auto`, `ray://host:10001`, `host:6379`) the command joins
  that cluster and leaves it running. Scan decodes in Ray Data `map_batches` workers and
  this process writes the manifest and the pixel-cache shards from the stream of results;
  the audit's descriptor batches, verification chunks, photo statistics and blank
  checks run as Ray tasks. Every node must see the data folder and the run folder at the
  same paths (a shared file system) and have winnow installed.

Both give the same manifest rows, pixels and findings (tested): the work is the same
functions on the same inputs, and results are put back in input order wherever order
matters.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, get_args

from winnow.errors import WinnowError

EngineName = Literal["local", "ray"]  # the `engine` setting of scan and audit
ENGINES: tuple[str, ...] = get_args(EngineName)
OBJECT_STORE_BYTES = 1 << 30  # the local Ray's object store (Ray's default is 30 % of RAM)
TASKS_IN_FLIGHT_PER_CPU = 2  # tasks submitted ahead per worker or CPU: keeps them busy
DECODE_BATCH = 16  # files per Ray Data decode batch


class EngineError(WinnowError):
    """The engine can't be used (Ray not installed, the cluster can't be reached)."""


class WorkersLost(BrokenProcessPool):
    """A pool worker died (killed for memory, or a crash in native code) while the items
    at `positions` of an unordered map were in flight; one of them may have killed it."""

    def __init__(self, positions: list[int]) -> None:
        super().__init__(f"a worker process died with items {positions} in flight")
        self.positions = positions


class LocalEngine:
    """Work runs on this machine, in `workers` processes (None: one per core; 1: in this
    process); see the module docstring.

    Used as a context manager (as `open_engine` does), the engine keeps one pool of
    workers from its first `map` to its exit, so a command's many maps (descriptor
    batches, verification chunks, photo statistics…) start their workers once; outside
    one, each `map` starts and stops its own pool."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._entered = False
        self._pool: Any = None
        self._folder: Path | None = None  # each map's shared input, pickled for the workers
        self._maps = 0

    def __enter__(self) -> LocalEngine:
        self._entered = True
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers and remove the shared inputs (also after an error)."""
        self._entered = False
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        folder, self._folder = self._folder, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def map(self, fn: Callable, items: Iterable, shared: Any) -> Iterator:
        """`fn(item, shared)` for each item, yielded in input order. With several workers
        and more than one item, the items go to a pool of single-threaded processes, each
        of which reads `shared` once per map, with at most TASKS_IN_FLIGHT_PER_CPU tasks
        per worker submitted ahead of the result being waited for."""
        items = iter(items)
        head = list(itertools.islice(items, 2))
        if len(head) < 2 or self.workers == 1:
            for _, result in _in_this_process(fn, itertools.chain(head, items), shared):
                yield result
            return
        if not self._entered:  # a one-off map: a pool for this call only
            with LocalEngine(self.workers) as engine:
                yield from engine.map(fn, itertools.chain(head, items), shared)
            return
        pool = self._started(fn)
        token = self._share(shared)
        try:
            yield from _in_order(
                itertools.chain(head, items),
                lambda item: pool.submit(_run_in_worker, fn, str(token), item),
                _result,
                TASKS_IN_FLIGHT_PER_CPU * self.workers,
            )
        except BrokenProcessPool:  # a worker died (killed, out of memory): start afresh
            self._pool = None
            raise
        finally:
            token.unlink(missing_ok=True)

    def map_unordered(
        self, fn: Callable, items: Iterable, shared: Any
    ) -> Iterator[tuple[int, Any]]:
        """`(position, fn(item, shared))` for each item, as the workers finish them (the
        position is the item's, counted from 0), with the same pool, inputs and window of
        tasks in flight as `map`. When a worker dies, `WorkersLost` names the positions
        that were in flight; the next call starts a fresh pool."""
        items = enumerate(items)
        head = list(itertools.islice(items, 2))
        if len(head) < 2 or self.workers == 1:
            yield from _in_this_process(
                fn, (item for _, item in itertools.chain(head, items)), shared
            )
            return
        if not self._entered:
            with LocalEngine(self.workers) as engine:
                yield from engine.map_unordered(
                    fn, (item for _, item in itertools.chain(head, items)), shared
                )
            return
        pool = self._started(fn)
        token = self._share(shared)
        in_flight: dict[Future, int] = {}

        def submit(batch: Iterable[tuple[int, Any]]) -> None:
            for position, item in batch:
                in_flight[pool.submit(_run_in_worker, fn, str(token), item)] = position

        try:
            submit(
                itertools.chain(
                    head, itertools.islice(items, TASKS_IN_FLIGHT_PER_CPU * self.workers - 2)
                )
            )
            while in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    yield in_flight.pop(future), result
                    submit(itertools.islice(items, 1))
        except BrokenProcessPool:  # from a result, or from a submission after the death
            self._pool = None
            raise WorkersLost(sorted(in_flight.values())) from None
        finally:
            for future in in_flight:
                future.cancel()
            token.unlink(missing_ok=True)

    def _started(self, fn: Callable) -> Any:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([fn.__module__])
            self._pool = ProcessPoolExecutor(self.workers, context, initializer=_start_worker)
        return self._pool

    def _share(self, shared: Any) -> Path:
        """`shared` pickled to a file of its own: each worker loads it with the first task
        of this map that it runs (a task carries only the file's name)."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="winnow-engine-"))
        self._maps += 1
        token = self._folder / f"shared-{self._maps}.pickle"
        with token.open("wb") as handle:
            pickle.dump(shared, handle, protocol=pickle.HIGHEST_PROTOCOL)
        return token


def _in_this_process(fn: Callable, items: Iterable, shared: Any) -> Iterator[tuple[int, Any]]:
    """`(position, fn(item, shared))` in this process, each call with one thread in every
    native thread pool, as a pool worker has: a BLAS product's rounding depends on how its
    threads split it, so one process gives what the workers give, to the last bit."""
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    for position, item in enumerate(items):
        with controller.limit(limits=1):
            result = fn(item, shared)
        yield position, result


def _result(future: Future) -> Any:
    return future.result()


def _in_order(items: Iterable, submit: Callable, result: Callable, ahead: int) -> Iterator:
    """Submit each item, keeping at most `ahead` submitted before the oldest one's result
    is taken; the results come out in input order. Pool tasks still waiting when the
    caller stops early (an error, a generator closed) are cancelled."""
    pending: deque = deque()
    try:
        for item in items:
            pending.append(submit(item))
            if len(pending) >= ahead:
                yield result(pending.popleft())
        while pending:
            yield result(pending.popleft())
    finally:
        for task in pending:
            if isinstance(task, Future):
                task.cancel()


_WORKER: dict[str, Any] = {}  # in a pool worker: its settings, the current shared input


def _start_worker() -> None:
    # one thread per worker for every native thread pool: the variables for libraries
    # loaded later (torch's OpenMP), the limits for those loaded now (numpy's BLAS, loaded
    # here first: a limit applies only to a library already loaded)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    import numpy  # noqa: F401
    from threadpoolctl import threadpool_limits

    _WORKER["limits"] = threadpool_limits(1)
    _WORKER["keeps_freed_memory"] = keep_freed_memory()


# glibc's mallopt parameters and the values a worker sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks up to this come from the heap
_TRIM_THRESHOLD = 512 << 20  # free memory a worker keeps for its next arrays


def keep_freed_memory() -> bool:
    """Let this process reuse the memory of freed arrays instead of giving it back to the
    system and faulting fresh pages in for the next ones (glibc only; elsewhere nothing
    changes). The audit's tasks allocate and free arrays of a few megabytes thousands of
    times; with glibc's defaults each of those comes from a new memory map, and zeroing
    and mapping its pages took 7 of 55 seconds of the near-duplicate check's time in the
    kernel. Returns whether the allocator took the settings."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows, musl)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )


def _run_in_worker(fn: Callable, token: str, item: Any) -> Any:
    if _WORKER.get("token") != token:
        _WORKER.pop("shared", None)  # the previous map's input goes before the next loads
        with open(token, "rb") as handle:
            _WORKER["shared"] = pickle.load(handle)
        _WORKER["token"] = token
    return fn(item, _WORKER["shared"])


class RayEngine:
    """Work runs as Ray tasks on the Ray this process is connected to."""

    name = "ray"

    def __init__(self) -> None:
        import ray

        self._ray = ray
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._task = ray.remote(_in_ray_worker)  # every map's tasks: `fn` is an argument

    def map(self, fn: Callable, items: Iterable, shared: Any) -> Iterator:
        """`fn(item, shared)` for each item as Ray tasks, yielded in input order; `shared` is
        put in the object store once. At most TASKS_IN_FLIGHT_PER_CPU tasks per CPU are
        submitted ahead of the one being waited for, so results don't pile up."""
        shared_ref = self._ray.put(shared)
        yield from _in_order(
            items,
            lambda item: self._task.remote(fn, item, shared_ref),
            self._ray.get,
            TASKS_IN_FLIGHT_PER_CPU * self.cpus,
        )

    def map_batches(
        self,
        rows: list[dict[str, Any]],
        fn: Callable,
        fn_kwargs: dict[str, Any],
        batch_size: int = DECODE_BATCH,
    ) -> Iterator[dict[str, Any]]:
        """Ray Data: `rows` (one dict of plain values each) → `fn(batch, **fn_kwargs)` in
        `map_batches` workers (a dict of numpy columns in, a dict of columns out) → the
        output batches, as they finish (in no fixed order)."""
        import ray.data

        dataset = ray.data.from_items(rows, override_num_blocks=_blocks(len(rows), self.cpus))
        mapped = dataset.map_batches(
            fn, batch_size=batch_size, batch_format="numpy", fn_kwargs=fn_kwargs
        )
        yield from mapped.iter_batches(batch_size=None, batch_format="numpy")


def _in_ray_worker(fn: Callable, item: Any, shared: Any) -> Any:
    """`fn(item, shared)` as a Ray task, in a worker that keeps freed memory as the local
    pool's do (`keep_freed_memory`, set once per worker; Ray already runs each task's
    native thread pools on one thread)."""
    if "keeps_freed_memory" not in _WORKER:
        _WORKER["keeps_freed_memory"] = keep_freed_memory()
    return fn(item, shared)


def _blocks(rows: int, cpus: int) -> int:
    """Enough blocks that every CPU has several (a block is the unit a worker takes)."""
    return max(1, min(rows, 8 * cpus, -(-rows // DECODE_BATCH)))


Engine = LocalEngine | RayEngine


@contextmanager
def open_engine(
    name: str = "local", address: str | None = None, cpus: int | None = None
) -> Iterator[Engine]:
    """The engine `name` for the length of a command, with `cpus` workers on this machine
    (None: one per core). For `ray`: joins `address`, or a Ray this process already
    started, or starts a local one with `cpus` CPUs and shuts it down at the end."""
    if name == "local":
        if address:
            raise EngineError("--ray-address needs --engine ray.")
        with LocalEngine(cpus) as engine:
            yield engine
        return
    if name != "ray":
        raise EngineError(f"Unknown engine {name!r}; choose one of: {', '.join(ENGINES)}.")
    try:
        import ray
    except ImportError:
        raise EngineError(
            "--engine ray needs Ray: pip install 'winnow-vision[ray]' (or 'ray[data]')."
        ) from None
    started = False
    if not ray.is_initialized():
        _quiet_ray()
        if address:
            _check_reachable(address)
        try:
            if address:
                ray.init(address=address, **_QUIET)
            else:
                ray.init(
                    num_cpus=cpus or os.cpu_count() or 1,
                    object_store_memory=OBJECT_STORE_BYTES,
                    _temp_dir=str(_short_temp_dir()),
                    include_dashboard=False,
                    **_QUIET,
                )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise EngineError(f"Could not start or join {where}: {exc}") from None
        started = True
    _quiet_ray_data()
    try:
        yield RayEngine()
    finally:
        if started:
            ray.shutdown()


REACH_SECONDS = 5.0  # how long a cluster address may take to accept a connection


def _check_reachable(address: str) -> None:
    """A `host:port` or `ray://host:port` address must accept a TCP connection: Ray itself
    retries an unreachable head without end. `auto` and `local` are Ray's to resolve."""
    import socket

    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        if address in ("auto", "local"):
            return
        raise EngineError(f"--ray-address {address!r} is not auto, HOST:PORT or ray://HOST:PORT.")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_SECONDS):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise EngineError(
            f"Could not reach the Ray cluster at {address} ({reason}); start it with "
            "'ray start --head' on the head node, or check the address."
        ) from None


_QUIET: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}


def _quiet_ray() -> None:
    for logger in ("ray", "ray._private"):  # ray.data: `_quiet_ray_data`
        logging.getLogger(logger).setLevel(logging.ERROR)


def _quiet_ray_data() -> None:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _short_temp_dir() -> Path:
    """Ray's session folder: its socket paths must stay under the OS limit of 107
    characters, which a deep TMPDIR (a test's, a cluster job's) exceeds."""
    base = Path(tempfile.gettempdir())
    if len(str(base)) > 40:
        base = Path("/tmp")
    return base / f"winnow-ray-{os.getuid()}"
