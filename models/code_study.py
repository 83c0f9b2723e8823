"""Index code study on TRAIN-set material: how much recognition each way of storing a catalogue's
embeddings keeps, measured without building an index per variant.

A proxy of the matcher's phase 2 by brute force (no phase-1 candidate search): a clip's score is
its best mean aligned similarity over every song and offset, against the catalogue's
reconstructed embeddings; its confidence is the score minus 0.5 x the background (the mean over
the clip's embeddings of the best similarity to any other song), as in docs/DESIGN.md section 6.
Reported per clip length: top-1 (right song ranked first) and the hit rate at the threshold that
lets 1 % of the out-of-catalog clips of that length through. With each code, the bits its list
ids would cost entropy-coded given the previous window's list (and without that context).

Variants (any number, in order):
  raw                      the float embeddings
  pqM, opqM                IVF (256 lists, as `earshot build` picks for this size) + residual PQ
                           of M bytes; opq: with a learned rotation of the residuals (PCA and
                           eigenvalue allocation, then 10 rounds of PQ and orthogonal Procrustes)
  rqM                      IVF + residual (additive) quantization of M bytes: M codebooks of 256
                           codewords over the whole residual, encoded by beam search (RQ)
  ...bB, ...lL             B bits per sub-code instead of 8, L coarse lists instead of 256
                           (pq8b10l4096)
  rqM...wW                 RQ with a beam of W (8 when absent)
  n-CODE                   every reconstruction scaled back to unit length, as embeddings are
  jG-CODE                  the residuals of G consecutive windows of a song coded together: M
                           sub-quantizers over G x 128 dimensions, M/G bytes a window
                           (j4-n-opq32: 8 bytes a window)
  h05-CODE                 every other window stored (0.5 s index hop), CODE one of the above
  h05q25-CODE              the same index, clips embedded every 0.25 s: each parity of the
                           clip's embeddings is aligned on its own and the better one counts
  i05-CODE                 every other window stored; the reader puts the normalised mean of
                           two stored neighbours in each gap and scores as a 0.25 s index
  ldaK-CODE                index and clips mapped by a linear discriminant (K of 128 dims,
                           whitening what separates a clip's embedding from its aligned
                           window, against the catalogue's spread), back to unit length, then
                           CODE: fitted on the catalogue songs the study leaves out (their
                           clips aligned on their own song), so no scored song is seen; its
                           mse is in the mapped space

    build/bench/earshot_dump_embeddings --model models/earshot-v1.emod --index-hop \
        --out emb/train-index q-train-clips/index-catalog.tsv
    build/bench/earshot_dump_embeddings --model models/earshot-v1.emod --query-hop \
        --out emb/train-q q-train-clips/queries
    build/bench/earshot_dump_embeddings --model models/earshot-v1.emod --index-hop \
        --out emb/train-q25 q-train-clips/queries
    /usr/bin/python3 -m models.code_study --emb emb --truth q-train-clips/truth.tsv \
        raw pq32 pq16 pq8 opq16 opq8 h05-pq16 h05q25-pq16

q-train-clips: `make-queries --set-dir train-synthroom --lengths 2,5,10 --conditions
clean,noise5,room --holdout 0.3 --seed 11` (docs/EVALUATION.md). For speed, every third song of
the catalogue and the 2 s and 5 s clips (`--songs-every`, `--lengths`).
"""

import argparse
import os
import time

import numpy as np
import scipy.linalg
import torch

D = 128


def load(prefix):
    ids, n, first = [], [], []
    with open(prefix + ".tsv") as f:
        for line in f:
            a, b, c = line.rstrip("\n").split("\t")
            ids.append(a)
            n.append(int(b))
            first.append(int(c))
    x = np.fromfile(prefix + ".f32", dtype=np.float32).reshape(-1, D)
    return ids, np.array(n), np.array(first), x


def assign(x, c, batch=65536):
    out = np.empty(len(x), dtype=np.int64)
    cn = (c * c).sum(1)
    for s in range(0, len(x), batch):
        out[s:s + batch] = (cn[None, :] - 2 * x[s:s + batch] @ c.T).argmin(1)
    return out


def kmeans(x, k, iters=10, seed=0):
    r = np.random.default_rng(seed)
    c = x[r.choice(len(x), k, replace=False)].copy()
    for _ in range(iters):
        a = assign(x, c)
        counts = np.bincount(a, minlength=k)
        sums = np.zeros_like(c, dtype=np.float64)
        np.add.at(sums, a, x)
        full = counts > 0
        c[full] = (sums[full] / counts[full, None]).astype(np.float32)
        c[~full] = x[r.integers(len(x), size=int((~full).sum()))]
    return c


