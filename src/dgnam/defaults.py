"""Defaults and bounds that ``dgnam --help`` shows, in a module that imports nothing heavy.

The command line prints its help without importing torch (3 s of a 3.5 s ``dgnam --help``), so the numbers its
options show cannot live in the modules that use them, which do import torch. Each is used (and re-exported) there:
``dgnam.demo.DEMO_RESTARTS``, ``dgnam.facets.MAX_FACET_SEED``, ``dgnam.ppgn.CHECKPOINT_EVERY``.
"""

#: Restarts per class of ``dgnam demo`` ("a few restarts, best kept"): 8 per class fit the demo's 2-minute budget on
#: 2 cores.
DEMO_RESTARTS = 8

#: The largest seed facets take: scikit-learn's random_state (t-SNE, k-means, PCA) is 0..2**32 - 1.
MAX_FACET_SEED = 2**32 - 1

#: How often (iterations) :func:`dgnam.ppgn.sample` writes its checkpoint when given one: a few seconds of a 28-px
#: chain, a minute or so of a 227-px chain on CPU; each write holds the kept samples so far.
CHECKPOINT_EVERY = 50
