"""The packages (web/ is installed as ``beeldbel.web``) and the media server's C
short path; everything else is in pyproject.toml."""

import glob

from setuptools import Extension, find_packages, setup

setup(
    packages=[
        *find_packages(include=["beeldbel*", "controlplane*", "mediaserver*"]),
        "beeldbel.web",
        # Alembic's folders: read as files, never imported as packages
        "controlplane.storage.migrations",
        "controlplane.storage.migrations.versions",
    ],
    package_dir={"beeldbel.web": "web"},
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
    ],
)
