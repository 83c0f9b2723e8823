"""Contrastive losses over a batch of (anchor, positive) embedding pairs, and the masks of the
pairs that are not true negatives."""

import torch
import torch.nn.functional as F

from .frontend import DEFAULT_PARAMS
from .net import matmul_nt

RATE_HZ = DEFAULT_PARAMS["sample_rate_hz"]


def false_negative_mask(song_idx, starts, min_gap=2 * RATE_HZ):
    """[b, b] True where two different batch items are the same song less than min_gap samples
    (2 s) apart: they are not true negatives."""
    same = song_idx[:, None] == song_idx[None, :]
    near = (starts[:, None] - starts[None, :]).abs() < min_gap
    mask = same & near
    mask.fill_diagonal_(False)
    return mask


def nt_xent(za, zp, tau, fn_mask, memory=None, memory_fn=None):
    """Symmetric NT-Xent (SimCLR / Chang et al. 2021) over 2b views; the positive of each view
    is its pair, the negatives are all other 2b-2 views (minus masked false negatives), plus the
    rows of `memory` [m, dim] (earlier batches' views) not masked by `memory_fn` [b, m]."""
    b = za.shape[0]
    z = torch.cat([za, zp])
    logits = matmul_nt(z, z) / tau
    eye = torch.eye(2 * b, dtype=torch.bool)
    fn = fn_mask.repeat(2, 2)
    logits = logits.masked_fill(eye | fn, float("-inf"))
    if memory is not None and len(memory):
        extra = (matmul_nt(z, memory) / tau).masked_fill(memory_fn.repeat(2, 1), float("-inf"))
        logits = torch.cat([logits, extra], 1)
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)])
    return F.cross_entropy(logits, target)


class CrossBatchMemory:
    """A queue of the last `size` views' embeddings (detached), with their songs, used
    as extra negatives (cross-batch memory, Wang et al. 2020): NT-Xent's negatives grow from
    2b-2 to 2b-2+size at the cost of one [2b, size] product, where a bigger batch would cost a
    forward and backward pass per view. The embeddings are a few steps stale, which is harmless
    once the network moves slowly (a warm start or a late, low learning rate). Not checkpointed:
    after a restart it fills again within size / 2b steps."""

    def __init__(self, size, dim):
        self.z = torch.zeros(size, dim)
        self.song = torch.full((size,), -1, dtype=torch.int64)
        self.filled = 0
        self.head = 0

    def negatives(self, song_idx):
        """Returns (memory rows [m, dim], mask [b, m] of the rows from the batch items' songs).
        The whole song is masked, not only nearby starts as in false_negative_mask: game music
        loops, so another part of a song is often the same audio, and the queue holds dozens of
        views of every song (masking only +-2 s kept 19 points fewer 1 s dev queries)."""
        m = self.filled
        return self.z[:m], song_idx[:, None] == self.song[None, :m]

    def push(self, z, song_idx):
        """Enqueues views z [n, dim] of songs song_idx [n], overwriting the oldest."""
        rows = (self.head + torch.arange(len(z))) % len(self.z)
        self.z[rows] = z.detach()
        self.song[rows] = song_idx
        self.head = int(rows[-1] + 1) % len(self.z)
        self.filled = min(self.filled + len(z), len(self.z))


def semi_hard_triplet(za, zp, margin, fn_mask):
    """Triplet loss with semi-hard negative mining (FaceNet): for each anchor, the hardest
    negative that is still farther than the positive, else the easiest one."""
    d = 2.0 - 2.0 * za @ zp.T  # squared distances anchor i -> positive j
    d_pos = d.diag()
    b = d.shape[0]
    invalid = torch.eye(b, dtype=torch.bool) | fn_mask
    semi = (d > d_pos[:, None]) & ~invalid
    d_semi = torch.where(semi, d, torch.full_like(d, float("inf"))).min(1).values
    d_easy = torch.where(~invalid, d, torch.full_like(d, float("-inf"))).max(1).values
    d_neg = torch.where(torch.isinf(d_semi), d_easy, d_semi)
    return F.relu(d_pos - d_neg + margin).mean()
