import pytest
import torch
from segment_anything.modeling import ImageEncoderViT
from functools import partial

from bipa.models.backbones import SAMViTAdapter

TINY = dict(embed_dim=32, depth=4, num_heads=2, global_attn_indexes=(1, 3), img_size=64,
            window_size=3, out_chans=16)


def randomize(encoder):
    torch.manual_seed(0)
    for name, p in encoder.named_parameters():
        torch.nn.init.normal_(p, std=0.2 if 'rel_pos' in name else 0.05)


def test_shapes_and_default_indices():
    model = SAMViTAdapter(TINY)
    assert model.adapter_indices == (1, 3)  # every second block from depth // 4
    assert model.out_indices == (1, 3)  # SAM's global-attention blocks
    emb, hidden = model(torch.randn(2, 3, 64, 64))
    assert emb.shape == (2, 16, 4, 4)
    assert [h.shape for h in hidden] == [(2, 32, 4, 4)] * 2


def test_vit_h_defaults_are_the_papers():
    arch = SAMViTAdapter.resolve_arch('vit_h')
    assert arch['depth'] == 32 and arch['embed_dim'] == 1280
    assert tuple(range(arch['depth'] // 4, arch['depth'], 2)) == tuple(range(8, 31, 2))


def test_equals_segment_anything_without_adapters():
    model = SAMViTAdapter(TINY, adapter_indices=(), out_indices=(3,))
    reference = ImageEncoderViT(norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                                use_rel_pos=True, **{**model.arch})
    randomize(model.encoder)
    reference.load_state_dict(model.encoder.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        emb, _ = model(x)
        torch.testing.assert_close(emb, reference(x), rtol=1e-4, atol=1e-4)


def test_only_adapters_train_even_after_train():
    model = SAMViTAdapter(TINY, use_space_adapter=True)
    model.train()
    trainable = {n.split('.')[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'adapters'}
    assert not model.encoder.training  # frozen parts stay in eval mode


@pytest.mark.parametrize('mode', ['residual', 'checkpoint', 'exact'])
def test_gradients_reach_every_adapter(mode):
    model = SAMViTAdapter(TINY, grad_mode=mode, adapter_indices=(0, 1, 2, 3))
    randomize(model.encoder)
    model.train()
    emb, hidden = model(torch.randn(1, 3, 64, 64))
    (emb.square().mean() + sum(h.square().mean() for h in hidden)).backward()
    for name, p in model.adapters.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(p.grad is None for p in model.encoder.parameters())


def test_checkpoint_gradients_equal_exact():
    x = torch.randn(1, 3, 64, 64)
    grads = {}
    for mode in ('exact', 'checkpoint'):
        torch.manual_seed(3)
        model = SAMViTAdapter(TINY, grad_mode=mode)
        randomize(model.encoder)
        emb, _ = model(x)
        emb.sum().backward()
        grads[mode] = [p.grad.clone() for p in model.adapters.parameters()]
    for a, b in zip(grads['exact'], grads['checkpoint']):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_frozen_computations_store_no_activations():
    """In 'residual' mode the graph holds adapter ops only: no attention/MLP nodes."""
    model = SAMViTAdapter(TINY)
    emb, _ = model(torch.randn(1, 3, 64, 64))
    seen, stack = set(), [emb.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        stack.extend(f for f, _ in fn.next_functions)
    names = {type(fn).__name__ for fn in seen}
    assert not any('Softmax' in n or 'ScaledDotProduct' in n or 'Attention' in n for n in names)


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='vit_x'), 'unknown SAM arch'),
    (dict(arch=dict(embed_dim=8)), 'lacks'),
    (dict(arch=TINY, out_indices=(9,)), 'out of range'),
    (dict(arch=TINY, grad_mode='fast'), 'grad_mode must be one of'),
    (dict(arch=TINY, mlp_adapter_input='both'), 'mlp_adapter_input must be one of'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SAMViTAdapter(**kwargs)


def test_input_not_multiple_of_patch():
    with pytest.raises(ValueError, match='not a multiple of the patch size 16'):
        SAMViTAdapter(TINY)(torch.randn(1, 3, 60, 64))


@pytest.mark.parametrize('source', ['pre_norm', 'post_norm'])
def test_mlp_adapter_input(source):
    """'pre_norm' (default, the authors' code): the MLP adapter reads the
    residual stream that enters norm2; 'post_norm': norm2's output."""
    kwargs = {} if source == 'pre_norm' else dict(mlp_adapter_input=source)
    model = SAMViTAdapter(TINY, **kwargs)
    randomize(model.encoder)
    block, adapter = model.encoder.blocks[1], model.adapters['1'].mlp_adapter
    seen = {}
    hooks = [block.norm2.register_forward_hook(
                 lambda m, args, out: seen.update(norm_in=args[0], norm_out=out)),
             adapter.register_forward_hook(lambda m, args, out: seen.update(adapter=args[0]))]
    model(torch.randn(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    expected = seen['norm_in' if source == 'pre_norm' else 'norm_out']
    assert torch.equal(seen['adapter'], expected)
    assert not torch.allclose(seen['norm_in'], seen['norm_out'])
