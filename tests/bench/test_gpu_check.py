"""bench/gpu_check.py's logic, run here against stand-ins: no GPU exists on the test machines.

``torch`` is a small fake whose allocations add to the used memory of a ``FakeNvml`` device
(tests/emitter/nvml_fake.py), installed as the ``pynvml`` module; everything else is real: the
job server, the resource sampler, the WebSocket, the engine's GPU-memory rule. The real run is
for a machine with an NVIDIA GPU (docs/resources.md).
"""

from __future__ import annotations

import json
import os
import sys
import types
from typing import Any

import pytest

from tests.emitter.nvml_fake import FakeDevice, FakeNvml

GIB = 1 << 30


def fake_torch(device: FakeDevice) -> types.ModuleType:
    torch: Any = types.ModuleType("torch")

    class OutOfMemoryError(RuntimeError):
        pass

    def empty(size: int, dtype: object = None, device_: object = None, **_: object) -> object:
        if device.used + size > device.total:
            raise OutOfMemoryError("CUDA out of memory")
        device.used += size
        return object()

    torch.uint8 = "uint8"
    torch.device = lambda name: name
    torch.empty = lambda size, dtype=None, device=None: empty(size, dtype, device)
    torch.cuda = types.SimpleNamespace(
        is_available=lambda: True,
        set_device=lambda d: None,
        mem_get_info=lambda d: (device.total - device.used, device.total),
        OutOfMemoryError=OutOfMemoryError,
    )
    return torch


def test_the_gpu_check_grows_memory_until_the_warning_fires(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    device = FakeDevice(total=80 * GIB, used=1 * GIB, pids=[os.getpid()])
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([device]))
    monkeypatch.setitem(sys.modules, "torch", fake_torch(device))
    monkeypatch.setenv("PEFT_NOTIFY_RUNTIME_DIR", str(tmp_path / "rt"))
    monkeypatch.chdir(tmp_path)
    from bench import gpu_check

    assert gpu_check.main(["--for-s", "1", "--step-gib", "8", "--timeout", "60"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["nvml_saw_this_process"] is True
    assert report["warning"]["title"] == "gpu-check: GPU 0 close to out of memory"
    assert report["crossed"]["percent"] > 95
    assert report["seconds_from_crossing"] >= 1.0
    assert report["steps"]
