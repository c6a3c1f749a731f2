"""Regenerate tests/data/lmc_memory_tiny.npz from the authors' LMC-Memory code (see README).

Usage: python tests/data/make_lmc_golden.py /path/to/sangmin-git/LMC-Memory [--zero-grad-only]
Runs their ``model.Predictor`` (unmodified, imported from that checkout) on CPU with the weights
of ``golden_state_dict`` and writes inputs and outputs; also checks our lmc-convlstm against them.
"""

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def load_recipe():
    spec = importlib.util.spec_from_file_location("lmc_helpers", HERE.parent / "lmc_helpers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ref = sys.argv[1]
    sys.path.insert(0, ref)
    sys.path.insert(0, str(ROOT))
    from model import Predictor  # the authors' code

    from swinlstm.models import build_model

    g = load_recipe()
    sd = g.golden_state_dict()
    short_u8, long_u8 = g.golden_inputs()
    out = {"input": short_u8, "long_input": long_u8, "checksums": g.checksums(sd)}
    short, long = short_u8.astype(np.float32) / 255, long_u8.astype(np.float32) / 255
    for dataset, sigmoid in (("movingmnist", False), ("kth", True)):
        theirs = Predictor(argparse.Namespace(dataset=dataset, memory_size=g.MEMORY_SIZE)).eval()
        theirs.load_state_dict(sd)
        ours = build_model(
            "lmc-convlstm",
            img_size=g.IMG,
            in_chans=1,
            memory_size=g.MEMORY_SIZE,
            final_sigmoid=sigmoid,
        ).eval()
        ours.load_state_dict(sd)
        for phase in (1, 2):
            with torch.no_grad():
                y = theirs(torch.from_numpy(short), torch.from_numpy(long), g.OUT_LEN, phase)
                z = ours(torch.from_numpy(short), g.OUT_LEN, torch.from_numpy(long), phase)
            print(dataset, phase, tuple(y.shape), "max abs diff", float((y - z).abs().max()))
            with torch.no_grad():  # how much the memory read-out matters here
                ours.memory.memory_w.mul_(-1)
                w = ours(torch.from_numpy(short), g.OUT_LEN, torch.from_numpy(long), phase)
                ours.memory.memory_w.mul_(-1)
            print(
                "  output std",
                float(y.std()),
                "effect of negating the slots",
                float((w - y).abs().max()),
            )
            out[f"output_{dataset}_phase{phase}"] = y.numpy()
    result = train_iteration(Predictor, g, sd, short, long)
    out.update(train_losses=result["train_losses"], train_fingerprints=result["train_fingerprints"])
    print(
        "phase 1 vs 2:",
        float(np.abs(out["output_movingmnist_phase1"] - out["output_movingmnist_phase2"]).max()),
    )
    np.savez_compressed(HERE / "lmc_memory_tiny.npz", **out)


def train_iteration(Predictor, g, sd, short, long, iterations=1, set_to_none=True) -> dict:
    """``iterations`` iterations of the procedure of the authors' train.py (their script parses
    flags and loads LPIPS when imported, so the procedure is restated here): for phase 1 then
    phase 2, set ``memory_w.requires_grad`` (True, then False), predict, L1 + MSE against
    ``long[:, -OUT_LEN:]``, ``zero_grad(set_to_none=...)``, backward, Adam (lr 2e-4) step.

    ``set_to_none=True`` is ``zero_grad()`` on PyTorch >= 2; ``False`` is what it did on the
    PyTorch 1.6 they trained with (gradients filled with zeros, so Adam still steps every
    parameter that ever had a gradient). Returns the losses, per-key fingerprints of the weights
    afterwards and Adam's step count per key (0: never stepped)."""
    net = Predictor(argparse.Namespace(dataset="movingmnist", memory_size=g.MEMORY_SIZE))
    net.load_state_dict(sd)
    net.train()
    adam = torch.optim.Adam(net.parameters(), lr=2e-4)
    short, long = torch.from_numpy(short), torch.from_numpy(long)
    target = long[:, -g.OUT_LEN :]
    losses = []
    for _ in range(iterations):
        for phase, clip in ((1, long), (2, None)):
            net.memory.memory_w.requires_grad = phase == 1
            pred = net(short, clip, g.OUT_LEN, phase=phase)
            loss = torch.nn.functional.l1_loss(pred, target) + torch.nn.functional.mse_loss(
                pred, target
            )
            adam.zero_grad(set_to_none=set_to_none)
            loss.backward()
            adam.step()
            losses.append(loss.item())
    names = {id(p): k for k, p in net.named_parameters()}
    steps = {names[id(p)]: float(st["step"]) for p, st in adam.state.items()}
    print("train losses", losses)
    return {
        "train_losses": np.array(losses),
        "train_fingerprints": g.fingerprints(net.state_dict()),
        "train_steps": np.array([steps.get(k, 0.0) for k in sorted(net.state_dict())]),
    }


def zero_grad_modes(ref: str) -> None:
    """tests/data/lmc_memory_zero_grad.npz: two iterations with each ``zero_grad`` mode."""
    sys.path.insert(0, ref)
    from model import Predictor  # the authors' code

    g = load_recipe()
    sd = g.golden_state_dict()
    short_u8, long_u8 = g.golden_inputs()
    short, long = short_u8.astype(np.float32) / 255, long_u8.astype(np.float32) / 255
    out = {}
    for mode, set_to_none in (("zeros", False), ("none", True)):
        result = train_iteration(Predictor, g, sd, short, long, 2, set_to_none)
        out.update({f"{k}_{mode}": v for k, v in result.items()})
    np.savez_compressed(HERE / "lmc_memory_zero_grad.npz", **out)


if __name__ == "__main__":
    if "--zero-grad-only" in sys.argv:
        zero_grad_modes(sys.argv[1])
    else:
        main()
        zero_grad_modes(sys.argv[1])
