import subprocess
import sys

import pytest

from bipa.utils import WorkDirBusyError, lock_work_dir
from tests.conftest import ROOT

LOCK_MODULE = ROOT / 'bipa' / 'utils' / 'work_dir_lock.py'


def test_second_holder_is_refused(tmp_path):
    handle = lock_work_dir(str(tmp_path))
    # the module alone, not the bipa package (whose imports take seconds)
    code = ('import runpy, sys\n'
            f'lock_work_dir = runpy.run_path({str(LOCK_MODULE)!r})["lock_work_dir"]\n'
            'try:\n    lock_work_dir(sys.argv[1])\n'
            'except Exception as e:\n    print(type(e).__name__, e); sys.exit(3)\n')
    proc = subprocess.run([sys.executable, '-c', code, str(tmp_path)], capture_output=True,
                          text=True)
    assert proc.returncode == 3
    assert 'WorkDirBusyError' in proc.stdout and 'in use by another run (pid' in proc.stdout
    handle.close()
    lock_work_dir(str(tmp_path)).close()  # free again once released


def test_lock_is_exclusive_within_a_process(tmp_path):
    handle = lock_work_dir(str(tmp_path))
    with pytest.raises(WorkDirBusyError, match=str(tmp_path)):
        lock_work_dir(str(tmp_path))
    handle.close()
