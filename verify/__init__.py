"""verify: proofs that fastdnn's gradients and update rules are right.

``reference`` is an independent NumPy oracle; ``gradcheck`` compares analytical backward passes with
central finite differences in float64.
"""
