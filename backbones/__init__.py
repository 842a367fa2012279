"""Sequence cores behind one resettable interface.

Every backbone is a ``flax.linen.Module`` with::

    initialize_carry(batch_size) -> carry
    __call__(carry, inputs[T, B, D], resets[T, B]) -> (carry, outputs[T, B, features])

``resets[t, b]`` true means step t starts a new episode: the carry is replaced
by the initial carry before step t. One call over T steps equals T calls of one
step with the carry threaded through.

Input parts: most cores take one array ``inputs [T, B, D]``. A core whose
inputs have named parts defines a method ``input_parts(self) -> tuple[str, ...]``
and takes ``inputs`` as a dict of ``[T, B, D_part]`` arrays with those keys
(``dcem``: ``("vision", "language")`` by default, the names are its fields).
``input_parts(module)`` answers for any core (``()``: a plain array), so a
network can hand each core what it takes; ``check_inputs`` rejects a plain
array given to a core with parts, a dict lacking a part, and a dict given to a
core without parts, each in one sentence. ``split_parts(x, parts)`` cuts one
array into parts, for code that drives every core with random inputs;
``plain_input_names()`` lists the cores that take one array.

Registered names: ``gru``, ``lstm`` (rnn.py), ``s5`` (s5.py), ``s4d`` (s4d.py),
``lru`` (lru.py), ``transformer`` (transformer.py), ``mamba`` (mamba.py),
``mingru`` (mingru.py), ``mlstm`` (mlstm.py), ``ffm`` (ffm.py), ``deltanet`` and
``gated_deltanet`` (gated_deltanet.py), ``mom`` (mom.py), ``titans`` (titans.py),
``dcem`` (dcem.py, the dual-coding episodic memory over vision and language).
The diagonal SSMs share their layer stack (ssm_stack.py), initialisers
(ssm_init.py), discretisation (discretization.py) and resettable associative
scan (scan.py); mamba, mingru, mlstm and ffm share the residual stack of
mixer_stack.py; the matrix memories share memory_stack.py and the delta-rule
recurrence (delta_rule.py).
"""

from mnemax.backbones import transformer  # noqa: F401  (registers "transformer")
from mnemax.backbones.dcem import DCEM, read_memory
from mnemax.backbones.ffm import FFM
from mnemax.backbones.gated_deltanet import DeltaNet, GatedDeltaNet
from mnemax.backbones.lru import LRU
from mnemax.backbones.mamba import Mamba
from mnemax.backbones.mingru import MinGRU
from mnemax.backbones.mlstm import MLSTM
from mnemax.backbones.mom import MixtureOfMemories
from mnemax.backbones.registry import (
    BackboneSpec, check_inputs, input_parts, make, names, plain_input_names, register,
    split_parts,
)
from mnemax.backbones.rnn import GRU, LSTM
from mnemax.backbones.s4d import S4D
from mnemax.backbones.s5 import S5
from mnemax.backbones.scan import resettable_scan
from mnemax.backbones.titans import Titans

__all__ = [
    "BackboneSpec", "DCEM", "DeltaNet", "FFM", "GRU", "GatedDeltaNet", "LRU", "LSTM", "MLSTM", "Mamba", "MinGRU",
    "MixtureOfMemories", "S4D", "S5", "Titans", "check_inputs", "input_parts", "make", "names", "plain_input_names",
    "read_memory", "register", "resettable_scan", "split_parts",
]
