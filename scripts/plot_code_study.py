#!/usr/bin/python3
"""Plots index size against hit rate for index codes: one panel per `hit_*` column.

    /usr/bin/python3 scripts/plot_code_study.py docs/img/code-study.tsv docs/img/code-study.png
    /usr/bin/python3 scripts/plot_code_study.py docs/img/codes-public.tsv docs/img/codes-public.png

The TSV holds one row per code (variant, bytes_per_window, hop_s, kb_per_min, then hit columns
such as hit_2s, hit_5s or hit_all; '#' lines are comments, the first of them the plot's title),
as docs/SCALE.md's tables give them. Blue: PQ, orange: with a rotation (OPQ); filled:
unit-length reconstructions; squares: a 0.5 s index hop; diamonds: codes over groups of
windows.
"""
import csv
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TITLES = {"hit_2s": "2 s clips", "hit_5s": "5 s clips", "hit_all": "all lengths"}


def style(r):
    v = r["variant"]
    grouped = "-g" in v and v.split("-g")[1][:1].isdigit()
    return dict(marker="D" if grouped else ("o" if r["hop_s"] == "0.25" else "s"),
                color="C1" if "opq" in v else "C0",
                fillstyle="full" if v.startswith("n-") or "-n-" in v or v.endswith("-unit")
                else "none")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        lines = f.read().splitlines()
    comments = [line.lstrip("# ") for line in lines if line.startswith("#")]
    rows = list(csv.DictReader((line for line in lines if not line.startswith("#")),
                               delimiter="\t"))
    columns = [c for c in rows[0] if c.startswith("hit_")]
    fig, axes = plt.subplots(1, len(columns), figsize=(5.5 * len(columns), 4.5), sharex=True,
                             squeeze=False)
    for i, (ax, col) in enumerate(zip(axes[0], columns)):
        for r in rows:
            ax.plot(float(r["kb_per_min"]), float(r[col]), linestyle="", markersize=8, **style(r))
            if i == 0:  # labels on one panel: the other panels' points crowd together
                ax.annotate(r["variant"], (float(r["kb_per_min"]), float(r[col])), fontsize=7,
                            xytext=(4, 3), textcoords="offset points")
        ax.axvline(2.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(TITLES.get(col, col))
        ax.set_xlabel("index KB per minute of audio")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("hit (%)")
    if comments:
        fig.suptitle(textwrap.fill(comments[0], 120), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
