"""The training side's resource sampler: host memory, the output disk and the job's GPUs.

:class:`ResourceSampler` runs on its own daemon thread and hands one
:class:`~peft_notify.wire.Resource` a second (at most) to a sink, normally
``JobHandle.resource``, which coalesces it like progress. Start it with
:meth:`ResourceSampler.start` and stop it with :meth:`ResourceSampler.stop`; nothing here
ever raises into training: a part that cannot be read is left out of the sample and
logged once.

- host: RAM and swap (psutil), the RSS and CPU use of the watched process tree (``run``
  watches its child's tree, ``job()`` its own process).
- disk: free space of the output directory and the estimated size of the next
  checkpoint: the size on disk of the newest ``checkpoint-*`` directory or ``*.ckpt`` /
  ``*.safetensors`` / ``*.pt`` file in it, else the model's parameter bytes when known.
- GPU through NVIDIA's own NVML bindings (the ``nvidia-ml-py`` package, imported as
  ``pynvml``; install ``peft-notify[gpu]``): only the devices on which the process tree
  has compute contexts. Every NVML call goes through :class:`NvmlGpus`, which takes the
  module as a parameter, so tests plug a fake in at that function boundary. Without the
  package, the library or a driver, the GPU part is absent and :attr:`ResourceSampler.notes`
  says why, once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final, TypeVar

import psutil

from peft_notify import wire

__all__ = [
    "DISABLE_ENV",
    "MIN_INTERVAL_S",
    "DiskWatch",
    "HostWatch",
    "NvmlGpus",
    "ResourceSampler",
    "announce",
    "checkpoint_size",
    "describe_gpu",
    "open_nvml",
    "start_sampler",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DISABLE_ENV: Final = "PEFT_NOTIFY_RESOURCES"  # "0" / "off": no sampler at all
MIN_INTERVAL_S: Final = 1.0  # the bound: at most one sample a second
CHECKPOINT_RESCAN_S: Final = 30.0  # the newest checkpoint's size is measured at most this often
MAX_SCAN_ENTRIES: Final = 20_000  # a checkpoint scan stops here (a huge output dir must not cost the job)
CHECKPOINT_SUFFIXES: Final = (".ckpt", ".safetensors", ".pt", ".pth", ".bin")

# NVML clock-event ("throttle") reasons, from nvml.h (nvmlClocksEventReason*).
_THERMAL_BITS: Final = 0x20 | 0x40  # SwThermalSlowdown | HwThermalSlowdown
_POWER_BITS: Final = 0x04 | 0x80  # SwPowerCap | HwPowerBrakeSlowdown
_HW_SLOWDOWN: Final = 0x08  # HwSlowdown: thermal or power, the driver does not say which
_XID_CRITICAL: Final = 0x08  # nvmlEventTypeXidCriticalError
_DOUBLE_BIT_ECC: Final = 0x02  # nvmlEventTypeDoubleBitEccError
_NVML_TIMEOUT: Final = 10  # NVML_ERROR_TIMEOUT: no event pending
_NVML_NOT_SUPPORTED: Final = 3


def throttle_reasons(bits: int) -> tuple[str, ...]:
    """Clock-event bit mask → ``("thermal", "power")`` (the ones that slow training down)."""
    out = []
    if bits & _THERMAL_BITS:
        out.append("thermal")
    if bits & _POWER_BITS:
        out.append("power")
    if bits & _HW_SLOWDOWN and not out:
        out.append("hardware")
    return tuple(out)


# --------------------------------------------------------------------------- host


class HostWatch:
    """RAM, swap and the CPU/RSS of one process tree (root ``pid`` and its descendants).

    On Linux it reads ``/proc`` itself, and only what it needs: ``/proc/meminfo`` and one
    ``stat`` file per process of the tree, kept open and re-read with one ``pread`` each (every
    system call lets the training thread's GIL go and come back, which costs both threads more
    than the call); the tree's members are found through the kernel's per-thread ``children``
    lists. psutil's ``children(recursive=True)`` reads every process's ``stat`` on the machine:
    ~1 ms with 100 processes, 10 ms with 1,000. Elsewhere, or where the kernel has no
    ``children`` files, psutil does it. Either way the membership is walked again every
    :data:`TREE_REFRESH_S` seconds when it watches its own process (a new child counts from then;
    the members are re-read every sample and a dead one drops out at once), every sample when it
    watches another (``peft-notify run``'s child). Call :meth:`close` to release the open files.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        # Watching this process (job(), the callbacks): the walk waits, to spare the training
        # thread's GIL. Watching another (``run``'s child; the wrapper trains nothing): every sample,
        # so a data-loader worker or a launcher's child counts at once.
        self.refresh_s = TREE_REFRESH_S if pid == os.getpid() else 0.0
        self._cpu: dict[tuple[int, float], float] = {}  # (pid, start time) -> cpu seconds seen
        self._last_at: float | None = None
        self.last_pids: frozenset[int] = frozenset()  # the tree at the last sample (the GPU part uses it)
        self._procfs = _procfs_children()
        self._files = _ProcFiles()
        self._members: dict[int, float] = {}  # pid -> start time, as of the last walk (procfs)
        self._walked_at: float | None = None
        self._root_start: float | None = None  # the root's start time: a reused pid is not our root
        self._root: psutil.Process | None = None
        self._cached: list[psutil.Process] = []
        if self._procfs:
            stat = self._stat(pid)
            self._root_start = None if stat is None or stat.dead else stat.start
            return
        try:
            self._root = psutil.Process(pid)
        except psutil.Error:
            self._root = None

    def close(self) -> None:
        """Close the /proc files kept open (idempotent; a later sample opens them again)."""
        self._files.close()

    def tree(self) -> list[psutil.Process]:
        """The root and its living descendants as psutil processes (empty once the root is gone)."""
        processes = []
        for pid in sorted(self.pids()):
            with contextlib.suppress(psutil.Error):
                processes.append(psutil.Process(pid))
        return processes

    def pids(self) -> set[int]:
        """The pids of the root and its living descendants, walked now (empty once the root is gone)."""
        self._walked_at = None
        if self._procfs:
            return set(self._proc_tree(time.monotonic()))
        return {p.pid for p in self._psutil_tree(time.monotonic())}

    def _walk_due(self, now: float) -> bool:
        due = self._walked_at is None or not 0 <= now - self._walked_at < self.refresh_s
        if due:
            self._walked_at = now
        return due

    def sample(self, now: float) -> wire.HostSample:
        if self._procfs:
            memory = self._meminfo()
            if memory is None:
                vm = psutil.virtual_memory()
                swap_total, swap_used = _psutil_swap()
                memory = (int(vm.total), int(vm.available), swap_total, swap_used)
            rss = 0
            seen: dict[tuple[int, float], float] = {}
            for pid, stat in self._proc_tree(now).items():
                rss += stat.rss
                seen[(pid, stat.start)] = stat.cpu
            self.last_pids = frozenset(pid for pid, _ in seen)
            return self._host_sample(now, memory, rss if seen else None, seen)
        vm = psutil.virtual_memory()
        swap_total, swap_used = _psutil_swap()
        procs = self._psutil_tree(now)
        rss = 0
        seen = {}
        for proc in procs:
            try:
                with proc.oneshot():
                    rss += int(proc.memory_info().rss)
                    times = proc.cpu_times()
                    key = (proc.pid, proc.create_time())
            except psutil.Error:
                continue
            seen[key] = float(times.user + times.system)
        self.last_pids = frozenset(p.pid for p in procs)
        memory = (int(vm.total), int(vm.available), swap_total, swap_used)
        return self._host_sample(now, memory, rss if procs else None, seen)

    def _host_sample(
        self,
        now: float,
        memory: tuple[int, int, int, int],
        rss: int | None,
        seen: dict[tuple[int, float], float],
    ) -> wire.HostSample:
        cpu_total = sum(used - self._cpu.get(key, used) for key, used in seen.items())  # new ones count from now
        elapsed = None if self._last_at is None else now - self._last_at
        cpu = None if not elapsed or elapsed <= 0 else max(0.0, 100.0 * cpu_total / elapsed)
        self._cpu = seen
        self._last_at = now
        mem_total, mem_available, swap_total, swap_used = memory
        return wire.HostSample(
            mem_total=int(mem_total),
            mem_available=min(int(mem_available), int(mem_total)),
            swap_total=swap_total,
            swap_used=swap_used,
            rss=rss,
            cpu_percent=cpu,
            alive=rss is not None,
        )

    # ------------------------------------------------------------------ /proc (Linux)

    def _meminfo(self) -> tuple[int, int, int, int] | None:
        try:
            return _parse_meminfo(self._files.read("/proc/meminfo"))
        except OSError:
            return None

    def _stat(self, pid: int) -> _Stat | None:
        try:
            return _parse_stat(self._files.read(f"/proc/{pid}/stat"))
        except OSError:
            return None

    def _children(self, pid: int) -> list[int]:
        """The children of ``pid``: the union of its threads' ``children`` lists (a thread forks too)."""
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return []
        children: list[int] = []
        for tid in tids:
            try:
                children += [int(c) for c in self._files.read(f"/proc/{pid}/task/{tid}/children").split()]
            except (OSError, ValueError):
                continue
        return children

    def _proc_tree(self, now: float) -> dict[int, _Stat]:
        """pid → its stat for the root and its descendants (empty once the root is gone)."""
        root = self._stat(self.pid)
        if root is None or root.dead or self._root_start is None or root.start != self._root_start:
            self._files.close()
            return {}
        found = {self.pid: root}
        if self._walk_due(now):
            todo = [self.pid]
            while todo and len(found) < MAX_TREE:
                for child in self._children(todo.pop()):
                    stat = None if child in found else self._stat(child)
                    if stat is not None and not stat.dead:
                        found[child] = stat
                        todo.append(child)
            self._files.keep(found)  # the files of processes and threads that are gone are closed
        else:
            for pid, start in self._members.items():
                stat = None if pid == self.pid else self._stat(pid)
                if stat is not None and not stat.dead and stat.start == start:
                    found[pid] = stat
        self._members = {pid: stat.start for pid, stat in found.items()}
        return found

    # ------------------------------------------------------------------ psutil (elsewhere)

    def _psutil_tree(self, now: float) -> list[psutil.Process]:
        """The tree through psutil: its membership walked again every TREE_REFRESH_S at most."""
        root = self._root
        if root is None or not _alive(root):
            self._cached = []
            return []
        if self._walk_due(now):
            try:
                self._cached = [root, *root.children(recursive=True)]
            except psutil.Error:
                self._cached = [root]
        self._cached = [p for p in self._cached if p is root or _alive(p)]
        return self._cached


MAX_TREE: Final = 4096  # processes in one watched tree at most (a fork bomb must not hold the sampler)
TREE_REFRESH_S: Final = 5.0  # how often the tree's membership is walked again
MAX_OPEN_FILES: Final = 64  # /proc files a HostWatch keeps open at most (more are opened per read)
_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class _Stat:
    """What the sampler uses of one ``/proc/PID/stat``."""

    __slots__ = ("cpu", "dead", "rss", "start")

    def __init__(self, dead: bool, cpu: float, start: float, rss: int) -> None:
        self.dead, self.cpu, self.start, self.rss = dead, cpu, start, rss


class _ProcFiles:
    """Small /proc files kept open and re-read with one ``pread`` (the kernel regenerates them).

    A file of a process or thread that ended fails with ``ESRCH`` (even if its pid was reused):
    it is closed and the error raised. At most :data:`MAX_OPEN_FILES` stay open.
    """

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def read(self, path: str) -> bytes:
        """The file's content now. Raises ``OSError``."""
        fd = self._fds.get(path)
        if fd is None:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            if len(self._fds) >= MAX_OPEN_FILES:
                try:
                    return os.read(fd, 65536)
                finally:
                    os.close(fd)
            self._fds[path] = fd
        try:
            return os.pread(fd, 65536, 0)
        except OSError:
            del self._fds[path]
            os.close(fd)
            raise

    def keep(self, pids: Iterable[int]) -> None:
        """Close the files of processes not in ``pids`` (the system-wide ones stay)."""
        prefixes = tuple(f"/proc/{pid}/" for pid in pids)
        for path in [p for p in self._fds if p.startswith("/proc/") and p[6:7].isdigit()]:
            if not path.startswith(prefixes):
                os.close(self._fds.pop(path))

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


def _read(path: str) -> bytes:
    """A small /proc file in one read (no buffered file object). Raises ``OSError``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def _parse_stat(data: bytes) -> _Stat | None:
    """``/proc/PID/stat``: zombie or dead, CPU seconds, start (clock ticks), RSS bytes."""
    try:
        fields = data[data.rindex(b")") + 2 :].split()  # after "pid (comm) ": the name may hold anything
        return _Stat(
            dead=fields[0] in (b"Z", b"X", b"x"),
            cpu=(int(fields[11]) + int(fields[12])) / _CLOCK_TICKS,  # utime + stime
            start=float(fields[19]),
            rss=int(fields[21]) * _PAGE_SIZE,
        )
    except (ValueError, IndexError):
        return None


def _procfs_children() -> bool:
    """Whether this kernel has per-thread ``children`` lists (Linux with CONFIG_PROC_CHILDREN)."""
    try:
        _read(f"/proc/self/task/{threading.get_native_id()}/children")
    except (OSError, AttributeError):
        return False
    return True


_MEMINFO_KEYS: Final = (b"\nMemTotal:", b"\nMemAvailable:", b"\nSwapTotal:", b"\nSwapFree:")


def _parse_meminfo(data: bytes) -> tuple[int, int, int, int] | None:
    """(RAM total, RAM available, swap total, swap used) in bytes from /proc/meminfo, as psutil
    computes them; ``None`` when a line is missing (an old kernel: psutil then). Looks up the four
    lines rather than splitting all fifty (this runs every second in the training process)."""
    text = b"\n" + data
    values = []
    for key in _MEMINFO_KEYS:
        at = text.find(key)
        if at < 0:
            return None
        at += len(key)
        try:
            values.append(int(text[at : text.find(b"\n", at)].split()[0]) * 1024)
        except (ValueError, IndexError):
            return None
    mem_total, mem_available, swap_total, swap_free = values
    return mem_total, mem_available, swap_total, swap_total - swap_free


def _psutil_swap() -> tuple[int, int]:
    try:
        swap = psutil.swap_memory()
    except (OSError, RuntimeError):  # no /proc/swaps in some containers
        return 0, 0
    return int(swap.total), int(swap.used)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# --------------------------------------------------------------------------- disk


def checkpoint_size(output_dir: Path, *, limit: int = MAX_SCAN_ENTRIES) -> int | None:
    """Bytes on disk of the newest checkpoint in ``output_dir``, or ``None`` when there is none.

    A checkpoint is a ``checkpoint-*`` directory (Transformers) or a file ending in ``.ckpt``,
    ``.safetensors``, ``.pt``, ``.pth`` or ``.bin`` (Lightning, plain PyTorch). Symlinks are
    never followed and at most ``limit`` entries are looked at: the scan only reads.
    """
    newest: tuple[float, Path, bool] | None = None
    try:
        entries = list(_scan(output_dir, limit))
    except OSError:
        return None
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            if is_dir and not entry.name.startswith("checkpoint"):
                continue
            if not is_dir and not (entry.is_file(follow_symlinks=False) and entry.name.endswith(CHECKPOINT_SUFFIXES)):
                continue
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if newest is None or mtime > newest[0]:
            newest = (mtime, Path(entry.path), is_dir)
    if newest is None:
        return None
    _, path, is_dir = newest
    if not is_dir:
        return _on_disk(path)
    total = 0
    budget = limit
    stack = [path]
    while stack and budget > 0:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    budget -= 1
                    if budget <= 0:
                        break
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += _on_disk(Path(entry.path)) or 0
        except OSError:
            continue
    return total


def _scan(directory: Path, limit: int) -> Iterable[os.DirEntry[str]]:
    with os.scandir(directory) as it:
        for count, entry in enumerate(it):
            if count >= limit:
                return
            yield entry


def _on_disk(path: Path) -> int | None:
    try:
        st = path.stat(follow_symlinks=False)
    except OSError:
        return None
    blocks = getattr(st, "st_blocks", None)
    return max(st.st_size, blocks * 512) if blocks is not None else st.st_size


class DiskWatch:
    """Free space where the job writes its checkpoints, and the next checkpoint's estimate."""

    def __init__(self, output_dir: str | os.PathLike[str], *, param_bytes: int | None = None) -> None:
        self.output_dir = Path(output_dir).expanduser()
        self.param_bytes = param_bytes if param_bytes and param_bytes > 0 else None
        self._estimate: int | None = None
        self._scanned_at: float | None = None
        self._absolute = self.output_dir.absolute()
        self._where: Path | None = None  # the directory, or its nearest existing parent
        self._exists = False  # whether _where is the directory itself
        self._shown = str(self.output_dir)[: wire.MAX_REASON]

    def _existing(self) -> Path:
        """The output directory, or its nearest existing parent (it may not be created yet)."""
        path = self.output_dir.absolute()
        while not path.exists() and path.parent != path:
            path = path.parent
        return path

    def sample(self, now: float) -> wire.DiskSample:
        """Raises ``OSError`` when no part of the path can be read."""
        rescan = self._scanned_at is None or not 0 <= now - self._scanned_at < CHECKPOINT_RESCAN_S
        if rescan or self._where is None or not self._exists:
            self._locate()  # until the directory exists, asked again every sample
        assert self._where is not None
        try:
            usage = shutil.disk_usage(self._where)
        except OSError:  # removed since: its nearest existing parent again
            self._locate()
            usage = shutil.disk_usage(self._where)
        if rescan:
            self._scanned_at = now
            self._estimate = checkpoint_size(self._where) if self._exists else None
        estimate = self._estimate if self._estimate else self.param_bytes
        return wire.DiskSample(
            path=self._shown,
            free=int(usage.free),
            total=int(usage.total),
            next_checkpoint=estimate,
        )

    def _locate(self) -> None:
        self._where = self._existing()
        self._exists = self._where == self._absolute

    def rescan(self) -> None:
        """Measure the newest checkpoint again at the next sample (a checkpoint was just saved)."""
        self._scanned_at = None


# --------------------------------------------------------------------------- GPU (NVML)


class NvmlGpus:
    """The NVML layer: every call into nvidia-ml-py goes through here.

    ``nv`` is the ``pynvml`` module of nvidia-ml-py (tests pass a fake with the same
    functions). :meth:`open` initialises NVML and registers XID-critical and double-bit-ECC
    events on every device that supports them; :meth:`sample` reads the devices on which
    ``pids`` run compute work. One device that fails gives a sample with ``error`` set and
    does not stop the others.
    """

    def __init__(self, nv: Any) -> None:
        self.nv = nv
        self._handles: list[Any] = []
        self._names: dict[int, str] = {}
        self._events: Any = None
        self._xids: dict[int, int] = {}
        self._last_xid: dict[int, int] = {}
        self._used: set[int] = set()  # devices the tree has used: they stay watched
        self._open = False

    @property
    def count(self) -> int:
        """How many devices NVML reported at :meth:`open`."""
        return len(self._handles)

    def open(self) -> int:
        """Initialise NVML; returns the device count. Raises ``nv.NVMLError``."""
        nv = self.nv
        nv.nvmlInit()
        self._open = True
        count = int(nv.nvmlDeviceGetCount())
        self._handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        try:
            self._events = nv.nvmlEventSetCreate()
        except nv.NVMLError as exc:
            log.info("NVML events unavailable (%s): XID errors are not watched", exc)
            self._events = None
        for handle in self._handles if self._events is not None else []:
            try:
                supported = int(nv.nvmlDeviceGetSupportedEventTypes(handle))
                wanted = supported & (_XID_CRITICAL | _DOUBLE_BIT_ECC)
                if wanted:
                    nv.nvmlDeviceRegisterEvents(handle, wanted, self._events)
            except nv.NVMLError as exc:
                log.info("NVML: cannot register events on a device (%s)", exc)
        return count

    def close(self) -> None:
        nv = self.nv
        if self._events is not None:
            with contextlib.suppress(nv.NVMLError):
                nv.nvmlEventSetFree(self._events)
            self._events = None
        if self._open:
            self._open = False
            with contextlib.suppress(nv.NVMLError):
                nv.nvmlShutdown()

    def _index_of(self, handle: Any) -> int | None:
        for i, known in enumerate(self._handles):
            if known is handle or known == handle:
                return i
        try:
            return int(self.nv.nvmlDeviceGetIndex(handle))
        except self.nv.NVMLError:
            return None

    def poll_events(self) -> None:
        """Count the XID critical errors that arrived since the last poll (never waits)."""
        nv = self.nv
        if self._events is None:
            return
        for _ in range(1000):  # bounded: a storm of events must not hold the sampler
            try:
                data = nv.nvmlEventSetWait_v2(self._events, 0)
            except nv.NVMLError as exc:
                if getattr(exc, "value", None) != _NVML_TIMEOUT:
                    log.debug("NVML event wait failed: %s", exc)
                return
            index = self._index_of(data.device)
            if index is None:
                continue
            kind = int(data.eventType)
            if kind & _XID_CRITICAL:
                self._xids[index] = self._xids.get(index, 0) + 1
                self._last_xid[index] = int(data.eventData)
                log.warning("GPU %d: XID critical error %d", index, int(data.eventData))

    def devices_for(self, pids: set[int]) -> list[int]:
        """Indices of the devices on which any of ``pids`` has a compute context (sticky)."""
        nv = self.nv
        for i, handle in enumerate(self._handles):
            if i in self._used:
                continue
            try:
                procs = nv.nvmlDeviceGetComputeRunningProcesses(handle)
            except nv.NVMLError:
                continue
            if any(int(p.pid) in pids for p in procs):
                self._used.add(i)
        return sorted(self._used)

    def watch(self, index: int) -> None:
        """Watch device ``index`` whatever its process list says (e.g. a container whose PIDs
        NVML cannot see). Raises ``IndexError`` for a device that does not exist."""
        if not 0 <= index < len(self._handles):
            raise IndexError(f"no GPU {index} (this machine has {len(self._handles)})")
        self._used.add(index)

    def sample(self, index: int) -> wire.GpuSample:
        nv = self.nv
        handle = self._handles[index]
        try:
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
        except nv.NVMLError as exc:
            return wire.GpuSample(
                index=index,
                error=str(exc)[:200] or "unreadable",
                xid_count=self._xids.get(index, 0),
                last_xid=self._last_xid.get(index),
            )
        name = self._names.get(index)
        if name is None:
            raw = self._try(nv.nvmlDeviceGetName, handle)
            name = self._names[index] = (raw.decode() if isinstance(raw, bytes) else str(raw or ""))[:64]
        util = self._try(nv.nvmlDeviceGetUtilizationRates, handle)
        temp = self._try(nv.nvmlDeviceGetTemperature, handle, 0)  # NVML_TEMPERATURE_GPU
        power = self._try(nv.nvmlDeviceGetPowerUsage, handle)  # milliwatts
        reasons = self._try(nv.nvmlDeviceGetCurrentClocksEventReasons, handle)
        ecc = self._try(nv.nvmlDeviceGetTotalEccErrors, handle, 1, 0)  # uncorrected, volatile
        remap = self._try(nv.nvmlDeviceGetRemappedRows, handle)
        return wire.GpuSample(
            index=index,
            name=name,
            mem_used=int(mem.used),
            mem_total=int(mem.total),
            util=None if util is None else float(min(100, max(0, int(util.gpu)))),
            temperature=None if temp is None else float(temp),
            power_w=None if power is None else float(power) / 1000.0,
            throttle=() if reasons is None else throttle_reasons(int(reasons)),
            ecc_uncorrected=None if ecc is None else int(ecc),
            remap_pending=bool(remap and remap[2]),
            remap_failure=bool(remap and remap[3]),
            xid_count=self._xids.get(index, 0),
            last_xid=self._last_xid.get(index),
        )

    def _try(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except self.nv.NVMLError:  # not supported on this board / driver: leave the field out
            return None


def open_nvml(module: Any = None) -> tuple[NvmlGpus | None, str | None]:
    """NVML if it is usable here: ``(gpus, None)``, else ``(None, one line saying why)``."""
    nv = module
    if nv is None:
        try:
            import pynvml  # nvidia-ml-py: NVIDIA's own bindings (peft-notify[gpu]), not the old "pynvml" package
        except ImportError:
            return None, "gpu: not watched: nvidia-ml-py is not installed (pip install 'peft-notify[gpu]')"
        nv = pynvml
    gpus = NvmlGpus(nv)
    try:
        count = gpus.open()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no GPU part
        gpus.close()
        return None, f"gpu: not watched: NVML is not available ({exc})"
    if count == 0:
        gpus.close()
        return None, "gpu: not watched: NVML found no NVIDIA GPU"
    return gpus, None


def describe_gpu(module: Any = None) -> str:
    """One line for ``peft-notify doctor``: what the resource sampler would watch of the GPUs here."""
    gpus, note = open_nvml(module)
    if gpus is None:
        return f"resource warnings, {note}"
    try:
        names = []
        for i in range(gpus.count):
            sample = gpus.sample(i)
            names.append(sample.name or f"GPU {i}")
        return (
            f"resource warnings, gpu: NVML sees {len(names)} GPU{'s' if len(names) != 1 else ''} ({', '.join(names)})"
        )
    finally:
        gpus.close()


# --------------------------------------------------------------------------- the sampler


class ResourceSampler:
    """Samples host, disk and GPUs on a daemon thread, at most once a second (see module docstring).

    ``sink`` receives each :class:`~peft_notify.wire.Resource` on the sampler's thread; it
    must not block (``JobHandle.resource`` only stores it). ``pid``: root of the process
    tree to watch (default: this process). ``gpu``: ``False`` skips NVML; a module object
    replaces ``pynvml`` (tests).
    """

    def __init__(
        self,
        sink: Callable[[wire.Resource], None],
        *,
        pid: int | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        param_bytes: int | None = None,
        interval: float = MIN_INTERVAL_S,
        gpu: bool | Any = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.interval = max(MIN_INTERVAL_S, interval)
        self.clock = clock
        self.host = HostWatch(os.getpid() if pid is None else pid)
        self.disk = None if output_dir is None else DiskWatch(output_dir, param_bytes=param_bytes)
        notes: list[str] = []
        self.gpus: NvmlGpus | None = None
        if gpu is not False:
            self.gpus, note = open_nvml(None if gpu is True else gpu)
            if note:
                log.info("%s", note)
                notes.append(note)
        else:
            notes.append("gpu: not watched (turned off)")
        if self.disk is None:
            notes.append("disk: not watched: no output directory given")
        self.notes: tuple[str, ...] = tuple(notes)
        watched = ["host_memory", "swap", "process_rss"]
        if self.disk is not None:
            watched.append("disk")
        if self.gpus is not None:
            watched.append("gpu")
        self.watched: tuple[str, ...] = tuple(watched)
        self.samples = 0
        self.cpu_s = 0.0  # CPU seconds the sampler's thread has spent sampling (and in the sink)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: set[str] = set()

    def set_param_bytes(self, param_bytes: int | None) -> None:
        """The model's parameter bytes (the next checkpoint's estimate until one is on disk)."""
        if self.disk is not None and param_bytes and param_bytes > 0:
            self.disk.param_bytes = param_bytes

    def checkpoint_saved(self) -> None:
        """A checkpoint was written: measure it at the next sample."""
        if self.disk is not None:
            self.disk.rescan()

    def start(self) -> ResourceSampler:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="peft-notify-resources", daemon=True)
            self._thread.start()
        return self

    def stop(self, *, wait: bool = True) -> None:
        """Stop sampling (idempotent; waits briefly for the thread) and release NVML and /proc files.

        ``wait=False`` only tells the thread to stop (it ends within one sample): do other
        shutdown work meanwhile, then call ``stop()`` again to wait for it and release.
        """
        self._stop.set()
        if not wait:
            return
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if thread is None or not thread.is_alive():
            self.host.close()
        if self.gpus is not None:
            self.gpus.close()
            self.gpus = None

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.thread_time()
            resource = self.sample_once()
            if resource is not None:
                try:
                    self.sink(resource)
                except Exception:
                    log.exception("resource sink failed")
            self.cpu_s += time.thread_time() - began
            self._stop.wait(self.interval)

    def sample_once(self) -> wire.Resource | None:
        """Take one sample now (the thread calls this; tests and the bench may too)."""
        now = self.clock()
        host = self._part("host", lambda: self.host.sample(now))
        disk = None
        if self.disk is not None:
            disk_watch = self.disk
            disk = self._part("disk", lambda: disk_watch.sample(now))
        gpus: tuple[wire.GpuSample, ...] = ()
        if self.gpus is not None:
            gpu_watch = self.gpus
            gpus = self._part("gpu", lambda: self._sample_gpus(gpu_watch, host)) or ()
        self.samples += 1
        if host is None and disk is None and not gpus:
            return None
        return wire.Resource(host=host, disk=disk, gpus=gpus)

    def _sample_gpus(self, gpus: NvmlGpus, host: wire.HostSample | None) -> tuple[wire.GpuSample, ...]:
        gpus.poll_events()
        pids = set(self.host.last_pids) if host is not None else self.host.pids()  # the tree just walked
        return tuple(gpus.sample(i) for i in gpus.devices_for(pids))

    def _part(self, name: str, read: Callable[[], T]) -> T | None:
        try:
            value = read()
        except Exception as exc:  # one unreadable part must not cost the others (or training)
            if name not in self._failed:
                self._failed.add(name)
                log.warning("resource sampler: cannot read %s (%s); leaving it out", name, exc)
            return None
        self._failed.discard(name)
        return value


def start_sampler(
    handle: Any,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    param_bytes: int | None = None,
    pid: int | None = None,
    gpu: bool | Any = True,
) -> ResourceSampler | None:
    """Sample the machine for ``handle`` (a served job's handle) until :meth:`ResourceSampler.stop`.

    Returns ``None`` (and samples nothing) when the handle cannot send resource samples
    (a pipe to ``peft-notify run``, which samples the job itself; a rank other than 0) or when
    ``PEFT_NOTIFY_RESOURCES=0``. Tells the handle what is watched, for its ``hello``. Never raises.
    """
    report = getattr(handle, "resource", None)
    if not callable(report) or os.environ.get(DISABLE_ENV, "").strip().lower() in ("0", "off", "false", "no"):
        return None
    try:
        sampler = ResourceSampler(report, pid=pid, output_dir=output_dir, param_bytes=param_bytes, gpu=gpu)
        announce = getattr(handle, "set_resources", None)
        if callable(announce):
            announce(sampler.watched, sampler.notes)
        return sampler.start()
    except Exception:  # resource warnings are a bonus: never the reason a job does not start
        log.warning("could not start the resource sampler", exc_info=True)
        return None


def announce(handle: Any, *, output_dir: str | os.PathLike[str] | None = None, gpu: bool | Any = True) -> None:
    """Put in ``handle``'s hello what a sampler will watch, before the first one starts.

    For ``peft-notify run``, whose sampler starts with each launch of the command: a client that
    connects before the command runs learns at once what is watched. Never raises.
    """
    set_resources = getattr(handle, "set_resources", None)
    if not callable(set_resources) or os.environ.get(DISABLE_ENV, "").strip().lower() in ("0", "off", "false", "no"):
        return
    try:
        probe = ResourceSampler(lambda r: None, output_dir=output_dir, gpu=gpu)
        probe.stop()
        set_resources(probe.watched, probe.notes)
    except Exception:
        log.warning("could not tell what the resource sampler watches", exc_info=True)
