"""Helpers shared by the test files: one owner each.

- cli: running tfssl's commands (in this process, or in a new one where the process is tested)
- configs: the small real configs the tests train (tiny nets, few steps, real Fashion-MNIST)
- tasks: a method built on a fixed batch with its optimizer, as the trainer builds it
- stubs: stand-in backbones and heads whose outputs a test computes by hand
- ports: free TCP ports on the loopback for multi-worker jobs
- equivalence, real_training, replica_run, pipeline_reference: the replica and training proofs
"""
