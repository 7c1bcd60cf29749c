"""Build of torchinit's compiled CPU sampling core (the rest of the package is in pyproject.toml).

The extension is optional: where no C compiler is available the build prints why and installs
the package without it, and torchinit samples with its reference backend (with a warning).
"""

import sys

from setuptools import Extension, setup

# Bit-identical results need IEEE semantics: no contraction into fused multiply-adds and none
# of the fast-math relaxations. -O3 lets the compiler vectorize the hot loops; -fno-trapping-math
# (assume no FP traps: values unchanged) lets it turn the selects of the tail loops into blends.
if sys.platform == "win32":
    flags = ["/O2", "/fp:precise"]
else:
    flags = ["-O3", "-std=c11", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math",
             "-fno-math-errno", "-pthread"]

setup(
    ext_modules=[
        Extension(
            "torchinit._streams._core",
            sources=["src/torchinit/_streams/_core.c"],
            extra_compile_args=flags,
            extra_link_args=[] if sys.platform == "win32" else ["-pthread"],
            optional=True,
        )
    ]
)
