"""``peft-notify run --output-dir``: the wrapper samples its child's process tree (real processes, real socket)."""

from __future__ import annotations

from pathlib import Path

from peft_notify import wire
from tests.cli.test_run import Run

# The child holds ~64 MiB and starts a grandchild that holds ~32 MiB: both are the job's tree.
TREE = """
import subprocess, sys, time
sys.stdin.readline()
block = bytearray(64 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
child = subprocess.Popen([sys.executable, "-c",
    "b = bytearray(32 << 20)\\nfor i in range(0, len(b), 4096): b[i] = 1\\nimport time; time.sleep(3.5)"])
time.sleep(3.5)
child.wait()
"""


def test_run_samples_the_childs_tree_and_the_output_dir(tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "checkpoint-10").mkdir()
    (out / "checkpoint-10" / "model.safetensors").write_bytes(b"\1" * 300_000)
    run = Run(tmp_path, TREE, "--output-dir", str(out))
    code, _, err = run.go()
    assert code == 0, err
    [hello] = [m.data for m in run.messages if isinstance(m.data, wire.Hello)][-1:]
    assert "disk" in hello.resources
    samples = run.bodies(wire.Resource)
    assert samples, "no resource sample while the child ran"
    biggest = max(s.host.rss or 0 for s in samples if s.host is not None)
    assert biggest >= 96 << 20  # child + grandchild, not the wrapper's own memory alone
    disk = samples[-1].disk
    assert disk is not None
    assert disk.path == str(out)
    assert disk.next_checkpoint is not None
    assert disk.next_checkpoint >= 300_000  # the checkpoint on disk is the estimate
    statuses = [i for i, m in enumerate(run.messages) if isinstance(m.data, wire.Status) and m.data.state.finished]
    assert statuses
    assert not any(isinstance(m.data, wire.Resource) for m in run.messages[statuses[-1] :])
