"""One synthetic image: a scene (:mod:`.scene`) seen through a medium
(:mod:`.optics`)."""
import math
from typing import Tuple

import numpy as np

from ...utils import check_choice
from .optics import MEDIA, caustics, in_air_image, sample_water, underwater_image
from .scene import compose_scene, sample_camera


def render_synthetic_image(rng: np.random.Generator,
                           image_size: Tuple[int, int],
                           min_object_size: float = 0.07,
                           medium: str = 'underwater') -> dict:
    """Render one synthetic image.

    The scene (objects, masks, labels, distances) depends only on ``rng``'s
    state, not on ``medium``: the same generator state gives the same scene
    under water and in air.

    Args:
        rng: the random generator (all randomness comes from it).
        image_size: ``(H, W)``.
        min_object_size: smallest object scale as a fraction of the shorter
            image side (far objects are enlarged to it).
        medium: ``'underwater'`` or ``'in_air'`` (see :mod:`.optics`).

    Returns:
        dict with ``image`` (H x W x 3 uint8, RGB), ``masks`` (list of
        H x W bool visible masks, all non-empty), ``labels`` (list of class
        indices into ``SYNTHETIC_CLASSES``), ``clear`` (the scene's colours
        as lit in the medium before image formation, float32 RGB),
        ``depth`` (float32 metres), ``medium`` and ``water`` (the water's
        parameters; they also set how far objects may be, in both media).
    """
    check_choice(medium, MEDIA, 'medium')
    H, W = int(image_size[0]), int(image_size[1])
    if H < 16 or W < 16:
        raise ValueError(f'image_size must be at least 16x16, got {H}x{W}')
    water = sample_water(rng)
    cam = sample_camera(rng, H, W)
    # objects must stay discernible: >= 25% transmission in the best channel
    z_range = (0.7, float(min(12.0, math.log(4.0) / float(water['beta'].min()))))
    J, depth, placed, masks = compose_scene(rng, H, W, cam, z_range, min_object_size)
    if medium == 'underwater':
        J = caustics(rng, J, depth, water)
        img = underwater_image(rng, J, depth, water)
    else:
        img = in_air_image(rng, J, depth)
    image = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return dict(image=image, masks=masks, labels=[p.label for p in placed],
                clear=np.clip(J, 0, 1), depth=depth, medium=medium, water=water)
