import os.path as osp
from typing import Optional

import mmcv
from mmcv.transforms import LoadImageFromFile
from mmdet.registry import TRANSFORMS
from mmengine import fileio

_JPEG_EOI = b'\xff\xd9'


class ImageReadError(ValueError):
    """An image file exists but cannot be decoded."""


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` that fails with one clear message naming the file.

    A missing file raises ``FileNotFoundError``; bytes that do not decode, and
    JPEGs without their end-of-image marker (which OpenCV would otherwise
    decode silently with a grey bottom), raise :class:`ImageReadError`.
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
        if self.to_float32:
            img = img.astype('float32')
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
