"""Load test of `rewardkit serve` on loopback: throughput and latency with dynamic batching on and off.

    python bench/serve_load.py                      # tiny random Llama built in-process
    python bench/serve_load.py --model fake --clients 8 --seconds 5
    python bench/serve_load.py --model path/to/rm --clients 32 --seconds 60

The server runs in this process (uvicorn in a thread on 127.0.0.1, a free port picked by the OS);
N async clients POST /score for T seconds, once with batching on and once off. Results go to
bench/results/serve_load_<model>.{json,md}. `--model fake` is a stand-in with a simulated forward cost
(a fixed cost per call plus a cost per token, like an accelerator), no torch needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

from common import tiny_llama_config

from rewardkit.scorers.base import Score
from rewardkit.serve.app import create_app

HOST = "127.0.0.1"  # loopback only
RESULTS = Path(__file__).resolve().parent / "results"


class FakeRM:
    """Score = length of the last answer; each call sleeps `call_ms` + `token_us` per token."""

    kind, name, max_length = "fake", "fake-rm", 4096

    def __init__(self, call_ms: float = 20.0, token_us: float = 10.0):
        self.call_s, self.token_s = call_ms / 1000, token_us / 1e6

    def count_tokens(self, convs):
        return [sum(len(m["content"]) // 4 + 4 for m in c) for c in convs]

    def score_detailed(self, convs):
        tokens = self.count_tokens(convs)
        time.sleep(self.call_s + self.token_s * sum(tokens))
        return [Score(float(len(c[-1]["content"])), num_tokens=n) for c, n in zip(convs, tokens)]

    def score_texts(self, texts):
        return self.score_detailed([[{"role": "assistant", "content": t}] for t in texts])


class TinyLlamaRM:
    """A tiny random Llama classifier with a byte-level chat format; batched, right-padded forward."""

    kind, name, max_length = "seq_classifier", "tiny-llama", 1024
    PAD, BOS, EOS, ROLES = 0, 1, 2, {"system": 3, "user": 4, "assistant": 5}

    def __init__(self):
        import torch
        from transformers import LlamaForSequenceClassification

        # One intra-op thread: the HTTP server and the clients need the other cores; with several,
        # a tiny model on a busy CPU spends its time waiting for its own threads.
        torch.set_num_threads(1)
        torch.manual_seed(0)
        cfg = tiny_llama_config(264, 1, self.PAD)
        self.torch, self.model = torch, LlamaForSequenceClassification(cfg).eval()

    def _ids(self, conv) -> list[int]:
        ids = [self.BOS]
        for m in conv:
            ids += [self.ROLES[m["role"]], *(b + 8 for b in m["content"].encode()), self.EOS]
        return ids[-self.max_length :]

    def count_tokens(self, convs):
        return [len(self._ids(c)) for c in convs]

    def score_detailed(self, convs):
        return self._forward([self._ids(c) for c in convs])

    def score_texts(self, texts):
        return self._forward([[b + 8 for b in t.encode()][-self.max_length :] or [self.BOS] for t in texts])

    def _forward(self, seqs: list[list[int]]) -> list[Score]:
        width = max(map(len, seqs))
        ids = self.torch.tensor([s + [self.PAD] * (width - len(s)) for s in seqs])
        with self.torch.no_grad():
            logits = self.model(input_ids=ids, attention_mask=(ids != self.PAD).long()).logits[:, 0]
        return [Score(float(x), num_tokens=len(s)) for x, s in zip(logits, seqs)]


def load_model(spec: str, fake_call_ms: float = 20.0, fake_token_us: float = 10.0):
    if spec == "fake":
        return FakeRM(fake_call_ms, fake_token_us)
    if spec == "tiny":
        return TinyLlamaRM()
    from rewardkit import load_reward_model

    return load_reward_model(spec)


class Server:
    """uvicorn in a background thread on a socket bound to loopback port 0 (the OS picks a free one)."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.url = f"http://{HOST}:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("serve_load: the server did not start within 30 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def make_request(rng: random.Random, items: int) -> dict:
    convs = []
    for _ in range(items):
        prompt = "question " + "x" * rng.randint(10, 120)
        answer = "answer " + "y" * rng.randint(10, 400)
        convs.append([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}])
    return {"conversations": convs}


