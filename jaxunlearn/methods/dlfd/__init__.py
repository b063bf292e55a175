"""DLFD: distribution-level feature distancing (with an OT-gated fine-tune).

Paper: Choi et al., "Distribution-Level Feature Distancing for Machine
Unlearning: Towards a Better Trade-off Between Model Utility and
Forgetting", AAAI 2025 (arXiv 2409.14747). One pass over D_r; retain
batches perturbed so that their features move away from those of paired
forget batches (an entropic-OT distance), then trained on, while a
forgetting score says a step is needed; the model kept is the most accurate
one whose forgetting score is low enough.

In three parts:

- ``objective``: J(δ) and the synthesis and fine-tune steps, pure and
  jitted for a mesh (the "paper" and "released" variants);
- ``gate``: the forgetting score and validation accuracy evaluated between
  steps (the authors' MIA(), fitted in JAX);
- ``driver``: ``unlearn``, the pass over D_r, the gate's decisions and the
  selection; ``default_config``.

Scope: forgetting a random subset of the training data (the paper's MUFAC
and RAF-DB settings: instances of any class). Class forgetting is outside
it: the forgetting score compares D_f with unseen samples of the same
classes, and pushing features away from a whole class is not what the
method is for. The method stats say what the gate and selection did
(``kept_original``, ``outcome``).
"""
from jaxunlearn.methods import Method, register
from jaxunlearn.methods.dlfd.driver import (default_config, outcome, run_keys,
                                            unlearn)
from jaxunlearn.methods.dlfd.gate import (GateInputs, gate_inputs, gate_sets,
                                          losses_and_correct, make_gate)
from jaxunlearn.methods.dlfd.objective import (
    VARIANTS, Steps, distancing_term, host_loop_synth, jit_each_step, jit_steps,
    make_objective, make_objective_parts, make_steps, perturbed_images)

__all__ = [
    "VARIANTS", "GateInputs", "Steps", "default_config", "distancing_term",
    "gate_inputs", "gate_sets", "host_loop_synth", "jit_each_step", "jit_steps",
    "losses_and_correct", "make_gate", "make_objective", "make_objective_parts",
    "make_steps", "outcome", "perturbed_images", "run_keys", "unlearn"]

register(Method("dlfd", unlearn, default_config,
                "distribution-level feature distancing with OT (Choi et al., AAAI 2025)",
                forget_kinds=("random", "ids"), evaluators=("forgetting_score",)))
