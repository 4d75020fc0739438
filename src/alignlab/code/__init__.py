"""The code pillar: functional-correctness evaluation of generated code (HumanEval and alike).

Modules, imported on use (nothing is imported here):

* ``sandbox``: run untrusted programs in warm, confined, resource-limited workers (a
  subpackage, one module per layer: executor, pool, forkserver, namespaces, child, ...);
* ``passk``: the unbiased pass@k estimator;
* ``problems``: HumanEval-format problem sets and samples files;
* ``evaluate``: a samples file to per-sample results and a summary;
* ``sampling`` and ``ranking``: draw samples from a model, rank them by log-probability;
* ``cli``: the ``alignlab code`` commands.
"""
