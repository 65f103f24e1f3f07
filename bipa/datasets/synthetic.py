"""Deterministic synthetic underwater instance-segmentation dataset.

Each image is rendered in three steps (numpy + OpenCV only):

1. **Clear-water scene J.** A seabed seen in perspective (sand colour,
   multi-octave texture, ripples, pebbles) below an optional horizon, with
   1-6 instances of :data:`SYNTHETIC_CLASSES` (fish with tail, fins and eye;
   reef clusters of irregular textured rocks, optionally with branching coral
   or sponges; kelp / sea-grass plants with swaying stalks and blades; divers
   with head, mask, torso, tank, arms, legs and fins; boxy ROVs with
   thrusters, camera dome and frame openings, or torpedo AUVs). Objects are
   drawn from primitives in their own frame and placed with a random
   similarity transform. Their size follows their distance from the camera
   (pinhole model); seabed objects stand on the seabed, so their distance is
   that of the seabed at their base. Caustics modulate the lit surfaces.
2. **Depth map d.** Seabed distance (ground plane in perspective, open water
   far away) overwritten by each object's distance.
3. **Underwater image formation.** ``I = J * E * t + B * (1 - t)`` with
   ``t_c = exp(-beta_c * d)``, wavelength-dependent attenuation
   ``beta_red > beta_green > beta_blue``, downwelling illumination
   ``E_c = exp(-beta_c * z_surface)``, a blue-green background light B
   (brighter towards the surface, optional light shafts), plus haze, forward
   scattering blur, marine snow and sensor noise, all varied per image.

Occlusion is exact: instances are painted far to near; each instance's
visible mask is its own mask minus the masks of the instances painted after
it. Instances whose visible area is below ``max(MIN_VISIBLE_PIXELS,
MIN_VISIBLE_FRACTION * H * W)`` (or below ``MIN_VISIBLE_RATIO`` of their
in-frame area) are removed from the scene altogether (not painted), and the
visibility is recomputed until it is stable, so every annotated mask is
non-empty and every painted object is annotated. Images always hold at least
one instance.

Output layout (COCO)::

    out_dir/
        annotations/{split}.json
        {split}/000000.jpg, 000001.jpg, ...

``file_name`` in the json is relative to the split folder (``000000.jpg``),
so a dataset config sets ``data_root=out_dir``,
``ann_file='annotations/train.json'`` and ``data_prefix=dict(img='train/')``.
Image ids are ``index + 1`` and annotation ids run from 1, both unique within
a split. Masks are compressed COCO RLE of the final visible mask, ``bbox``
is its tight box ``[x, y, w, h]`` (integers; pixel ``x`` covers
``[x, x + 1)``), ``area`` its pixel count, ``iscrowd`` 0; category ids are
1..5 in :data:`SYNTHETIC_CLASSES` order. Since masks are RLE, the mmdet
``LoadAnnotations`` transform must keep ``poly2mask=True`` (its default).

Everything is deterministic: image ``index`` of ``split`` is rendered with
``np.random.default_rng([seed, crc32(split), index])``, so the same seed
gives byte-identical json files and images (independently of the other
splits' sizes).
"""
import json
import math
import os
import os.path as osp
import zlib
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

SYNTHETIC_CLASSES = ('fish', 'reefs', 'aquatic plants', 'human divers',
                     'robots')
DEFAULT_SPLITS = {'train': 1000, 'val': 200, 'test': 200}
DEFAULT_IMAGE_SIZE = (512, 512)  # (H, W)
MIN_INSTANCES = 1
MAX_INSTANCES = 6
# Relative frequency of each class when sampling instances.
CLASS_WEIGHTS = (0.32, 0.2, 0.2, 0.14, 0.14)
MIN_VISIBLE_PIXELS = 10
MIN_VISIBLE_FRACTION = 2.5e-4
MIN_VISIBLE_RATIO = 0.05
JPEG_QUALITY = 95

FISH, REEF, PLANT, DIVER, ROBOT = range(5)
_WATER_DEPTH = 200.0  # distance (m) used for open water / the far seabed
_SUBPIX = 4  # cv2 drawing precision: 1/16 pixel

# ---------------------------------------------------------------- colours
# Linear-ish RGB in [0, 1].
_SAND = ((0.78, 0.72, 0.56), (0.70, 0.66, 0.55), (0.60, 0.58, 0.52),
         (0.50, 0.44, 0.34), (0.72, 0.70, 0.64), (0.62, 0.52, 0.40))
_FISH = ((0.80, 0.80, 0.82), (0.95, 0.80, 0.15), (0.95, 0.45, 0.10),
         (0.25, 0.45, 0.85), (0.55, 0.58, 0.45), (0.85, 0.25, 0.20),
         (0.30, 0.30, 0.32), (0.90, 0.90, 0.70), (0.45, 0.70, 0.80),
         (0.70, 0.35, 0.75))
_FISH_ACCENT = ((0.05, 0.05, 0.08), (0.95, 0.95, 0.95), (0.15, 0.25, 0.70),
                (0.95, 0.85, 0.20), (0.60, 0.10, 0.10))
_ROCK = ((0.45, 0.42, 0.38), (0.35, 0.33, 0.25), (0.55, 0.35, 0.28),
         (0.50, 0.30, 0.45), (0.75, 0.45, 0.30), (0.80, 0.55, 0.60),
         (0.40, 0.45, 0.35), (0.60, 0.58, 0.50))
