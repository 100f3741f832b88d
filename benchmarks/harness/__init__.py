"""The peer harness: the peers' virtual environments, the engines' child processes and their
protocol, the shared embeddings cache and synthetic corpora. Modules that run in a peer's
environment (`plaid_peer_*`, `proc_stats`) import only the standard library, NumPy and the peer."""
