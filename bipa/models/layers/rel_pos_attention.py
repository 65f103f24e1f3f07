"""Scaled dot-product attention with SAM's decomposed relative positions."""
from typing import Tuple

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import get_rel_pos


def decomposed_rel_pos(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                       q_size: Tuple[int, int], k_size: Tuple[int, int]
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Height and width terms of the decomposed relative-position bias (MViTv2).

    ``q``: ``(B, heads, q_h*q_w, C)``, unscaled. Returns ``rel_h`` of shape
    ``(B, heads, q_h*q_w, k_h)`` and ``rel_w`` of shape ``(B, heads, q_h*q_w, k_w)``:
    the bias between query ``(i, j)`` and key ``(m, n)`` is
    ``rel_h[..., i*q_w+j, m] + rel_w[..., i*q_w+j, n]``.
    """
    (q_h, q_w), (k_h, k_w) = q_size, k_size
    r_h = get_rel_pos(q_h, k_h, rel_pos_h).to(q.dtype)
    r_w = get_rel_pos(q_w, k_w, rel_pos_w).to(q.dtype)
    r_q = q.unflatten(2, (q_h, q_w))
    rel_h = torch.einsum('bnhwc,hkc->bnhwk', r_q, r_h).flatten(2, 3)
    rel_w = torch.einsum('bnhwc,wkc->bnhwk', r_q, r_w).flatten(2, 3)
    return rel_h, rel_w


def rel_pos_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                      size: Tuple[int, int], *, scale: float,
                      fold_bias: bool = False) -> torch.Tensor:
    """``softmax(scale * q k^T + B_rel) v`` through ``F.scaled_dot_product_attention``.

    Inputs are ``(B, heads, N, C)`` with ``N = H*W`` tokens of one (window or
    whole) feature map of ``size``; queries and keys share the grid.

    ``fold_bias=False`` passes ``B_rel`` as an additive ``attn_mask`` of
    ``(B, heads, N, N)`` -- cheap for 14x14 windows. ``fold_bias=True`` never
    materialises it (for global attention it would be heads x 4096 x 4096 per
    image): since ``B_rel[(i,j),(m,n)] = rel_h[(i,j), m] + rel_w[(i,j), n]``,
    appending ``rel_h, rel_w`` to the scaled queries and the one-hot codes of
    ``m`` and ``n`` to the keys yields exactly ``scale * q k^T + B_rel`` as a
    plain dot product, which any fused SDPA kernel can take.
    """
    h, w = size
    rel_h, rel_w = decomposed_rel_pos(q, rel_pos_h, rel_pos_w, size, size)
    if not fold_bias:
        bias = (rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)).flatten(-2)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    rows = torch.arange(h, device=q.device).repeat_interleave(w)
    cols = torch.arange(w, device=q.device).repeat(h)
    key_codes = torch.cat([F.one_hot(rows, h), F.one_hot(cols, w)], dim=-1).to(k.dtype)
    q_aug = torch.cat([q * scale, rel_h, rel_w], dim=-1)
    k_aug = torch.cat([k, key_codes.expand(*k.shape[:2], -1, -1)], dim=-1)
    return F.scaled_dot_product_attention(q_aug, k_aug, v, scale=1.0)
