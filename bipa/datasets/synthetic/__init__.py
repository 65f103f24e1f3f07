"""Deterministic synthetic instance-segmentation data, under water or in air
(numpy + OpenCV only).

Each image is one scene seen through one medium:

- :mod:`.shapes`: the five classes' shapes (fish, reefs, aquatic plants,
  divers, robots) drawn from primitives in their own frame;
- :mod:`.scene`: a seabed in perspective, 1-6 objects placed by a pinhole
  camera, exact occlusion (painted far to near; every annotated mask is
  non-empty and every painted object is annotated);
- :mod:`.optics`: the medium: underwater image formation
  ``I = J E t + B (1 - t)`` with caustics, haze, blur and marine snow, or
  ordinary daylight in air;
- :mod:`.coco_writer`: the COCO files.

Output layout::

    out_dir/
        annotations/{split}.json
        {split}/000000.jpg, 000001.jpg, ...

``file_name`` is relative to the split folder, so a dataset config sets
``data_root=out_dir``, ``ann_file='annotations/train.json'`` and
``data_prefix=dict(img='train/')``. Image ids are ``index + 1`` and
annotation ids run from 1. Masks are compressed COCO RLE of the visible mask
(keep ``LoadAnnotations(poly2mask=True)``, mmdet's default), ``bbox`` its
tight box ``[x, y, w, h]``, category ids 1..5 in ``SYNTHETIC_CLASSES`` order.

Image ``index`` of ``split`` is rendered with
``np.random.default_rng([seed, crc32(split), index])``: the same seed gives
byte-identical files, and the same scenes, masks and annotations in both
media (the json files differ only in ``info.medium``).
"""
from .coco_writer import DEFAULT_IMAGE_SIZE, DEFAULT_SPLITS, generate_synthetic_dataset
from .optics import MEDIA
from .render import render_synthetic_image

__all__ = ['DEFAULT_IMAGE_SIZE', 'DEFAULT_SPLITS', 'MEDIA', 'generate_synthetic_dataset',
           'render_synthetic_image']
