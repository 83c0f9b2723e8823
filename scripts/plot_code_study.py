#!/usr/bin/python3
"""Plots index size against hit rate for the codes of models/code_study.py.

    /usr/bin/python3 scripts/plot_code_study.py docs/img/code-study.tsv docs/img/code-study.png

The TSV holds one row per code (variant, bytes_per_window, hop_s, kb_per_min, mse, hit_2s,
hit_5s; '#' lines are comments), as docs/SCALE.md's table gives them.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        rows = list(csv.DictReader((line for line in f if not line.startswith("#")),
                                   delimiter="\t"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharex=True)
    for ax, col, title in ((axes[0], "hit_2s", "2 s clips"), (axes[1], "hit_5s", "5 s clips")):
        for r in rows:
            v = r["variant"]
            style = dict(marker="o" if r["hop_s"] == "0.25" else "s",
                         color="C1" if "opq" in v else "C0",
                         fillstyle="full" if v.startswith("n-") or "-n-" in v else "none")
            ax.plot(float(r["kb_per_min"]), float(r[col]), linestyle="", markersize=8, **style)
            if col == "hit_2s":  # labels on one panel: the 5 s points crowd together
                ax.annotate(v, (float(r["kb_per_min"]), float(r[col])), fontsize=7,
                            xytext=(4, 3), textcoords="offset points")
        ax.axvline(2.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(title)
        ax.set_xlabel("index KB per minute of audio (1-byte list id)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("hit at 1 % false positives (%)")
    fig.suptitle("Index codes: size against hit rate (train clips; blue PQ, orange OPQ, "
                 "filled: unit-length reconstructions, squares: 0.5 s index hop)", fontsize=9)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
