from .bipa import BiPA

__all__ = ['BiPA']
