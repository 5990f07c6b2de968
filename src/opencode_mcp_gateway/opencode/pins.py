"""The OpenCode release this gateway is built and tested against: the one place to change it.

Derived from here: spawn mode's plugin pre-seed (supervisor), the container image's
opencode binary (the Dockerfile reads this file), the benchmarks and the tests. npm needs
the literal in `.tools/package.json` (what `make` installs); tests/unit/test_pins.py fails
until it agrees. Bumping it: change both, run `make test` (the e2e tier is the proof).
"""

OPENCODE_VERSION = "1.18.33"
