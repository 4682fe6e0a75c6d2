"""The GPU scoring path's one host copy: a batch's outputs packed into one float32 buffer and taken apart
again give back exactly what was packed (expert ids bit-cast, not converted)."""
import numpy as np
import torch

from moe_scope_worker.engine import pack_outputs, unpack_outputs


def test_pack_and_unpack_round_trip_exactly():
    g = torch.Generator().manual_seed(0)
    L, R, K, B = 3, 17, 8, 5
    e = torch.randint(0, 4096, (L, R, K), generator=g, dtype=torch.int32)
    e[0, 0, 0] = 2**24 + 1  # not representable as a float32 value: must survive as bits
    w = torch.rand((L, R, K), generator=g)
    h = torch.rand((L, R), generator=g)
    logp = torch.log_softmax(torch.randn((B, 4), generator=g), dim=-1).double()
    flat, shapes = pack_outputs(e, w, h, logp.float().double())
    assert flat.dtype == torch.float32 and flat.numel() == L * R * K * 2 + L * R + B * 4
    ue, uw, uh, ulogp = unpack_outputs(flat.numpy(), shapes)
    assert ue.dtype == np.int32 and np.array_equal(ue, e.numpy())
    assert np.array_equal(uw, w.numpy()) and np.array_equal(uh, h.numpy())
    assert ulogp.dtype == np.float64 and np.array_equal(ulogp, logp.float().double().numpy())
