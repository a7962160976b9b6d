"""The U-Net: shapes, three resolution levels, and per-sample independence (needed for exact Jacobians)."""

import pytest
import torch

from score_geometry.unet import UNet, build_unet, timestep_embedding


@pytest.mark.parametrize("attention", [False, True])
def test_output_of_one_sample_does_not_depend_on_the_batch(attention):
    torch.manual_seed(0)
    net = UNet((8, 16, 16), num_res_blocks=2, attention=attention, groups=4).eval()
    # Non-zero output layers, so the test sees the whole network rather than the zero-initialised head.
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x, t = torch.randn(5, 1, 28, 28), torch.rand(5)
    together = net(x, t)
    alone = torch.cat([net(x[i:i + 1], t[i:i + 1]) for i in range(5)])
    assert together.shape == x.shape
    assert torch.allclose(together, alone, atol=1e-5)
    assert together.abs().mean() > 1e-3
    # Changing one sample leaves the others' outputs unchanged.
    x2 = x.clone()
    x2[0] += 1.0
    assert torch.allclose(net(x2, t)[1:], together[1:], atol=1e-5)
    assert not torch.allclose(net(x2, t)[0], together[0], atol=1e-3)


def test_build_from_config_and_time_embedding():
    net = build_unet({"channels": [32, 64, 64], "num_res_blocks": 1, "attention": False, "dropout": 0.0, "groups": 8})
    n = sum(p.numel() for p in net.parameters())
    assert 0.9e6 < n < 1.2e6  # the default config's ~1.0M parameters
    emb = timestep_embedding(torch.tensor([0.0, 0.5]), 16)
    assert emb.shape == (2, 16) and torch.allclose(emb[0, 8:], torch.ones(8))
    with pytest.raises(ValueError, match="3 widths"):
        UNet((8, 16))


def test_unet_serves_any_channels_and_multiple_of_four_sizes():
    net = UNet((8, 8, 8), groups=4, in_channels=3)
    x = torch.randn(2, 3, 16, 12)
    assert net(x, torch.full((2,), 0.5)).shape == (2, 3, 16, 12)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.randn(1, 3, 14, 14), torch.full((1,), 0.5))
