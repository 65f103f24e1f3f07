"""The mmcv build script reads the C++ standard from torch's headers."""
from pathlib import Path

import pytest
import torch.utils.cpp_extension as cpp_ext

from tests.conftest import load_tool

build_mmcv = load_tool('install/build_mmcv')


def fake_include(tmp_path, text):
    (tmp_path / 'ATen').mkdir()
    (tmp_path / 'ATen' / 'ATen.h').write_text(text)
    return tmp_path


@pytest.mark.parametrize('text,std', [
    ('#if !defined(_MSC_VER) && __cplusplus < 202002L\n#error C++20', 'c++20'),
    ('#if __cplusplus < 201703L\n#error C++17', 'c++17'),
    ('#pragma once\n', 'c++17'),
])
def test_required_cpp_standard(tmp_path, text, std):
    assert build_mmcv.required_cpp_standard(fake_include(tmp_path, text)) == std


def test_installed_torch_standard_compiles_its_headers():
    std = build_mmcv.required_cpp_standard(Path(cpp_ext.include_paths()[0]))
    assert std in ('c++17', 'c++20', 'c++23')


def test_patch_setup_py(tmp_path):
    setup_py = tmp_path / 'setup.py'
    setup_py.write_text("a = ['-std=c++17']\nb = ['/std:c++17']\nc = ['-std=c++14']\n")
    assert build_mmcv.patch_setup_py(setup_py, 'c++20') == 2
    assert setup_py.read_text() == "a = ['-std=c++20']\nb = ['/std:c++20']\nc = ['-std=c++14']\n"
    with pytest.raises(RuntimeError, match='no "-std=c..17" flag'):
        build_mmcv.patch_setup_py(setup_py, 'c++20')
