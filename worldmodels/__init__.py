"""World models behind one protocol: the latent sequence model (RSSM, TSSM, S4WM by backbone), and more by name.

* ``protocol.py``: :class:`WorldModel`, what agents and probes may ask of a world model.
* ``registry.py``: world models by name (``register_world_model``, ``make_world_model``).
* ``batch.py``: :class:`SequenceBatch`, the time-major sequences every world model trains on.
* ``sequence_model.py``: :class:`LatentSequenceModel` (encoder -> posterior ``z_t``,
  backbone over ``MLP([z_{t-1}, a_{t-1}])`` -> ``h_t``, prior, heads) and the pure
  functions ``observe`` (sequence mode), ``observe_stepwise``, ``imagine`` (step mode).
* ``latent_world_model.py``: that model behind the protocol, registered as ``rssm``.
* ``ebwm.py``: the energy-based world model (EBWM), registered as ``ebwm``; ``energy_transformer.py`` its network.
* ``losses.py``: the latent model's loss with KL balancing (DreamerV3 eq. 4-5).
* ``distributions.py``: symlog/symexp, two-hot over symlog bins, unimix categorical
  latents with straight-through samples, categorical KL and free bits.
* ``networks.py``: the MLPs, CNN encoder and transposed-CNN decoder the model is made of.
* ``training.py``: any world model on its own: fit it to a dataset, imagine after a context (the memory probes).
"""

from mnemax.worldmodels import latent_world_model as _latent_world_model  # noqa: F401  (registers "rssm")
from mnemax.worldmodels import ebwm as _ebwm  # noqa: F401  (registers "ebwm")
from mnemax.worldmodels.batch import SequenceBatch
from mnemax.worldmodels.protocol import Imagination, Prediction, WorldModel
from mnemax.worldmodels.registry import make_world_model, register_world_model, world_model_names

__all__ = ["Imagination", "Prediction", "SequenceBatch", "WorldModel", "make_world_model", "register_world_model", "world_model_names"]
