import os

import pytest
import torch

from bipa.apis import cli


@pytest.mark.parametrize('env, cpus, load, expected', [
    ({}, 2, 0.1, 2),                          # idle machine: every CPU
    ({}, 2, 1.2, 1),                          # another job busy on one core
    ({}, 2, 3.0, 1),                          # overloaded: still one
    ({'LOCAL_WORLD_SIZE': '2'}, 8, 0.0, 4),   # torchrun: CPUs shared by the ranks
    ({'OMP_NUM_THREADS': '3'}, 8, 0.0, None),  # the user's choice: left to torch
])
def test_cpu_threads_rule(monkeypatch, env, cpus, load, expected):
    for key in ('OMP_NUM_THREADS', 'LOCAL_WORLD_SIZE'):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: set(range(cpus)))
    monkeypatch.setattr(os, 'getloadavg', lambda: (load, load, load))
    assert cli.cpu_threads() == expected


def test_run_cli_sets_and_restores_the_thread_count(monkeypatch):
    monkeypatch.setattr(cli, 'cpu_threads', lambda: 2)
    seen = []
    before = torch.get_num_threads()
    assert cli.run_cli(lambda argv: seen.append((argv, torch.get_num_threads())),
                       ['a', '--debug']) == 0
    assert seen == [(['a'], 2)] and torch.get_num_threads() == before
