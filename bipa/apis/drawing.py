"""Drawings a person can read: small images upscaled, masks, boxes and
labels drawn at display resolution."""
from typing import Optional, Sequence

import cv2
import numpy as np

from ..datasets.underwater import CLASS_COLOURS


def draw_instances(image: np.ndarray, *, masks: np.ndarray, boxes: np.ndarray,
                   labels: Sequence[int], classes: Sequence[str],
                   scores: Optional[Sequence[float]] = None, scale: int = 4,
                   title: str = '') -> np.ndarray:
    """``image`` (H x W x 3 RGB uint8) enlarged ``scale`` times, with each
    instance's mask tinted in its class colour, its box outlined and a label
    (class and score) on a filled band; ``title`` on a strip above.

    ``masks`` is N x H x W bool, ``boxes`` N x 4 xyxy in image pixels.
    """
    h, w = image.shape[:2]
    canvas = cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
    canvas = canvas.astype(np.float32)
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, 1
    font_scale = 0.45
    for i, label in enumerate(labels):
        colour = np.asarray(CLASS_COLOURS.get(classes[label], (255, 255, 255)), np.float32)
        big = cv2.resize(masks[i].astype(np.uint8), (w * scale, h * scale),
                         interpolation=cv2.INTER_NEAREST).astype(bool)
        canvas[big] = 0.55 * canvas[big] + 0.45 * colour
        contours, _ = cv2.findContours(big.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, colour.tolist(), 1)
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    for i, label in enumerate(labels):
        colour = tuple(int(c) for c in CLASS_COLOURS.get(classes[label], (255, 255, 255)))
        x1, y1, x2, y2 = (np.asarray(boxes[i], np.float32) * scale).round().astype(int)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        text = classes[label] + ('' if scores is None else f' {float(scores[i]):.2f}')
        (tw, th), base = cv2.getTextSize(text, font, font_scale, thick)
        ty = max(y1, th + base + 2)
        cv2.rectangle(canvas, (x1, ty - th - base - 2), (x1 + tw + 4, ty), colour, -1)
        dark = sum(colour) > 382
        cv2.putText(canvas, text, (x1 + 2, ty - base - 1), font, font_scale,
                    (0, 0, 0) if dark else (255, 255, 255), thick, cv2.LINE_AA)
    if title:
        strip = np.full((26, canvas.shape[1], 3), 255, np.uint8)
        cv2.putText(strip, title, (6, 18), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        canvas = np.concatenate([strip, canvas], 0)
    return canvas
