#!/usr/bin/python3
"""What `earshot query --lazy` read and answered, per query length: a table for docs/SCALE.md.

    /usr/bin/python3 scripts/lazy_figures.py QUERY_SET/truth.tsv results.jsonl [more.jsonl ...]

Per results file and length: in-catalogue clips whose song is named first (top-1, as
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
    print('| results | length | top-1 | false positives | KB read: median; p90 | requests: median |')
    print('|---|---:|---:|---:|---|---:|')
    for path in argv[2:]:
        rows = {}
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                t = truth.get(r['query'])
                if t is None:
                    continue
                cell = rows.setdefault(float(t['length_s']), {'in': 0, 'hit': 0, 'out': 0,
                                                              'fp': 0, 'kb': [], 'req': []})
                lazy = r.get('lazy', {'bytes': 0, 'requests': 0})
                cell['kb'].append(lazy['bytes'] / 1024)
                cell['req'].append(lazy['requests'])
                if t['song'] == '-':
                    cell['out'] += 1
                    cell['fp'] += r.get('song') is not None
                else:
                    cell['in'] += 1
                    cell['hit'] += r.get('song') == t['song']
        for length in sorted(rows):
            c = rows[length]
            print(f"| {path} | {length:g} s | {100 * c['hit'] / max(c['in'], 1):.1f} % | "
                  f"{100 * c['fp'] / max(c['out'], 1):.1f} % | {statistics.median(c['kb']):.1f}; "
                  f"{percentile(c['kb'], 0.9):.1f} | {statistics.median(c['req']):.0f} |")


if __name__ == '__main__':
    main(sys.argv)
