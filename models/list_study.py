"""Coarse-level study for partial download, on TRAIN-set material: for each way of cutting the
embedding space into cells (the inverted lists a page would fetch one by one), what a client that
fetches only the cells its query probes still finds, how many bytes that costs in a catalogue of
a million songs, and how well a server that logs the fetched cell ids can name the song.

Coarse quantizers (any number, in order):
  flatK        one k-means of K centroids (`earshot build` today: 256 .. 4096)
  imiK         an inverted multi-index (Babenko and Lempitsky): a k-means of K centroids on each
               half of the embedding, a cell per pair, K^2 cells; a query visits the cells of
               the smallest summed half-distances
  pairK        time-pair keys (as landmark fingerprinters pair peaks): one k-means of K
               centroids; a window's key is the pair (its centroid, the centroid of the window
               :tT index hops later in the same song, default 4 = 1 s), K^2 keys; the last T
               windows of a song have no key. A query pairs its embeddings the same distance
               apart (so a 1 s clip, one embedding, has no pair) and visits, per pair, the keys
               of the smallest summed distances
  ...:pP       P cells probed per query embedding (per pair for pairK; default 8)
  ...:gG       cells fetched in groups of G consecutive ids (one request, one hash; coarser ids
               for the server), default 1
  ...:dD       every fetch padded with D random decoy groups per query embedding
  ...:v1       phase 1 votes by count: every fetched posting of a probed cell gives 1 to its
               (song, offset), as landmark fingerprinters vote (postings without codes);
               default v0, the 32 most similar postings vote their exact similarity

Per variant and clip length, on the clips of every catalogue song:
  window recall  share of in-catalogue query embeddings whose own window (the index window
                 nearest to the clip's start + i x query hop, +-1) lies in a probed cell: phase 1
                 can only vote for what was fetched;
  phase 1        the right song and offset (+-1 s) among the 16 candidates phase 1 of the
                 matcher hands to phase 2, run on the fetched postings with exact similarities
                 (the PQ error left out, so only the coarse level is compared): each query
                 embedding keeps its 32 most similar fetched postings, each votes its similarity
                 for (song, offset binned to the index hop);
  KB/query 1M    bytes fetched for one clip at a million songs: the share of the catalogue's
                 postings in the cells (groups) fetched, measured on out-of-catalogue clips (their
                 own song is not in the catalogue, as almost every song is not at 1 M), times a
                 million songs of the catalogue's mean windows, times --posting-bytes; the
                 median over the clips, then the mean (with cells much finer than the catalogue,
                 most fetched cells are empty at hundreds of songs, and the median of so few
                 postings says little: read the mean);
  ids            distinct cells (groups) fetched per out-of-catalogue clip, median: the
                 directory entries a client must look up (one directory page each at most);
  attack top-1   a server that knows the index and sees only the fetched cell (group) ids scores
                 each song by the share of each fetched cell's postings that are its own, summed;
                 how often it names the right song first (in-catalogue clips). At this catalogue
                 size (hundreds of songs) it is an upper bound of what it reaches at a million.

    /usr/bin/python3 -m models.list_study --emb emb --truth q-train-clips/truth.tsv \\
        flat256 flat4096 imi256:p64 imi1024:p256 imi1024:p256:g64

The dumps are those of models/code_study.py (train-index at the index hop, train-q at the
query hop). Only the attack is worth measuring on the public eval clips too (nothing is chosen
from it): `--emb emb-eval --index eval-index --queries eval-q --truth q-public/truth.tsv`, with
the eval catalogue and clips dumped the same way.
"""

import argparse
import time

import numpy as np

from models.code_study import D, assign, kmeans, load


def parse_variant(v):
    head, *opts = v.split(":")
    kind = next(k for k in ("imi", "flat", "pair") if head.startswith(k))
    spec = {"kind": kind, "k": int(head[len(kind):]), "p": 8, "g": 1, "d": 0, "t": 4, "v": 0}
    for o in opts:
        spec[o[0]] = int(o[1:])
    return spec


