"""The scene of a synthetic image, before any medium: a seabed seen in
perspective, 1-6 objects placed by a pinhole camera, their visible masks and
the clear colours J and distances d of every pixel.

Seabed objects (reefs, plants) stand on the seabed, so their distance is that
of the seabed at their base; the others float. Occlusion is exact: objects
are painted far to near, each visible mask is its own mask minus the masks
painted after it, and objects whose visible area is too small are removed
from the scene (not painted) until the visibility is stable.
"""
import math
from typing import List

import cv2
import numpy as np

from .shapes import (
    BUILDERS,
    DIVER,
    FISH,
    PLANT,
    REEF,
    ROBOT,
    SAND,
    Placed,
    build_fish,
    default_texture,
    pick,
    rasterize,
    value_noise,
)

MIN_INSTANCES = 1
MAX_INSTANCES = 6
# Relative frequency of each class when sampling instances.
CLASS_WEIGHTS = (0.32, 0.2, 0.2, 0.14, 0.14)
MIN_VISIBLE_PIXELS = 10
MIN_VISIBLE_FRACTION = 2.5e-4
MIN_VISIBLE_RATIO = 0.05
FAR = 200.0  # distance (m) used for open water / the far seabed


def sample_camera(rng, H: int, W: int) -> dict:
    """Focal length (px), horizon row and camera height (m)."""
    fov = rng.uniform(math.radians(60), math.radians(90))
    return dict(focal=0.5 * W / math.tan(fov / 2),
                horizon=H * rng.uniform(-0.35, 0.5),
                height=rng.uniform(1.0, 3.5))


def seabed(rng, H, W, cam):
    """Clear-water seabed colour J and depth d (open water above horizon)."""
    y_h, h_cam, f = cam['horizon'], cam['height'], cam['focal']
    ys = np.arange(H, dtype=np.float32)[:, None] + 0.5
    dy = ys - np.float32(y_h)
    with np.errstate(divide='ignore'):
        dist = np.where(dy > 0, h_cam * f / np.maximum(dy, 1e-3),
                        FAR)
    dist = np.minimum(dist, FAR).astype(np.float32)
    depth = np.broadcast_to(dist, (H, W)).copy()
    sand = pick(rng, SAND, 0.03)
    S = max(H, W)
    tex = value_noise(rng, H, W, rng.uniform(4, 10), octaves=4)
    fine = value_noise(rng, H, W, S / 6.0)
    # ripples in ground-plane coordinates, fading with distance
    xs = (np.arange(W, dtype=np.float32)[None, :] - W / 2) / np.float32(f)
    gx, gz = xs * dist, dist
    ang = rng.uniform(0, np.pi)
    lam = rng.uniform(0.08, 0.3)
    phase = (gx * math.cos(ang) + gz * math.sin(ang)) / lam * 2 * np.pi
    ripple = np.sin(phase + 4 * tex) * np.exp(-dist / 6.0)
    ripple *= np.float32(rng.uniform(0.0, 0.12))
    shade = 0.7 + 0.45 * tex + 0.15 * (fine - 0.5) + ripple
    J = sand[None, None, :] * shade[..., None]
    # pebbles
    npeb = int(rng.poisson(25 * H * W / 256 ** 2))
    if npeb:
        px = rng.uniform(0, W, npeb)
        py = rng.uniform(0, H, npeb)
        pc = rng.uniform(0.5, 1.3, npeb)
        for x, y, c in zip(px, py, pc):
            yi = min(int(y), H - 1)
            if dist[yi, 0] >= 30:
                continue
            r = 0.03 * f / dist[yi, 0]
            if r < 0.7:
                continue
            cv2.ellipse(J, (int(x), yi), (max(1, int(round(r))),
                                          max(1, int(round(r * 0.6)))),
                        0, 0, 360, (sand * c * 0.8).tolist(), -1)
    return J.astype(np.float32), depth


