"""How much each weighted loss term weighs: its share of the total loss and of the gradient that trains the model.

The original's loss-weight table is missing, so the weights are this reproduction's; a rationale such as "MSE stays
the main likelihood term" is only true if the measured shares say so. `measure_balance` takes one fixed batch and
returns, per term, its weighted value and the norm of the gradient of that weighted value over every trainable
parameter, each also as a share of the sum over the terms. Training records it at the epochs `balance_epochs` names
(the start, the end of the KL warm-up, the epoch beta reaches beta_max, and the last epoch).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch

from cvae.core.config import Config
from cvae.core.loss import TERM_SHORT_NAMES, TERMS, loss_terms, term_weights
from cvae.training.runs import LOSS_BALANCE_FILE

BALANCE_BATCH = 256  # validation images the measurement uses (the first ones: fixed across epochs and runs)


def balance_epochs(config: Config) -> dict[int, str]:
    """{0-based epoch: moment} at which training measures the balance (epochs beyond the run are dropped)."""
    moments = {0: "start", config.beta_warmup_epochs: "end of warm-up",
               config.beta_warmup_epochs + config.beta_ramp_epochs: "beta reaches beta_max",
               config.epochs - 1: "last epoch"}
    return {epoch: moments[epoch] for epoch in sorted(moments) if 0 <= epoch < config.epochs}


def measure_balance(model, images: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor, config: Config,
                    beta: float, seed: int = 0) -> dict:
    """Per term: value (per image), weight, weighted value, its share of the sum of the weighted terms, the L2 norm of
    its weighted gradient over the trainable parameters and that norm's share of the summed norms. One batch
    (B,1,28,28) in [0,1], train mode (as in training), fixed noise; the model itself is not changed."""
    probe = copy.deepcopy(model).train()  # BatchNorm's running statistics of the real model stay untouched
    parameters = [p for p in probe.parameters() if p.requires_grad]
    with torch.random.fork_rng(devices=[images.device] if images.device.type == "cuda" else []):
        torch.manual_seed(seed)
        output = probe(images, labels, modalities)
    terms = loss_terms(output, images, labels, modalities, probe.perceptual, config, beta)
    weights = term_weights(config, float(beta))
    rows = {}
    for name in TERMS:
        weighted = weights[name] * terms[name]
        if weights[name] == 0:
            grad_norm = 0.0
        else:
            grads = torch.autograd.grad(weighted, parameters, retain_graph=True, allow_unused=True)
            grad_norm = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads if g is not None))
        rows[name] = {"value": float(terms[name].detach()), "weight": float(weights[name]),
                      "weighted": float(weighted.detach()),
                      "grad_norm": grad_norm}
    value_sum = sum(row["weighted"] for row in rows.values())
    grad_sum = sum(row["grad_norm"] for row in rows.values())
    for row in rows.values():
        row["share_of_loss"] = row["weighted"] / value_sum if value_sum else 0.0
        row["share_of_gradient"] = row["grad_norm"] / grad_sum if grad_sum else 0.0
    return rows





def read_balance(run_dir) -> dict:
    """The loss balance a run recorded (`loss_balance.json` in its folder): {epoch: {moment, epoch, beta, terms}}."""
    path = Path(run_dir) / LOSS_BALANCE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def shares_text(terms: dict, key: str) -> str:
    """'MSE 12%, L1 80%, ...' of one measurement, for `key` 'share_of_loss' or 'share_of_gradient'."""
    return ", ".join(f"{TERM_SHORT_NAMES[name]} {row[key]:.0%}" for name, row in terms.items())


def balance_sentence(balance: dict) -> str:
    """What the measured balance says, as sentences: the shares of the gradient at the first and the last
    measurement, and which term leads the gradient at the last one (epochs 1-based)."""
    if not balance:
        return "No loss balance was recorded for this run."
    records = [balance[key] for key in sorted(balance, key=int)]
    first, last = records[0], records[-1]
    leader = max(last["terms"], key=lambda name: last["terms"][name]["share_of_gradient"])
    return (f"At the start of epoch {first['epoch'] + 1} ({first['moment']}), the weighted terms' shares of the "
            f"gradient norm are {shares_text(first['terms'], 'share_of_gradient')}. At the start of epoch "
            f"{last['epoch'] + 1} ({last['moment']}), they are {shares_text(last['terms'], 'share_of_gradient')}, "
            f"and their shares of the loss are {shares_text(last['terms'], 'share_of_loss')}. The largest share of "
            f"the gradient then comes from {TERM_SHORT_NAMES[leader]} ({last['terms'][leader]['share_of_gradient']:.0%}).")


__all__ = ["measure_balance", "balance_epochs", "balance_sentence", "read_balance", "shares_text", "BALANCE_BATCH"]
