"""Batch throughput: serial vs Ray (1 and 2 worker processes) on this machine, Ray's overhead, a 5,000-filing projection.

1. The same batch (small shared 10-Ks x 4 categories, prompt v2, the scripted
   fake model, so model time is ~0 and ingest dominates) run from a fresh data
   home each time: ``--executor local`` (2 threads, then 1 thread), Ray with 1
   and with 2 worker processes (local runtime, one CPU per filing, scratch
   index).  Filings per hour, seconds per filing.
2. Ray's overhead: starting the local runtime; one task round trip carrying a
   real filing's result; and per filing in the batch (Ray, 1 worker, minus
   serial with 1 thread: worker start, imports, embedder load, scratch index).
3. ``python -m llama_cpp.server`` serving the embedded model (Qwen2.5-1.5B
   Q4_K_M, 2 threads): prompt (prefill) and generation tokens per second on a
   rating-sized prompt, and one real v2 rating through it (``openai:`` model).
4. A projection for 5,000 filings x 4 categories from per-filing costs.

    .venv/bin/python bench/batch_throughput.py [--filings 3] [--skip-server]

Results: ``bench/results/batch_throughput.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILINGS = ("medicis-10-k-fy1999-0000950153-99-001234.html",
           "commonwealth-fund-v-10-k-fy2015-0001376474-16-000635.html",
           "gainsco-10-k-fy2009-0001193125-10-073212.html",
           "ibm-10-k-2025-02-25.html")
OUT = Path(__file__).parent / "results" / "batch_throughput.json"

# Per-filing costs on this 2-core machine with the embedded model (README, bench/README): a large 10-K takes
# about 30 s to index and about 25 s per category rating (v2, Qwen 1.5B); v2 sends ~3,670 prompt tokens per
# category over 3 calls (bench/rating_tokens.py).
INDEX_S = 30.0
RATE_S = 25.0
TOKENS_PER_CATEGORY = 3670
CATEGORIES = 4
N_FILINGS = 5000
# Published, not measured here: vLLM serving Qwen3.5-9B on one H100 80GB, "Throughput Profile", baseline
# (no tuning): 29,822 total tokens/s -- GPUStack performance lab,
# https://docs.gpustack.ai/latest/performance-lab/qwen3.5-9b/h100/ . A 9B model; our 1.5B one is lighter.
GPU_TOKENS_PER_S = 29822.0


def scripted_setup():
    """A worker_setup registering ``fake:rater`` (deterministic yes/no from a hash of the prompt)."""

    def setup():
        import hashlib

        from filinglens.agents.providers.fake import register_script

        def reply(messages):
            text = "\n".join(str(m.content) for m in messages)
            return "yes" if int(hashlib.sha256(text.encode()).hexdigest(), 16) % 3 else "no"

        register_script("rater", func=reply)

    return setup


def run_config(name: str, paths: list[Path], executor: str, workers: int, threads: int | None) -> dict:
    """One batch from a fresh data home, in a child process (fresh imports, fresh caches)."""
    home = tempfile.mkdtemp(prefix=f"fl-bench-{name}-")
    env = dict(os.environ, FILINGLENS_HOME=home, RAY_USAGE_STATS_ENABLED="0")
    env.pop("FILINGLENS_CHROMA_URL", None)
    env.pop("RAY_ADDRESS", None)
    for var in ("FILINGLENS_THREADS", "FILINGLENS_EMBED_THREADS"):
        env.pop(var, None)
        if threads:
            env[var] = str(threads)
    code = f"""
import json, sys, time
sys.path.insert(0, {str(Path(__file__).parent)!r})
from batch_throughput import scripted_setup
from filinglens.batch import BatchSpec, file_units, run_batch
from filinglens.store import Store
t0 = time.perf_counter()
report = run_batch(file_units({[str(p) for p in paths]!r}), BatchSpec(models=["fake:rater"]), executor={executor!r},
                   workers={workers}, worker_setup=scripted_setup(), store=Store())
