"""The one piece of the build pyproject.toml cannot declare: bench._native, the hot path's C twins.

``optional=True``: where no C compiler is found the install still succeeds and the pure-Python twins run
(bench.native chooses them), with the same results, at the Python speed. The C sources are the files of
bench/_native/ (no __init__.py there: a folder of C, not a package; bench/_native/native.h says which file
is the twin of what).
"""

from glob import glob

from setuptools import Extension, setup

setup(ext_modules=[Extension("bench._native", sorted(glob("bench/_native/*.c")), optional=True, libraries=["m"],
                             depends=sorted(glob("bench/_native/*.h")),
                             # -ffp-contract=off: no fused multiply-add, so every float step rounds as
                             # Python's does (the twins draw the same times)
                             extra_compile_args=["-O2", "-ffp-contract=off",
                                                 "-Werror=implicit-function-declaration"])])
