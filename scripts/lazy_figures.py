#!/usr/bin/python3
"""What `earshot query --lazy` read and answered, per query length: a table for docs/SCALE.md.

    /usr/bin/python3 scripts/lazy_figures.py QUERY_SET/truth.tsv results.jsonl [more.jsonl ...]

Per results file and length (for a listen set, `earshot query --live --lazy` on make-queries'
listen-* and nomusic clips: per kind of listen, in the index, not in it, no music, with the
median number of looks): in-catalogue clips whose song is named first (top-1, as
../shared/eval/score counts it), out-of-catalogue clips given a song, and the median and
90th percentile of the bytes and requests each clip read (a cold cache per clip, or what a
warm one still lacked with `query --lazy --lazy-warm`). Prints figures, asserts nothing.
"""
import csv
import json
import statistics
import sys


def percentile(values, q):
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    with open(argv[1], newline='') as f:
        truth = {row['query']: row for row in csv.DictReader(f, delimiter='\t')}
    print('| results | length | top-1 | false positives | KB read: median; p90 | requests: median '
          '| looks: median |')
    print('|---|---:|---:|---:|---|---:|---:|')
    for path in argv[2:]:
        rows = {}
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                t = truth.get(r['query'])
                if t is None:
                    continue
                # Rows in order: clip lengths, shortest first, then kinds of listen.
                if t['condition'].startswith('listen') or t['condition'] == 'nomusic':
                    key = (1, 0.0, 'no music' if t['condition'] == 'nomusic' else
                           'listens not in the index' if t['song'] == '-' else
                           'listens in the index')
                else:
                    key = (0, float(t['length_s']), f"{float(t['length_s']):g} s")
                cell = rows.setdefault(key, {'in': 0, 'hit': 0, 'out': 0, 'fp': 0, 'kb': [],
                                             'req': [], 'looks': []})
                lazy = r.get('lazy', {'bytes': 0, 'requests': 0})
                cell['kb'].append(lazy['bytes'] / 1024)
                cell['req'].append(lazy['requests'])
                cell['looks'].append(lazy.get('looks', 1))
                if t['song'] == '-':
                    cell['out'] += 1
                    cell['fp'] += r.get('song') is not None
                else:
                    cell['in'] += 1
                    cell['hit'] += r.get('song') == t['song']
        for key in sorted(rows):
            c = rows[key]
            top1 = f"{100 * c['hit'] / c['in']:.1f} %" if c['in'] else '—'
            fp = f"{100 * c['fp'] / c['out']:.1f} %" if c['out'] else '—'
            print(f"| {path} | {key[2]} | {top1} | {fp} | {statistics.median(c['kb']):.1f}; "
                  f"{percentile(c['kb'], 0.9):.1f} | {statistics.median(c['req']):.0f} | "
                  f"{statistics.median(c['looks']):.0f} |")


if __name__ == '__main__':
    main(sys.argv)