_CORAL = ((0.90, 0.45, 0.35), (0.85, 0.70, 0.35), (0.70, 0.30, 0.65),
          (0.95, 0.80, 0.75), (0.45, 0.75, 0.65), (0.85, 0.25, 0.30))
_PLANT = ((0.20, 0.50, 0.15), (0.35, 0.55, 0.20), (0.45, 0.45, 0.15),
          (0.45, 0.32, 0.12), (0.55, 0.20, 0.20), (0.15, 0.40, 0.25))
_SUIT = ((0.05, 0.05, 0.06), (0.08, 0.10, 0.20), (0.20, 0.20, 0.22),
         (0.10, 0.08, 0.06))
_SUIT_ACCENT = ((0.85, 0.15, 0.10), (0.10, 0.35, 0.85), (0.95, 0.80, 0.10),
                (0.60, 0.60, 0.65), (0.10, 0.60, 0.55))
_TANK = ((0.95, 0.80, 0.10), (0.75, 0.75, 0.78), (0.10, 0.10, 0.12),
         (0.90, 0.90, 0.90), (0.85, 0.35, 0.10))
_FINS = ((0.05, 0.05, 0.05), (0.95, 0.80, 0.10), (0.10, 0.30, 0.80),
         (0.80, 0.20, 0.15))
_ROBOT_BODY = ((0.98, 0.78, 0.05), (0.95, 0.45, 0.05), (0.92, 0.92, 0.90),
               (0.85, 0.15, 0.10), (0.20, 0.40, 0.80))
_ROBOT_FRAME = ((0.10, 0.10, 0.11), (0.30, 0.30, 0.32), (0.62, 0.62, 0.65),
                (0.18, 0.20, 0.25))
_DARK = (0.06, 0.06, 0.07)
_GLASS = (0.10, 0.18, 0.28)
_LAMP = (1.0, 0.97, 0.85)
_SKIN = (0.85, 0.62, 0.50)


def _pick(rng, options, jitter=0.06):
    c = np.asarray(options[int(rng.integers(len(options)))], np.float32)
    c = c * np.float32(rng.uniform(0.85, 1.12)) + rng.normal(
        0, jitter, 3).astype(np.float32)
    return np.clip(c, 0.02, 1.0).astype(np.float32)


# ---------------------------------------------------------------- helpers
def _value_noise(rng, h: int, w: int, cells: float, octaves: int = 1,
                 persistence: float = 0.5) -> np.ndarray:
    """Smooth noise in [0, 1] (bicubic upsampling of random grids)."""
    h, w = max(int(h), 1), max(int(w), 1)
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        c = cells * 2 ** o
        gh = int(max(2, round(c * h / max(h, w)))) + 1
        gw = int(max(2, round(c * w / max(h, w)))) + 1
        grid = rng.random((gh, gw), dtype=np.float32)
        out += np.float32(amp) * cv2.resize(grid, (w, h),
                                            interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= persistence
    out /= np.float32(total)
    return np.clip(out, 0.0, 1.0, out=out)


def _ellipse(cx, cy, a, b, n=28, angle=0.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = a * np.cos(t), b * np.sin(t)
    ca, sa = math.cos(angle), math.sin(angle)
    return np.stack([cx + ca * x - sa * y, cy + sa * x + ca * y], 1)


def _rect(u0, v0, u1, v1) -> np.ndarray:
    return np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], np.float64)