def _place(rng, shape, size_m, unit_label, H, W, cam, z_range, min_size=0.07):
    """Pick position, scale, rotation, flip and distance of an object."""
    f, y_h, h_cam = cam['focal'], cam['horizon'], cam['height']
    S = min(H, W)
    z_min, z_max = z_range
    anchored = unit_label in (REEF, PLANT)
    if anchored:
        # seabed distance at image row y is h*f/(y - y_h): base rows visible
        z_lo = max(z_min, h_cam * f / max(1.05 * H - y_h, 1e-3))
        if z_lo < z_max:
            z = z_lo + (z_max - z_lo) * rng.random() ** 1.5
            cy = y_h + h_cam * f / z
            cx = rng.uniform(0.0, W)
        else:
            anchored = False
    if not anchored:
        z = z_min + (z_max - z_min) * rng.random() ** 1.7
        cx, cy = rng.uniform(0.05 * W, 0.95 * W), rng.uniform(0.05 * H,
                                                               0.95 * H)
        if cy > y_h:
            z = min(z, h_cam * f / (cy - y_h) * rng.uniform(0.6, 0.95))
            z = max(z, 0.3)
    scale = size_m * f / z
    scale = float(np.clip(scale, max(6.0, min_size * S), 0.9 * S))
    if unit_label == FISH:
        angle, flip = rng.normal(0, 0.3), rng.random() < 0.5
    elif unit_label == DIVER:
        if rng.random() < 0.2:
            angle = -np.pi / 2 + rng.normal(0, 0.3)
        else:
            angle = rng.normal(0, 0.45)
        flip = rng.random() < 0.5
    elif unit_label == ROBOT:
        angle, flip = rng.normal(0, 0.2), rng.random() < 0.5
    else:
        angle, flip = rng.normal(0, 0.1), rng.random() < 0.5
    if unit_label == PLANT and shape.min_line * scale < 1.2:
        scale = 1.2 / max(shape.min_line, 1e-6)  # keep stalks >= ~1 px
        scale = min(scale, 0.9 * S)
    return cx, cy, scale, angle, flip, z


def visible_masks(placed: List[Placed], H, W):
    """Visible masks (full frame) of painted-far-to-near objects."""
    occupied = np.zeros((H, W), bool)
    out = [None] * len(placed)
    for i in range(len(placed) - 1, -1, -1):
        full = np.zeros((H, W), bool)
        full[placed[i].box] = placed[i].mask
        out[i] = full & ~occupied
        occupied |= full
    return out


def layout(rng, H, W, cam, z_range, n, min_size=0.07):
    labels = rng.choice(len(BUILDERS), size=n, p=CLASS_WEIGHTS)
    placed = []
    for lab in labels:
        shape, size_m, tex = BUILDERS[int(lab)](rng)
        cx, cy, scale, angle, flip, z = _place(rng, shape, size_m, int(lab),
                                               H, W, cam, z_range, min_size)
        r = rasterize(shape, cx, cy, scale, angle, flip, H, W)
        if r is None:
            continue
        x0, y0, idmap, uv = r
        p = Placed(shape, x0, y0, idmap, uv, z, scale, size_m)
        p.texture = tex
        placed.append(p)
    # far to near; ties keep sampling order (stable sort)
    placed.sort(key=lambda p: -p.depth)
    min_area = max(MIN_VISIBLE_PIXELS, MIN_VISIBLE_FRACTION * H * W)
    while placed:
        vis = visible_masks(placed, H, W)
        areas = [int(m.sum()) for m in vis]
        keep = [i for i, (p, a) in enumerate(zip(placed, areas))
                if a >= min_area and a >= MIN_VISIBLE_RATIO * p.in_frame]
        if len(keep) == len(placed):
            return placed, vis
        placed = [placed[i] for i in keep]
    return [], []


def compose_scene(rng, H: int, W: int, cam: dict, z_range, min_object_size: float):
    """Lay out and paint one scene.

    Returns ``(J, depth, placed, masks)``: clear colours (H x W x 3 float32),
    distances (m), the painted objects far to near and their visible masks.
    """
    J, depth = seabed(rng, H, W, cam)
    placed, vis = [], []
    for _ in range(20):
        n = int(rng.integers(MIN_INSTANCES, MAX_INSTANCES + 1))
        placed, vis = layout(rng, H, W, cam, z_range, n, min_object_size)
        if placed:
            break
    if not placed:  # practically unreachable; a big near fish in the middle
        shape, size_m, tex = build_fish(rng)
        x0, y0, idmap, uv = rasterize(shape, W / 2, H / 2, 0.6 * min(H, W),
                                      0.0, False, H, W)
        p = Placed(shape, x0, y0, idmap, uv, 1.0, 0.6 * min(H, W), size_m)
        p.texture = tex
        placed, vis = [p], visible_masks([p], H, W)

    for p in placed:  # far to near
        ys, xs = p.box
        rgb = np.asarray(p.shape.colours, np.float32)[p.idmap]
        rgb = (p.texture or default_texture)(rgb, p, rng)
        if p.label in (REEF, PLANT):  # contact shadow on the seabed
            sh = cv2.GaussianBlur(p.mask.astype(np.float32), (0, 0),
                                  max(1.0, 0.05 * p.scale))
            J[ys, xs] *= (1.0 - 0.35 * sh)[..., None]
        m = p.mask
        J[ys, xs][m] = np.clip(rgb[m], 0.0, 1.0)
        relief = 0.0
        if p.label == REEF:
            relief = 0.1 * p.size_m * (p.uv[1][m] + 0.5)
        depth[ys, xs][m] = p.depth + relief
    return J, depth, placed, vis
