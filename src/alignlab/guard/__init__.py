"""guard: Constitutional Classifiers++ — a constitution drives training data; an exchange classifier
and linear probes on the policy's own activations screen traffic in a two-stage cascade."""
