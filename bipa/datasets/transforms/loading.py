import logging
import os.path as osp
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmdet.registry import TRANSFORMS
from mmengine import fileio
from mmengine.logging import print_log

_JPEG_EOI = b'\xff\xd9'
_PNG = b'\x89PNG\r\n\x1a\n'
_checked_depth = set()  # files whose sample depth was checked in this process


def _may_not_be_8_bit(img_bytes: bytes) -> bool:
    """Whether the file may store more than 8 bits a sample: not for a
    (baseline) JPEG or a PNG of bit depth 8 or less (IHDR's byte 24)."""
    if img_bytes[:2] == b'\xff\xd8':
        return False
    if img_bytes[:8] == _PNG and len(img_bytes) > 24:
        return img_bytes[24] > 8
    return True


def _depth_warning(filename, img_bytes: bytes, img: np.ndarray) -> Optional[str]:
    """One line when the file's samples are not 8-bit: OpenCV converts them
    (16-bit ones shifted right by 8), so e.g. 12-bit data loads nearly black."""
    stored = img if img.dtype != np.uint8 else mmcv.imfrombytes(
        img_bytes, flag='unchanged', backend='cv2')
    if stored is None or stored.dtype == np.uint8:
        return None
    loaded = 'as it is' if img is stored else (
        f'as uint8 with values {int(img.min())}..{int(img.max())} of 255')
    return (f'{filename}: stored as {stored.dtype} with values {stored.min():g}..'
            f'{stored.max():g}, loaded {loaded}; convert it to 8-bit over its own range')


class ImageReadError(ValueError):
    """An image file exists but cannot be decoded."""


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` that fails with one clear message naming the file.

    A missing file raises ``FileNotFoundError``; bytes that do not decode, and
    JPEGs without their end-of-image marker (which OpenCV would otherwise
    decode silently with a grey bottom), raise :class:`ImageReadError`. A
    file whose samples are not 8-bit (a 16-bit PNG or TIFF) gets one warning
    per process with its stored and loaded value ranges.
    """

    def transform(self, results: dict) -> Optional[dict]:
        filename = results['img_path']
        if '://' not in str(filename) and not osp.isfile(filename):
            raise FileNotFoundError(f'image file not found: {filename}')
        img_bytes = fileio.get(filename, backend_args=self.backend_args)
        if not img_bytes:
            raise ImageReadError(f'{filename}: empty file')
        if img_bytes[:2] == b'\xff\xd8' and _JPEG_EOI not in img_bytes[-64:]:
            raise ImageReadError(f'{filename}: truncated JPEG (no end-of-image marker)')
        img = mmcv.imfrombytes(img_bytes, flag=self.color_type, backend=self.imdecode_backend)
        if img is None:
            raise ImageReadError(f'{filename}: not a readable image ({len(img_bytes)} bytes)')
        if filename not in _checked_depth and (img.dtype != np.uint8
                                               or _may_not_be_8_bit(img_bytes)):
            _checked_depth.add(filename)
            warning = _depth_warning(filename, img_bytes, img)
            if warning:
                print_log(warning, logger='current', level=logging.WARNING)
        if self.to_float32:
            img = img.astype('float32')
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
