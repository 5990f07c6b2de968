"""Sandboxes: an `opencode serve` of its own per caller or per task, each inside an
operating-system boundary (`runtime`: the contract; `kubernetes`: a pod per sandbox).

Arrows: fleet/sandboxes may import `config`, `observability`, `primitives` and `opencode`.
"""
