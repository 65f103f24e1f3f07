class ConfigError(ValueError):
    """A config value that cannot work; the message names its full key."""
