"""The evaluation core: one :class:`Evaluation` (frozen plan + runtime + face sources) and its one scoring loop.

See :mod:`w2p_eval.evaluation.core` (check / score / run / compare), :mod:`w2p_eval.evaluation.compare`
(paired comparison, from the store or scored) and :mod:`w2p_eval.evaluation.items` (per-item values kept
beside the store, the one aggregation).
"""

from w2p_eval.evaluation.core import EvalSummary, Evaluation, Scored, rank_share, scored_rows, write_scored
from w2p_eval.metrics.plan import Context, Plan, Runtime

__all__ = ["Context", "EvalSummary", "Evaluation", "Plan", "Runtime", "Scored", "rank_share", "scored_rows",
           "write_scored"]
