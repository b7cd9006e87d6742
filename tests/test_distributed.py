"""DDP helpers in one process, and a real two-process gloo run of the training loop under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from cvae.core.config import make_config
from cvae.core.model import CVAE
from cvae.training import distributed


def test_single_process_defaults():
    assert not distributed.is_distributed()
    assert distributed.rank() == 0 and distributed.world_size() == 1 and distributed.is_main_process()
    values = torch.tensor([1.0, 2.0])
    assert torch.equal(distributed.all_reduce_sum(values), torch.tensor([1.0, 2.0]))
    assert distributed.all_gather_strings("x") == ["x"]
    distributed.barrier()  # no-op


def test_backend_choice():
    assert distributed.backend_for("cpu") == "gloo"
    assert distributed.backend_for("cuda") == "nccl"


@pytest.mark.parametrize("n, shards", [(10, 1), (10, 2), (11, 2), (1000, 3)])
def test_shards_are_equal_disjoint_and_cover_all_but_the_remainder(n, shards):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    parts = [distributed.shard_indices(order, r, shards) for r in range(shards)]
    assert len({len(p) for p in parts}) == 1
    joined = torch.cat(parts)
    assert len(joined) == n // shards * shards and len(set(joined.tolist())) == len(joined)
    if shards == 1:
        assert torch.equal(parts[0], order)


def test_state_digest_sees_parameters_and_buffers():
    torch.manual_seed(0)
    model = CVAE(make_config("smoke"))
    digest = distributed.state_digest(model)
    assert len(digest) == 16 and digest == distributed.state_digest(model)
    model.encoder_convs[1].running_mean += 1e-3  # a BatchNorm buffer
    changed = distributed.state_digest(model)
    assert changed != digest
    with torch.no_grad():
        model.to_mu.weight[0, 0] += 1.0
    assert distributed.state_digest(model) != changed


@pytest.mark.slow
def test_two_gloo_ranks_train_identical_replicas_into_one_whole_run_folder(stand_in_dir, tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "CVAE_RUNS_DIR": str(runs), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "cvae", "train", "--profile", "smoke", "--data-dir", str(stand_in_dir),
               "--set", "epochs=2", "--set", "device=cpu"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_dir,) = list(runs.glob("run-*"))
    for name in ("config.json", "metrics.csv", "checkpoint_last.pt", "checkpoint_best.pt", "summary.json"):
        assert (run_dir / name).exists(), name
    assert not list(run_dir.glob(".*.tmp"))  # no half-written file from a second writer
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2
    digests = summary["rank_state_digests"]
    assert len(digests) == 2 and digests[0] == digests[1] and summary["replicas_identical"]
    # the saved weights are the replicas' weights
    checkpoint = torch.load(run_dir / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    model = CVAE(make_config("smoke"))
    model.load_state_dict(checkpoint["model"])
    assert distributed.state_digest(model) == digests[0]
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1]
    assert metrics.drop(columns=["lr", "beta"]).notna().all().all()
    assert metrics["train_total"].iloc[1] < metrics["train_total"].iloc[0]  # it learns
    # every rank trained on its half: 840 samples -> 2 x 420 per epoch, 2 steps of <= 256 per rank
    assert summary["sizes"]["train"] == 840
    print(f"two-rank gloo run: {seconds:.1f} s")
