"""The CUDA-graph training step: checkpoints it writes resume anywhere; on a GPU it trains like the eager loop.

The GPU test runs only where CUDA is available (never in CI); results/gpu_study.json records the one measured run.
"""

from __future__ import annotations

import pytest
import torch

from cvae.core.config import make_config
from cvae.core.model import CVAE
from cvae.data.loading import Split
from cvae.training.epochs import build_optimizer, train_step
from cvae.training.graphed_step import GraphedTrainStep, make_capturable, portable_optimizer_state
from cvae.training.train import uses_cuda_graphs


def _batch(n: int = 8, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 21, (n,), generator=generator)
    return torch.rand(n, 1, 28, 28, generator=generator), labels, torch.zeros(n, dtype=torch.long)


def test_portable_state_turns_capturable_off_and_puts_step_counters_on_the_cpu():
    config = make_config("smoke", {"fused_adam": False})
    model = CVAE(config)
    optimizer, _ = build_optimizer(model, config)
    train_step(model, optimizer, _batch(), config, beta=0.0)
    make_capturable(optimizer, torch.device("cpu"))  # what a GPU run's optimizer looks like, minus the device
    assert all(group["capturable"] for group in optimizer.param_groups)
    state = portable_optimizer_state(optimizer)
    assert [group["capturable"] for group in state["param_groups"]] == [False]
    steps = [entry["step"] for entry in state["state"].values()]
    assert steps and all(step.device.type == "cpu" and step.dtype == torch.float32 and float(step) == 1.0
                         for step in steps)
    assert optimizer.param_groups[0]["capturable"]  # the live optimizer is left as it was

    fresh = CVAE(config)
    fresh_optimizer, _ = build_optimizer(fresh, config)
    fresh_optimizer.load_state_dict(state)
    train_step(fresh, fresh_optimizer, _batch(seed=1), config, beta=0.0)  # resumes eagerly on the CPU
    assert float(next(iter(fresh_optimizer.state.values()))["step"]) == 2.0


def test_cuda_graphs_are_used_only_on_one_cuda_device_without_compile():
    config = make_config("smoke")
    assert config.cuda_graphs  # the default: it only ever applies on CUDA
    assert not uses_cuda_graphs(config, torch.device("cpu"))
    assert uses_cuda_graphs(config, torch.device("cuda"))
    assert not uses_cuda_graphs(config.replace(compile="reduce-overhead"), torch.device("cuda"))
    assert not uses_cuda_graphs(config.replace(cuda_graphs=False), torch.device("cuda"))


def test_graphed_step_refuses_a_split_that_is_not_on_a_gpu():
    config = make_config("smoke")
    model = CVAE(config)
    optimizer, _ = build_optimizer(model, config)
    split = Split(torch.zeros(4, 28, 28, dtype=torch.uint8), torch.zeros(4, dtype=torch.long),
                  torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedTrainStep(model, optimizer, split, config, None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_graph_replay_trains_like_the_eager_loop(stand_in_dir, tmp_path, monkeypatch):
    from cvae.training.runs import load_run
    from cvae.training.train import train

    results = {}
    for graphs in (False, True):
        monkeypatch.setenv("CVAE_RUNS_DIR", str(tmp_path / f"runs-{graphs}"))
        config = make_config("smoke", {"data_dir": str(stand_in_dir), "device": "cuda", "cuda_graphs": graphs,
                                       "epochs": 3, "batch_size": 64})
        run = load_run(train(config, progress=False))
        assert run.summary["cuda_graphs"] is graphs
        results[graphs] = run.metrics["train_total"].to_numpy()
    # different random streams (the graph draws its noise from captured kernels), same optimisation
    assert abs(results[True] - results[False]).max() / abs(results[False]).max() < 0.05
