"""The one piece of the build pyproject.toml cannot declare: bench._native, the hot path's C twins.

``optional=True``: where no C compiler is found the install still succeeds and the pure-Python twins run
(bench/fleet/device.py falls back to them), with the same results, at the Python speed.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("bench._native", ["bench/_native.c"], optional=True, libraries=["m"],
                             # -ffp-contract=off: no fused multiply-add, so every float step rounds as
                             # Python's does (the twins draw the same times)
                             extra_compile_args=["-O2", "-ffp-contract=off",
                                                 "-Werror=implicit-function-declaration"])])
