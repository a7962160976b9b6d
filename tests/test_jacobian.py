"""Exactness, chunking and per-sample structure of score_geometry.jacobian."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from score_geometry.jacobian import (batch_jacobian, default_method, no_tf32, preferred_memory_format,
                                     score_jacobian)
from score_geometry.oracle import GaussianSubspaceOracle, SkewSubspaceOracle


class TinyConvNet(nn.Module):
    """Conv2d + GroupNorm + SiLU, per-sample (GroupNorm normalises within a sample)."""

    def __init__(self, ch: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, ch, 3, padding=1),
            nn.GroupNorm(2, ch),
            nn.SiLU(),
            nn.Conv2d(ch, ch, 3, padding=1, stride=2),
            nn.SiLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.GroupNorm(2, ch),
            nn.Conv2d(ch, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * torch.tanh(x)  # extra pointwise x-dependence


@pytest.fixture(scope="module")
def conv64():
    torch.manual_seed(0)
    return TinyConvNet().double().eval()


def _central_fd(f, x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """(B, D, D) central finite differences, one batched forward per sample."""
    B = x.shape[0]
    D = x[0].numel()
    out = torch.empty(B, D, D, dtype=x.dtype)
    eye = torch.eye(D, dtype=x.dtype).view(D, *x.shape[1:])
    with torch.no_grad():
        for b in range(B):
            xp = x[b : b + 1] + h * eye
            xm = x[b : b + 1] - h * eye
            fp = f(xp).reshape(D, D)  # row j: f(x + h e_j)
            fm = f(xm).reshape(D, D)
            out[b] = ((fp - fm) / (2 * h)).T  # [i, j] = d f_i / d x_j
    return out


def test_matches_oracle_closed_form_28x28():
    orc = GaussianSubspaceOracle.random(784, 12, variances=torch.linspace(0.5, 3.0, 12),
                                        data_shape=(1, 28, 28), mean_scale=0.3, seed=1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 28, 28, generator=gen, dtype=torch.float64)
    t = torch.tensor([0.2, 0.7], dtype=torch.float64)
    J = score_jacobian(orc, x, t)
    assert J.shape == (2, 784, 784) and J.dtype == torch.float64
    for b in range(2):
        torch.testing.assert_close(J[b], orc.jacobian(t[b]), rtol=1e-12, atol=1e-10)


def test_matches_skew_oracle_and_float32():
    orc = SkewSubspaceOracle.random(40, 6, variances=2.0, mean_scale=1.0, seed=3, strength=2.0)
    x = torch.randn(3, 40, dtype=torch.float64)
    J = score_jacobian(orc, x, 0.4)
    torch.testing.assert_close(J, orc.jacobian(0.4).expand(3, 40, 40), rtol=1e-12, atol=1e-10)
    J32 = score_jacobian(orc, x.float(), 0.4)
    assert J32.dtype == torch.float32
    torch.testing.assert_close(J32.double(), J, rtol=1e-4, atol=1e-4)


def test_matches_central_finite_differences(conv64):
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    J = batch_jacobian(conv64, x)
    assert J.shape == (3, 64, 64)
    J_fd = _central_fd(conv64, x)
    torch.testing.assert_close(J, J_fd, rtol=1e-6, atol=1e-7)
    assert J.abs().max() > 1e-2  # non-trivial


@pytest.mark.parametrize("method", ["auto", "vmap", "expand", "retain"])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 100, 128, 10_000])
def test_chunk_sizes_and_methods_agree(conv64, chunk_size, method):
    torch.manual_seed(1)
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    ref = _central_fd(conv64, x)
    J = batch_jacobian(conv64, x, chunk_size=chunk_size, method=method)
    torch.testing.assert_close(J, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(J, batch_jacobian(conv64, x, method="vmap"), rtol=0, atol=1e-13)


@pytest.mark.parametrize("method", ["vmap", "retain"])
def test_channels_last_model_gives_the_same_jacobian(conv64, method):
    """The fast CPU configuration (a channels_last model) computes the same matrix."""
    import copy

    torch.manual_seed(3)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    ref = batch_jacobian(conv64, x, method="vmap")
    net_cl = copy.deepcopy(conv64).to(memory_format=torch.channels_last)
    assert net_cl.net[3].weight.is_contiguous(memory_format=torch.channels_last)
    J = batch_jacobian(net_cl, x, chunk_size=16, method=method)
    torch.testing.assert_close(J, ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("method", ["auto", "vmap", "expand", "retain"])
def test_outputs_independent_of_x_give_zero_rows(method):
    """A constant (or detached) output has a zero Jacobian, whatever the method (autograd itself would raise)."""
    x = torch.randn(3, 6, dtype=torch.float64)
    w = torch.randn(6, dtype=torch.float64, requires_grad=True)
    for f in (lambda z: torch.zeros_like(z), lambda z: 2 * z.detach(), lambda z: w.expand(z.shape[0], 6) * 1.0):
        J = batch_jacobian(f, x, chunk_size=4, method=method)
        assert J.shape == (3, 6, 6) and torch.count_nonzero(J) == 0


def test_auto_method_and_memory_format_per_device():
    assert default_method("cpu") == "retain" and default_method(torch.device("cuda", 0)) == "vmap"
    assert preferred_memory_format("cpu") == torch.channels_last
    assert preferred_memory_format("cuda") == torch.contiguous_format


def test_per_sample_blocks_of_full_jacobian(conv64):
    """J[b] is the b-th diagonal block of the Jacobian of the whole flattened batch; off-diagonal blocks vanish."""
    torch.manual_seed(2)
    B, D = 3, 64
    x = torch.randn(B, 1, 8, 8, dtype=torch.float64)
    full = torch.autograd.functional.jacobian(lambda z: conv64(z.view(B, 1, 8, 8)).reshape(-1), x.reshape(-1))
    full = full.view(B, D, B, D)
    J = batch_jacobian(conv64, x, chunk_size=2 * D)  # two samples share a pass
    for b in range(B):
        torch.testing.assert_close(J[b], full[b, :, b, :], rtol=1e-12, atol=1e-12)
        for c in range(B):
            if c != b:
                assert full[b, :, c, :].abs().max() == 0
    # each sample's Jacobian does not depend on the other samples in the batch
    J0 = batch_jacobian(conv64, x[:1])
    torch.testing.assert_close(J[0], J0[0], rtol=0, atol=1e-13)


def test_score_jacobian_time_broadcast():
    orc = GaussianSubspaceOracle.random(16, 3, variances=1.0, seed=0)
    x = torch.randn(4, 16, dtype=torch.float64)
    J_scalar = score_jacobian(orc, x, 0.3)
    J_vec = score_jacobian(orc, x, torch.full((4,), 0.3, dtype=torch.float64))
    torch.testing.assert_close(J_scalar, J_vec, rtol=0, atol=0)
    ts = torch.tensor([0.1, 0.3, 0.5, 0.9], dtype=torch.float64)
    # vmap/expand: chunks of 5 rows straddle samples with different t; retain: 32 >= 2 x 16 puts two
    # samples with different t in one pass
    for method, chunk_size in (("vmap", 5), ("expand", 5), ("retain", 5), ("retain", 32), ("auto", None)):
        J = score_jacobian(orc, x, ts, chunk_size=chunk_size, method=method)
        for b in range(4):
            torch.testing.assert_close(J[b], orc.jacobian(ts[b]), rtol=1e-12, atol=1e-10)
    with pytest.raises(ValueError):
        score_jacobian(orc, x, torch.zeros(3))


def test_non_square_output_and_input_validation():
    W = torch.randn(5, 12, dtype=torch.float64)
    f = lambda z: torch.sin(z.reshape(z.shape[0], -1)) @ W.T  # noqa: E731
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    expected = W[None] * torch.cos(x.reshape(2, 1, 12))
    # D_out = 5 is prime: "retain" pads its last block of 3 rows with a zero cotangent
    for method in ("vmap", "expand", "retain"):
        for chunk_size in (3, 4, 5, 11):
            J = batch_jacobian(f, x, chunk_size=chunk_size, method=method)
            torch.testing.assert_close(J, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError):
        batch_jacobian(f, x, chunk_size=0)
    with pytest.raises(ValueError):
        batch_jacobian(f, x, method="loop")


def test_result_is_detached(conv64):
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    J = batch_jacobian(conv64, x)
    assert not J.requires_grad
    assert x.grad is None
    assert all(p.grad is None for p in conv64.parameters())


def test_no_tf32_restores_flags():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
              torch.get_float32_matmul_precision())
    with no_tf32():
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is False
        assert torch.get_float32_matmul_precision() == "highest"
    after = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    assert after == before
    with pytest.raises(RuntimeError):
        with no_tf32():
            raise RuntimeError("boom")
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.get_float32_matmul_precision()) == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(conv64):
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    J_cpu = batch_jacobian(conv64, x)
    net = TinyConvNet().double().eval()
    net.load_state_dict(conv64.state_dict())
    net = net.cuda()
    J_gpu = batch_jacobian(net, x.cuda(), chunk_size=32)
    assert J_gpu.device.type == "cuda" and J_gpu.dtype == torch.float64
    torch.testing.assert_close(J_gpu.cpu(), J_cpu, rtol=1e-10, atol=1e-10)
    with no_tf32():
        J32 = batch_jacobian(net.float(), x.float().cuda())
    torch.testing.assert_close(J32.cpu().double(), J_cpu, rtol=1e-4, atol=1e-4)
