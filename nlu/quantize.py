"""int8 dynamic quantisation for CPU inference.

The Linear layers' weights become int8 and activations are quantised on the fly: on this
project's 2-core CPU the LUKE extractor ran 2-4x faster. Models are trained and saved in fp32;
components quantise a copy when they load with `quantize: true` on a CPU device.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def quantize_linear(model: nn.Module) -> nn.Module:
    """A copy of `model` (in eval mode) with int8 dynamic Linear layers."""
    with warnings.catch_warnings():  # torch.ao announces its move to torchao
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(model.eval(), {nn.Linear},
                                                           dtype=torch.qint8)
    return quantized.eval()


def wants_quantization(flag: bool, device: str) -> bool:
    """Quantise only on CPU (dynamic int8 kernels are CPU kernels)."""
    return flag and device == "cpu"
