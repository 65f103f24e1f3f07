from .loading import CheckedLoadImageFromFile, ImageReadError

__all__ = ['CheckedLoadImageFromFile', 'ImageReadError']
