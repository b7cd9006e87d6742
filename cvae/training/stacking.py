"""Training several models of one architecture at once, measured: stacked in one process, or side by side.

Two ways to keep a machine busier than one small model at batch 256 can:

- stacked: K models as one, their parameters stacked along a new first axis (`torch.func.stack_module_state`) and
  the step vectorised over it (`torch.func.vmap`), each model with its own initialisation, batch, dropout and noise,
  its own gradient clipping and Adam state (`StackedModels`). Where one model leaves a GPU nearly idle this is where
  the gain would be;
- side by side: one process per core, each training its own model on one thread (`cvae.training.run_pool`, what the study
  uses on a CPU).

`measure_together` times both against one model alone on every thread, in one run, on random images of the data's
shape (throughput does not depend on the pixel values), in the config's memory layout (the stacked models in NCHW,
which vmap needs): `python -m cvae bench --json` reports its ratios.
"""

from __future__ import annotations

import copy
import multiprocessing
import statistics
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from cvae.core.config import Config, make_config
from cvae.core.labels import NUM_CLASSES, NUM_MODALITIES
from cvae.core.loss import loss_terms
from cvae.core.model import CVAE

BATCH_SIZE = 256
STACKED_MODELS = 4  # K of the stacked measurement


class StackedModels:
    """K CVAEs of one config trained as one: `step(images (K,B,1,28,28), labels (K,B), modalities (K,B))` is one
    optimizer step of every model on its own batch; returns the K totals (K,)."""

    def __init__(self, config: Config, seeds: list[int], amp_dtype: torch.dtype | None = None) -> None:
        config = config.replace(channels_last=False)
        models = []
        for seed in seeds:
            torch.manual_seed(seed)
            models.append(CVAE(config))
        self.config, self.amp_dtype = config, amp_dtype
        params, self.buffers = stack_module_state(models)
        self.frozen = {name: value[0] for name, value in params.items() if name.startswith("perceptual.")}
        self.params = {name: value for name, value in params.items() if not name.startswith("perceptual.")}
        self.template = copy.deepcopy(models[0]).to("meta")
        self.perceptual = models[0].perceptual
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=config.lr, weight_decay=config.weight_decay)
        self._loss = vmap(self._one_model_loss, randomness="different")

    def _one_model_loss(self, params, buffers, images, labels, modalities):
        output = functional_call(self.template, ({**params, **self.frozen}, buffers), (images, labels, modalities))
        terms = loss_terms(output, images, labels, modalities, self.perceptual, self.config, self.config.beta_max)
        return terms["total"]

    def step(self, images: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
        """One Adam step of each model on its batch, its gradient clipped to config.grad_clip by its own norm."""
        with torch.autocast(images.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            totals = self._loss(self.params, self.buffers, images, labels, modalities)
        self.optimizer.zero_grad(set_to_none=True)
        totals.sum().backward()  # the models share nothing, so each gets the gradient of its own loss
        squares = sum(p.grad.pow(2).flatten(1).sum(1) for p in self.params.values())
        scale = (self.config.grad_clip / (squares.sqrt() + 1e-6)).clamp(max=1.0)
        for p in self.params.values():
            p.grad.mul_(scale.view(-1, *[1] * (p.dim() - 1)))
        self.optimizer.step()
        return totals.detach()


def random_batches(count: int, models: int | None = None, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    """`count` random batches (images (B,1,28,28) in [0,1], labels, modalities), with a leading K axis if `models`."""
    generator = torch.Generator().manual_seed(seed)
    shape = (BATCH_SIZE,) if models is None else (models, BATCH_SIZE)
    return [(torch.rand(*shape, 1, 28, 28, generator=generator),
             torch.randint(0, NUM_CLASSES, shape, generator=generator),
             torch.randint(0, NUM_MODALITIES, shape, generator=generator)) for _ in range(count)]


def _alone_runner(config: Config, amp_dtype, steps: int):
    from cvae.training.epochs import build_optimizer, train_step

    torch.manual_seed(0)
    model = CVAE(config)
    batches = random_batches(steps)
    if config.channels_last:  # as the study's runs train
        model = model.to(memory_format=torch.channels_last)
        batches = [(images.contiguous(memory_format=torch.channels_last), *rest) for images, *rest in batches]
    optimizer, _ = build_optimizer(model, config.replace(fused_adam=False))

    def run() -> float:  # samples/s over `steps` steps
        tick = time.perf_counter()
        for batch in batches:
            train_step(model, optimizer, batch, config, config.beta_max, amp_dtype)
        return steps * BATCH_SIZE / (time.perf_counter() - tick)
    run()  # warm-up
    return run


def _stacked_runner(config: Config, amp_dtype, steps: int, models: int):
    stacked = StackedModels(config, list(range(models)), amp_dtype)
    batches = random_batches(steps, models)

    def run() -> float:
        tick = time.perf_counter()
        for batch in batches:
            stacked.step(*batch)
        return steps * BATCH_SIZE * models / (time.perf_counter() - tick)
    run()
    return run


def _side_by_side_worker(config_dict: dict, amp_dtype, steps: int, repeats: int, barrier, results) -> None:
    torch.set_num_threads(1)
    run = _alone_runner(Config.from_dict(config_dict), amp_dtype, steps)
    rates = []
    for _ in range(repeats):
        barrier.wait()  # every worker times the same stretch of wall time
        rates.append(run())
    results.put(rates)


def side_by_side_rate(config: Config, amp_dtype, steps: int, repeats: int, workers: int) -> list[float]:
    """Samples/s of `workers` one-thread processes training one model each at the same time, summed, per repeat."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [context.Process(target=_side_by_side_worker,
                                 args=(config.to_dict(), amp_dtype, steps, repeats, barrier, results))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    per_worker = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    return [sum(rates) for rates in zip(*per_worker)]


def measure_together(config: Config, amp_dtype: torch.dtype | None, steps: int = 8, repeats: int = 3,
                     models: int = STACKED_MODELS, workers: int | None = None) -> dict:
    """Samples/s of one model alone (all threads), of `models` stacked (`StackedModels`) and of `workers` one-thread
    processes side by side; medians over `repeats` and the two ratios to the model alone."""
    workers = workers or torch.get_num_threads()
    config = config.replace(batch_size=BATCH_SIZE)
    alone, stacked = _alone_runner(config, amp_dtype, steps), _stacked_runner(config, amp_dtype, steps, models)
    rates: dict[str, list[float]] = {"alone": [], "stacked": []}
    for _ in range(repeats):  # interleaved, so that both see the same machine load
        rates["alone"].append(alone())
        rates["stacked"].append(stacked())
    side = side_by_side_rate(config, amp_dtype, steps, repeats, workers) if workers > 1 else rates["alone"]
    rates["alone"].append(alone())  # once more after the processes, against drift
    median = {key: statistics.median(values) for key, values in rates.items()}
    return {
        "alone_samples_per_s": median["alone"], "stacked_models": models,
        "stacked_samples_per_s": median["stacked"], "stacked_speedup": median["stacked"] / median["alone"],
        "side_by_side_workers": workers, "side_by_side_samples_per_s": statistics.median(side),
        "side_by_side_speedup": statistics.median(side) / median["alone"],
        "together_rounds": {**rates, "side_by_side": side},
    }


def together_result(profile: str, overrides: dict, result: dict) -> dict:
    """`cvae.training.stacking.measure_together` on a profile's config, with the bf16 utilization of the side-by-side runs."""
    from cvae.training.precision import autocast_dtype, select_device

    config = make_config(profile, overrides)
    together = measure_together(config, autocast_dtype(config, select_device(config.device)))
    achieved = together["side_by_side_samples_per_s"] * result["flops_per_sample"] / 1e9
    together["side_by_side_utilization_vs_bf16_matmul"] = achieved / result["matmul_bf16_gflops"]
    return together


__all__ = ["together_result", "StackedModels", "STACKED_MODELS", "random_batches", "side_by_side_rate", "measure_together"]
