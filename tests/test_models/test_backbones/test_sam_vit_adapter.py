from functools import partial

import pytest
import torch
from segment_anything.modeling import ImageEncoderViT

from bipa.models.backbones import SAMViTAdapter

TINY = dict(embed_dim=32, depth=4, num_heads=2, global_attn_indexes=(1, 3), img_size=64,
            window_size=3, out_chans=16)


def randomize(encoder):
    torch.manual_seed(0)
    for name, p in encoder.named_parameters():
        torch.nn.init.normal_(p, std=0.2 if 'rel_pos' in name else 0.05)


def global_blocks(model):
    """Indices of the blocks the encoder built with global attention."""
    return [i for i, block in enumerate(model.encoder.blocks) if block.window_size == 0]


def test_default_outputs_are_the_global_attention_blocks():
    """The hidden states are the outputs of the blocks the encoder built with
    global attention (SAM's own blocks, run here without adapters), NCHW."""
    assert SAMViTAdapter(TINY).adapter_indices == (1, 3)  # every second block from depth // 4
    model = SAMViTAdapter(TINY, adapter_indices=())
    assert global_blocks(model) == [1, 3]  # what TINY's global_attn_indexes asks
    randomize(model.encoder)
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        emb, hidden = model(image)
        x = model.encoder.patch_embed(image) + model.encoder.pos_embed
        outputs = []
        for block in model.encoder.blocks:  # segment_anything's Block.forward
            x = block(x)
            outputs.append(x.permute(0, 3, 1, 2))
    assert emb.shape == (2, 16, 4, 4)
    assert len(hidden) == 2 and all(h.shape == (2, 32, 4, 4) for h in hidden)
    for h, i in zip(hidden, (1, 3)):
        torch.testing.assert_close(h, outputs[i], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(outputs[0], outputs[1], atol=1e-2)  # the blocks differ


def test_vit_h_defaults_are_the_papers():
    """ViT-H's block layout (with a 16-d width, to build in a test): global
    attention at the paper's blocks 8/16/24/32 (1-based), which are the
    outputs, and the 12 adapted blocks 8, 10, ..., 30 (0-based)."""
    vit_h = SAMViTAdapter.resolve_arch('vit_h')
    assert (vit_h['depth'], vit_h['embed_dim'], vit_h['num_heads']) == (32, 1280, 16)
    model = SAMViTAdapter({**vit_h, 'embed_dim': 16, 'num_heads': 1, 'img_size': 64,
                           'out_chans': 8})
    assert global_blocks(model) == [7, 15, 23, 31]
    assert model.out_indices == (7, 15, 23, 31)
    adapted = (8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
    assert model.adapter_indices == adapted
    assert sorted(int(i) for i in model.adapters) == list(adapted)


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
    (dict(arch='vit_x'), r"^model\.backbone\.arch must be one of \('vit_h', 'vit_l', "
                         r"'vit_b'\) or a dict, got 'vit_x'$"),
    (dict(arch=dict(embed_dim=8)), r"^model\.backbone\.arch lacks \['depth', "),
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


def sam_reference(model):
    """segment_anything's ImageEncoderViT holding ``model``'s encoder weights."""
    reference = ImageEncoderViT(norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                                use_rel_pos=True, **{**model.arch})
    reference.load_state_dict(model.encoder.state_dict())
    return reference.eval()


@pytest.mark.parametrize('space', [False, True])
@pytest.mark.parametrize('source', ['pre_norm', 'post_norm'])
def test_identity_init_computes_sams_function(space, source):
    """adapter_init='identity' (the default): at step 0 every adapted block is
    SAM's block, so the embedding and every hidden state equal
    segment_anything's encoder with the same weights (channels-last input)."""
    model = SAMViTAdapter(TINY, adapter_indices=(0, 1, 2, 3), out_indices=(0, 1, 2, 3),
                          use_space_adapter=space, mlp_adapter_input=source)
    randomize(model.encoder)
    reference = sam_reference(model)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        emb, hidden = model(x)
        y = reference.patch_embed(x) + reference.pos_embed
        outputs = []
        for block in reference.blocks:
            y = block(y)
            outputs.append(y.permute(0, 3, 1, 2))
        expected = reference.neck(y.permute(0, 3, 1, 2))
    torch.testing.assert_close(emb, expected, rtol=1e-4, atol=1e-5)
    for h, ref in zip(hidden, outputs):
        torch.testing.assert_close(h, ref, rtol=1e-4, atol=1e-5)


def test_random_init_departs_from_sam():
    """The authors' initialisation changes SAM's embedding before any training."""
    model = SAMViTAdapter(TINY, adapter_init='random')
    randomize(model.encoder)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        emb, _ = model(x)
        gap = (emb - sam_reference(model)(x)).norm() / emb.norm()
    assert gap > 0.05


def test_identity_init_still_trains_every_adapter():
    """A zero-initialised output layer stops the gradient of the layers before
    it only at step 0: the first backward reaches each zero-initialised layer,
    and after one optimizer step every adapter parameter gets a gradient."""
    model = SAMViTAdapter(TINY, use_space_adapter=True)
    randomize(model.encoder)
    model.train()
    zero_init = {n for n, p in model.adapters.named_parameters()
                 if n.endswith(('fc2.weight', 'fc2.bias', 'mlp.2.weight', 'mlp.2.bias'))}
    assert zero_init and all(
        not model.adapters.get_parameter(n).any() for n in zero_init)
    optimizer = torch.optim.AdamW(model.adapters.parameters(), lr=1e-2)
    torch.manual_seed(1)
    x, target = torch.randn(2, 3, 64, 64), torch.randn(2, 16, 4, 4)
    for step in range(2):
        optimizer.zero_grad()
        emb, hidden = model(x)
        ((emb - target).square().mean() + sum(h.square().mean() for h in hidden)).backward()
        grads = {n: p.grad for n, p in model.adapters.named_parameters()}
        nonzero = {n for n, g in grads.items() if g is not None and g.abs().sum() > 0}
        if step == 0:
            assert zero_init <= nonzero
        else:
            assert nonzero == set(grads)
        optimizer.step()


def test_bad_adapter_init():
    with pytest.raises(ValueError, match='model.backbone.adapter_init must be one of'):
        SAMViTAdapter(TINY, adapter_init='zeros')
