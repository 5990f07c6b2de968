"""The OpenCode release this gateway is built and tested against: the one place to change it.

Derived from here: spawn mode's plugin pre-seed (supervisor), the container image's
opencode binary (the Dockerfile reads this file), the benchmarks and the tests. npm needs
the literal in `.tools/package.json` (what `make` installs); tests/unit/test_pins.py fails
until it agrees. Bumping it: change both, run `make test` (the e2e tier is the proof).

`OPENCODE_SUPPORTED` is the range of versions the gateway agrees to talk to (from the
first, up to but not including the second): patch releases of the tested minor version.
OpenCode changes its server API between minor versions (2.x moved it under /api/…), so a
version outside is refused by name (`versions.py`) rather than failing on 404s.
"""

OPENCODE_VERSION = "1.18.33"
OPENCODE_SUPPORTED = (OPENCODE_VERSION, "1.19")
