"""Turn a PyTorch state_dict (.pth) of either variant into an ifcn checkpoint (.safetensors).

Usage:
  python tools/pth_to_checkpoint.py MODEL.pth OUT.safetensors [--patch 128] [--spacing 1.0]
                                   [--intensity '{"clamp": null, "scale": 1}']

Needs torch and safetensors (pip install torch safetensors); ifcn itself never needs Python.
- Accepts a bare state_dict or a dict holding one under 'state_dict' / 'model' /
  'model_state_dict'; strips DataParallel's 'module.' prefix.
- The variant is read from the names (paper: down0..., seed: conv_initial...), the channel count
  from the first convolution. The paper variant's patch follows from its cls.N blocks; the seed
  variant shares its blocks, so give --patch (default 128, the public implementation's).
- The intensity normaliser defaults to the paper's for paper models and identity for seed models
  (the public implementation feeds raw HU); override with --intensity.
"""
import argparse, json, math, sys

import torch
from safetensors.torch import save_file


def unwrap(obj):
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                return unwrap(obj[key])
    if not isinstance(obj, dict):
        sys.exit("error: the file holds %s, not a state_dict" % type(obj).__name__)
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pth")
    ap.add_argument("out")
    ap.add_argument("--patch", type=int)
    ap.add_argument("--spacing", type=float, default=1.0)
    ap.add_argument("--intensity")
    a = ap.parse_args()
    sd = unwrap(torch.load(a.pth, map_location="cpu", weights_only=True))
    if "down0.conv1.weight" in sd:
        variant, channels = "paper", sd["down0.conv1.weight"].shape[0]
        n_cls = len({k.split(".")[1] for k in sd if k.startswith("cls.")})
        patch = 2 ** (n_cls + 4)
        if a.patch and a.patch != patch:
            sys.exit("error: the model has %d completeness blocks, i.e. patch %d, not %d" % (n_cls, patch, a.patch))
    elif "conv_initial.0.weight" in sd:
        variant, channels = "seed", sd["conv_initial.0.weight"].shape[0]
        patch = a.patch or 128
    else:
        sys.exit("error: neither a paper (down0.*) nor a seed (conv_initial.*) state_dict: keys %s..." % list(sd)[:5])
    if patch < 16 or 2 ** int(math.log2(patch)) != patch:
        sys.exit("error: patch must be a power of two >= 16")
    intensity = a.intensity or json.dumps({"clamp": [-1000, 3000], "scale": 0.001} if variant == "paper"
                                          else {"clamp": None, "scale": 1})
    tensors = {}
    for k, v in sd.items():
        if not torch.is_tensor(v):
            continue
        tensors[k] = v.detach().to(torch.int64 if "num_batches" in k else torch.float32).contiguous()
    meta = {"format": "ifcn-checkpoint-1", "variant": variant, "channels": str(channels), "patch": str(patch),
            "spacing_mm": str(a.spacing), "intensity": intensity, "source": a.pth}
    save_file(tensors, a.out, metadata=meta)
    print("%s: %s C=%d P=%d, %d tensors -> %s" % (a.pth, variant, channels, patch, len(tensors), a.out))


if __name__ == "__main__":
    main()
