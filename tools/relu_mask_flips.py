"""How much of PyTorch float32's error on a fixture its ReLU mask flips explain (docs/REFERENCE_FIXTURES.md).

Usage: python tools/relu_mask_flips.py FIXTURE.safetensors
Counts the ReLU masks and max-pool winners of PyTorch's float32 forward that differ from float64,
then runs the model in float64 with float32's ReLU masks and compares its gradient errors with
PyTorch float32's: where they agree, the float32 error is the flips', not arithmetic's.
"""
import os, sys, statistics, torch, torch.nn.functional as F
sys.path.insert(0, os.environ.get("IFCN_REFERENCE", os.path.dirname(os.path.abspath(__file__))))
import ifcn_reference as R  # noqa: E402
from safetensors import safe_open
from safetensors.torch import load_file

path = sys.argv[1]
with safe_open(path, "pt") as f:
    meta = f.metadata()
T = load_file(path)
relu0, pool0 = F.relu, F.max_pool3d


def rel(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return ((a - b).norm() / b.norm()).item()


def run(dt, masks=None):
    """Forward and backward in dtype dt; ReLU masks from `masks` when given. Returns (masks, pool indices, grads)."""
    log, pools = [], []

    def relu(x, *a, **k):
        if masks is None:
            log.append(x > 0)
            return relu0(x)
        m = masks[len(log)]
        log.append(m)
        return x * m.to(x.dtype)

    def pool(x, k):
        y, idx = pool0(x, k, return_indices=True)
        pools.append(idx)
        return y
    R.F.relu, R.F.max_pool3d = relu, pool
    try:
        net = R.build(meta["arch"], int(meta["channels"]), int(meta["patch"])).to(dt)
        sd = {k[6:]: v.to(dt) for k, v in T.items() if k.startswith("param/")}
        sd.update({k[7:]: v.to(dt) for k, v in T.items() if k.startswith("buffer/")})
        net.load_state_dict(sd, strict=False)
        net.train()
        s, c = net(T["input"].to(dt))
        tot, _, _ = R.losses(s, c, T["target"].to(dt), T["weight"].to(dt), T["c_label"].to(dt))
        tot.backward()
    finally:
        R.F.relu, R.F.max_pool3d = relu0, pool0
    return log, pools, {k: p.grad for k, p in net.named_parameters()}


m32, p32, g32 = run(torch.float32)
m64, p64, _ = run(torch.float64)
flips = sum((a != b).sum().item() for a, b in zip(m32, m64))
pflips = sum((a != b).sum().item() for a, b in zip(p32, p64))
print("%s: %d of %d ReLU masks and %d max-pool winners differ between float32 and float64"
      % (os.path.basename(path), flips, sum(m.numel() for m in m32), pflips))
_, _, gm = run(torch.float64, m32)
e32 = {k: rel(v, T["grad/" + k]) for k, v in g32.items()}
em = {k: rel(v, T["grad/" + k]) for k, v in gm.items()}
big = [k for k in e32 if e32[k] > 1e-4]
if big:
    print("gradients with PyTorch float32 error > 1e-4: %d; median error float32 %.3e, float64 with float32's masks %.3e"
          % (len(big), statistics.median(e32[k] for k in big), statistics.median(em[k] for k in big)))
