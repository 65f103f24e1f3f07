import pytest
import torch

from bipa.models.layers import DensePrompt


def test_group_weights_scale_channel_groups():
    prompt = DensePrompt(embed_dim=8, num_groups=4)
    prompt.embedding.data = torch.arange(8.0)
    prompt.set_group_weights([1.0, 2.0, 3.0, 1.5])
    torch.testing.assert_close(prompt(), torch.tensor([0, 1, 4, 6, 12, 15, 9, 10.5]))
    assert torch.equal(prompt.get_group_weights(), torch.tensor([1.0, 2.0, 3.0, 1.5]))
    # the weights are state: saved and restored with the model
    assert 'group_weights' in prompt.state_dict()


@pytest.mark.parametrize('mode, base, weights, grad', [
    ('frozen', 'sam', None, None),
    ('naive', 'sam', None, [1.0, 1.0, 1.0, 1.0]),
    ('bilevel', 'sam', [2.0, 3.0], None),
    ('bilevel', 'learned', [2.0, 3.0], [2.0, 2.0, 3.0, 3.0]),
    ('bilevel', 'scratch', [2.0, 3.0], [2.0, 2.0, 3.0, 3.0]),
], ids=['frozen', 'naive', 'bilevel', 'bilevel-learned', 'bilevel-scratch'])
def test_modes_decide_what_trains(mode, base, weights, grad):
    """Only 'naive' and a 'learned' base train e, by the gradient of rho = e * w
    (w repeated over each group's channels); w itself never trains."""
    prompt = DensePrompt(embed_dim=4, num_groups=2, mode=mode, base=base)
    if weights is not None:
        prompt.set_group_weights(weights)
    prompt.embedding.data = torch.tensor([1.0, -2.0, 3.0, 0.5])
    trainable = [name for name, p in prompt.named_parameters() if p.requires_grad]
    assert trainable == (['embedding'] if grad else [])
    rho = prompt()
    w = weights or [1.0, 1.0]
    torch.testing.assert_close(rho, torch.tensor([1.0 * w[0], -2.0 * w[0], 3.0 * w[1],
                                                  0.5 * w[1]]))
    assert rho.requires_grad is bool(grad)
    if grad:
        rho.sum().backward()
        torch.testing.assert_close(prompt.embedding.grad, torch.tensor(grad))
        prompt.freeze()  # rho* for fine-tuning
        assert not prompt.embedding.requires_grad and not prompt().requires_grad


def test_set_group_weights_is_checked():
    prompt = DensePrompt(embed_dim=8, num_groups=2, search_interval=(1.0, 3.0))
    with pytest.raises(ValueError, match='expected 2 group weights'):
        prompt.set_group_weights([1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r'leave the interval B=\[1.0, 3.0\]'):
        prompt.set_group_weights([0.5, 1.0])
    with pytest.raises(RuntimeError, match="only in 'bilevel' mode"):
        DensePrompt(embed_dim=8, num_groups=2, mode='frozen').set_group_weights([1.0, 1.0])


@pytest.mark.parametrize('kwargs,match', [
    (dict(num_groups=5), 'must divide the prompt dimension 8'),
    (dict(search_interval=(3.0, 1.0)), 'needs low < high'),
    (dict(search_interval=(2.0, 2.0)), 'needs low < high'),
    (dict(mode='joint'), 'must be one of'),
    (dict(mode='frozen', base='scratch'), "base='scratch' applies to mode 'bilevel'"),
    (dict(base='scratch', scratch_init='ones'), 'scratch_init must be one of'),
])
def test_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DensePrompt(**{**dict(embed_dim=8, num_groups=2), **kwargs})
