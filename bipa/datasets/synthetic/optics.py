"""The media a synthetic scene is seen through.

**Under water**: caustics on the lit surfaces, then
``I = J * E * t + B * (1 - t)`` with ``t_c = exp(-beta_c * d)``,
wavelength-dependent attenuation ``beta_red > beta_green > beta_blue``,
downwelling illumination ``E_c = exp(-beta_c * z_surface)``, a blue-green
background light B (brighter towards the surface, optional light shafts),
plus haze, forward-scattering blur, marine snow and sensor noise, all varied
per image.

**In air**: the same scene in ordinary daylight: ``I = J * exposure`` with
a slight white-balance tint, a sky where the water was open (above the
horizon) and weak sensor noise; no attenuation, backscatter, caustics,
marine snow or colour cast.
"""
import math

import cv2
import numpy as np

from .scene import FAR
from .shapes import value_noise

MEDIA = ('underwater', 'in_air')


def sample_water(rng):
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




def caustics(rng, J: np.ndarray, depth: np.ndarray, water: dict) -> np.ndarray:
    """``J`` modulated by a bright ridged web, weaker deeper down (in place)."""
    H, W = depth.shape
    cells = rng.uniform(6, 14)
    n1 = value_noise(rng, H, W, cells, octaves=2)
    ridge = 1.0 - np.abs(2.0 * n1 - 1.0)
    caustic = cv2.pow(ridge, float(rng.uniform(6, 12)))
    kc = rng.uniform(0.1, 0.7) * math.exp(-0.25 * water['z_surface'])
    caustic *= np.exp(depth * np.float32(-1 / 8.0))
    caustic *= np.float32(kc)
    caustic += 1.0
    J *= caustic[..., None]
    return J


def underwater_image(rng, J: np.ndarray, depth: np.ndarray, water: dict) -> np.ndarray:
    """The underwater image formation above, float32 RGB (unclipped)."""
    H, W = depth.shape
    beta = water['beta']
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
    return img


def in_air_image(rng, J: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """The scene in daylight, float32 RGB (unclipped)."""
    H, W = depth.shape
    exposure = np.float32(rng.uniform(0.9, 1.15))
    tint = (1.0 + rng.normal(0, 0.025, 3)).astype(np.float32)
    img = J * (exposure * tint)
    # a sky where the water was open: blue at the top, paler at the horizon
    sky = depth >= FAR
    if sky.any():
        zenith = np.array([0.35, 0.55, 0.85], np.float32) * np.float32(rng.uniform(0.8, 1.1))
        horizon = np.array([0.80, 0.86, 0.92], np.float32)
        rows = np.flatnonzero(sky.any(1))
        yy = np.linspace(0.0, 1.0, H, dtype=np.float32)[:, None, None]
        yy = np.clip(yy / max(float(rows[-1] + 1) / H, 1e-3), 0, 1)
        grad = zenith * (1 - yy) + horizon * yy
        clouds = 0.12 * value_noise(rng, H, W, rng.uniform(2, 5), octaves=3)
        grad = grad + clouds[..., None]
        img[sky] = np.broadcast_to(grad, img.shape)[sky]
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(0.002, 0.008))
    return img
