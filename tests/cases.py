"""Shapes every accuracy test walks: head_dim 64/128/96 and an odd one, GQA/MQA,
q_len != kv_len, causal both ways, lengths that are multiples of no block size."""

# (batch, q_len, kv_len, heads_q, heads_kv, head_dim, causal)
SHAPES = [
    (1, 128, 128, 2, 2, 64, False),
    (2, 200, 333, 4, 2, 96, True),
    (1, 300, 300, 4, 1, 128, True),
    (1, 77, 513, 2, 2, 128, False),
    (1, 333, 200, 2, 2, 64, True),  # q_len > kv_len, causal: the first 133 rows see no key
    (1, 65, 191, 3, 3, 40, False),
    (2, 257, 129, 8, 2, 128, False),
]


def shape_id(s):
    b, lq, lk, h, hkv, d, c = s
    return f"b{b}-q{lq}-k{lk}-h{h}/{hkv}-d{d}-{'causal' if c else 'full'}"

# Longer and wider shapes for the pre-pass: many heads, lengths whose K-mean chunk sums are
# finalized in several shared-memory pieces (k_mean.cuh), and each form of the K-mean launch.
PREPASS_SHAPES = [
    (2, 64, 2500, 16, 16, 128, False),  # 40 chunks: two pieces
    (1, 96, 17000, 4, 2, 128, True),  # 266 chunks: nine pieces
    (3, 40, 700, 24, 8, 64, False),  # GQA, many heads
    (1, 64, 4700, 2, 2, 128, False),  # 37 CTAs of chunk sums: a 16-CTA cluster, 3 rounds (k_mean.cu)
]
