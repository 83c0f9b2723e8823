"""Development metric on TRAIN-set material: brute-force retrieval of make-queries clips
(../shared/eval/make-queries on the train set) against embeddings of the dev songs, taken at
the shipped index hop (songs) and query hop (clips); reports the top-1 hit rate per length and
condition.

Score of (song, j) for a clip with embeddings q_0..q_{n-1}, r = query hop / index hop:
mean_i <q_i, s_{j + r i}> (the aligned mean cosine); the answer is the best song's max over j.
"""

import collections
import os

import numpy as np
import soundfile
import torch

from . import frontend

RATE_HZ = frontend.DEFAULT_PARAMS["sample_rate_hz"]
HOP_FRAMES = frontend.DEFAULT_GEOMETRY["hop_frames"]
QUERY_HOP_FRAMES = frontend.DEFAULT_GEOMETRY["query_hop_frames"]


def embed_audio(net, pcm, front, hop_frames, batch=512):
    """All windows of `pcm` at `hop_frames` -> [n, dim] float32 (eval mode, no grad)."""
    logmel = front(torch.from_numpy(np.ascontiguousarray(pcm, dtype=np.float32)))
    ctx = net.context_frames
    if logmel.shape[0] < ctx:
        return np.zeros((0, net.embedding_dim), dtype=np.float32)
    patches = logmel.unfold(0, ctx, hop_frames).permute(0, 2, 1)  # [n, ctx, mels]
    out = []
    with torch.no_grad():
        for i in range(0, len(patches), batch):
            out.append(net(patches[i:i + batch].contiguous()))
    return torch.cat(out).numpy()


def aligned_scores(sims, stride=1):
    """sims [n_q, n_s]: cosine of query embedding i with song embedding k. Returns, per song
    start j whose embeddings cover the whole query (j + stride (n_q - 1) < n_s), the mean of
    sims[i, j + stride i]; when the song is shorter than that, the partial means of every j."""
    n_q, n_s = sims.shape
    total = np.zeros(n_s)
    count = np.zeros(n_s)
    for i in range(n_q):
        if stride * i >= n_s:
            break
        total[:n_s - stride * i] += sims[i, stride * i:]
        count[:n_s - stride * i] += 1
    score = (total / np.maximum(count, 1))[count == n_q]
    if score.size == 0:
        score = total / np.maximum(count, 1)
    return score


class DevSet:
    def __init__(self, query_dir, song_audio, song_ids):
        """song_audio: dict id -> pcm for the songs of the dev index. Queries kept: those of
        indexed songs in `song_ids` and the out-of-catalog ('-') ones."""
        self.song_ids = list(song_ids)
        self.song_audio = song_audio
        self.queries = []
        with open(os.path.join(query_dir, "truth.tsv"), encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split("\t")
            for line in f:
                row = dict(zip(header, line.rstrip("\n").split("\t")))
                if row["song"] in song_audio or row["song"] == "-":
                    path = os.path.join(query_dir, "queries", row["query"])
                    pcm, rate = soundfile.read(path, dtype="float32")
                    if rate != RATE_HZ:
                        raise ValueError(f"{path}: {rate} Hz, the front-end needs {RATE_HZ}")
                    row["pcm"] = pcm
                    self.queries.append(row)

    def evaluate(self, net, seen_ids=(), hop_frames=HOP_FRAMES,
                 query_hop_frames=QUERY_HOP_FRAMES):
        """Top-1 hit rates in % by "seen|unseen/condition/length" (and "all" rows), the 95th
        percentile of the negatives' best scores and the median of the positives'. Songs are
        embedded every hop_frames frames, clips every query_hop_frames (a multiple of it)."""
        if query_hop_frames % hop_frames:
            raise ValueError(f"query hop {query_hop_frames} is not a multiple of the index hop "
                             f"{hop_frames}")
        stride = query_hop_frames // hop_frames
        net.eval()
        front = frontend.TorchFrontend()
        embs = [embed_audio(net, self.song_audio[s], front, hop_frames) for s in self.song_ids]
        hits = collections.defaultdict(lambda: [0, 0])
        pos_scores, neg_scores = [], []
        self.scores = []  # (length_s, condition, is_negative, correct, score, query, answer)
        for q in self.queries:
            qe = embed_audio(net, q["pcm"], front, query_hop_frames)
            best_song, best = None, -2.0
            for sid, se in zip(self.song_ids, embs):
                sims = qe @ se.T  # [n_q, n_s]
                if sims.shape[0] == 0 or sims.shape[1] == 0:
                    continue
                s = float(aligned_scores(sims, stride).max())
                if s > best:
                    best, best_song = s, sid
            self.scores.append((q["length_s"], q["condition"], q["song"] == "-",
                                best_song == q["song"], best, q["query"], best_song))
            if q["song"] == "-":
                neg_scores.append(best)
                continue
            group = "seen" if q["song"] in seen_ids else "unseen"
            ok = best_song == q["song"]
            pos_scores.append(best)
            for key in [(group, q["condition"], q["length_s"]), (group, "all", q["length_s"]),
                        (group, q["condition"], "all"), (group, "all", "all")]:
                hits[key][0] += ok
                hits[key][1] += 1
        net.train()
        result = {f"{g}/{c}/{l}": round(100.0 * h / n, 1) for (g, c, l), (h, n) in hits.items()}
        if neg_scores:
            result["neg_score_p95"] = round(float(np.percentile(neg_scores, 95)), 3)
            result["pos_score_median"] = round(float(np.median(pos_scores)), 3)
        return result


def format_result(result):
    keys = sorted(k for k in result if "/" in k)
    return " ".join(f"{k}={result[k]}" for k in keys if k.endswith("/all") or "/all/" in k) + \
        f" neg_p95={result.get('neg_score_p95')} pos_med={result.get('pos_score_median')}"
