"""Item text embedding throughput: all-MiniLM-L6-v2 on this CPU, over a real catalog.

The catalog is MovieLens latest-small's movies.csv with the tags of tags.csv (9,742 items),
read by the `movielens` import preset, so the text of each item is what Penchant itself
embeds (`penchant.models.text.item_text`: title, categories, tags). For each batch size it
reports items per second of `MiniLMEncoder.encode` (the model loaded beforehand, one warm-up
batch first) and, side by side, of sentence-transformers' own `encode` over the same texts
(batch 64, one call); then a cached run through `EmbeddingCache` (nothing to encode) and one with 1%
of the texts changed. Peak RSS is the process's maximum resident set.

    .venv/bin/python bench/embed_bench.py [--batch-sizes 16,64,256] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from penchant.ingest.formats import get_preset
from penchant.ingest.rejects import Rejects
from penchant.models.text import EmbeddingCache, MiniLMEncoder, item_text
from penchant.schema import Item

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
MOVIES = ROOT.parent / "shared" / "datasets" / "movielens-latest-small" / "movies.csv"


def catalog_texts(limit: int | None) -> dict[str, str]:
    """Item id -> text, as an import with `--format movielens` would store the items."""
    with tempfile.TemporaryDirectory() as tmp:
        rejects = Rejects(Path(tmp) / "rejects.jsonl")
        items = get_preset("movielens").items
        assert items is not None
        texts = {}
        for _, row in items(MOVIES, rejects):
            item = Item.model_validate(row)
            texts[item.id] = item_text(item)
            if limit is not None and len(texts) >= limit:
                break
        rejects.close()
    return texts


def timed_encode(encoder: MiniLMEncoder, texts: list[str], label: str) -> float:
    """Seconds to encode the texts, with a progress bar."""
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(label, total=len(texts))
        began = time.perf_counter()
        encoder.encode(texts, progress=lambda n: bar.advance(task, n))
        return time.perf_counter() - began


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="16,64,256")
    parser.add_argument("--limit", type=int, default=None, help="embed only this many items")
    args = parser.parse_args(argv)
    if not MOVIES.is_file():
        print(f"skipping: {MOVIES.name} not found under ../shared/datasets", file=sys.stderr)
        return {}
    import torch

    texts = catalog_texts(args.limit)
    values = list(texts.values())
    words = sum(len(t.split()) for t in values) / len(values)
    result: dict[str, Any] = {
        "items": len(values),
        "mean_words_per_text": round(words, 1),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": [],
    }
    load_began = time.perf_counter()
    encoder = MiniLMEncoder()
    encoder.encode(["warm-up"])
    result["model_load_s"] = round(time.perf_counter() - load_began, 2)
    for size in [int(s) for s in args.batch_sizes.split(",")]:
        encoder.batch_size = size
        encoder.encode(values[:size])  # warm-up at this batch size
        seconds = timed_encode(encoder, values, f"batch {size}")
        run = {"batch_size": size, "seconds": round(seconds, 2)}
        run["items_per_s"] = round(len(values) / seconds, 1)
        result["runs"].append(run)
        print(json.dumps(run), flush=True)
    # The peer: sentence-transformers' own encode over the whole list in one call (it sorts
    # by length itself), batch 64, with its own progress bar; the same model object.
    model = encoder._loaded()
    began = time.perf_counter()
    model.encode(values, batch_size=64, normalize_embeddings=True, show_progress_bar=True)
    peer = time.perf_counter() - began
    result["peer_sentence_transformers_64"] = {
        "seconds": round(peer, 2),
        "items_per_s": round(len(values) / peer, 1),
    }
    ours = next((r for r in result["runs"] if r["batch_size"] == 64), None)
    if ours is not None:
        result["ours_64_over_peer_seconds"] = round(ours["seconds"] / peer, 3)
    encoder.batch_size = 64
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "embeddings.npz"
        cache = EmbeddingCache(path, encoder)
        cache.embed(texts)
        cache.save()
        began = time.perf_counter()
        cached = EmbeddingCache(path, encoder)
        cached.embed(texts)
        result["cached_s"] = round(time.perf_counter() - began, 3)
        changed = dict(texts)
        for item in list(changed)[::100]:
            changed[item] += " (restored)"
        began = time.perf_counter()
        cached.embed(changed)
        result["one_percent_changed_s"] = round(time.perf_counter() - began, 3)
        result["one_percent_changed_encoded"] = cached.encoded
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    OUT.mkdir(exist_ok=True)
    (OUT / "embed.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
