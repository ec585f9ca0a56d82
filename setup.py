"""The one piece of the build pyproject.toml cannot declare: bench._native, the hot path's C twins.

``optional=True``: where no C compiler is found the install still succeeds and the pure-Python twins run
(bench/fleet/device.py falls back to them), with the same results, at the Python speed.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("bench._native", ["bench/_native.c"], optional=True,
                             extra_compile_args=["-O2", "-Werror=implicit-function-declaration"])])
