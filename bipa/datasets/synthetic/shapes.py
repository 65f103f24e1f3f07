"""The object shapes of the synthetic scenes: palettes, drawing primitives
and one builder per class.

Each builder draws an object from primitives in its own frame and returns
``(shape, physical size in metres of one object unit, texture hook)``;
:func:`rasterize` places it in the image with a similarity transform.
"""
import math
from typing import List

import cv2
import numpy as np

FISH, REEF, PLANT, DIVER, ROBOT = range(5)  # indices into SYNTHETIC_CLASSES
_SUBPIX = 4  # cv2 drawing precision: 1/16 pixel

# ---------------------------------------------------------------- colours
# Linear-ish RGB in [0, 1].
SAND = ((0.78, 0.72, 0.56), (0.70, 0.66, 0.55), (0.60, 0.58, 0.52),
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


def pick(rng, options, jitter=0.06):
    c = np.asarray(options[int(rng.integers(len(options)))], np.float32)
    c = c * np.float32(rng.uniform(0.85, 1.12)) + rng.normal(
        0, jitter, 3).astype(np.float32)
    return np.clip(c, 0.02, 1.0).astype(np.float32)


# ---------------------------------------------------------------- helpers
def value_noise(rng, h: int, w: int, cells: float, octaves: int = 1,
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


class Shape:
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


class Placed:
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


def rasterize(shape: Shape, cx, cy, scale, angle, flip, height, width):
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
def build_fish(rng):
    s = Shape(FISH)
    bd = rng.uniform(0.08, 0.24)  # half body depth
    body_c = pick(rng, _FISH)
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
    accent = pick(rng, _FISH_ACCENT, 0.03)
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
    s = Shape(REEF)
    base_c = pick(rng, _ROCK)
    cid = s.colour(base_c)
    n = int(rng.integers(2, 6))
    for _ in range(n):
        r = rng.uniform(0.14, 0.32)
        s.poly(_rock_blob(rng, rng.uniform(-0.35, 0.35),
                          -r * rng.uniform(0.3, 0.9), r), cid)
    top = min(p[1][:, 1].min() for p in s.parts)
    extra = rng.random()
    if extra < 0.35:  # branching coral on the rocks
        cc = s.colour(pick(rng, _CORAL))
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
        cc = s.colour(pick(rng, _CORAL))
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
        nz = value_noise(rng, h, w, max(2.0, c), octaves=3)
        rgb *= (0.55 + 0.9 * nz)[..., None]
        crev = nz < 0.3
        rgb[crev] *= 0.55
        return rgb

    return s, rng.uniform(0.5, 2.5), texture


def _build_plant(rng):
    s = Shape(PLANT)
    kelp = rng.random() < 0.45
    col = pick(rng, _PLANT)
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
        nz = value_noise(rng, h, w, 6)
        rgb *= (shade * (0.85 + 0.3 * nz))[..., None]
        return rgb

    return s, rng.uniform(0.3, 2.0), texture


def _limb(root, ln1, ln2, a1, bend):
    knee = root + ln1 * np.array([math.cos(a1), math.sin(a1)])
    a2 = a1 + bend
    end = knee + ln2 * np.array([math.cos(a2), math.sin(a2)])
    return np.array([root, knee, end]), a2


def _build_diver(rng):
    s = Shape(DIVER)
    suit = pick(rng, _SUIT, 0.02)
    far_suit = s.colour(suit * 0.7)
    near_suit = s.colour(suit)
    accent = s.colour(pick(rng, _SUIT_ACCENT, 0.03))
    fin_c = pick(rng, _FINS, 0.03)
    fin_far, fin_near = s.colour(fin_c * 0.75), s.colour(fin_c)
    tank = s.colour(pick(rng, _TANK, 0.03))
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
    s = Shape(ROBOT)
    body_c = pick(rng, _ROBOT_BODY, 0.03)
    frame_c = pick(rng, _ROBOT_FRAME, 0.02)
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
        band = s.colour(pick(rng, _ROBOT_FRAME, 0.02))
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


BUILDERS = (build_fish, _build_reef, _build_plant, _build_diver,
             _build_robot)




def default_texture(rgb, placed, rng):
    h, w = placed.idmap.shape
    rgb *= (0.9 + 0.2 * value_noise(rng, h, w, 4))[..., None]
    return rgb
