"""layerscope: how fine-tuning changes transformer encoders, layer by layer.

Layer convention used everywhere: index 0 is the embedding output; index i (1..L) is the
output of encoder block i, the same as Hugging Face ``hidden_states[i]``.
"""

__version__ = "0.1.0"
