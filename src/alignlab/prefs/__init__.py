"""The prefs pillar: preference models three ways, preference-model pre-training, the HHH
evaluation, an HHH prompt and context distillation (after Askell et al., 2021).

Modules, imported on use (nothing is imported here):

* ``data``: rankings from HH-RLHF, BIG-bench hhh_alignment, Stack Exchange and JSON Lines;
  deterministic hash splits; ``stackexchange``: ``Posts.xml`` dumps scored by the paper's rule;
* ``batch``: tokenising with counted truncation; packed, shared-context and padded batches;
* ``model``: the preference model (causal LM + scalar head at an end-of-context token);
* ``backbone``: the backbone's source, cutting it to fewer layers, LoRA adapters;
* ``objectives``: ranked, binary and imitation losses by name, and the PMP transforms;
* ``train``: training through accelerate with checkpoints, resume and optional LoRA;
* ``pmp``: pre-training then fine-tuning, as one call;
* ``hhh``: the HHH evaluation for preference models and language models;
* ``likelihood``: how a language model's log-probabilities score a response (``sum``, the
  paper's and BIG-bench's way, and ``mean-token``, ``mean-char``, ``pmi``);
* ``prompt``: the shipped HHH prompt and a language model with a cached prefix;
* ``distill``: context distillation on cached top-k teacher log-probabilities;
* ``cli``: the ``alignlab prefs`` commands.
"""
