#!/usr/bin/env python3
"""Generate N synthetic eval events as JSON Lines for benchmarks (fast: string templates).

8+ features, 4 metrics (a sampled judge score, a check on every request, a user signal, a
second judge score), 4 slice keys, model/prompt/index/judge versions that change over time.
Events are in time order over --days ending at --end (epoch seconds).

    python bench/gen_events.py --events 10000000 --out bench/out/events.jsonl
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import UTC, datetime

FEATURES = ["summarizer", "support", "search", "translate", "classify", "extract", "chat", "codegen"]
METRICS = [("helpfulness", "judge", True), ("schema_valid", "check", False), ("thumbs_down", "user", False),
           ("faithfulness", "judge", True)]
SLICES = {"persona": ["dev", "pm", "support", "exec"], "language": ["en", "de", "fr", "es", "ja", "pt"],
          "shape": ["qa", "summary", "chat"], "tier": ["free", "pro", "enterprise"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--days", type=float, default=60)
    ap.add_argument("--features", type=int, default=8)
    ap.add_argument("--end", type=int, default=1_795_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="-")
    a = ap.parse_args(argv)
    rnd = random.Random(a.seed)
    feats = (FEATURES * (a.features // len(FEATURES) + 1))[: a.features]
    feats = [f if i < len(FEATURES) else f"{f}{i}" for i, f in enumerate(feats)]
    start = a.end - int(a.days * 86400)
    step = (a.end - start) / a.events
    out = sys.stdout if a.out == "-" else open(a.out, "w", encoding="utf-8")  # noqa: SIM115
    keys = list(SLICES)
    slice_jsons = []
    for _ in range(200):
        sl = {k: rnd.choice(v) for k, v in SLICES.items()}
        slice_jsons.append("{" + ",".join(f'"{k}":"{sl[k]}"' for k in keys) + "}")
    iso_cache: dict[int, str] = {}
    write = out.write
    buf = []
    for i in range(a.events):
        ts = int(start + i * step)
        minute = ts - ts % 60
        iso = iso_cache.get(minute)
        if iso is None:
            iso = datetime.fromtimestamp(minute, tz=UTC).strftime("%Y-%m-%dT%H:%M:")
            if len(iso_cache) > 1000:
                iso_cache.clear()
            iso_cache[minute] = iso
        f = feats[i % len(feats)]
        metric, source, judged = METRICS[(i // len(feats)) % len(METRICS)]
        value = rnd.choice("12345" if judged else "0111111111" if metric == "schema_valid" else "0000000001")
        era = (ts - start) * 3 // (a.end - start)
        extra = f',"sample_rate":0.1,"judge_id":"judge-v{1 + era // 2}"' if judged else ""
        buf.append(
            f'{{"id":"ev-{i}","ts":"{iso}{ts % 60:02d}Z","feature":"{f}","metric":"{metric}","value":{value},'
            f'"source":"{source}","request_id":"r{i // 4}","slice":{slice_jsons[rnd.randrange(200)]},'
            f'"model_id":"vendor/model-{era}","prompt_version":"p{era}","index_version":"idx-{era}"{extra}}}\n')
        if len(buf) >= 10000:
            write("".join(buf))
            buf.clear()
    write("".join(buf))
    if out is not sys.stdout:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
