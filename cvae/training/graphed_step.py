"""The whole training step as one CUDA graph: batch gather, forward, the six loss terms, backward, clipping, Adam.

On a GPU this model is too small to keep the device busy from Python: an eager step launches a few hundred kernels
of a few microseconds each, so the host, not the GPU, sets the pace. A captured graph launches them all at once.
The graph reads everything from tensors at fixed addresses: the batch's indices into the resident training split
(copied in before each replay), the KL weight (a device scalar set once per epoch), and it adds the batch's loss
terms to a device-side running sum, so an epoch needs one host synchronisation, at its end.

Used by `cvae.training.train` on a single CUDA device when `config.cuda_graphs` is on (not under DDP or torch.compile). The
first `WARMUP_STEPS` steps run eagerly on a side stream (cuDNN picks its algorithms, Adam creates its state), then
the step is captured; the epoch's last, smaller batch runs eagerly through the same code. The learning rate is baked
into the graph, so the graph is captured again whenever ReduceLROnPlateau changes it (a few times per run).
"""

from __future__ import annotations

import copy

import torch

from cvae.core.loss import TERMS, loss_terms
from cvae.data.loading import Split, model_input

WARMUP_STEPS = 3
SUM_KEYS = (*TERMS, "total")


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Switch an Adam optimizer to its capturable form in place: step counters on the device (float32)."""
    for group in optimizer.param_groups:
        group["capturable"] = True
    for state in optimizer.state.values():
        if "step" in state and torch.is_tensor(state["step"]):
            state["step"] = state["step"].to(device=device, dtype=torch.float32)


def portable_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's state_dict with capturable off and step counters on the CPU, so a checkpoint written on a GPU
    with CUDA graphs resumes anywhere (eagerly on a CPU too)."""
    state = optimizer.state_dict()
    if not any(group.get("capturable") for group in state["param_groups"]):
        return state
    state = copy.copy(state)
    state["param_groups"] = [{**group, "capturable": False} for group in state["param_groups"]]
    state["state"] = {key: {name: (value.detach().to("cpu", torch.float32) if name == "step" else value)
                            for name, value in entry.items()}
                      for key, entry in state["state"].items()}
    return state


def gather(split: Split, index: torch.Tensor, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images (B,1,28,28) float in [0,1], labels (B,), modalities (B,)) at `index` of a device-resident split."""
    images = model_input(split.images.index_select(0, index))
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, split.labels.index_select(0, index), split.modalities.index_select(0, index)


class GraphedTrainStep:
    """Trains epochs of a device-resident split with the step captured as a CUDA graph (see the module docstring)."""

    def __init__(self, model, optimizer: torch.optim.Optimizer, split: Split, config,
                 amp_dtype: torch.dtype | None) -> None:
        self.model, self.optimizer, self.split, self.config, self.amp_dtype = model, optimizer, split, config, amp_dtype
        self.device = split.images.device
        if self.device.type != "cuda":
            raise ValueError("GraphedTrainStep needs a split resident on a CUDA device")
        self.batch_size = config.batch_size
        self.index = torch.zeros(self.batch_size, dtype=torch.long, device=self.device)
        self.beta = torch.zeros((), dtype=torch.float32, device=self.device)
        self.sums = torch.zeros(len(SUM_KEYS), dtype=torch.float64, device=self.device)
        self.nonfinite = torch.zeros((), dtype=torch.float64, device=self.device)  # steps with a non-finite loss/grad
        self.graph: torch.cuda.CUDAGraph | None = None
        self.captured_lr: list[float] | None = None
        self.eager_steps_left = WARMUP_STEPS
        self.captures = 0
        make_capturable(optimizer, self.device)

    def _step(self, index: torch.Tensor, count: int) -> None:
        """One optimizer step on the samples at `index`; adds count x each loss term to `self.sums`."""
        images, labels, modalities = gather(self.split, index, self.config.channels_last)
        self.optimizer.zero_grad(set_to_none=False)  # the gradient buffers keep their addresses for the graph
        context = (torch.autocast("cuda", dtype=self.amp_dtype, cache_enabled=False) if self.amp_dtype is not None
                   else torch.autocast("cuda", enabled=False))
        with context:
            output = self.model(images, labels, modalities)
            terms = loss_terms(output, images, labels, modalities, self.model.perceptual, self.config, self.beta)
        terms["total"].backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.sums += torch.stack([terms[key].detach().double() for key in SUM_KEYS]) * count
        self.nonfinite += ~(torch.isfinite(norm) & torch.isfinite(terms["total"].detach()))

    def _capture(self) -> None:
        self.graph = None
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step(self.index, self.batch_size)
        self.graph = graph
        self.captured_lr = [float(group["lr"]) for group in self.optimizer.param_groups]
        self.captures += 1

    def _full_batch(self, index: torch.Tensor) -> None:
        if self.eager_steps_left > 0:  # warm-up: real training steps, run eagerly on a side stream
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                self._step(index, self.batch_size)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            self.eager_steps_left -= 1
            return
        if self.graph is None or self.captured_lr != [float(g["lr"]) for g in self.optimizer.param_groups]:
            self._capture()  # capturing records the step without running it
        self.index.copy_(index)
        self.graph.replay()

    def train_epoch(self, order: torch.Tensor, beta: float, progress=None) -> torch.Tensor:
        """Train one pass over `order` (device indices into the split) at KL weight `beta`; returns the (7,) float64
        device tensor of loss-term sums over the samples (order of SUM_KEYS), without synchronising. `self.nonfinite`
        then counts the epoch's steps whose loss or gradient norm was not finite."""
        self.model.train()
        self.beta.fill_(float(beta))
        self.sums.zero_()
        self.nonfinite.zero_()
        for start in range(0, len(order), self.batch_size):
            index = order[start: start + self.batch_size]
            if len(index) == self.batch_size:
                self._full_batch(index)
            else:  # the epoch's last, smaller batch: same code, eagerly
                self._step(index, len(index))
            if progress is not None:
                progress.update(1)
        return self.sums.clone()


__all__ = ["GraphedTrainStep", "make_capturable", "portable_optimizer_state", "gather", "SUM_KEYS", "WARMUP_STEPS"]
