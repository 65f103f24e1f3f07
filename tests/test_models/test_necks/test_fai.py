import pytest
import torch
from mmdet.registry import MODELS
from torch import nn

from bipa.models.layers.channel_attention import ChannelAttention
from bipa.models.necks.fai import FAINeck, ScaleAwareSampling

VIT_C = 32
LOCAL_C = (8, 16, 32, 64)
OUT_C = 16
LOCAL_STRIDES = (4, 8, 16, 32)


def make_neck(**kwargs):
    cfg = dict(vit_channels=VIT_C, local_channels=LOCAL_C,
               out_channels=OUT_C)
    cfg.update(kwargs)
    return FAINeck(**cfg)


def make_inputs(h=64, w=64, batch=2):
    vit = [torch.randn(batch, VIT_C, h // 16, w // 16) for _ in range(4)]
    local = [torch.randn(batch, c, h // s, w // s)
             for c, s in zip(LOCAL_C, LOCAL_STRIDES)]
    return vit, local


@pytest.mark.parametrize('fusion', ['fai', 'sum'])
@pytest.mark.parametrize('h,w', [(64, 64), (64, 96)])
def test_output_shapes_and_strides(fusion, h, w):
    neck = make_neck(fusion=fusion)
    outs = neck(*make_inputs(h, w))
    assert isinstance(outs, tuple) and len(outs) == 5
    for out, stride in zip(outs, (4, 8, 16, 32, 64)):
        # extra levels round up, as in mmdet FPN
        assert out.shape == (2, OUT_C, -(-h // stride), -(-w // stride))


def test_registered_and_buildable():
    neck = MODELS.build(dict(type='FAINeck', vit_channels=VIT_C,
                             local_channels=LOCAL_C, out_channels=OUT_C,
                             num_outs=6))
    assert isinstance(neck, FAINeck)
    outs = neck(*make_inputs(128, 128))
    assert [o.shape[-1] for o in outs] == [32, 16, 8, 4, 2, 1]


def _capture(modules):
    captured = []
    hooks = [m.register_forward_hook(
        lambda mod, args, out: captured.append(out)) for m in modules]
    return captured, hooks


def test_sum_fusion_is_plain_sum():
    neck = make_neck(fusion='sum').eval()
    assert not hasattr(neck, 'weight_generators')
    local_out, h1 = _capture(neck.local_branches)
    vit_out, h2 = _capture(neck.vit_branches)
    fused = neck.fuse(*make_inputs())
    for hook in h1 + h2:
        hook.remove()
    assert len(fused) == len(local_out) == len(vit_out) == 4
    for h, g, f in zip(fused, local_out, vit_out):
        assert torch.equal(h, g + f)


@pytest.mark.parametrize('alpha_channels', [1, OUT_C])
def test_fai_fusion_is_convex_combination(alpha_channels):
    neck = make_neck(fusion='fai', alpha_channels=alpha_channels).eval()
    local_out, h1 = _capture(neck.local_branches)
    vit_out, h2 = _capture(neck.vit_branches)
    alphas, h3 = _capture(neck.weight_generators)
    fused = neck.fuse(*make_inputs())
    for hook in h1 + h2 + h3:
        hook.remove()
    for h, g, f, a in zip(fused, local_out, vit_out, alphas):
        assert a.shape == (g.shape[0], alpha_channels, *g.shape[2:])
        assert (a > 0).all() and (a < 1).all()
        torch.testing.assert_close(h, (1 - a) * g + a * f)


@pytest.mark.parametrize('fusion, authors', [('fai', False), ('sum', False), ('fai', True)])
def test_gradients_reach_every_parameter(fusion, authors):
    torch.manual_seed(0)
    switches = dict(vit_channel_attention='shared', sampling_norm=False) if authors else {}
    neck = make_neck(fusion=fusion, ema_group_channels=4, **switches)
    outs = neck(*make_inputs())
    # Random weights: LayerNorm outputs sum to ~0 over channels.
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()
    for name, p in neck.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_mismatched_sizes_raise():
    neck = make_neck()
    vit, local = make_inputs()
    local[3] = torch.randn(2, LOCAL_C[3], 3, 3)
    with pytest.raises(ValueError, match='level 3'):
        neck(vit, local)


def test_wrong_number_of_levels_raises():
    neck = make_neck()
    vit, local = make_inputs()
    with pytest.raises(ValueError, match='expected 4'):
        neck(vit[:3], local)


def test_invalid_fusion_raises():
    with pytest.raises(ValueError, match="'fai', 'sum'"):
        make_neck(fusion='concat')


def test_sampling_follows_stride_ratio():
    def kinds(s):
        return [type(m).__name__ for m in ScaleAwareSampling(
            4, in_stride=16, out_stride=s)]

    assert kinds(4) == ['ConvTranspose2d', 'BatchNorm2d', 'GELU',
                        'ConvTranspose2d']
    # without a norm (the authors' code) both transposed convs have a bias
    plain = ScaleAwareSampling(4, in_stride=16, out_stride=4, norm_cfg=None)
    assert [type(m).__name__ for m in plain] == ['ConvTranspose2d', 'GELU', 'ConvTranspose2d']
    assert plain[0].bias is not None
    assert ScaleAwareSampling(4, in_stride=16, out_stride=4)[0].bias is None  # BN follows
    assert kinds(8) == ['ConvTranspose2d']
    assert kinds(16) == []
    assert kinds(32) == ['MaxPool2d']
    with pytest.raises(ValueError, match='power-of-two'):
        ScaleAwareSampling(4, in_stride=16, out_stride=5)


def test_fidelity_switches_change_the_built_neck():
    """Defaults follow the paper / the authors' code; each switch changes the
    module it names."""
    neck = make_neck()
    # position-wise alpha: one map per level
    assert all(w.out.out_channels == 1 for w in neck.weight_generators)
    assert all(w.out.out_channels == OUT_C
               for w in make_neck(alpha_channels=OUT_C).weight_generators)
    with pytest.raises(ValueError, match='alpha_channels'):
        make_neck(alpha_channels=3)
    # EMA: a fixed number of channels per group (8), not a fixed number of groups
    assert [b[0].groups for b in neck.local_branches] == [c // 8 for c in LOCAL_C]
    assert [b[0].groups for b in make_neck(ema_group_channels=4).local_branches] == \
        [c // 4 for c in LOCAL_C]
    with pytest.raises(ValueError, match='ema_group_channels'):
        make_neck(ema_group_channels=3)
    # multi-scale convs: full by default, depthwise as an option
    full = neck.vit_branches[0][1].branches
    depthwise = make_neck(multiscale_conv='depthwise').vit_branches[0][1].branches
    assert [c.groups for c in full] == [1, 1, 1]
    assert [c.groups for c in depthwise] == [OUT_C] * 3
    assert [c.kernel_size for c in full] == [(3, 3), (5, 5), (7, 7)]
    with pytest.raises(ValueError, match='multiscale_conv'):
        make_neck(multiscale_conv='separable')


def _attentions(neck):
    return [m for m in neck.modules() if isinstance(m, ChannelAttention)]


def test_vit_channel_attention_per_level_or_shared():
    per_level = make_neck()
    assert [type(b[0]) for b in per_level.vit_branches] == [ChannelAttention] * 4
    assert len(_attentions(per_level)) == 4
    mlp = per_level.vit_branches[0][0].mlp
    assert (mlp[0].out_channels, type(mlp[1]), mlp[0].bias is not None) == \
        (VIT_C // 4, nn.GELU, True)

    shared = make_neck(vit_channel_attention='shared')
    assert [type(b[0]) for b in shared.vit_branches] == [nn.Identity] * 4
    (attention,) = _attentions(shared)
    assert attention is shared.vit_channel_attention
    mlp = attention.mlp
    assert (mlp[0].out_channels, type(mlp[1]), mlp[0].bias, mlp[2].bias) == \
        (VIT_C // 16, nn.ReLU, None, None)
    # the one module gates every level's ViT feature, before its branch
    gated, hooks = _capture([attention])
    branch_in = []
    hooks += [b.register_forward_pre_hook(lambda mod, args: branch_in.append(args[0]))
              for b in shared.vit_branches]
    vit, local = make_inputs()
    shared.fuse(vit, local)
    for hook in hooks:
        hook.remove()
    assert len(gated) == 4
    for x, g, b in zip(vit, gated, branch_in):
        assert g is b
        torch.testing.assert_close(g, x * attention.weights(x))
    with pytest.raises(ValueError, match=r"model\.neck\.vit_channel_attention .*'shared'"):
        make_neck(vit_channel_attention='none')


def test_sampling_norm_switch():
    assert [type(m).__name__ for m in make_neck(sampling_norm=False).vit_branches[0][2]] == \
        ['ConvTranspose2d', 'GELU', 'ConvTranspose2d']
    with pytest.raises(ValueError, match=r'model\.neck\.sampling_norm must be True or False'):
        make_neck(sampling_norm='yes')


def test_default_state_dict_keys_are_unchanged():
    """Checkpoints of the default neck keep loading: the ViT branch keeps its
    key layout (attention at index 0) and the switches add no default keys."""
    branch = [k for k in make_neck().state_dict() if k.startswith('vit_branches.0.')]
    assert [k for k in branch if not k.startswith('vit_branches.0.1.')] == [
        'vit_branches.0.0.mlp.0.weight', 'vit_branches.0.0.mlp.0.bias',
        'vit_branches.0.0.mlp.2.weight', 'vit_branches.0.0.mlp.2.bias',
        'vit_branches.0.2.0.weight', 'vit_branches.0.2.1.weight', 'vit_branches.0.2.1.bias',
        'vit_branches.0.2.1.running_mean', 'vit_branches.0.2.1.running_var',
        'vit_branches.0.2.1.num_batches_tracked', 'vit_branches.0.2.3.weight',
        'vit_branches.0.2.3.bias']
    assert not any(k.startswith('vit_channel_attention') for k in make_neck().state_dict())


def _vit_h_params(**kwargs):
    with torch.device('meta'):  # no memory, no init time
        neck = FAINeck(vit_channels=1280, local_channels=(256, 512, 1024, 2048),
                       out_channels=256, **kwargs)
    return sum(p.numel() for p in neck.parameters())


def test_fidelity_switch_parameter_counts_at_vit_h_sizes():
    default = _vit_h_params()
    # 4 x (1280 -> 320 -> 1280, biases) per level vs one 1280 -> 80 -> 1280 without
    per_level = 4 * (2 * 1280 * 320 + 320 + 1280)
    assert default - _vit_h_params(vit_channel_attention='shared') == \
        per_level - 2 * 1280 * 80 == 3_078_400
    # level 0 (stride 4): BN's 2 x 256 go, the first transposed conv's bias comes back
    assert default - _vit_h_params(sampling_norm=False) == 2 * 256 - 256