def _ribbon(center: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Polygon of a curve thickened by ``widths`` (full width per point)."""
    d = np.gradient(center, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
    nrm = np.stack([-d[:, 1], d[:, 0]], 1) * (widths[:, None] / 2)
    return np.concatenate([center + nrm, (center - nrm)[::-1]])


class _Shape:
    """An object drawn from parts in its own frame.

    Parts are ``('poly', pts, 0, colour_id)`` or ``('line', pts, width,
    colour_id)`` in object units; colour id 0 cuts holes. Later parts are
    drawn over earlier ones.
    """

    def __init__(self, label: int):
        self.label = label
        self.parts: List[tuple] = []
        self.colours: List[np.ndarray] = [np.zeros(3, np.float32)]
        self.min_line = 0.0  # thinnest line width in object units

    def colour(self, rgb) -> int:
        self.colours.append(np.asarray(rgb, np.float32))
        return len(self.colours) - 1

    def poly(self, pts, cid: int):
        self.parts.append(('poly', np.asarray(pts, np.float64), 0.0, cid))

    def line(self, pts, width: float, cid: int):
        self.parts.append(('line', np.asarray(pts, np.float64), width, cid))


class _Placed:
    """A shape rasterised into its (clipped) box of the image."""

    def __init__(self, shape, x0, y0, idmap, local_uv, depth, scale, size_m):
        self.shape = shape
        self.label = shape.label
        self.x0, self.y0 = x0, y0
        self.idmap = idmap
        self.mask = idmap > 0
        self.uv = local_uv
        self.depth = depth
        self.scale = scale
        self.size_m = size_m
        self.in_frame = int(self.mask.sum())
        self.texture = None

    @property
    def box(self):
        h, w = self.idmap.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)


def _rasterize(shape: _Shape, cx, cy, scale, angle, flip, height, width):
    """Draw ``shape`` with a similarity transform; ``None`` if off-image."""
    ca, sa = math.cos(angle) * scale, math.sin(angle) * scale
    fx = -1.0 if flip else 1.0
    lin = np.array([[ca * fx, -sa], [sa * fx, ca]])
    off = np.array([cx, cy])
    pts_img, pad = [], 1.0
    for kind, pts, w, _ in shape.parts:
        pts_img.append(pts @ lin.T + off)
        if kind == 'line':
            pad = max(pad, w * scale / 2 + 1)
    allp = np.concatenate(pts_img)
    x0 = max(int(math.floor(allp[:, 0].min() - pad)), 0)
    y0 = max(int(math.floor(allp[:, 1].min() - pad)), 0)
    x1 = min(int(math.ceil(allp[:, 0].max() + pad)) + 1, width)
    y1 = min(int(math.ceil(allp[:, 1].max() + pad)) + 1, height)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    idmap = np.zeros((y1 - y0, x1 - x0), np.uint8)
    k = float(1 << _SUBPIX)
    for (kind, _, w, cid), p in zip(shape.parts, pts_img):
        q = np.round((p - (x0, y0)) * k).astype(np.int32)
        if kind == 'poly':
            cv2.fillPoly(idmap, [q], int(cid), cv2.LINE_8, _SUBPIX)
        else:
            thick = max(1, int(round(w * scale)))
            cv2.polylines(idmap, [q], False, int(cid), thick, cv2.LINE_8,
                          _SUBPIX)
    if not idmap.any():
        return None
    # object-frame coordinates of every pixel of the box (for textures)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    inv = np.linalg.inv(lin).astype(np.float32)
    dx, dy = xs - np.float32(cx), ys - np.float32(cy)
    u = inv[0, 0] * dx + inv[0, 1] * dy
    v = inv[1, 0] * dx + inv[1, 1] * dy
    return x0, y0, idmap, (u, v)


# ---------------------------------------------------------------- shapes
# Each builder returns (shape, physical size in metres of one object unit,
# texture hook). Object frames: fish/diver/robot face +u, length ~1;
# reef/plant have their base at v=0 and grow towards -v (up).
def _build_fish(rng):
    s = _Shape(FISH)
    bd = rng.uniform(0.08, 0.24)  # half body depth
    body_c = _pick(rng, _FISH)
    fin_c = np.clip(body_c * rng.uniform(0.55, 0.9)
                    + rng.normal(0, 0.05, 3), 0.02, 1).astype(np.float32)
    t = np.linspace(0, 2 * np.pi, 36, endpoint=False)
    prof = 0.82 + 0.22 * np.cos(t)  # deeper towards the head
    body = np.stack([0.4 * np.cos(t), bd * np.sin(t) * prof], 1)
    th, fork = rng.uniform(0.1, 0.24), rng.uniform(0.0, 0.09)
    ped = max(0.025, bd * 0.3)
    tail = [(-0.3, -ped), (-0.56, -th), (-0.56 + fork, 0.0), (-0.56, th),
            (-0.3, ped)]
    df = rng.uniform(0.04, 0.16)
    dorsal = [(0.12, -bd * 0.8), (-0.02 + rng.uniform(-0.05, 0.05),
                                  -bd - df), (-0.22, -bd * 0.55)]
    anal = [(-0.04, bd * 0.75), (-0.14, bd + df * 0.6), (-0.24, bd * 0.5)]
    fin = s.colour(fin_c)
    s.poly(tail, fin)
    s.poly(dorsal, fin)
    s.poly(anal, fin)
    body_id = s.colour(body_c)
    s.poly(body, body_id)
    pect = s.colour(fin_c * 0.85)
    s.poly([(0.16, bd * 0.15), (0.02, bd * 0.05), (0.04, bd * 0.45)], pect)
    gill = s.colour(body_c * 0.6)
    gu = 0.22
    s.line([(gu, -bd * 0.55), (gu - 0.03, 0.0), (gu, bd * 0.55)], 0.012, gill)
    er = min(0.04, bd * 0.32)
    s.poly(_ellipse(0.29, -bd * 0.22, er, er, 16), s.colour((0.92, 0.9, 0.8)))
    s.poly(_ellipse(0.295, -bd * 0.22, er * 0.55, er * 0.55, 12),
           s.colour(_DARK))
    stripes = rng.random() < 0.45
    accent = _pick(rng, _FISH_ACCENT, 0.03)
    freq, phase = rng.uniform(3, 9), rng.uniform(0, 2 * np.pi)

    def texture(rgb, placed, rng):
        u, v = placed.uv
        on_body = placed.idmap == body_id
        shade = 1.0 + 0.4 * np.clip(v / np.float32(bd), -1, 1)  # countershade
        rgb *= shade[..., None]
        if stripes:
            band = (np.sin(u * np.float32(freq * 2 * np.pi) + phase) > 0.55)
            band &= on_body & (u < 0.2)
            rgb[band] = accent
        return rgb

    return s, rng.uniform(0.15, 0.8), texture


def _rock_blob(rng, cu, cv, r, n=40):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rad = np.ones(n)
    for k in range(2, 8):
        rad += rng.uniform(0, 0.3 / k) * np.cos(k * t + rng.uniform(0, 6.3))
    rad *= r
    pts = np.stack([cu + rad * np.cos(t), cv + rad * np.sin(t) * 0.8], 1)
    pts[:, 1] = np.minimum(pts[:, 1], 0.03)  # flat where it sits on sand
    return pts


def _build_reef(rng):
    s = _Shape(REEF)
    base_c = _pick(rng, _ROCK)
    cid = s.colour(base_c)
    n = int(rng.integers(2, 6))
    for _ in range(n):
        r = rng.uniform(0.14, 0.32)
        s.poly(_rock_blob(rng, rng.uniform(-0.35, 0.35),
                          -r * rng.uniform(0.3, 0.9), r), cid)
    top = min(p[1][:, 1].min() for p in s.parts)
    extra = rng.random()
    if extra < 0.35:  # branching coral on the rocks
        cc = s.colour(_pick(rng, _CORAL))
        for _ in range(int(rng.integers(1, 3))):
            root = np.array([rng.uniform(-0.25, 0.25), top * 0.6])
            stack = [(root, -np.pi / 2 + rng.uniform(-0.4, 0.4), 0.22, 0.05)]
            while stack:
                p, ang, ln, w = stack.pop()
                q = p + ln * np.array([math.cos(ang), math.sin(ang)])
                s.line([p, q], w, cc)
                if ln > 0.08:
                    for da in (-rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)):
                        stack.append((q, ang + da, ln * 0.68, w * 0.75))
    elif extra < 0.6:  # tube sponges
        cc = s.colour(_pick(rng, _CORAL))
        for _ in range(int(rng.integers(2, 5))):
            u = rng.uniform(-0.3, 0.3)
            h = rng.uniform(0.15, 0.4)
            w = rng.uniform(0.05, 0.09)
            lean = rng.uniform(-0.08, 0.08)
            s.line([(u, top * 0.5), (u + lean, top * 0.5 - h)], w, cc)
            s.poly(_ellipse(u + lean, top * 0.5 - h, w * 0.35, w * 0.15, 12),
                   s.colour(_DARK))
    cells = rng.uniform(3, 8)

    def texture(rgb, placed, rng):
        h, w = placed.idmap.shape
        c = cells * max(h, w) / max(placed.scale, 1e-6) * 2
        nz = _value_noise(rng, h, w, max(2.0, c), octaves=3)
        rgb *= (0.55 + 0.9 * nz)[..., None]
        crev = nz < 0.3
        rgb[crev] *= 0.55
        return rgb

    return s, rng.uniform(0.5, 2.5), texture


def _build_plant(rng):
    s = _Shape(PLANT)
    kelp = rng.random() < 0.45
    col = _pick(rng, _PLANT)
    cid = s.colour(col)
    blade = s.colour(np.clip(col * 1.15, 0, 1))
    n = int(rng.integers(1, 4)) if kelp else int(rng.integers(3, 10))
    ns = 16
    sway_dir = rng.uniform(-1, 1)
    for _ in range(n):
        u0 = rng.uniform(-0.15, 0.15)
        h = rng.uniform(0.55, 1.0)
        amp = rng.uniform(0.02, 0.1)
        om, ph = rng.uniform(3, 9), rng.uniform(0, 6.3)
        lean = sway_dir * rng.uniform(0.05, 0.3) + rng.uniform(-0.1, 0.1)
        sp = np.linspace(0, 1, ns)
        cu = u0 + lean * sp ** 1.5 * h + amp * np.sin(om * sp + ph) * sp
        center = np.stack([cu, -h * sp], 1)
        w0 = rng.uniform(0.035, 0.06) if kelp else rng.uniform(0.018, 0.04)
        widths = w0 * (1 - 0.75 * sp) + 0.004
        s.poly(_ribbon(center, widths), cid)
        if kelp:  # blades alternating along the stipe
            for j in range(3, ns - 1, 2):
                side = 1 if j % 4 == 1 else -1
                d = center[j + 1] - center[j - 1]
                ang = math.atan2(d[1], d[0]) + side * rng.uniform(0.4, 0.9)
                bl = rng.uniform(0.08, 0.18) * h
                c0 = center[j] + 0.5 * bl * np.array(
                    [math.cos(ang), math.sin(ang)])
                s.poly(_ellipse(c0[0], c0[1], bl / 2, bl * 0.18, 16, ang),
                       blade)
        else:
            s.min_line = w0

    def texture(rgb, placed, rng):
        u, v = placed.uv
        shade = 0.75 + 0.45 * np.clip(-v, 0, 1)  # lighter towards the tips
        h, w = placed.idmap.shape
        nz = _value_noise(rng, h, w, 6)
        rgb *= (shade * (0.85 + 0.3 * nz))[..., None]
        return rgb

    return s, rng.uniform(0.3, 2.0), texture


def _limb(root, ln1, ln2, a1, bend):
    knee = root + ln1 * np.array([math.cos(a1), math.sin(a1)])
    a2 = a1 + bend
    end = knee + ln2 * np.array([math.cos(a2), math.sin(a2)])
    return np.array([root, knee, end]), a2


def _build_diver(rng):
    s = _Shape(DIVER)
    suit = _pick(rng, _SUIT, 0.02)
    far_suit = s.colour(suit * 0.7)
    near_suit = s.colour(suit)
    accent = s.colour(_pick(rng, _SUIT_ACCENT, 0.03))
    fin_c = _pick(rng, _FINS, 0.03)
    fin_far, fin_near = s.colour(fin_c * 0.75), s.colour(fin_c)
    tank = s.colour(_pick(rng, _TANK, 0.03))
    glove = s.colour(_SKIN if rng.random() < 0.3 else suit * 1.2)

    def leg(suit_id, fin_id):
        a1 = np.pi + rng.uniform(-0.35, 0.35)
        pts, a2 = _limb(np.array([0.0, 0.01]), 0.22, 0.2, a1,
                        rng.uniform(-0.7, 0.1))
        s.line(pts, 0.06, suit_id)
        fa = a2 + rng.uniform(-0.3, 0.3)  # fins flex at the ankle
        d = np.array([math.cos(fa), math.sin(fa)])
        p = np.array([-d[1], d[0]])
        ank = pts[-1]
        fl = rng.uniform(0.18, 0.25)
        s.poly([ank + p * 0.025, ank + d * fl + p * 0.06,
                ank + d * (fl + 0.02), ank + d * fl - p * 0.06,
                ank - p * 0.025], fin_id)

    def arm(suit_id):
        if rng.random() < 0.5:  # reaching forward
            a1, bend = rng.uniform(-0.5, 0.6), rng.uniform(-0.5, 0.5)
        else:  # hanging / holding
            a1, bend = rng.uniform(1.0, 2.2), rng.uniform(-1.2, 0.2)
        pts, _ = _limb(np.array([0.31, 0.02]), 0.15, 0.14, a1, bend)
        s.line(pts, 0.045, suit_id)
        s.poly(_ellipse(pts[-1][0], pts[-1][1], 0.028, 0.022, 12), glove)

    leg(far_suit, fin_far)
    arm(far_suit)
    s.line([(0.04, -0.09), (0.3, -0.09)], 0.075, tank)  # cylinder
    s.line([(0.3, -0.09), (0.34, -0.1)], 0.025, s.colour(_DARK))  # valve
    s.poly(_ellipse(0.17, 0.0, 0.2, 0.072), near_suit)  # torso
    s.poly(_ellipse(0.2, 0.02, 0.1, 0.045), accent)  # BCD panel
    s.line([(0.34, -0.1), (0.42, -0.06), (0.47, 0.04)], 0.012,
           s.colour(_DARK))  # hose
    s.poly(_ellipse(0.43, 0.0, 0.062, 0.058), near_suit)  # hooded head
    s.poly(_rect(0.455, -0.01, 0.5, 0.035), s.colour(_GLASS))  # mask
    s.poly(_ellipse(0.475, 0.055, 0.018, 0.018, 12), s.colour(_DARK))
    leg(near_suit, fin_near)
    arm(near_suit)

    def texture(rgb, placed, rng):
        u, v = placed.uv
        rgb *= (1.1 - 0.6 * np.clip(v + 0.1, 0, 0.4))[..., None]
        return rgb

    return s, rng.uniform(1.6, 2.3), texture


def _build_robot(rng):
    s = _Shape(ROBOT)
    body_c = _pick(rng, _ROBOT_BODY, 0.03)
    frame_c = _pick(rng, _ROBOT_FRAME, 0.02)
    if rng.random() < 0.3:  # torpedo AUV
        hd = rng.uniform(0.1, 0.18)
        hull = s.colour(body_c)
        dark = s.colour(frame_c * 0.5)
        s.poly([(-0.42, -hd / 2), (-0.56, -hd * 0.2), (-0.56, hd * 0.2),
                (-0.42, hd / 2)], dark)
        s.poly([(-0.44, -hd * 0.4), (-0.52, -hd * 1.1), (-0.5, -hd * 0.3)],
               dark)
        s.poly([(-0.44, hd * 0.4), (-0.52, hd * 1.1), (-0.5, hd * 0.3)],
               dark)
        s.line([(-0.42, 0.0), (0.4, 0.0)], hd, hull)
        s.poly(_ellipse(0.4, 0.0, 0.08, hd / 2), hull)
        band = s.colour(_pick(rng, _ROBOT_FRAME, 0.02))
        for bu in rng.uniform(-0.3, 0.3, int(rng.integers(1, 3))):
            s.poly(_rect(bu, -hd / 2, bu + 0.03, hd / 2), band)
        s.line([(0.05, -hd / 2), (0.05, -hd / 2 - 0.08)], 0.015, dark)
        return s, rng.uniform(1.0, 2.5), None
    hr = rng.uniform(0.45, 0.7)
    top, bot = -hr / 2, hr / 2
    frame = s.colour(frame_c)
    body = s.colour(body_c)
    dark = s.colour(_DARK)
    # rear thrusters (behind the frame) and the vertical thruster on top
    for tv in rng.choice([-0.15, 0.1, 0.25], int(rng.integers(1, 3)),
                         replace=False):
        s.line([(-0.62, tv * hr), (-0.46, tv * hr)], 0.11, dark)
    s.poly(_rect(-0.08, top - 0.07, 0.08, top + 0.02), dark)
    s.poly(_rect(-0.5, -hr * 0.05, 0.5, bot), frame)
    s.poly(_rect(-0.49, top, 0.49, -hr * 0.03), body)  # buoyancy block
    for _ in range(int(rng.integers(1, 3))):  # frame openings (holes)
        a = rng.uniform(-0.42, 0.15)
        b = a + rng.uniform(0.12, 0.25)
        s.poly(_rect(a, hr * 0.05, b, bot - 0.05), 0)
        if rng.random() < 0.5:  # equipment can seen through the opening
            s.line([(a - 0.02, hr * 0.2), (b + 0.02, hr * 0.2)], 0.07,
                   s.colour(frame_c * 0.6 + 0.3))
    s.line([(-0.45, bot + 0.03), (0.45, bot + 0.03)], 0.035, frame)  # skid
    s.poly(_ellipse(0.5, 0.05 * hr, 0.085, 0.085), s.colour(_GLASS))
    s.poly(_ellipse(0.52, 0.02 * hr, 0.025, 0.025, 12),
           s.colour((0.8, 0.85, 0.9)))
    lamp = s.colour(_LAMP)
    for lv in (top + 0.06, top + 0.16):
        s.poly(_ellipse(0.49, lv, 0.03, 0.03, 12), lamp)
    if rng.random() < 0.4:  # manipulator
        s.line([(0.4, bot - 0.02), (0.6, bot + 0.1), (0.75, bot)], 0.035,
               frame)
        s.line([(0.75, bot), (0.8, bot - 0.04)], 0.02, dark)
        s.line([(0.75, bot), (0.8, bot + 0.03)], 0.02, dark)

    def texture(rgb, placed, rng):
        u, v = placed.uv
        rgb *= (1.12 - 0.5 * np.clip(v / np.float32(hr) + 0.5, 0, 1)
                )[..., None]
        return rgb

    return s, rng.uniform(0.5, 1.5), texture


_BUILDERS = (_build_fish, _build_reef, _build_plant, _build_diver,
             _build_robot)


# ---------------------------------------------------------------- scene
def _default_texture(rgb, placed, rng):
    h, w = placed.idmap.shape
    rgb *= (0.9 + 0.2 * _value_noise(rng, h, w, 4))[..., None]
    return rgb


def _sample_water(rng):
    turb = rng.uniform(0.7, 2.0)
    b_b = rng.uniform(0.04, 0.09)
    b_g = b_b * rng.uniform(1.3, 2.5)
    b_r = max(rng.uniform(0.25, 0.6), b_g * 1.5)
    beta = np.array([b_r, b_g, b_b], np.float32) * np.float32(turb)
    hue = rng.random()
    bl_blue = np.array([0.04, 0.32, 0.58])
    bl_green = np.array([0.10, 0.50, 0.42])
    bl = (1 - hue) * bl_blue + hue * bl_green
    z_surface = rng.uniform(0.0, 6.0)
    exposure = rng.uniform(1.0, 1.5)
    # the water glows about as bright as the (green-blue) daylight at depth
    light = exposure * float(np.exp(-beta[1:] * z_surface).mean())
    bl = bl * rng.uniform(0.7, 1.2) * light + rng.normal(0, 0.03, 3)
    bl[0] = min(bl[0], 0.6 * min(bl[1], bl[2]))
    bl = np.clip(bl, 0.01, 0.95).astype(np.float32)
    return dict(turbidity=float(turb), beta=beta, B=bl,
                z_surface=float(z_surface),
                haze=float(rng.uniform(0.0, 0.25) * min(turb, 1.5)),
                blur=float(rng.uniform(0.0, 1.0)),
                noise=float(rng.uniform(0.003, 0.025)),
                snow=float(rng.uniform(0.0, 1.0) ** 2 * 160 * turb),
                exposure=float(exposure))


def _seabed(rng, H, W, cam):
    """Clear-water seabed colour J and depth d (open water above horizon)."""
    y_h, h_cam, f = cam['horizon'], cam['height'], cam['focal']
    ys = np.arange(H, dtype=np.float32)[:, None] + 0.5
    dy = ys - np.float32(y_h)
    with np.errstate(divide='ignore'):
        dist = np.where(dy > 0, h_cam * f / np.maximum(dy, 1e-3),
                        _WATER_DEPTH)
    dist = np.minimum(dist, _WATER_DEPTH).astype(np.float32)
    depth = np.broadcast_to(dist, (H, W)).copy()
    sand = _pick(rng, _SAND, 0.03)
    S = max(H, W)
    tex = _value_noise(rng, H, W, rng.uniform(4, 10), octaves=4)
    fine = _value_noise(rng, H, W, S / 6.0)
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


def _visible_masks(placed: List[_Placed], H, W):
    """Visible masks (full frame) of painted-far-to-near objects."""
    occupied = np.zeros((H, W), bool)
    out = [None] * len(placed)
    for i in range(len(placed) - 1, -1, -1):
        full = np.zeros((H, W), bool)
        full[placed[i].box] = placed[i].mask
        out[i] = full & ~occupied
        occupied |= full
    return out


def _layout(rng, H, W, cam, z_range, n, min_size=0.07):
    labels = rng.choice(len(SYNTHETIC_CLASSES), size=n, p=CLASS_WEIGHTS)
    placed = []
    for lab in labels:
        shape, size_m, tex = _BUILDERS[int(lab)](rng)
        cx, cy, scale, angle, flip, z = _place(rng, shape, size_m, int(lab),
                                               H, W, cam, z_range, min_size)
        r = _rasterize(shape, cx, cy, scale, angle, flip, H, W)
        if r is None:
            continue
        x0, y0, idmap, uv = r
        p = _Placed(shape, x0, y0, idmap, uv, z, scale, size_m)
        p.texture = tex
        placed.append(p)
    # far to near; ties keep sampling order (stable sort)
    placed.sort(key=lambda p: -p.depth)
    min_area = max(MIN_VISIBLE_PIXELS, MIN_VISIBLE_FRACTION * H * W)
    while placed:
        vis = _visible_masks(placed, H, W)
        areas = [int(m.sum()) for m in vis]
        keep = [i for i, (p, a) in enumerate(zip(placed, areas))
                if a >= min_area and a >= MIN_VISIBLE_RATIO * p.in_frame]
        if len(keep) == len(placed):
            return placed, vis
        placed = [placed[i] for i in keep]
    return [], []


def render_synthetic_image(rng: np.random.Generator,
                           image_size: Tuple[int, int],
                           min_object_size: float = 0.07) -> dict:
    """Render one synthetic underwater image.

    Args:
        rng: the random generator (all randomness comes from it).
        image_size: ``(H, W)``.
        min_object_size: smallest object scale as a fraction of the shorter
            image side (far objects are enlarged to it).

    Returns:
        dict with ``image`` (H x W x 3 uint8, RGB), ``masks`` (list of
        H x W bool visible masks, all non-empty), ``labels`` (list of class
        indices into :data:`SYNTHETIC_CLASSES`), ``clear`` (the clear-water
        scene J, float32 RGB), ``depth`` (float32 metres) and ``water``
        (the image formation parameters).
    """
    H, W = int(image_size[0]), int(image_size[1])
    if H < 16 or W < 16:
        raise ValueError(f'image_size must be at least 16x16, got {H}x{W}')
    water = _sample_water(rng)
    beta = water['beta']
    fov = rng.uniform(math.radians(60), math.radians(90))
    cam = dict(focal=0.5 * W / math.tan(fov / 2),
               horizon=H * rng.uniform(-0.35, 0.5),
               height=rng.uniform(1.0, 3.5))
    # objects must stay discernible: >= 25% transmission in the best channel
    z_range = (0.7, float(min(12.0, math.log(4.0) / float(beta.min()))))

    J, depth = _seabed(rng, H, W, cam)
    placed, vis = [], []
    for _ in range(20):
        n = int(rng.integers(MIN_INSTANCES, MAX_INSTANCES + 1))
        placed, vis = _layout(rng, H, W, cam, z_range, n, min_object_size)
        if placed:
            break
    if not placed:  # practically unreachable; a big near fish in the middle
        shape, size_m, tex = _build_fish(rng)
        x0, y0, idmap, uv = _rasterize(shape, W / 2, H / 2, 0.6 * min(H, W),
                                       0.0, False, H, W)
        p = _Placed(shape, x0, y0, idmap, uv, 1.0, 0.6 * min(H, W), size_m)
        p.texture = tex
        placed, vis = [p], _visible_masks([p], H, W)

    for p in placed:  # far to near
        ys, xs = p.box
        rgb = np.asarray(p.shape.colours, np.float32)[p.idmap]
        rgb = (p.texture or _default_texture)(rgb, p, rng)
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

    # caustics: bright ridged web on lit surfaces, weaker deeper down
    cells = rng.uniform(6, 14)
    n1 = _value_noise(rng, H, W, cells, octaves=2)
    ridge = 1.0 - np.abs(2.0 * n1 - 1.0)
    caustic = cv2.pow(ridge, float(rng.uniform(6, 12)))
    kc = rng.uniform(0.1, 0.7) * math.exp(-0.25 * water['z_surface'])
    caustic *= np.exp(depth * np.float32(-1 / 8.0))
    caustic *= np.float32(kc)
    caustic += 1.0
    J *= caustic[..., None]

    # underwater image formation: I = J E t + B (1 - t), t = exp(-beta d)
    illum = (np.exp(-beta * water['z_surface'])
             * water['exposure']).astype(np.float32)
    t = depth[..., None] * -beta[None, None, :]
    np.exp(t, out=t)
    yy = np.linspace(1.0, 0.0, H, dtype=np.float32)[:, None, None]
    Bf = (water['B'][None, None, :] * (0.75 + 0.45 * yy ** 2)).astype(
        np.float32)  # brighter towards the surface
    if rng.random() < 0.5:  # light shafts in the water column
        xs = np.arange(W, dtype=np.float32)[None, :]
        ysr = np.arange(H, dtype=np.float32)[:, None]
        rays = np.zeros((H, W), np.float32)
        slope = rng.uniform(-0.5, 0.5)
        for _ in range(int(rng.integers(2, 6))):
            x0 = rng.uniform(-0.2 * W, 1.2 * W)
            wd = rng.uniform(0.02, 0.08) * W
            r = xs - np.float32(x0) - np.float32(slope) * ysr
            r /= np.float32(wd)
            rays += np.exp(-r * r)
        rays *= np.float32(rng.uniform(0.1, 0.35)) * yy[..., 0] ** 2
        rays += 1.0
        Bf = Bf * rays[..., None]
    img = J * illum  # direct signal ...
    img -= Bf
    img *= t
    img += Bf  # ... plus backscatter
    if water['haze'] > 0:
        img += (Bf - img) * np.float32(water['haze'])
    # forward scattering: blur more where light travelled further
    sigma = (0.3 + 1.2 * water['blur']) * min(H, W) / 512.0 * 2
    if sigma > 0.3:
        blurred = cv2.GaussianBlur(img, (0, 0), sigma)
        wgt = np.clip(1.25 - t[..., 1:2], 0.0, 1.0)
        blurred -= img
        blurred *= wgt
        img += blurred
    # marine snow: scattered soft bright particles
    n_snow = int(rng.poisson(water['snow'] * H * W / 256 ** 2))
    if n_snow:
        layer = np.zeros((H, W), np.float32)
        sx = rng.integers(0, W, n_snow)
        sy = rng.integers(0, H, n_snow)
        sv = rng.uniform(0.3, 1.0, n_snow).astype(np.float32)
        big = rng.random(n_snow) < 0.25
        s_small = max(0.5, 0.6 * min(H, W) / 512)
        for sel, sg in ((~big, s_small), (big, 2.2 * s_small)):
            lay = np.zeros((H, W), np.float32)
            np.add.at(lay, (sy[sel], sx[sel]), sv[sel])
            layer += cv2.GaussianBlur(lay, (0, 0), sg) * np.float32(
                2 * np.pi * sg * sg)
        np.clip(layer, 0, 1, out=layer)
        img += (np.float32(0.85) + 0.15 * Bf - img) * layer[..., None]
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(
        water['noise'])
    image = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return dict(image=image, masks=vis, labels=[p.label for p in placed],
                clear=np.clip(J, 0, 1), depth=depth, water=water)


# ---------------------------------------------------------------- writer
def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(
        [int(seed), zlib.crc32(split.encode('utf-8')), int(index)])


def _annotation(mask: np.ndarray, ann_id: int, img_id: int, cat_id: int):
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    ys = np.flatnonzero(mask.any(1))
    xs = np.flatnonzero(mask.any(0))
    x, y = int(xs[0]), int(ys[0])
    return dict(id=ann_id, image_id=img_id, category_id=cat_id,
                segmentation=dict(size=[int(mask.shape[0]),
                                        int(mask.shape[1])],
                                  counts=rle['counts'].decode('ascii')),
                area=int(mask.sum()),
                bbox=[x, y, int(xs[-1]) - x + 1, int(ys[-1]) - y + 1],
                iscrowd=0)


def generate_synthetic_dataset(out_dir: str,
                               *,
                               splits: Optional[Mapping[str, int]] = None,
                               image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
                               seed: int = 0,
                               min_object_size: float = 0.07,
                               progress: bool = True) -> Dict:
    """Write the synthetic dataset in COCO format.

    Args:
        out_dir: output folder; gets ``annotations/{split}.json`` and
            ``{split}/{index:06d}.jpg`` (``file_name`` is relative to the
            split folder: use ``data_prefix=dict(img='{split}/')``).
        splits: images per split, default :data:`DEFAULT_SPLITS`
            (train 1000, val 200, test 200). Split names must be plain
            folder names.
        image_size: ``(H, W)``, default ``(512, 512)``.
        seed: non-negative integer; the same seed gives byte-identical files.
        min_object_size: smallest object scale as a fraction of the shorter
            image side (default 0.07; larger values give an easier dataset).
        progress: show a tqdm progress bar per split.

    Returns:
        dict with ``out_dir``, ``classes``, ``image_size``, ``seed`` and
        ``splits``: ``{split: dict(ann_file, img_dir, img_prefix,
        num_images, num_instances)}``.
    """
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    H, W = int(image_size[0]), int(image_size[1])
    seed = int(seed)
    if seed < 0:
        raise ValueError('seed must be non-negative')
    for name, n in splits.items():
        if not name or name in ('.', '..', 'annotations') or '/' in name \
                or '\\' in name:
            raise ValueError(f'bad split name {name!r}')
        if int(n) < 0:
            raise ValueError(f'negative image count for split {name!r}')
    categories = [dict(id=i + 1, name=c, supercategory='underwater')
                  for i, c in enumerate(SYNTHETIC_CLASSES)]
    ann_dir = osp.join(out_dir, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    summary = dict(out_dir=out_dir, classes=SYNTHETIC_CLASSES,
                   image_size=(H, W), seed=seed, splits={})
    for split, n in splits.items():
        img_dir = osp.join(out_dir, split)
        os.makedirs(img_dir, exist_ok=True)
        images, anns = [], []
        indices = range(int(n))
        if progress:
            from tqdm import tqdm
            indices = tqdm(indices, desc=f'synthetic {split}', unit='img')
        for idx in indices:
            sample = render_synthetic_image(_image_rng(seed, split, idx),
                                            (H, W), min_object_size)
            file_name = f'{idx:06d}.jpg'
            ok, buf = cv2.imencode(
                '.jpg', cv2.cvtColor(sample['image'], cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise RuntimeError(f'could not encode {file_name}')
            with open(osp.join(img_dir, file_name), 'wb') as f:
                f.write(buf.tobytes())
            img_id = idx + 1
            wat = sample['water']
            images.append(dict(
                id=img_id, file_name=file_name, height=H, width=W,
                water=dict(beta=[round(float(b), 5) for b in wat['beta']],
                           B=[round(float(b), 5) for b in wat['B']],
                           turbidity=round(wat['turbidity'], 5))))
            for mask, lab in zip(sample['masks'], sample['labels']):
                anns.append(_annotation(mask, len(anns) + 1, img_id,
                                        int(lab) + 1))
        coco = dict(
            info=dict(description='BiPA synthetic underwater instance '
                      'segmentation', version='1.0', seed=seed, split=split,
                      image_size=[H, W]),
            licenses=[], images=images, annotations=anns,
            categories=categories)
        ann_file = osp.join(ann_dir, f'{split}.json')
        with open(ann_file, 'w') as f:
            json.dump(coco, f, separators=(',', ':'))
        summary['splits'][split] = dict(
            ann_file=ann_file, img_dir=img_dir, img_prefix=f'{split}/',
            num_images=len(images), num_instances=len(anns))
    return summary
