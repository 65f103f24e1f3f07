from pathlib import Path

from setuptools import find_packages, setup


def read_requirements(path: str) -> list:
    lines = Path(__file__).with_name(path).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith('#')]


setup(
    name='bipa',
    version='0.1.0',
    description='BiPA: bilevel prompt adaptation of SAM for underwater instance '
                'segmentation, as an MMDetection 3.x plugin',
    long_description=Path(__file__).with_name('README.md').read_text(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['bipa', 'bipa.*']),
    python_requires='>=3.10',
    install_requires=read_requirements('requirements.txt'),
    license='Apache-2.0',
)