class PQ:
    def __init__(self, m, bits=8):
        self.m, self.k = m, 1 << bits

    def train(self, x):
        self.ds = x.shape[1] // self.m
        self.cb = [kmeans(x[:, i * self.ds:(i + 1) * self.ds], self.k, seed=i)
                   for i in range(self.m)]
        return self

    def encode(self, x):
        return np.stack([assign(x[:, i * self.ds:(i + 1) * self.ds], self.cb[i])
                         for i in range(self.m)], 1)

    def decode(self, codes):
        return np.concatenate([self.cb[i][codes[:, i]] for i in range(self.m)], 1)


class RQ:
    """Residual (additive) quantization: m stages of 2**bits codewords over the whole vector,
    each coding what the stages before it left; encoded by beam search (keep the `beam` best
    partial codes at each stage), codebooks trained stage by stage with k-means, then refined
    (each stage's codewords re-fitted as the mean of what the other stages leave)."""

    def __init__(self, m, bits=8, beam=8, refine=3):
        self.m, self.k, self.beam, self.refine = m, 1 << bits, beam, refine

    def train(self, x):
        r = x.copy()
        self.cb = []
        for i in range(self.m):
            c = kmeans(r, self.k, seed=i)
            r -= c[assign(r, c)]
            self.cb.append(c)
        for _ in range(self.refine):
            codes = self.encode(x)
            rec = self.decode(codes)
            for i in range(self.m):
                target = x - rec + self.cb[i][codes[:, i]]
                counts = np.bincount(codes[:, i], minlength=self.k)
                sums = np.zeros((self.k, x.shape[1]))
                np.add.at(sums, codes[:, i], target)
                full = counts > 0
                old = self.cb[i][codes[:, i]]
                self.cb[i][full] = (sums[full] / counts[full, None]).astype(np.float32)
                rec += self.cb[i][codes[:, i]] - old
        return self

    def encode(self, x, batch=4096):
        # |x - rec|^2 for rec = sum of the chosen codewords, expanded so that no stage multiplies
        # the beam by the dimension: <x, c> for every codeword once, and the cross terms
        # <c_j, c_i> between codebooks from tables (as in LSQ/RQ beam search).
        cbs = [torch.from_numpy(c) for c in self.cb]
        cross = [[cbs[j] @ cbs[i].T for j in range(i)] for i in range(self.m)]
        cn = [(c * c).sum(1) for c in cbs]
        out = np.empty((len(x), self.m), dtype=np.int64)
        for s in range(0, len(x), batch):
            xb = torch.from_numpy(x[s:s + batch])
            n = len(xb)
            xc = xb @ torch.cat(cbs).T  # [n, m * k]
            err = (xb * xb).sum(1)[:, None]  # [n, 1], then [n, beam]: the partial codes' errors
            codes = torch.zeros((n, 1, 0), dtype=torch.int64)
            rows = torch.arange(n)[:, None]
            for i in range(self.m):
                ip = xc[:, None, i * self.k:(i + 1) * self.k].expand(n, codes.shape[1], self.k).clone()
                for j in range(i):
                    ip -= cross[i][j][codes[:, :, j]]
                d = (err[..., None] - 2 * ip + cn[i]).reshape(n, -1)
                top = torch.topk(d, min(self.beam, d.shape[1]), dim=1, largest=False)
                b, k = top.indices // self.k, top.indices % self.k
                err = top.values
                codes = torch.cat([codes[rows, b], k[..., None]], 2)
            out[s:s + n] = codes[torch.arange(n), err.argmin(1)].numpy()
        return out

    def decode(self, codes):
        return sum(self.cb[i][codes[:, i]] for i in range(self.m))


def opq_rotation(rs, m, iters=10, bits=8):
    """Orthogonal R such that PQ of rs @ R loses less: PCA with eigenvalue allocation (each
    sub-space gets principal directions whose variances multiply to about the same), then
    alternating PQ training and orthogonal Procrustes (Ge et al., OPQ)."""
    w, v = np.linalg.eigh(rs.T @ rs)
    ds = rs.shape[1] // m
    buckets, logsum = [[] for _ in range(m)], np.zeros(m)
    for idx in np.argsort(-w):
        b = min((b for b in range(m) if len(buckets[b]) < ds), key=lambda b: logsum[b])
        buckets[b].append(idx)
        logsum[b] += np.log(max(w[idx], 1e-12))
    R = v[:, np.concatenate(buckets)].astype(np.float32)
    for _ in range(iters):
        pq = PQ(m, bits).train(rs @ R)
        y = pq.decode(pq.encode(rs @ R))
        u, _, vt = np.linalg.svd(rs.T @ y)
        R = (u @ vt).astype(np.float32)
    return R


