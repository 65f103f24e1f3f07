"""How the command-line tools report the errors a user can fix."""
import os
import re
import sys
from typing import Callable, List, Optional


def user_errors() -> tuple:
    """The errors that describe bad input (files, data, checkpoints, work dir),
    each with a message that names what to fix."""
    from ..datasets import AnnotationError, ImageReadError
    from ..models import SAMCheckpointError
    from .config_error import ConfigError
    from .work_dir_lock import WorkDirBusyError
    return (AnnotationError, ImageReadError, SAMCheckpointError, WorkDirBusyError,
            ConfigError, FileNotFoundError)


def run_cli(main: Callable, argv: Optional[List[str]] = None) -> int:
    """Run a tool's ``main(argv)``; a user error prints as one line,
    ``error: <message>``, on stderr and returns 2. ``--debug`` (or
    ``BIPA_DEBUG=1``) lets it raise with its traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get('BIPA_DEBUG') == '1' or '--debug' in argv
    argv = [a for a in argv if a != '--debug']
    try:
        main(argv)
    except user_errors() as err:
        if debug:
            raise
        # mmengine's registry prefixes "class `X` in module.py: " per nesting level
        message = re.sub(r'class `\w+` in [\w./-]+\.py: ', '', ' '.join(str(err).split()))
        print(f'error: {message} (--debug shows the traceback)', file=sys.stderr)
        return 2
    return 0
