"""Which oneDNN kernels PyTorch (CPU build) calls for the paper network's 3x3x3 convolutions.

Runs a 3x3x3 conv3d forward + backward at batch 1 two ways with oneDNN's verbose log on:
  1. eager nn.Conv3d under autograd (what bench/pytorch_step.py and tools/*.py use)
  2. torch.ops.aten.mkldnn_convolution under autograd
and prints the oneDNN version line and every convolution primitive oneDNN executed.
Usage: OMP_NUM_THREADS=1 python3 bench/dnnl_conv/pytorch_onednn_verbose.py 2>&1 | grep -v reorder
"""
import torch

print("torch", torch.__version__, "mkldnn available", torch.backends.mkldnn.is_available(), flush=True)
with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
    for c in (16, 64):
        print(f"--- eager nn.Conv3d + autograd, {c}->{c} at 16^3", flush=True)
        x = torch.randn(1, c, 16, 16, 16, requires_grad=True)
        conv = torch.nn.Conv3d(c, c, 3, padding=1, bias=False)
        conv(x).sum().backward()
    for c in (16, 64):
        print(f"--- aten.mkldnn_convolution + autograd, {c}->{c} at 16^3", flush=True)
        x = torch.randn(1, c, 16, 16, 16, requires_grad=True)
        w = torch.randn(c, c, 3, 3, 3, requires_grad=True)
        torch.ops.aten.mkldnn_convolution(x, w, None, [1, 1, 1], [1, 1, 1], [1, 1, 1], 1).sum().backward()
        print(f"    grad shapes {tuple(x.grad.shape)} {tuple(w.grad.shape)}", flush=True)