def parse_code(code):
    """'raw', or [jG-|kG-][n-](pq|opq)M[bB][lL]: M sub-quantizers of B bits (default 8) on the
    residuals to L coarse lists (default 256); opq: with a learned rotation; n-: every
    reconstruction scaled back to unit length; jG-: the residuals of G consecutive windows of a
    song coded together (M sub-quantizers over G x 128 dimensions, the rotation over all of
    them); kG-: the same, with the rotation over one window's 128 dimensions (the same for each)
    and sub-quantizer i over dimensions [i d, (i + 1) d) of each of the G windows (d = 128 / M),
    so that one window's part of a group code decodes in 128 multiply-adds."""
    if code == "raw":
        return None
    group, kron = 1, False
    if code[0] in "jk" and "-" in code and code.split("-", 1)[0][1:].isdigit():
        head, code = code.split("-", 1)
        group, kron = int(head[1:]), head[0] == "k"
    spec = {"norm": code.startswith("n-"), "bits": 8, "lists": 256, "beam": 8, "group": group,
            "kron": kron}
    body = code[2:] if spec["norm"] else code
    spec["opq"] = body.startswith("opq")
    spec["rq"] = body.startswith("rq")
    body = body[3:] if spec["opq"] else body[2:]
    for key, name in (("w", "beam"), ("l", "lists"), ("b", "bits")):
        if key in body:
            body, value = body.split(key)
            spec[name] = int(value)
    spec["m"] = int(body)
    return spec


def window_groups(n, first, g):
    """Rows of g consecutive windows of one song ([groups, g] indices); a song's last group is
    filled up with its last window."""
    rows = []
    for count, start in zip(n, first):
        w = np.arange(start, start + count)
        rows.append(np.concatenate([w, np.repeat(w[-1:], (-count) % g)]).reshape(-1, g))
    return np.concatenate(rows)


def reconstruct(x, code, rng, n_lists=256, sample=65536, lists_out=None, songs=None, fit=None):
    """x under the code. songs: (n, first) of x's songs, for codes over groups of windows; fit:
    (x, n, first) of the songs the quantizer is trained on (x's own when None)."""
    spec = parse_code(code)
    if spec is None:
        return x
    m, bits, g = spec["m"], spec["bits"], spec["group"]
    n_lists = spec["lists"] if spec["lists"] != 256 else n_lists
    fx, fsongs = (x, songs) if fit is None else (fit[0], fit[1:])
    s = fx[rng.choice(len(fx), min(sample, len(fx)), replace=False)]
    coarse = kmeans(s, n_lists)
    lists = assign(x, coarse)
    if lists_out is not None:
        lists_out.append(lists)
    if g == 1:
        rs = s - coarse[assign(s, coarse)]
        rows = np.arange(len(x))[:, None]
    else:
        fr = fx - coarse[assign(fx, coarse)]
        rs = fr[window_groups(*fsongs, g)].reshape(-1, g * x.shape[1])
        rs = rs[rng.choice(len(rs), min(sample, len(rs)), replace=False)]
        rows = window_groups(*songs, g)
    r = (x - coarse[lists])[rows].reshape(len(rows), -1)
    if spec["kron"]:
        rec = np.empty_like(x)
        rec[rows.reshape(-1)] = interleaved_group_pq(rs, r, g, m, bits, spec["opq"])
        return finish(rec, coarse[lists], spec["norm"])
    R = opq_rotation(rs, m, bits=bits) if spec["opq"] else np.eye(rs.shape[1], dtype=np.float32)
    pq = (RQ(m, bits, spec["beam"]) if spec["rq"] else PQ(m, bits)).train(rs @ R)
    rec = np.empty_like(x)
    # where a song's last group repeats its last window, the last copy's decoding is kept
    rec[rows.reshape(-1)] = (pq.decode(pq.encode(r @ R)) @ R.T).reshape(-1, x.shape[1])
    return finish(rec, coarse[lists], spec["norm"])


