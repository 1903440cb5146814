"""Stage 2: MGI-CNN false-positive reduction (Kim et al., Neural Networks 2019) of nodule candidates.

Modules: `config` (settings and presets), `patches` (patch cutting and the three scales), `preprocess`
(candidates CSV -> per-subset patch files), `model` (the network), `dataset` (batches), `training`
(per-fold training and selection), `evaluate` (held-out scoring, ROC, FROC / CPM, the demo stage).
"""
