"""When ``swinlstm train`` compiles a SwinLSTM's steps: the ``compile: auto`` policy.

``compile`` takes ``True``, ``False`` or ``auto`` (the default of ``train``). With ``auto``, a new
run compiles (``torch.compile`` of the recurrence's steps, see
:meth:`~swinlstm.models.swinlstm.SwinLSTMBase.unrolls_input_steps`) where it was measured to pay
(docs/benchmarks.md, "Small models against the authors' code"):

* a SwinLSTM without memory whose first level is at most
  :data:`~swinlstm.models.chunked.CPU_PLAIN_MAX_WIDTH` (64) channels wide (embed 16-64): there the
  step is dozens of small ops and compiling made a training step 1.1-1.8x faster; at the paper's
  widths (128) the matmuls run near the CPU's peak and compiling was not measured to pay;
* on the CPU in fp32, one process, without activation checkpointing;
* a run of at least :data:`AUTO_MIN_ITERATIONS` iterations: the first steps compile (on a
  2-core CPU into an empty cache about 1.5-8 minutes, once per machine and version; 6-22 s
  for the first training step and the first validation once the graphs are cached under
  ``$SWINLSTM_CACHE/inductor``: Dynamo still traces the steps in each new process), which a
  run that short would not win back;
* a C++ compiler on the PATH (PyTorch's CPU kernels are C++ it builds).

Anything else trains eager. The choice is recorded in the run's ``model_config`` (a resumed run
keeps it); evaluation, prediction and export always run eager (one pass does not pay a compile).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from swinlstm.engine.config import AUTO, model_family, str2auto
from swinlstm.errors import ConfigError
from swinlstm.models.chunked import CPU_PLAIN_MAX_WIDTH

# the shortest run that compiles under ``auto``: at 0.1-2 s a step and a 10-40 % faster step,
# 2,000 iterations win back a cached warm-up many times over, and an empty cache's (up to about
# 8 minutes, paid once per machine) only over longer runs (the zoo's: 21,000)
AUTO_MIN_ITERATIONS = 2000


def cxx_compiler() -> str | None:
    """The C++ compiler PyTorch's CPU kernels would be built with (``$CXX``, g++, c++, clang++)."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def _on_cpu(accelerator: str) -> bool:
    if accelerator == "cpu":
        return True
    if accelerator != "auto":
        return False
    import torch

    mps = getattr(torch.backends, "mps", None)
    return not torch.cuda.is_available() and not (mps is not None and mps.is_available())


def auto_compile(
    model_name: str,
    config: dict[str, Any],
    iterations: int,
    accelerator: str = "auto",
    devices: int | str = 1,
    num_nodes: int = 1,
    precision: str = "32-true",
) -> tuple[bool, str]:
    """Whether ``compile: auto`` compiles this run, and why (one phrase)."""
    if model_family(model_name) != "swin":
        return False, f"{model_name} has no compiled path"
    width = config.get("embed_dim", 128)
    if config.get("memory_size", 0):
        return False, "a model with memory (compiling it was not measured)"
    if not isinstance(width, int) or width > CPU_PLAIN_MAX_WIDTH:
        return False, f"embed_dim {width} > {CPU_PLAIN_MAX_WIDTH} (the matmuls dominate)"
    if config.get("checkpointing"):
        return False, "activation checkpointing"
    if str(precision) != "32-true":
        return False, f"precision {precision}"
    if not _on_cpu(str(accelerator)) or str(devices) not in ("1", "auto") or num_nodes != 1:
        return False, "not one CPU process"
    if iterations < AUTO_MIN_ITERATIONS:
        return False, f"{iterations} iterations < {AUTO_MIN_ITERATIONS}"
    if sys.platform == "win32" or cxx_compiler() is None:
        return False, "no C++ compiler on the PATH"
    return True, (
        f"a SwinLSTM {width} wide for {iterations} iterations on the CPU: the first steps "
        "compile (up to a few minutes the first time; the kernels are then cached)"
    )


def settle_compile(model_name: str, config: dict[str, Any], **run: Any) -> dict[str, Any]:
    """``config`` with ``compile`` a boolean: ``auto`` (or unset, for a SwinLSTM) decided by
    :func:`auto_compile` on ``run`` (``iterations``, ``accelerator``, ``devices``, ``num_nodes``,
    ``precision``), a line printed when it compiles. Other values are checked."""
    value = config.get("compile", AUTO if model_family(model_name) == "swin" else None)
    if value is None:
        return config
    try:
        value = str2auto(value)
    except Exception:
        raise ConfigError(f"compile must be True, False or auto, got {value!r}") from None
    if value == AUTO:
        value, why = auto_compile(model_name, config, **run)
        if value:
            print(f"compile: auto -> on ({why}); --compile False trains eager", flush=True)
    return {**config, "compile": value}
