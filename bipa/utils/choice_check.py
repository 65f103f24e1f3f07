"""The check that a value is one of a fixed set of choices."""
from typing import Any, Collection, Type


def check_choice(value: Any, choices: Collection, key: str,
                 error: Type[ValueError] = ValueError, *, alternative: str = '') -> None:
    """Raise ``error`` unless ``value`` is one of ``choices``, in one line:
    ``<key> must be one of <choices>, got <value!r>``. ``key`` names the config
    key (raise :class:`ConfigError` for one) or argument; ``alternative``
    names another kind of value the caller takes (e.g. ``'a dict'``)."""
    if value not in choices:
        other = f' or {alternative}' if alternative else ''
        raise error(f'{key} must be one of {tuple(choices)}{other}, got {value!r}')
