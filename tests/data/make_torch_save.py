"""Writes tests/data/torch_save.pt (a DiT train.py-style checkpoint) and what PyTorch reads
back from it (torch_save_expected.npz). Run with PyTorch installed; the suite needs neither.

    python tests/data/make_torch_save.py tests/data/torch_save.pt \
        tests/data/torch_save_expected.npz
"""

import argparse
import collections
import sys

import numpy as np
import torch


def as_numpy(tensor):
    tensor = tensor.detach()
    return (tensor.float() if tensor.is_floating_point() else tensor).numpy()


def main(checkpoint_path: str, expected_path: str) -> None:
    torch.manual_seed(0)
    base = torch.randn(4, 6)
    model = collections.OrderedDict(
        weight=torch.nn.Parameter(torch.randn(3, 5)),
        transposed=base.t(),  # non-contiguous strides
        row_slice=base[1:3],  # a storage offset into storage shared with `transposed`
        half=torch.randn(2, 3).half(),
        bf16=torch.randn(5).bfloat16(),
        double=torch.randn(2, 2).double(),
        counter=torch.tensor(7),
        mask=torch.tensor([True, False, True]),
        ints=torch.arange(6, dtype=torch.int32).reshape(2, 3),
        empty=torch.zeros(0, 4),
    )
    ema = collections.OrderedDict(
        (k, v.detach().clone() + 1 if v.is_floating_point() else v) for k, v in model.items()
    )
    optimizer = torch.optim.AdamW([model["weight"]], lr=1e-4)
    model["weight"].sum().backward()
    optimizer.step()
    args = argparse.Namespace(model="DiT-XL/2", image_size=256)
    torch.save(
        {"model": model, "ema": ema, "opt": optimizer.state_dict(), "args": args},
        checkpoint_path,
    )
    np.savez(
        expected_path,
        **{f"model/{k}": as_numpy(v) for k, v in model.items()},
        **{f"ema/{k}": as_numpy(v) for k, v in ema.items()},
        opt_exp_avg=as_numpy(optimizer.state_dict()["state"][0]["exp_avg"]),
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
