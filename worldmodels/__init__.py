"""Latent sequence world models whose backbone is a plug-in (RSSM, TSSM, S4WM) and energy-based world models.

* ``distributions.py``: symlog/symexp, two-hot over symlog bins, unimix categorical
  latents with straight-through samples, categorical KL and free bits.
* ``networks.py``: the MLPs, CNN encoder and transposed-CNN decoder the model is made of.
* ``sequence_model.py``: :class:`LatentSequenceModel` (encoder -> posterior ``z_t``,
  backbone over ``MLP([z_{t-1}, a_{t-1}])`` -> ``h_t``, prior, heads) and the pure
  functions ``observe`` (sequence mode), ``observe_stepwise``, ``imagine`` (step mode).
* ``losses.py``: the world-model loss with KL balancing (DreamerV3 eq. 4-5).
* ``training.py``: the model on its own: fit it to a dataset, imagine after a context (the memory probes).
"""
