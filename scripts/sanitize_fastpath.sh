#!/usr/bin/env bash
# The media server's C path under AddressSanitizer and UndefinedBehaviorSanitizer:
# builds mediaserver/fastpath/*.c instrumented into a scratch copy of the sources and
# runs the media-server tests (not the browser ones) against it, in a loopback-only
# network namespace. Run after changing the C file: make sanitize
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r mediaserver beeldbel bench tests pyproject.toml "$scratch"/
rm -f "$scratch"/mediaserver/*.so
include=$($python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$($python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
gcc -shared -fPIC -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
    -fno-sanitize-recover=undefined -I"$include" \
    mediaserver/fastpath/*.c -o "$scratch/mediaserver/_fastpath$suffix"
preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
cd "$scratch"
unshare --net sh -c "ip link set lo up && \
    ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD=$preload PYTHONPATH=$scratch \
    $OLDPWD/$python -m pytest -q -p no:cacheprovider tests/mediaserver -m 'not browser'"