class Coarse:
    def __init__(self, spec, sample, seed):
        self.spec, self.k = spec, spec["k"]
        if spec["kind"] == "flat":
            self.c = [kmeans(sample, self.k, seed=seed)]
            self.n_cells = self.k
        elif spec["kind"] == "pair":
            self.c = [kmeans(sample, self.k, seed=seed)]
            self.n_cells = self.k * self.k
        else:
            h = D // 2
            self.c = [kmeans(np.ascontiguousarray(sample[:, :h]), self.k, seed=seed),
                      kmeans(np.ascontiguousarray(sample[:, h:]), self.k, seed=seed + 1)]
            self.n_cells = self.k * self.k

    def cell(self, x):
        if len(self.c) == 1:
            return assign(x, self.c[0])
        h = D // 2
        return assign(x[:, :h], self.c[0]) * self.k + assign(x[:, h:], self.c[1])

    def pair_cells(self, x, later):
        """Keys of the windows x[i] paired with x[later[i]]; -1 where later[i] < 0."""
        a = assign(x, self.c[0])
        return np.where(later >= 0, a * self.k + a[np.maximum(later, 0)], -1)

    def probe_pairs(self, q, dq, p):
        """The p keys of smallest summed distance for each pair (q[i], q[i + dq]), [n - dq, p]."""
        d = (self.c[0] ** 2).sum(1)[None, :] - 2 * q @ self.c[0].T
        t = min(self.k, p)
        out = []
        for i in range(len(q) - dq):
            ia, ib = np.argsort(d[i])[:t], np.argsort(d[i + dq])[:t]
            s = d[i][ia][:, None] + d[i + dq][ib][None, :]
            best = np.argsort(s, axis=None)[:p]
            out.append(ia[best // t] * self.k + ib[best % t])
        return np.array(out, dtype=np.int64).reshape(-1, p)

    def probe(self, q, p):
        """The p nearest cells of each row of q, [n, p]."""
        if len(self.c) == 1:
            d = (self.c[0] ** 2).sum(1)[None, :] - 2 * q @ self.c[0].T
            return np.argsort(d, 1)[:, :p]
        h = D // 2
        out = []
        for row in q:
            da = (self.c[0] ** 2).sum(1) - 2 * self.c[0] @ row[:h]
            db = (self.c[1] ** 2).sum(1) - 2 * self.c[1] @ row[h:]
            t = min(self.k, p)  # the p best pairs use only each half's p best centroids
            ia, ib = np.argsort(da)[:t], np.argsort(db)[:t]
            s = da[ia][:, None] + db[ib][None, :]
            best = np.argsort(s, axis=None)[:p]
            out.append(ia[best // t] * self.k + ib[best % t])
        return np.array(out)


def main():
    ap = argparse.ArgumentParser(prog="python3 -m models.list_study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emb", required=True, help="folder of the embedding dumps")
    ap.add_argument("--truth", required=True, help="the clips' truth.tsv")
    ap.add_argument("--index", default="train-index", help="the catalogue's dump in --emb")
    ap.add_argument("--queries", default="train-q", help="the clips' dump in --emb")
    ap.add_argument("--lengths", default="2,5,10", help="clip lengths (s) scored")
    ap.add_argument("--index-hop", type=float, default=0.25)
    ap.add_argument("--query-hop", type=float, default=0.5)
    ap.add_argument("--posting-bytes", type=float, default=11.0,
                    help="bytes per fetched posting (an 8-byte code and a 3-byte song window)")
    ap.add_argument("--songs", type=int, default=1000000, help="catalogue size to scale to")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("variants", nargs="+")
    args = ap.parse_args()
    truth = {}
    with open(args.truth) as f:
        next(f)
        for line in f:
            q, song, start, length = line.rstrip("\n").split("\t")[:4]
            truth[q] = (song, float(start), length)
    lengths = args.lengths.split(",")
    ids, n, first, x = load(args.emb + "/" + args.index)
    song_of = np.repeat(np.arange(len(ids)), n)
    window_of = np.arange(len(x)) - np.repeat(first, n)
    index_of = {s: i for i, s in enumerate(ids)}
    qids, qn, qfirst, qx = load(args.emb + "/" + args.queries)
    clips = [c for c in range(len(qids)) if qn[c] > 0 and truth[qids[c]][2] in lengths
             and (truth[qids[c]][0] == "-" or truth[qids[c]][0] in index_of)]
    rng = np.random.default_rng(args.seed)
    sample = x[rng.choice(len(x), min(65536, len(x)), replace=False)]
    print(f"{len(ids)} songs, {len(x)} windows ({n.mean():.0f} per song), {len(clips)} clips",
          flush=True)
    hop_ratio = args.query_hop / args.index_hop
    for v in args.variants:
        t0 = time.time()
        spec = parse_variant(v)
        coarse = Coarse(spec, sample, args.seed)
        pair = spec["kind"] == "pair"
        g = spec["g"]
        n_groups = (coarse.n_cells + g - 1) // g
        if pair:
            T = spec["t"]
            dq = int(round(T / hop_ratio))
            later = np.where(window_of + T < np.repeat(n, n), np.arange(len(x)) + T, -1)
            cells = coarse.pair_cells(x, later)
            groups = np.where(cells >= 0, cells // g, n_groups)  # keyless: a bucket never probed
        else:
            groups = coarse.cell(x) // g
        order = np.argsort(groups, kind="stable")
        bounds = np.searchsorted(groups[order], np.arange(n_groups + 1))
        group_size = np.diff(bounds)
        # attack weights: each group's postings share one unit of evidence
        stats = {length: {"win": [0, 0], "p1": [0, 0], "att": [0, 0], "frac": [], "ids": []}
                 for length in lengths}
        for c in clips:
            song, start, length = truth[qids[c]]
            q = qx[qfirst[c]:qfirst[c] + qn[c]]
            probed = (coarse.probe_pairs(q, dq, spec["p"]) if pair
                      else coarse.probe(q, spec["p"])) // g  # [n, p] groups (pairs: [n - dq, p])
            fetched = set(probed.ravel().tolist())
            if spec["d"]:
                fetched |= set(rng.integers(n_groups, size=spec["d"] * len(q)).tolist())
            st = stats[length]
            posts = np.concatenate([order[bounds[a]:bounds[a + 1]] for a in fetched]
                                   + [np.zeros(0, np.int64)])
            if song == "-":
                st["frac"].append(len(posts) / len(x))
                st["ids"].append(len(fetched))
                continue
            s = index_of[song]
            # window recall
            for i in range(len(probed)):
                j = int(round(start / args.index_hop + i * hop_ratio))
                ok = any(0 <= jj < n[s] and groups[first[s] + jj] in set(probed[i].tolist())
                         for jj in (j - 1, j, j + 1))
                st["win"][0] += ok
                st["win"][1] += 1
            # phase 1 on the fetched postings
            votes = {}
            for i in range(len(probed)):
                mine = np.concatenate([order[bounds[a]:bounds[a + 1]] for a in set(probed[i].tolist())]
                                      + [np.zeros(0, np.int64)])
                if len(mine) == 0:
                    continue
                if spec["v"]:
                    sim, top = np.ones(len(mine)), np.arange(len(mine))
                else:
                    sim = x[mine] @ q[i]
                    if pair:  # both windows of the key
                        sim = sim + x[mine + T] @ q[i + dq]
                    top = np.argsort(-sim)[:32]
                for e, sv in zip(mine[top], sim[top]):
                    key = (song_of[e], int(round(window_of[e] - i * hop_ratio)))
                    votes[key] = votes.get(key, 0.0) + float(sv)
            candidates = sorted(votes.items(), key=lambda kv: -kv[1])[:16]
            st["p1"][0] += any(song_c == s and abs(delta * args.index_hop - start) <= 1.0
                               for (song_c, delta), _ in candidates)
            st["p1"][1] += 1
            # the attack: fetched groups only
            score = np.zeros(len(ids))
            for a in fetched:
                if group_size[a]:
                    np.add.at(score, song_of[order[bounds[a]:bounds[a + 1]]], 1.0 / group_size[a])
            st["att"][0] += int(score.argmax()) == s
            st["att"][1] += 1
        line = []
        for length in lengths:
            st = stats[length]
            scale = args.songs * n.mean() * args.posting_bytes / 1000
            kb, kb_mean = ((np.median(st["frac"]) * scale, np.mean(st["frac"]) * scale)
                           if st["frac"] else (float("nan"), float("nan")))
            line.append(f"{length} s: window recall {100 * st['win'][0] / max(st['win'][1], 1):5.1f} "
                        f"phase 1 {100 * st['p1'][0] / max(st['p1'][1], 1):5.1f} "
                        f"KB/query 1M {kb:6.0f} / {kb_mean:6.0f} "
                        f"ids {np.median(st['ids']) if st['ids'] else float('nan'):4.0f} attack {100 * st['att'][0] / max(st['att'][1], 1):5.1f}")
        print(f"{v:22s} {coarse.n_cells:8d} cells | " + " | ".join(line)
              + f" [{time.time() - t0:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
