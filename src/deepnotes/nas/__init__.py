"""Neural architecture search on the DARTS cell space (notes 004: ENAS, DARTS, SNAS/GDAS,
PC-DARTS, P-DARTS, SPOS).

    search_space  candidate operations (OPS), MixedOp, Cell, SearchNetwork
    darts         first/second-order DARTS (Architect, the finite-difference Hessian-vector step)
    gdas          Gumbel-softmax sampling (GDAS hard, SNAS soft), tau annealing, FLOPs cost term
    pc_darts      partial channels with channel shuffle, edge normalisation
    p_darts       skip dropout with a decaying rate, max-skip constraint at derivation
    genotype      derive_genotype, Genotype (JSON), NetworkFromGenotype for retraining
    pipeline      the runs behind ``deepnotes nas search`` / ``deepnotes nas retrain``
    spos          single-path one-shot supernet + evolutionary search (its own module)

Submodules are imported by the user (``from deepnotes.nas import darts``); nothing is imported
here so that ``import deepnotes.nas`` stays cheap. Results: docs/nas.md.
"""
