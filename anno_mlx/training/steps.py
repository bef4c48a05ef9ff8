"""One optimisation step per backend, behind `Step`: AdamW with linear warm-up and decay
(`learning_rate`) and gradient clipping, on the MLX model itself (`MLXStep`) or on its PyTorch
mirror from the family's `torch_model.py` (`TorchStep`: on CUDA in bfloat16 autocast with float32
weights). Either way the MLX model is what gets saved, so the output folder is the same."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from ..models import torch_mirror
from ..runners import Backend, Runner, runner_class
from .data import Objective
from .settings import TrainSettings


class Step(Protocol):
    """What the loop needs of a backend: a step, a runner to evaluate with, seeds for dropout, the
    MLX model brought up to date before a save, and the state a resumed run reloads."""

    width_multiple: int  # batches are padded to a multiple of this width

    def __call__(self, ids: np.ndarray, mask: np.ndarray, targets: np.ndarray) -> float: ...

    def runner(self) -> Runner: ...

    def reseed(self, seed: int) -> None: ...

    def sync(self) -> None: ...

    def save_state(self, folder: Path) -> None: ...

    def load_state(self, folder: Path) -> None: ...


def make_step(
    backend: Backend, net: nn.Module, settings: TrainSettings, total: int, objective: Objective
) -> Step:
    """The step for `backend`, over `total` steps in all (the learning-rate schedule's length)."""
    if backend.name == "torch":
        return TorchStep(net, settings, total, backend.device, objective)
    return MLXStep(net, settings, total, objective, backend.device)


def learning_rate(step: int, settings: TrainSettings, total: int) -> float:
    """Linear warm-up from 0 over `settings.warmup` of the steps, then linear decay to 0."""
    warmup = max(int(settings.warmup * total), 1)
    if step < warmup:
        return settings.learning_rate * step / warmup
    return settings.learning_rate * max(total - step, 0) / max(total - warmup, 1)


class MLXStep:
    """AdamW steps on the MLX model itself."""

    width_multiple = 1

    def __init__(
        self, net: nn.Module, settings: TrainSettings, total: int, objective: Objective, device: str = "cpu"
    ):
        self.net = net
        self.device = mx.Device(mx.gpu if device == "gpu" else mx.cpu)
        self.settings = settings
        self.optimizer = optim.AdamW(
            learning_rate=lambda step: mx.array(learning_rate(int(step), settings, total), dtype=mx.float32),
            weight_decay=settings.weight_decay,
            bias_correction=True,  # standard AdamW, as PyTorch has it
        )
        self.value_and_grad = nn.value_and_grad(
            net, lambda model, ids, mask, targets: objective.loss(model(ids, mask), targets)
        )

    def __call__(self, ids: np.ndarray, mask: np.ndarray, targets: np.ndarray) -> float:
        self.net.train()  # dropout on
        with mx.stream(self.device):
            loss, grads = self.value_and_grad(self.net, mx.array(ids), mx.array(mask), mx.array(targets))
            grads, _ = optim.clip_grad_norm(grads, self.settings.max_grad_norm)
            self.optimizer.update(self.net, grads)
            mx.eval(loss, self.net.parameters(), self.optimizer.state)
        return loss.item()

    def runner(self) -> Runner:
        """The model to evaluate with (dropout off), on the training device."""
        return runner_class("mlx")(self.net.eval(), self.device.type.name)

    def reseed(self, seed: int) -> None:
        mx.random.seed(seed)

    def sync(self) -> None:
        """Bring the MLX model up to date (it is the one trained)."""

    def save_state(self, folder: Path) -> None:
        arrays = {f"model.{k}": v for k, v in tree_flatten(self.net.parameters())}
        arrays.update(
            {f"optimizer.{k}": v for k, v in tree_flatten(self.optimizer.state) if isinstance(v, mx.array)}
        )
        tmp = folder / "state.safetensors.tmp.safetensors"
        mx.save_safetensors(str(tmp), arrays)
        tmp.replace(folder / "state.safetensors")

    def load_state(self, folder: Path) -> None:
        arrays = mx.load(str(folder / "state.safetensors"))
        self.net.load_weights(
            [(k[len("model.") :], v) for k, v in arrays.items() if k.startswith("model.")], strict=True
        )
        self.optimizer.init(self.net.trainable_parameters())
        self.optimizer.state = tree_unflatten(
            [(k[len("optimizer.") :], v) for k, v in arrays.items() if k.startswith("optimizer.")]
        )


class TorchStep:
    """AdamW steps on the PyTorch mirror of the MLX model (same weights, same math)."""

    def __init__(
        self, net: nn.Module, settings: TrainSettings, total: int, device: str, objective: Objective
    ):
        import torch

        self.torch = torch
        self.net = net
        self.settings = settings
        self.device = device
        self.objective = objective
        self.mirror = torch_mirror(net, torch.float32, device).train()
        self.optimizer = torch.optim.AdamW(
            self.mirror.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay, eps=1e-8
        )
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: learning_rate(step, settings, total) / settings.learning_rate
        )
        # bfloat16 matrix work on CUDA, float32 weights and optimizer state.
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else None
        # On CUDA each new batch width costs a one-off setup (the first epoch ran ~5x slower than
        # the next ones); widths rounded to 64 leave a handful of shapes.
        self.width_multiple = 64 if device == "cuda" else 1

    def __call__(self, ids: np.ndarray, mask: np.ndarray, targets: np.ndarray) -> float:
        torch = self.torch
        ids_t, mask_t = (torch.from_numpy(a.astype(np.int64)).to(self.device) for a in (ids, mask))
        targets_t = torch.from_numpy(targets).to(self.device)
        self.mirror.train()
        if self.autocast is not None:
            with self.autocast:
                logits = self.mirror(ids_t, mask_t)
        else:
            logits = self.mirror(ids_t, mask_t)
        loss = self.objective.torch_loss(logits, targets_t)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.mirror.parameters(), self.settings.max_grad_norm)
        self.optimizer.step()
        self.schedule.step()
        return float(loss.item())

    def runner(self) -> Runner:
        """The PyTorch mirror, to evaluate with (dropout off)."""
        return runner_class("torch")(self.mirror.eval())

    def reseed(self, seed: int) -> None:
        self.torch.manual_seed(seed)

    def sync(self) -> None:
        """Copy the trained weights into the MLX model, which is what gets saved."""
        own = dict(
            tree_flatten(self.net.parameters())
        )  # a tied decoder is the embeddings, not a weight of its own
        state = {k: v for k, v in self.mirror.state_dict().items() if k in own}
        self.net.load_weights(
            [(k, mx.array(v.detach().float().cpu().numpy())) for k, v in state.items()], strict=True
        )

    def save_state(self, folder: Path) -> None:
        tmp = folder / "state.pt.tmp"
        self.torch.save(
            {
                "model": self.mirror.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
            },
            tmp,
        )
        tmp.replace(folder / "state.pt")

    def load_state(self, folder: Path) -> None:
        state = self.torch.load(folder / "state.pt", map_location=self.device, weights_only=True)
        self.mirror.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.sync()
