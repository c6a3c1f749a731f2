"""Evaluation protocols: the conventions each anchor's code uses for the same metric names.

A protocol fixes, for every metric, the reduction over pixels, the SSIM data range, the PSNR
formula, whether predictions are clipped to [0, 1] first and how LPIPS inputs are scaled. The
formulas and the paper tables each protocol matches are in ``docs/metrics.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from swinlstm.errors import ConfigError

#: PSNR of identical frames is infinite; every PSNR (per sample and frame) is capped at this value.
PSNR_CAP_DB = 100.0

#: metric name -> one-line definition (protocol-independent part)
METRICS: dict[str, str] = {
    "mse": "squared error summed over C*H*W per frame, batch mean",
    "mae": "absolute error summed over C*H*W per frame, batch mean",
    "mse_pixel": "squared error averaged over C*H*W per frame (skimage mean_squared_error)",
    "mae_pixel": "absolute error averaged over C*H*W per frame",
    "ssim": "SSIM, 7x7 uniform window, sample covariance, channel-wise mean (skimage)",
    "ssim_gauss": "SSIM, 11x11 Gaussian window (sigma 1.5) on 0-255 frames, valid region (OpenSTL SSIM())",
    "psnr": "PSNR in dB per frame, batch mean of per-sample values",
    "lpips": "LPIPS AlexNet v0.1, grey repeated to 3 channels",
}


@dataclass(frozen=True)
class Protocol:
    """How one anchor computes each metric.

    Attributes:
        name: protocol name (key of ``PROTOCOLS``).
        description: one line printed with the results.
        mse_reduction: ``"sum"`` (sum over C*H*W) or ``"mean_hw"`` (LMC-Memory: mean over C*H*W
            times H*W, so channels are averaged, not summed).
        clip_mse: clip predictions to [0, 1] before MSE/MAE (OpenSTL and SwinLSTM do not).
        clip_rest: clip predictions to [0, 1] before SSIM, PSNR and LPIPS.
        ssim_data_range: 1.0, or 2.0 for the skimage <= 0.19 default on float frames.
        psnr: ``"float"`` (10 log10(1 / mse), skimage data_range 1) or ``"e3d"`` (uint8
            wrap-around formula quoted from E3D-LSTM).
        lpips_rescale: map [0, 1] to [-1, 1] before LPIPS (LMC-Memory feeds [0, 1] unchanged).
    """

    name: str
    description: str
    mse_reduction: str = "sum"
    clip_mse: bool = False
    clip_rest: bool = True
    ssim_data_range: float = 1.0
    psnr: str = "float"
    lpips_rescale: bool = True

    def describe(self, metric: str) -> str:
        """One line saying exactly how ``metric`` is computed under this protocol."""
        if metric not in METRICS:
            raise ConfigError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
        pred = (
            "clipped"
            if (self.clip_mse if metric.startswith(("mse", "mae")) else self.clip_rest)
            else "raw"
        )
        if metric == "mse" and self.mse_reduction == "mean_hw":
            text = "squared error averaged over C*H*W times H*W per frame, batch mean (LMC-Memory)"
        elif metric == "ssim":
            text = f"{METRICS[metric]}, data_range {self.ssim_data_range:g}"
        elif metric == "psnr" and self.psnr == "e3d":
            text = "PSNR on uint8(x*255) with uint8 wrap-around (E3D quote), batch mean"
        elif metric == "psnr":
            text = f"{METRICS[metric]}, data_range 1"
        elif metric == "lpips":
            scale = "[-1, 1]" if self.lpips_rescale else "[0, 1] unscaled"
            text = f"{METRICS[metric]}, inputs {scale}"
        else:
            text = METRICS[metric]
        if metric == "psnr":
            text += f", capped at {PSNR_CAP_DB:g} dB"
        return f"{text}; {pred} predictions"


_SPECS = (
    Protocol(
        "default",
        "this project's default: MSE/MAE summed over pixels (tables' convention) on raw "
        "predictions; SSIM and PSNR as skimage with data_range 1 on predictions clipped to [0, 1]",
    ),
    Protocol(
        "swinlstm",
        "SwinLSTM utils.py: MSE/MAE summed over pixels, SSIM with skimage<=0.19 float default "
        "data_range 2, E3D uint8 PSNR, no clipping",
        ssim_data_range=2.0,
        psnr="e3d",
        clip_rest=False,
    ),
    Protocol(
        "lmc",
        "LMC-Memory utils.py: predictions clamped, MSE = per-pixel mean * H*W, SSIM data_range 2, "
        "PSNR data_range 1, LPIPS on [0, 1] unscaled (tables quote LPIPS x 10^3)",
        mse_reduction="mean_hw",
        clip_mse=True,
        ssim_data_range=2.0,
        lpips_rescale=False,
    ),
    Protocol(
        "openstl",
        "OpenSTL metrics.py: MSE/MAE summed over pixels before clipping, SSIM data_range 2 "
        "(skimage<=0.19 float default) and PSNR 10log10(1/mse) after clipping to [0, 1]",
        ssim_data_range=2.0,
    ),
    Protocol(
        "e3d",
        "default, but PSNR = 20log10(255) - 10log10(mean((uint8(p*255) - uint8(t*255))**2)) with "
        "uint8 wrap-around as quoted from E3D-LSTM (inflates PSNR; for comparison only)",
        psnr="e3d",
    ),
)

#: protocol name -> full specification
PROTOCOL_SPECS: dict[str, Protocol] = {p.name: p for p in _SPECS}

#: protocol name -> one-line description (print it with the results)
PROTOCOLS: dict[str, str] = {p.name: p.description for p in _SPECS}


def get_protocol(protocol: str | Protocol) -> Protocol:
    """The ``Protocol`` named ``protocol`` (a ``Protocol`` is returned as is)."""
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOL_SPECS:
        raise ConfigError(
            f"unknown metrics protocol {protocol!r}; choose one of: {', '.join(PROTOCOL_SPECS)}"
        )
    return PROTOCOL_SPECS[protocol]