async def run_clients(url: str, clients: int, seconds: float, items: int) -> dict:
    """`clients` concurrent loops POSTing /score until `seconds` pass; latencies and errors."""
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop_at = time.monotonic() + seconds

    async def client(i: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(i)
        while time.monotonic() < stop_at:
            body = make_request(rng, items)
            start = time.perf_counter()
            try:
                r = await http.post("/score", json=body)
                ok = r.status_code == 200
                key = None if ok else f"HTTP {r.status_code}"
            except httpx.HTTPError as err:
                key = type(err).__name__
            if key is None:
                latencies.append(time.perf_counter() - start)
            else:
                errors[key] = errors.get(key, 0) + 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    # trust_env=False: loopback traffic must not go through an HTTP(S)_PROXY from the environment.
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60, trust_env=False) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        elapsed = time.perf_counter() - start
        batch = _batch_stats((await http.get("/metrics")).text)
    ok = len(latencies)
    qs = statistics.quantiles(latencies, n=100, method="inclusive") if ok >= 2 else [float("nan")] * 99
    return {
        "requests_ok": ok,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(ok / elapsed, 1),
        "items_per_s": round(ok * items / elapsed, 1),
        "p50_ms": round(qs[49] * 1000, 1),
        "p99_ms": round(qs[98] * 1000, 1),
        "mean_batch_items": batch,
    }


def _batch_stats(metrics_text: str) -> float | None:
    values = {}
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("rewardkit_batch_size_sum", "rewardkit_batch_size_count"):
            values[name] = float(value)
    count = values.get("rewardkit_batch_size_count", 0)
    return round(values["rewardkit_batch_size_sum"] / count, 2) if count else None


def result_name(model: str) -> str:
    """serve_load_fake, serve_load_tiny, or serve_load_<folder name> for a real model."""
    return f"serve_load_{Path(model).name if model not in ('fake', 'tiny') else model}"


def write_results(config: dict, results: list[dict], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    name = result_name(config["model"])
    (out / f"{name}.json").write_text(json.dumps({"config": config, "results": results}, indent=2) + "\n")
    lines = [
        f"# serve load: {config['model']}, {config['clients']} clients x {config['seconds']} s, "
        f"{config['items']} conversations per request",
        "",
        "| batching | requests/s | items/s | p50 ms | p99 ms | mean batch | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        keys = ["requests_per_s", "items_per_s", "p50_ms", "p99_ms", "mean_batch_items", "errors"]
        cells = [r[k] for k in keys]
        lines.append(f"| {'on' if r['batching'] else 'off'} | " + " | ".join(map(str, cells)) + " |")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    return out / name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", help="a model folder, or 'tiny' (default) / 'fake' built-ins")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--items", type=int, default=2, help="conversations per request")
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--fake-call-ms", type=float, default=20.0, help="fake model: simulated cost of one call")
    p.add_argument("--fake-token-us", type=float, default=10.0, help="fake model: simulated cost per token")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if not (1 <= args.clients <= 1024 and 0 < args.seconds <= 3600 and 1 <= args.items <= 256):
        p.error("--clients must be 1..1024, --seconds 0..3600 and --items 1..256")

    model = load_model(args.model, args.fake_call_ms, args.fake_token_us)
    config = {
        "model": args.model,
        "clients": args.clients,
        "seconds": args.seconds,
        "items": args.items,
        "max_wait_ms": args.max_wait_ms,
        "kind": getattr(model, "kind", None),
    }
    if args.model == "fake":
        config.update(fake_call_ms=args.fake_call_ms, fake_token_us=args.fake_token_us)
    results = []
    for batching in (True, False):
        app = create_app(model, batching=batching, max_wait_ms=args.max_wait_ms)
        with Server(app) as server:
            stats = asyncio.run(run_clients(server.url, args.clients, args.seconds, args.items))
        results.append({"batching": batching, **stats})
        print(f"batching={'on' if batching else 'off'}: {json.dumps(stats)}")
    stem = write_results(config, results, args.out)
    print(f"wrote {stem}.json and {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
