"""The colour adapter's gates, computed by hand: the authors' (``init='random'``)
and the identity start."""
import pytest
import torch
import torch.nn.functional as F

from bipa.models.layers.adapters import ColorAdapter


def gates_by_hand(adapter: ColorAdapter, x: torch.Tensor) -> torch.Tensor:
    """sigmoid(MLP(avg-pool) + MLP(max-pool)) per channel of the (B, H, W, C)
    input, the shared MLP's two 1x1 convs applied as matrices: (B, 1, 1, C)."""
    conv1, _, conv2 = adapter.attention.mlp

    def mlp(v):  # (B, C)
        hidden = F.gelu(v @ conv1.weight[:, :, 0, 0].T + conv1.bias)
        return hidden @ conv2.weight[:, :, 0, 0].T + conv2.bias

    avg, mx = x.mean(dim=(1, 2)), x.amax(dim=(1, 2))
    return torch.sigmoid(mlp(avg) + mlp(mx))[:, None, None, :]


def test_the_authors_gates_are_one_sigmoid():
    """init='random': the attention output times sigmoid(z), in (0, 1), about
    0.5 at step 0 (non-square map, channels not a power of two)."""
    torch.manual_seed(0)
    adapter = ColorAdapter(24, init='random')
    x = torch.randn(2, 5, 7, 24)
    gates = gates_by_hand(adapter, x)
    torch.testing.assert_close(adapter(x), x * gates)
    assert 0.3 < float(gates.mean()) < 0.7


def test_the_identity_start_gates_every_channel_by_one():
    torch.manual_seed(0)
    adapter = ColorAdapter(24, init='identity')
    x = torch.randn(2, 5, 7, 24)
    torch.testing.assert_close(adapter(x), x, rtol=0, atol=0)
    with torch.no_grad():  # once trained, 2 * sigmoid(z)
        adapter.attention.mlp[-1].bias.fill_(0.3)
    expected = x * 2 * gates_by_hand(adapter, x)
    torch.testing.assert_close(adapter(x), expected)
    assert float(expected.div(x).mean()) == pytest.approx(
        2 * float(torch.sigmoid(torch.tensor(0.6))), rel=1e-4)
