"""scaling_lib: counting, scaling laws, fitting, run tables and a small GPT testbed.

Modules are imported on demand (``from scaling_lib import fit``) so that the
fitting code never pays for importing torch.
"""

__version__ = "0.1.0"
