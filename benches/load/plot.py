#!/usr/bin/env python3
"""Draws p99 ack latency and peak server RSS against session count as an SVG.

usage: plot.py load.jsonl out.svg   (one auscult-load JSON object per line)
No dependencies beyond the standard library.
"""
import json
import sys

W, H, L, R, T, B = 720, 420, 70, 80, 40, 60


def scale(v, lo, hi, a, b):
    return a + (b - a) * ((v - lo) / (hi - lo) if hi > lo else 0.5)


def main(src, dst):
    rows = [json.loads(line) for line in open(src) if line.strip()]
    rows.sort(key=lambda r: r["sessions"])
    xs = [r["sessions"] for r in rows]
    p99 = [r["ack_latency_ms"]["p99"] or 0 for r in rows]
    rss = [(r.get("server_rss_bytes_max") or 0) / 2**20 for r in rows]
    xmax = max(xs + [1]) * 1.05
    lmax = max(p99 + [50]) * 1.15
    rmax = max(rss + [1]) * 1.15
    px = lambda v: scale(v, 0, xmax, L, W - R)
    pl = lambda v: scale(v, 0, lmax, H - B, T)
    pr = lambda v: scale(v, 0, rmax, H - B, T)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W/2}" y="22" text-anchor="middle" font-size="15">Auscult load test: 16 kHz sessions, 100 ms frames (loadtest engine)</text>',
           f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="#c0392b"/>',
           f'<line x1="{W-R}" y1="{T}" x2="{W-R}" y2="{H-B}" stroke="#2471a3"/>',
           f'<line x1="{L}" y1="{pl(50)}" x2="{W-R}" y2="{pl(50)}" stroke="#c0392b" stroke-dasharray="4 4"/>',
           f'<text x="{W-R-4}" y="{pl(50)-4}" text-anchor="end" fill="#c0392b">p99 target 50 ms</text>',
           f'<text x="{W/2}" y="{H-18}" text-anchor="middle">concurrent sessions</text>',
           f'<text x="18" y="{H/2}" transform="rotate(-90 18 {H/2})" text-anchor="middle" fill="#c0392b">p99 ack latency (ms)</text>',
           f'<text x="{W-20}" y="{H/2}" transform="rotate(90 {W-20} {H/2})" text-anchor="middle" fill="#2471a3">server RSS (MiB)</text>']
    for i in range(6):
        lv, rv = lmax * i / 5, rmax * i / 5
        out.append(f'<text x="{L-6}" y="{pl(lv)+4}" text-anchor="end" fill="#c0392b">{lv:.0f}</text>')
        out.append(f'<text x="{W-R+6}" y="{pr(rv)+4}" fill="#2471a3">{rv:.0f}</text>')
    for x in xs:
        out.append(f'<text x="{px(x)}" y="{H-B+16}" text-anchor="middle">{x}</text>')
    for ys, f, color in ((p99, pl, "#c0392b"), (rss, pr, "#2471a3")):
        pts = " ".join(f"{px(x):.1f},{f(y):.1f}" for x, y in zip(xs, ys))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        out += [f'<circle cx="{px(x):.1f}" cy="{f(y):.1f}" r="3.5" fill="{color}"/>' for x, y in zip(xs, ys)]
    out.append("</svg>")
    open(dst, "w").write("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
