"""PyTorch peer of `benchmarks/vs_pytorch.py`: timm's ViT trained with timm's AdamW + clipping.

Runs in benchmarks/peers/.venv (never in the project's environment) as a worker driven over
stdin/stdout, one JSON object per line, so that the caller can interleave its timings with
attnzoo's on the same cores:

    {"cmd": "setup", "model": {...}, "batches": "FILE.npz", "lr": .., "weight_decay": ..,
     "clip_norm": ..}                          -> {"params": N, "threads": T, "torch": V}
    {"cmd": "steps", "n": N}                   -> {"seconds": S}   (N train steps, timed)
    {"cmd": "matmul", "n": N}                  -> {"flops": F}     (best f32 N x N matmul rate)
    {"cmd": "dot", "equation": E, "lhs": SHAPE, "rhs": SHAPE}
                                               -> {"seconds": S}   (median torch.einsum time)
    {"cmd": "quit"}

The model is timm's unmodified `VisionTransformer`. PyPI's torchvision wheels here are CUDA
builds that fail to load beside the CPU torch, while timm imports torchvision names at
import time (datasets, transforms, `FrozenBatchNorm2d`) that its ViT never uses: those
imports are served with stand-ins that fail if ever called.
"""

import importlib.abc
import importlib.machinery
import json
import sys
import time
import types

import numpy as np
import torch
import torch.nn.functional as F


class _Unavailable(type):
    """Stand-in for any torchvision name: a class whose attributes are stand-ins too and
    which fails when instantiated."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Unavailable(name, (), {})

    def __call__(cls, *args, **kwargs):
        raise RuntimeError(f"torchvision is unavailable in the peer environment ({cls.__name__})")


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Unavailable(name, (), {})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `torchvision` and its submodules as `_StubModule`s."""

    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def _stub_torchvision() -> None:
    """Serves torchvision imports with stand-ins when the real one does not import."""
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.meta_path.insert(0, _StubFinder())


_stub_torchvision()
from timm.models.vision_transformer import VisionTransformer  # noqa: E402
from timm.optim import create_optimizer_v2  # noqa: E402


class Peer:
    def setup(self, model: dict, batches: str, lr: float, weight_decay: float, clip_norm: float):
        torch.manual_seed(0)
        self.model = VisionTransformer(
            img_size=model["image_size"],
            patch_size=model["patch_size"],
            in_chans=model["in_channels"],
            num_classes=model["num_classes"],
            embed_dim=model["width"],
            depth=model["depth"],
            num_heads=model["num_heads"],
            mlp_ratio=model["mlp_dim"] / model["width"],
            class_token=False,
            global_pool="avg",
            fc_norm=False,  # final LayerNorm on the tokens, then the mean: as attnzoo's "gap"
        )
        self.model.train()
        # timm's train.py optimizer: AdamW, no weight decay on biases and norms (1-D params).
        self.opt = create_optimizer_v2(self.model, "adamw", lr=lr, weight_decay=weight_decay)
        self.clip_norm = clip_norm
        data = np.load(batches)
        images = torch.from_numpy(data["image"]).permute(0, 1, 4, 2, 3)  # [n, b, C, H, W]
        self.images = [x.contiguous() for x in images]
        self.labels = [torch.from_numpy(y).long() for y in data["label"]]
        self.i = 0
        params = sum(p.numel() for p in self.model.parameters())
        return {"params": params, "threads": torch.get_num_threads(), "torch": torch.__version__}

    def step(self) -> None:
        x, y = self.images[self.i % len(self.images)], self.labels[self.i % len(self.labels)]
        self.i += 1
        loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)
        self.opt.step()

    def steps(self, n: int) -> dict:
        start = time.perf_counter()
        for _ in range(n):
            self.step()
        return {"seconds": time.perf_counter() - start}

    def matmul(self, n: int, repeats: int = 5) -> dict:
        a = torch.ones(n, n)
        a @ a
        best = 0.0
        for _ in range(repeats):
            start = time.perf_counter()
            a @ a
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
        return {"flops": best}

    def dot(self, equation: str, lhs: list, rhs: list, repeats: int = 7) -> dict:
        a, b = torch.randn(*lhs), torch.randn(*rhs)
        torch.einsum(equation, a, b), torch.einsum(equation, a, b)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.einsum(equation, a, b)
            times.append(time.perf_counter() - start)
        return {"seconds": float(np.median(times))}


def main() -> None:
    peer = Peer()
    for line in sys.stdin:
        request = json.loads(line)
        cmd = request.pop("cmd")
        if cmd == "quit":
            break
        reply = getattr(peer, cmd)(**request)
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
