"""`watcher demo`: sample feeds replayed offline through the real pipeline, for a first look.

Owns: the bundled sample feeds, case pages and rule file (package data in ``data/``), the demo
scenario and its runner, and the HTML preview. Must not: reach the network, or write outside
the demo folder.
"""
