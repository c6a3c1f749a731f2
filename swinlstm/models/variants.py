"""Named variants, timm-style: a base model plus the options of one published configuration.

``build_model("swinlstm-d-mmnist")`` builds ``swinlstm-d`` with :data:`VARIANTS`'s options;
keyword options given to ``build_model`` override a variant's. Every value names its source (the
same sources as the presets in ``configs/*.yaml``):

* SwinLSTM: the authors' code, github.com/SongTang-x/SwinLSTM commit 4425bcf (``configs.py``,
  ``SwinLSTM_D.py``); for TaxiBJ the first author in SongTang-x/SwinLSTM issue #5; for KTH,
  which the authors did not publish, VMRNN (github.com/yyyujintang/VMRNN-PyTorch commit be7efe4,
  ``configs/kth/SwinLSTM-B.py``); for Human3.6m OpenSTL (github.com/chengtan9907/OpenSTL commit
  c74deb5, ``configs/human/SwinLSTM-B.py``).
* LMC-Memory: the authors' README command and ``model.py`` (github.com/sangmin-git/LMC-Memory
  commit 4ef14c8).
* ConvLSTM: OpenSTL commit c74deb5, ``configs/mmnist/ConvLSTM.py``.

Only network options live here; lengths, batch sizes and optimiser settings are the presets'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Variant:
    """``base`` (a registered model name) built with ``options``; ``source`` says where from."""

    base: str
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


#: SwinLSTM-B and -D on Moving MNIST share everything but the depths (configs.py)
_SWIN_MMNIST = dict(
    img_size=64,  # configs.py input_img_size
    in_chans=1,  # configs.py input_channels
    patch_size=2,  # configs.py patch_size
    embed_dim=128,  # configs.py embed_dim
    num_heads=[4, 8],  # configs.py heads_number (SwinLSTM-B reads only the first)
    window_size=4,  # configs.py window_size
    drop_path_rate=0.1,  # configs.py drop_path_rate; SwinLSTM_D.py's default (-D is not passed it)
)

#: LMC-Memory's Moving MNIST and KTH networks differ only in frame size and output sigmoid
_LMC = dict(
    in_chans=1,  # LMC-Memory README (img_channel 1)
    memory_size=100,  # README
)

VARIANTS: dict[str, Variant] = {
    "swinlstm-b-mmnist": Variant(
        "swinlstm-b",
        dict(_SWIN_MMNIST, depths=[12]),  # configs.py depths
        "SwinLSTM configs.py (Moving MNIST)",
    ),
    "swinlstm-d-mmnist": Variant(
        "swinlstm-d",
        dict(_SWIN_MMNIST, depths_down=[2, 6], depths_up=[6, 2]),  # configs.py depths_down/_up
        "SwinLSTM configs.py (Moving MNIST)",
    ),
    "swinlstm-b-taxibj": Variant(
        "swinlstm-b",
        dict(
            img_size=32,  # TaxiBJ grid
            in_chans=2,  # inflow, outflow
            patch_size=4,  # author, SwinLSTM issue #5; VMRNN configs/taxibj/SwinLSTM-B.py
            embed_dim=128,  # the authors' default; VMRNN
            depths=[12],  # author, issue #5; VMRNN
            num_heads=[8],  # author, issue #5 (heads_number [8])
            window_size=8,  # author, issue #5; VMRNN
            drop_path_rate=0.1,  # author, issue #5; VMRNN
        ),
        "SwinLSTM issue #5 (first author), VMRNN configs/taxibj/SwinLSTM-B.py",
    ),
    "swinlstm-b-kth": Variant(
        "swinlstm-b",
        dict(
            img_size=128,  # KTH protocol (PredRNN / OpenSTL): 128x128 grey
            in_chans=1,
            patch_size=2,  # VMRNN configs/kth/SwinLSTM-B.py
            embed_dim=128,  # VMRNN
            depths=[6],  # VMRNN
            num_heads=[8],  # VMRNN
            window_size=4,  # VMRNN
            drop_path_rate=0.1,  # VMRNN
        ),
        "VMRNN configs/kth/SwinLSTM-B.py (the SwinLSTM authors published no KTH configuration)",
    ),
    "swinlstm-b-human36m": Variant(
        "swinlstm-b",
        dict(
            img_size=256,  # OpenSTL Human3.6m frames
            in_chans=3,  # RGB
            patch_size=2,  # OpenSTL configs/human/SwinLSTM-B.py
            embed_dim=128,  # configs/human/SwinLSTM-B.py
            depths=[12],  # configs/human/SwinLSTM-B.py
            num_heads=[4],  # configs/human/SwinLSTM-B.py num_heads
            window_size=4,  # configs/human/SwinLSTM-B.py
        ),
        "OpenSTL configs/human/SwinLSTM-B.py",
    ),
    "lmc-convlstm-mmnist": Variant(
        "lmc-convlstm",
        # model.py: the Moving MNIST network has no output sigmoid
        dict(_LMC, img_size=64, final_sigmoid=False),  # README img_size
        "LMC-Memory README and model.py (Moving MNIST)",
    ),
    "lmc-convlstm-kth": Variant(
        "lmc-convlstm",
        # model.py: the KTH network ends in a sigmoid
        dict(_LMC, img_size=128, final_sigmoid=True),  # README img_size
        "LMC-Memory README and model.py (KTH)",
    ),
    "convlstm-mmnist": Variant(
        "convlstm",
        dict(
            img_size=64,
            in_chans=1,
            patch_size=4,  # OpenSTL configs/mmnist/ConvLSTM.py patch_size
            num_hidden=[128, 128, 128, 128],  # configs/mmnist/ConvLSTM.py num_hidden
            filter_size=5,  # configs/mmnist/ConvLSTM.py filter_size
        ),
        "OpenSTL configs/mmnist/ConvLSTM.py",
    ),
}

__all__ = ["VARIANTS", "Variant"]
