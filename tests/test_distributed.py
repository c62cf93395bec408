"""Training under a multi-process launcher: two CPU processes (DDP over gloo) train one checkpoint."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from core.data import load_dataset
from core.train import load_backbone
from tests.conftest import write_atomic


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_cpu_processes_train_and_save_one_checkpoint(tmp_path):
    data = write_atomic(tmp_path / "tiny")
    out = tmp_path / "out"
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                           "--master_port", str(_free_port()), "-m", "core", "train", "--model", "sasrec",
                           "--data", str(data), "--out", str(out), "--epochs", "3", "--quiet"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("saved to") == 1
    config = json.loads((out / "sasrec" / "config.json").read_text())
    assert config["processes"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["sasrec"]
    model, _ = load_backbone(out, "sasrec", load_dataset(data))
    assert model.item_vectors().shape[0] == 31
