"""A PNG of TensorBoard's scalars for a run's log dir, taken with headless
Chromium (the README's picture of the demo run).

    python tools/analysis/tensorboard_screenshot.py LOGDIR OUT.png
        [--tags REGEX] [--size 1600x780] [--port 0] [--wait 20] [--chromium chromium]

Starts ``tensorboard --logdir LOGDIR`` on a free local port, waits until it
serves, has Chromium (``apt-get install chromium`` on Debian) load its
Scalars dashboard headless, the tags that ``--tags`` matches first and
unsmoothed, and write the screenshot, and stops the server.
"""
import argparse
import os.path as osp
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import List, Optional

# the losses, the learning rate, COCO mAP, f per trial, the best f and two of
# rho's group weights per round
TAGS = r'^(loss|lr|coco/segm_mAP|search/f|search/best_f|rho/group_0[01])$'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('logdir', help='a run\'s log dir (or a work dir of several runs)')
    parser.add_argument('out', help='the PNG to write')
    parser.add_argument('--tags', default=TAGS, help='the tags shown first (a regex)')
    parser.add_argument('--size', default='1600x780', help='window WIDTHxHEIGHT in pixels')
    parser.add_argument('--port', type=int, default=0, help='0: a free port')
    parser.add_argument('--wait', type=float, default=20,
                        help='seconds Chromium lets the page load and draw')
    parser.add_argument('--chromium', default='chromium', help='the Chromium executable')
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_until_served(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    """Returns once ``url`` answers; raises if ``server`` exits or ``timeout``
    seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f'tensorboard exited with status {server.returncode}')
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f'tensorboard did not answer at {url} within {timeout:.0f} s')


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    if not osp.isdir(args.logdir):
        raise FileNotFoundError(f'{args.logdir}: no such log dir')
    chromium = shutil.which(args.chromium)
    if chromium is None:
        raise FileNotFoundError(f'{args.chromium}: not found (--chromium names the executable; '
                                'Debian: apt-get install chromium)')
    width, height = (int(v) for v in args.size.split('x'))
    port = args.port or free_port()
    url = f'http://127.0.0.1:{port}/'
    server = subprocess.Popen(
        [sys.executable, '-m', 'tensorboard.main', '--logdir', args.logdir,
         '--host', '127.0.0.1', '--port', str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_served(url, server)
        subprocess.run(
            [chromium, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
             f'--window-size={width},{height}',
             f'--virtual-time-budget={int(args.wait * 1000)}',
             f'--screenshot={osp.abspath(args.out)}',
             url + '#scalars&_smoothingWeight=0&tagFilter=' + urllib.parse.quote(args.tags, '')],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        server.terminate()
        server.wait()
    print(f'{args.out}: TensorBoard of {args.logdir} ({width}x{height})')
    return args.out


if __name__ == '__main__':
    from bipa.apis import run_cli
    raise SystemExit(run_cli(main))
