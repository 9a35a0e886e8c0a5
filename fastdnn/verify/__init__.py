"""verify: proofs that fastdnn's gradients and update rules are right.

- ``reference``: an independent NumPy implementation of every formula (the oracle).
- ``gradcheck``: the central-difference engine (full Jacobian and random-direction modes).
- ``cases``: a case for every registered activation, loss, layer and optimizer.
- ``update_rules``: optimizer kernels against the reference over many steps.
- ``check_model``: a compiled model's loss gradient, end to end.
- ``selftest``: planted bugs that the checks must catch.
- ``cli``: ``fastdnn-gradcheck``.
"""

from fastdnn.verify.models import check_model

__all__ = ["check_model"]
