"""The media server's C short path; everything else is in pyproject.toml."""

import glob

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mediaserver._fastpath",
            sources=sorted(glob.glob("mediaserver/fastpath/*.c")),
            depends=["mediaserver/fastpath/fastpath.h"],
            extra_compile_args=[
                "-O2",
                "-Wall",
                "-Wextra",
                "-Wno-unused-parameter",
                "-Wno-missing-field-initializers",
            ],
        )
    ]
)