def finish(residuals, centroids, norm):
    rec = residuals + centroids
    if norm:
        rec /= np.linalg.norm(rec, axis=1, keepdims=True)
    return rec.astype(np.float32)


def interleave(z, g, m):
    """[n, g * dim] groups of g windows (already rotated) to the layout whose i-th sub-vector
    holds dimensions [i d, (i + 1) d) of each window; deinterleave undoes it."""
    n, d = len(z), z.shape[1] // g
    return z.reshape(n, g, m, d // m).transpose(0, 2, 1, 3).reshape(n, -1)


def deinterleave(z, g, m):
    n, d = len(z), z.shape[1] // g
    return z.reshape(n, m, g, d // m).transpose(0, 2, 1, 3).reshape(n, -1)


def interleaved_group_pq(rs, r, g, m, bits, opq, iters=10):
    """kG- codes: trains on the groups rs ([n, g * dim]), returns r's groups' reconstructions as
    windows ([len(r) * g, dim]). The rotation R (dim x dim, each window alike) starts from the
    eigenvalue allocation over windows and alternates PQ training with Procrustes over windows."""
    d = rs.shape[1] // g
    win = rs.reshape(-1, d)
    R = opq_rotation(win, m, iters=0, bits=bits) if opq else np.eye(d, dtype=np.float32)
    for _ in range(iters if opq else 0):
        pq = PQ(m, bits).train(interleave((win @ R).reshape(len(rs), -1), g, m))
        z = interleave((win @ R).reshape(len(rs), -1), g, m)
        y = deinterleave(pq.decode(pq.encode(z)), g, m).reshape(-1, d)
        u, _, vt = np.linalg.svd(win.T @ y)
        R = (u @ vt).astype(np.float32)
    pq = PQ(m, bits).train(interleave((win @ R).reshape(len(rs), -1), g, m))
    z = interleave((r.reshape(-1, d) @ R).reshape(len(r), -1), g, m)
    return deinterleave(pq.decode(pq.encode(z)), g, m).reshape(-1, d) @ R.T


def fit_lda(x_all, cat_all, clips, truth, fit_songs, step=2, ridge=1e-3):
    """Generalised eigenvectors of the catalogue's scatter against the within-clip scatter
    (each in-catalogue clip of a fit song aligned on its own song by brute force; the pair of a
    clip embedding and its aligned window differs by what degradation and misalignment do),
    largest first, scaled so that the within-clip scatter is white."""
    ids, n, first = cat_all
    where = {ids[s]: s for s in fit_songs}
    qids, qn, qfirst, qx = clips
    diffs = []
    for c in range(len(qids)):
        song = truth.get(qids[c], ("-",))[0]
        if qn[c] < 1 or song not in where:
            continue
        s = where[song]
        y = x_all[first[s]:first[s] + n[s]]
        q = qx[qfirst[c]:qfirst[c] + qn[c]]
        S = q @ y.T
        N = S.shape[1] - (qn[c] - 1) * step
        if N < 1:
            continue
        A = sum(S[i, i * step:i * step + N] for i in range(qn[c]))
        j = int(A.argmax())
        diffs.append(q - y[j + step * np.arange(qn[c])])
    d = np.concatenate(diffs).astype(np.float64)
    xs = np.concatenate([x_all[first[s]:first[s] + n[s]] for s in fit_songs]).astype(np.float64)
    sw = d.T @ d / len(d)
    xs -= xs.mean(0)
    st = xs.T @ xs / len(xs)
    sw += ridge * np.trace(sw) / len(sw) * np.eye(len(sw))
    w, v = scipy.linalg.eigh(st, sw)
    print(f"lda: {len(d)} aligned pairs from {len(diffs)} clips; ratios "
          + " ".join(f"{r:.1f}" for r in w[::-1][[0, 15, 31, 63, 95, 127]]), flush=True)
    return v[:, ::-1].astype(np.float32)


def unit(x):
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def list_bits(lists, n, first):
    """Bits a list id costs when coded given the previous window's list in the same song
    (first-order model fitted on the even songs, measured on the odd ones: what a static table
    stored with the quantizer would reach), and without context."""
    k = int(lists.max()) + 1
    song = np.repeat(np.arange(len(n)), n)
    has_prev = np.ones(len(lists), bool)
    has_prev[first] = False
    fit, test = song % 2 == 0, song % 2 == 1
    marg = np.bincount(lists[fit], minlength=k) + 0.5
    marg /= marg.sum()
    at = np.nonzero(fit & has_prev)[0]
    table = np.zeros((k, k))
    np.add.at(table, (lists[at - 1], lists[at]), 1)
    alpha = 0.05 * k
    at = np.nonzero(test & has_prev)[0]
    p = ((table[lists[at - 1], lists[at]] + alpha * marg[lists[at]])
         / (table[lists[at - 1]].sum(1) + alpha))
    return float(-np.log2(p).mean()), float(-np.log2(marg[lists[test]]).mean())


def evaluate(rec, cat, clips, truth, lengths, step, parities=1, gap=48):
    ids, n, first = cat
    parts, starts, pos = [], [], 0
    for s in range(len(ids)):  # zero gaps: an alignment never spans two songs
        starts.append(pos)
        parts += [rec[first[s]:first[s] + n[s]], np.zeros((gap, rec.shape[1]), np.float32)]
        pos += n[s] + gap
    big_t = torch.from_numpy(np.concatenate(parts).T.copy())
    starts = np.array(starts)
    song_of = np.repeat(np.arange(len(ids)), n + gap)
    qids, qn, qfirst, qx = clips
    songs = set(ids) | {"-"}
    todo = [c for c in range(len(qids)) if qn[c] > 0 and truth[qids[c]][1] in lengths
            and truth[qids[c]][0] in songs]
    results = []
    for b in range(0, len(todo), 32):
        group = todo[b:b + 32]
        s_all = (torch.from_numpy(np.concatenate([qx[qfirst[c]:qfirst[c] + qn[c]]
                                                  for c in group])) @ big_t).numpy()
        r0 = 0
        for c in group:
            S = s_all[r0:r0 + qn[c]]
            r0 += qn[c]
            N = S.shape[1]
            best = (-9.0, 0, None)
            for par in range(parities):
                rows = list(range(par, qn[c], parities))
                A = S[rows[0]].copy()
                for k, i in enumerate(rows[1:], 1):
                    A[:N - k * step] += S[i, k * step:]
                A /= len(rows)
                j = int(A.argmax())
                if A[j] > best[0]:
                    best = (float(A[j]), j, rows)
            score, j, rows = best
            song = song_of[j]
            M = np.maximum.reduceat(S[rows], starts, axis=1)
            M[:, song] = -9.0
            results.append((qids[c], ids[song], score - 0.5 * float(M.max(1).mean())))
    line, hits, total = [], 0, 0
    for length in lengths:
        rows = [(truth[q][0], a, conf) for q, a, conf in results if truth[q][1] == length]
        thr = np.quantile([conf for s, a, conf in rows if s == "-"], 0.99)
        pos = [(s == a, conf) for s, a, conf in rows if s != "-"]
        hit = sum(ok and conf > thr for ok, conf in pos)
        line.append(f"{length} s: top-1 {100 * np.mean([ok for ok, _ in pos]):5.1f} "
                    f"hit at 1 % FP {100 * hit / len(pos):5.1f}")
        hits, total = hits + hit, total + len(pos)
    return " | ".join(line) + f" | all {100 * hits / total:5.1f} ({total} clips in catalogue)"


def main():
    ap = argparse.ArgumentParser(prog="python3 -m models.code_study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emb", required=True, help="folder of the three embedding dumps")
    ap.add_argument("--truth", required=True, help="the clips' truth.tsv")
    ap.add_argument("--songs-every", type=int, default=3, help="keep every n-th catalogue song")
    ap.add_argument("--fold", type=int, default=0,
                    help="which of those: the songs whose position modulo --songs-every is this")
    ap.add_argument("--lengths", default="2,5", help="clip lengths (s) scored")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fit-apart", action="store_true",
                    help="train each code's quantizer on the catalogue songs the study leaves "
                    "out, not the scored ones (as in a large catalogue, whose quantizer sees a "
                    "sample of 65 536 windows); plain and jG- variants only")
    ap.add_argument("--fit-from", metavar="PREFIX",
                    help="train the quantizer on this embedding dump instead (PREFIX.tsv and "
                    "PREFIX.f32, e.g. other songs of the train catalogue; implies --fit-apart)")
    ap.add_argument("variants", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    truth = {}
    with open(args.truth) as f:
        next(f)
        for line in f:
            q, song, _, length = line.rstrip("\n").split("\t")[:4]
            truth[q] = (song, length)
    lengths = args.lengths.split(",")
    ids, n, first, x = load(os.path.join(args.emb, "train-index"))
    sel = range(args.fold, len(ids), args.songs_every)
    cat_all, x_all = (ids, n, first), x
    rest = [s_ for s_ in range(len(ids)) if s_ % args.songs_every != args.fold]  # not scored
    fit = None
    if args.fit_from:
        _, fit_n, fit_first, fit_x = load(args.fit_from)
        fit = (fit_x, fit_n, fit_first)
    elif args.fit_apart:
        fit_n = n[rest]
        fit = (np.concatenate([x[first[s_]:first[s_] + n[s_]] for s_ in rest]), fit_n,
               np.concatenate([[0], np.cumsum(fit_n)[:-1]]))
    x = np.concatenate([x[first[s]:first[s] + n[s]] for s in sel])
    ids, n = [ids[s] for s in sel], n[list(sel)]
    first = np.concatenate([[0], np.cumsum(n)[:-1]])
    q50 = load(os.path.join(args.emb, "train-q"))
    q25 = (load(os.path.join(args.emb, "train-q25"))
           if any(v.startswith("h05q25") for v in args.variants) else None)
    lda = None
    for v in args.variants:
        t = time.time()
        rng = np.random.default_rng(args.seed)
        fit_v = None  # --fit-apart applies to plain and jG- variants
        if v.startswith("i05"):
            # Every other window stored (0.5 s hop); the missing ones are the normalised mean of
            # their two stored neighbours (the last repeats), scored as a 0.25 s index.
            keep = np.concatenate([np.arange(first[s], first[s] + n[s], 2)
                                   for s in range(len(ids))])
            n2 = (n + 1) // 2
            half = (ids, n2, np.concatenate([[0], np.cumsum(n2)[:-1]]))
            code = v.split("-", 1)[1]
            lists = []
            rec_half = reconstruct(x[keep], code, rng, lists_out=lists)
            rec = np.empty_like(x)
            for s_ in range(len(ids)):
                h = rec_half[half[2][s_]:half[2][s_] + n2[s_]]
                out = rec[first[s_]:first[s_] + n[s_]]
                out[0::2] = h
                nxt = np.concatenate([h[1:], h[-1:]])
                mid = h + nxt
                mid /= np.maximum(np.linalg.norm(mid, axis=1, keepdims=True), 1e-9)
                out[1::2] = mid[:n[s_] // 2]
            spec, size = parse_code(code), ""
            if spec:
                cond, flat = list_bits(lists[0], half[1], half[2])
                size = (f"code {spec['m'] * spec['bits']} bits + list {cond:.1f} ({flat:.1f}) "
                        "per 0.5 s | ")
            print(f"{v:16s} mse {float(((rec - x) ** 2).sum(1).mean()):.4f} | {size}"
                  + evaluate(rec, (ids, n, first), q50, truth, lengths, 2, 1)
                  + f" [{time.time() - t:.0f} s]", flush=True)
            continue
        if v.startswith("h05"):
            keep = np.concatenate([np.arange(first[s], first[s] + n[s], 2)
                                   for s in range(len(ids))])
            n2 = (n + 1) // 2
            cat, xv = (ids, n2, np.concatenate([[0], np.cumsum(n2)[:-1]])), x[keep]
            code = v.split("-", 1)[1]
            clips, step, parities = (q25, 1, 2) if v.startswith("h05q25") else (q50, 1, 1)
        elif v.startswith("lda"):
            k, code = v[3:].split("-", 1)
            if lda is None:
                lda = fit_lda(x_all, cat_all, q50, truth, rest)
            W = lda[:, :int(k)]
            cat, xv, step, parities = (ids, n, first), unit(x @ W), 2, 1
            clips = q50[:3] + (unit(q50[3] @ W),)
        else:
            cat, xv, code, clips, step, parities = (ids, n, first), x, v, q50, 2, 1
            fit_v = fit
        lists = []
        rec = reconstruct(xv, code, rng, lists_out=lists, songs=cat[1:], fit=fit_v)
        mse = float(((rec - xv) ** 2).sum(1).mean())
        spec = parse_code(code)
        size = ""
        if spec:
            cond, flat = list_bits(lists[0], cat[1], cat[2])
            size = (f"code {spec['m'] * spec['bits'] / spec['group']:g} bits + list {cond:.1f} "
                    f"({flat:.1f}) | ")
        print(f"{v:16s} mse {mse:.4f} | {size}"
              + evaluate(rec, cat, clips, truth, lengths, step, parities)
              + f" [{time.time() - t:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
