from .fai import FAINeck

__all__ = ['FAINeck']