wall = time.perf_counter() - t0
print(json.dumps({{"wall_s": wall, "report": report.to_dict()}}))
"""
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed: {proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    report = data["report"]
    assert report["stats"]["done"] == len(paths), report
    n = len(paths)
    per_filing = [f["seconds"] for f in report["filings"]]
    return {
        "name": name, "executor": executor, "workers": workers,
        "threads_per_filing": 1 if executor == "ray" else (threads or os.cpu_count()),
        "load_avg_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "filings": n, "wall_s": round(data["wall_s"], 1), "process_s": round(time.perf_counter() - t0, 1),
        "per_hour": round(n / data["wall_s"] * 3600, 1), "s_per_filing_wall": round(data["wall_s"] / n, 1),
        "s_per_filing_in_worker": round(statistics.mean(per_filing), 1),
        "ratings": report["stats"]["ratings"],
    }


def ray_overheads(result_bytes: int) -> dict:
    """Local runtime start, and the round trip of a task that returns ``result_bytes`` (a filing's records)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from filinglens.batch import start_ray

    t0 = time.perf_counter()
    start_ray(2)
    start_s = time.perf_counter() - t0
    import ray

    @ray.remote(num_cpus=1)
    def echo(payload: bytes) -> bytes:
        return payload

    @ray.remote(num_cpus=1)
    def cold_start() -> float:
        t0 = time.perf_counter()
        from filinglens.batch import rate_unit  # noqa: F401  (what a new worker process imports)
        from filinglens.retrieval.embeddings import get_embedder

        get_embedder().embed_query("warm up")
        return time.perf_counter() - t0

    worker_start_s = ray.get(cold_start.remote())
    payload = os.urandom(result_bytes)
    ray.get([echo.remote(payload) for _ in range(4)])  # warm the worker processes
    n = 50
    t0 = time.perf_counter()
    for _ in range(n):
        ray.get(echo.remote(payload))
    round_trip_ms = (time.perf_counter() - t0) / n * 1000
    ray.shutdown()
    return {"runtime_start_s": round(start_s, 2), "task_round_trip_ms": round(round_trip_ms, 2),
            "result_bytes": result_bytes, "worker_process_start_s": round(worker_start_s, 2)}


def result_size(path: Path) -> int:
    """Bytes of one real filing's result (ratings + model calls) as Ray ships it."""
    home = tempfile.mkdtemp(prefix="fl-bench-size-")
    os.environ["FILINGLENS_HOME"] = home
    from filinglens.batch import BatchSpec, file_units, rate_unit
    from dataclasses import asdict

    scripted_setup()()
    [unit] = file_units([path])
    cells = [asdict(c) for c in BatchSpec(models=["fake:rater"]).cells()]
    out = rate_unit(unit.to_dict(), cells, {"index": "default"})
    assert out["status"] == "done", out["error"]
    return len(pickle.dumps(out))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def llama_server(path: Path) -> dict:
    """Token throughput of ``llama_cpp.server`` with the embedded model, and one v2 rating through it."""
    import httpx

    from filinglens.agents.providers.local import model_path

    port = free_port()
    log = open(tempfile.mktemp(suffix=".log"), "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path("local")), "--model_alias", "qwen",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2",
         "--n_threads_batch", "2"],  # its default uses half the CPUs for the prompt
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, "llama_cpp.server exited"
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "llama_cpp.server did not start"
            time.sleep(0.5)
        prefill, decode = [], []
        for body in _bodies(path):  # distinct prompts: no prefix reuse between them
            body["messages"][-1]["content"] += " Then explain your answer in a paragraph."
            t0 = time.perf_counter()
            r = httpx.post(f"{url}/chat/completions", json=dict(body, max_tokens=1), timeout=900).json()
            prefill.append((r["usage"]["prompt_tokens"], time.perf_counter() - t0))
            # the same prompt again: llama.cpp reuses the evaluated prompt, so this is generation
            t0 = time.perf_counter()
            r = httpx.post(f"{url}/chat/completions", json=dict(body, max_tokens=64), timeout=900).json()
            decode.append((r["usage"]["completion_tokens"], time.perf_counter() - t0))
        prompt_tps = sum(t for t, _ in prefill) / sum(s for _, s in prefill)
        gen_tps = sum(t for t, _ in decode) / sum(s for _, s in decode)

        # one real v2 rating through the endpoint (the rating chain, hosted yes/no path)
        os.environ["FILINGLENS_HOME"] = tempfile.mkdtemp(prefix="fl-bench-endpoint-")
        from filinglens.batch import BatchSpec, file_units, run_batch
        from filinglens.store import Store

        t0 = time.perf_counter()
        report = run_batch(file_units([path]), BatchSpec(categories=["environment"], models=["openai:qwen"]),
                           endpoints=[url], store=Store())
        wall = time.perf_counter() - t0
        [filing] = report.outcomes
        rows = Store().ratings(report.run_id)
        server.terminate()
        server.wait(timeout=20)
        # the same prompts in this process (the embedded model's settings), for the ratio
        from filinglens.agents.providers.local import load_llama

        llama = load_llama("local", 4096)
        inproc = []
        for body in _bodies(path):
            t0 = time.perf_counter()
            r = llama.create_chat_completion(messages=body["messages"], max_tokens=1, temperature=0)
            inproc.append((r["usage"]["prompt_tokens"], time.perf_counter() - t0))
        inproc_tps = sum(t for t, _ in inproc) / sum(s for _, s in inproc)
        return {
            "prompt_tokens_per_s": round(prompt_tps, 1), "generation_tokens_per_s": round(gen_tps, 1),
            "in_process_prompt_tokens_per_s": round(inproc_tps, 1),
            "server_vs_in_process": round(prompt_tps / inproc_tps, 2), "load_avg_1min": round(os.getloadavg()[0], 1),
            "prefill_samples": prefill, "decode_samples": decode,
            "v2_rating_via_endpoint": {"status": filing["status"], "error": filing["error"],
                                       "filing_s": filing["seconds"], "wall_s": round(wall, 1),
                                       "rating_latency_s": round(rows[0]["latency_ms"] / 1000, 1) if rows else None,
                                       "calls": rows[0]["model_calls"] if rows else None,
                                       "tokens_in": rows[0]["tokens_in"] if rows else None,
                                       "tokens_out": rows[0]["tokens_out"] if rows else None},
        }
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        log.close()


def _bodies(path: Path) -> list[dict]:
    """Three rating-sized chat requests (~1,100 prompt tokens of a real filing each, a yes/no question)."""
    import re

    words = re.sub(r"<[^>]+>|&[a-z#0-9]+;", " ", path.read_text(errors="replace")).split()
    out = []
    for i in range(3):
        chunk = " ".join(words[5000 + i * 900: 5000 + (i + 1) * 900])
        out.append({"model": "qwen", "temperature": 0, "messages": [
            {"role": "system", "content": "You rate 10-K filings from the evidence given."},
            {"role": "user", "content": f"<evidence>{chunk}</evidence>\nDoes the company disclose "
                                        "environmental targets? Answer yes or no."}]})
    return out


def projection(overhead_s: float, server: dict | None) -> list[dict]:
    """5,000 filings x 4 categories: wall time for a number of 2-core workers, by where the model runs."""
    rows = []
    per_filing_embedded = INDEX_S + CATEGORIES * RATE_S + overhead_s
    for workers in (1, 4, 16, 64):
        rows.append({"setup": "embedded model in each worker (2 cores)", "workers": workers,
                     "per_filing": f"{per_filing_embedded:.0f} s in a worker", "bottleneck": "workers",
                     "hours": round(N_FILINGS * per_filing_embedded / workers / 3600, 1)})
    tokens = CATEGORIES * TOKENS_PER_CATEGORY
    if server:
        # the same engine on the same cores: per category the embedded model's time over the measured
        # server/in-process prompt-speed ratio (prefill dominates: one output token per yes/no call)
        cpu_endpoint_s = CATEGORIES * RATE_S / server["server_vs_in_process"]
        for workers, endpoints in ((4, 12), (16, 48)):
            index_h = N_FILINGS * (INDEX_S + overhead_s) / workers / 3600
            model_h = N_FILINGS * cpu_endpoint_s / endpoints / 3600
            rows.append({"setup": f"{endpoints} llama_cpp.server endpoints, 2 cores each "
                                  f"(x{server['server_vs_in_process']:.2f} the embedded model's speed)",
                         "workers": workers,
                         "per_filing": f"{INDEX_S + overhead_s:.0f} s in a worker + {cpu_endpoint_s:.0f} s on an endpoint",
                         "bottleneck": "endpoints" if model_h > index_h else "indexing",
                         "hours": round(max(index_h, model_h), 1)})
    gpu_s = tokens / GPU_TOKENS_PER_S
    for workers in (16, 64, 256):
        index_h = N_FILINGS * (INDEX_S + overhead_s) / workers / 3600
        model_h = N_FILINGS * gpu_s / 3600
        rows.append({"setup": f"one GPU endpoint (vLLM, published {GPU_TOKENS_PER_S:,.0f} tok/s)", "workers": workers,
                     "per_filing": f"{INDEX_S + overhead_s:.0f} s in a worker + {gpu_s:.2f} s on the GPU",
                     "bottleneck": "endpoint" if model_h > index_h else "indexing",
                     "hours": round(max(index_h, model_h), 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--filings", type=int, default=3)
    parser.add_argument("--skip-server", action="store_true", help="Do not measure llama_cpp.server.")
    parser.add_argument("--server-only", action="store_true",
                        help="Measure llama_cpp.server again and update the projection of the last results.")
    args = parser.parse_args()
    # the assembled model weights are kept between runs (the data homes here are temporary)
    os.environ.setdefault("FILINGLENS_MODELS", str(Path.home() / ".filinglens" / "models"))
    from filinglens.settings import shared_dir

    paths = [shared_dir() / "data" / "filings" / "html" / name for name in FILINGS[: args.filings]]
    if args.server_only:
        results = json.loads(OUT.read_text())
        results["llama_cpp_server"] = server = llama_server(paths[0])
        print(json.dumps({k: v for k, v in server.items() if "samples" not in k}), flush=True)
        results["projection"] = projection(results["ray_overhead"]["task_round_trip_ms"] / 1000, server)
        OUT.write_text(json.dumps(results, indent=2))
        _tables(results)
        return
    results: dict = {"machine": {"cpus": os.cpu_count()}, "filings": [p.name for p in paths]}

    configs = [("serial, 2 threads", "local", 1, None), ("serial, 1 thread", "local", 1, 1),
               ("ray, 1 worker", "ray", 1, None), ("ray, 2 workers", "ray", 2, None)]
    runs = []
    for name, executor, workers, threads in configs:
        run = run_config(name, paths, executor, workers, threads)
        print(json.dumps(run), flush=True)
        runs.append(run)
    results["runs"] = runs
    by = {r["name"]: r for r in runs}
    size = result_size(paths[0])
    results["ray_overhead"] = ray_overheads(size)
    results["ray_overhead"]["per_filing_vs_serial_1_thread_s"] = round(
        by["ray, 1 worker"]["s_per_filing_wall"] - by["serial, 1 thread"]["s_per_filing_wall"], 1)
    print(json.dumps(results["ray_overhead"]), flush=True)
    server = None if args.skip_server else llama_server(paths[0])
    results["llama_cpp_server"] = server
    if server:
        print(json.dumps({k: v for k, v in server.items() if "samples" not in k}), flush=True)
    # Ray's cost per filing in the projection: one task round trip with a filing's records (the runtime and
    # each worker process start once per batch: seconds, not hours)
    overhead = results["ray_overhead"]["task_round_trip_ms"] / 1000
    results["projection"] = projection(overhead, server)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    _tables(results)


def _tables(results: dict) -> None:
    runs = results["runs"]
    print("\n| run | filings/h | s per filing (wall) | s per filing (in worker) | load avg |\n|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['name']} | {r['per_hour']:.0f} | {r['s_per_filing_wall']:.1f} | {r['s_per_filing_in_worker']:.1f} "
              f"| {r['load_avg_1min'][0]}–{r['load_avg_1min'][1]} |")
    print("\n| setup | workers | per filing | bottleneck | 5,000 filings |\n|---|---|---|---|---|")
    for p in results["projection"]:
        print(f"| {p['setup']} | {p['workers']} | {p['per_filing']} | {p['bottleneck']} | {p['hours']} h |")


if __name__ == "__main__":
    main()
