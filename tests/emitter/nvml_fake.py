"""A fake of nvidia-ml-py's ``pynvml`` module, at its function boundary.

No NVIDIA GPU or driver exists on the test machines, so the GPU half of the resource
sampler is tested against this stand-in. It has the same function names, argument order,
return shapes and error class (``NVMLError`` with ``.value``) as nvidia-ml-py 12/13, for
the calls :class:`peft_notify.emitter.resources.NvmlGpus` makes. Tests change a device's
values (``FakeDevice``) and queue XID events with :meth:`FakeNvml.xid`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15

XID_CRITICAL = 0x08
DOUBLE_BIT_ECC = 0x02
SW_POWER_CAP = 0x04
HW_SLOWDOWN = 0x08
SW_THERMAL = 0x20
HW_THERMAL = 0x40


_TEXT = {3: "Not Supported", 10: "Timeout", 12: "NVML Shared Library Not Found", 15: "GPU is lost"}


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _TEXT.get(self.value, f"NVML error {self.value}")


@dataclass
class FakeDevice:
    name: str = "NVIDIA H100 80GB HBM3"
    total: int = 80 << 30
    used: int = 10 << 30
    util: int = 90
    temperature: int = 65
    power_mw: int = 400_000
    reasons: int = 0
    ecc_uncorrected: int = 0
    remapped: tuple[int, int, int, int] = (0, 0, 0, 0)
    pids: list[int] = field(default_factory=list)
    lost: bool = False  # every query fails with GPU_IS_LOST
    ecc_supported: bool = True


class FakeNvml:
    """Stands in for the ``pynvml`` module (pass it as ``gpu=`` / ``module=``)."""

    NVMLError = NVMLError

    def __init__(self, devices: list[FakeDevice], *, library: bool = True) -> None:
        self.devices = devices
        self.library = library
        self.initialised = 0
        self.shutdowns = 0
        self.calls: list[str] = []
        self._events: list[SimpleNamespace] = []
        self.registered: dict[int, int] = {}

    def _dev(self, handle: Any) -> FakeDevice:
        device = self.devices[handle]
        if device.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)
        return device

    def xid(self, index: int, code: int) -> None:
        """Queue an XID critical error on device ``index`` (delivered by nvmlEventSetWait_v2)."""
        self._events.append(SimpleNamespace(device=index, eventType=XID_CRITICAL, eventData=code))

    # -- the nvidia-ml-py functions NvmlGpus calls ------------------------------------------

    def nvmlInit(self) -> None:
        if not self.library:
            raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetIndex(self, handle: int) -> int:
        return handle

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self._dev(handle).name

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        d = self._dev(handle)
        return SimpleNamespace(total=d.total, used=d.used, free=d.total - d.used)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=self._dev(handle).util, memory=0)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == 0
        return self._dev(handle).temperature

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return self._dev(handle).power_mw

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: int) -> int:
        return self._dev(handle).reasons

    def nvmlDeviceGetTotalEccErrors(self, handle: int, error_type: int, counter_type: int) -> int:
        d = self._dev(handle)
        assert (error_type, counter_type) == (1, 0)  # uncorrected, volatile
        if not d.ecc_supported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return d.ecc_uncorrected

    def nvmlDeviceGetRemappedRows(self, handle: int) -> tuple[int, int, int, int]:
        return self._dev(handle).remapped

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=1 << 30) for pid in self._dev(handle).pids]

    def nvmlEventSetCreate(self) -> str:
        return "event-set"

    def nvmlDeviceGetSupportedEventTypes(self, handle: int) -> int:
        return XID_CRITICAL | DOUBLE_BIT_ECC | 0x1

    def nvmlDeviceRegisterEvents(self, handle: int, kinds: int, event_set: str) -> None:
        assert event_set == "event-set"
        self.registered[handle] = kinds

    def nvmlEventSetWait_v2(self, event_set: str, timeout_ms: int) -> SimpleNamespace:
        self.calls.append(f"wait:{timeout_ms}")
        if not self._events:
            raise NVMLError(NVML_ERROR_TIMEOUT)
        return self._events.pop(0)

    def nvmlEventSetFree(self, event_set: str) -> None:
        self.calls.append("free")
