"""A published SAE by name against the same SAE as a local folder: `saescope index` to a dashboard.

The SAE is a synthetic 16,384-latent TopK SAE (k 32) on the demo model's shape (SmolLM2-135M,
`resid_post:15`, d_in 576): random unit decoder rows, the encoder their transpose scaled, so
latents fire. It is written twice: as a native folder, and in SAELens's layout into a Hugging Face
cache built in a temporary folder (the layout `snapshot_download` reads), used with
`HF_HUB_OFFLINE=1`, so the name is cached and nothing is downloaded.

Measured in the same run, on the same machine:

- name resolution alone (`resolve_name`: the registry-free `hf:` name → its cached folder and
  commit), first call in a fresh process (after saescope's own imports, which a folder needs too)
  and again;
- loading the SAE: `open_sae(name)` (resolution, SAELens files read and converted, the run
  folder's config written or checked) against the same SAELens files given as a local folder
  (`open_sae(folder)`: the cost of the name alone) and the native folder (`load_sae`);
- end to end, each as its own `saescope` process: `saescope index NAME` then `saescope dashboard
  NAME` (its run's index), against `saescope index FOLDER` and `saescope dashboard` of its index.

Target (issue 20): the name costs less than 1 s over the folder.

    python benchmarks/pretrained.py [--tokens 2048]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

D_IN, D_SAE, K = 576, 16_384, 32
MODEL, HOOK, REPO = "smollm2-135m", "resid_post:15", "bench/smollm2-135m-16k"
FOLDER = "blocks.15.hook_resid_post"


def write_saes(root: Path, cache: Path) -> tuple[Path, str]:
    """The native folder and the published name of the same synthetic SAE."""
    import torch
    from tests.local_hub import LocalHub, folder_files

    from saescope.sae import SAEConfig, get_architecture
    from saescope.sae.formats import save_sae, save_saelens

    cfg = SAEConfig(
        architecture="topk", d_in=D_IN, d_sae=D_SAE, k=K, model=MODEL, hookpoint=HOOK, hookpoint_alias=HOOK
    )
    sae = get_architecture("topk")(cfg)
    gen = torch.Generator().manual_seed(0)
    rows = torch.randn(D_SAE, D_IN, generator=gen)
    rows /= rows.norm(dim=1, keepdim=True)
    with torch.no_grad():
        sae.W_dec.copy_(rows)
        sae.W_enc.copy_(4.0 * rows.t())
    save_sae(sae, root / "local" / "sae")
    save_saelens(sae, root / "saelens")
    LocalHub(cache).add(REPO, folder_files(root / "saelens", f"{FOLDER}/"))
    return root / "local" / "sae", f"hf:{REPO}/{FOLDER}"


LOAD_PROBE = """
import sys, time
from saescope.sae.formats import load_sae
from saescope.sae.source import open_sae

t = time.perf_counter(); load_sae({folder!r}); a = time.perf_counter() - t
open_sae({saelens!r})
t = time.perf_counter(); open_sae({saelens!r}); s = time.perf_counter() - t
t = time.perf_counter(); open_sae({name!r}); b = time.perf_counter() - t
t = time.perf_counter(); open_sae({name!r}); c = time.perf_counter() - t
print(a, s, b, c, int("huggingface_hub._snapshot_download" in sys.modules))
"""
"""Load times in a fresh process that has not loaded a model: native folder, SAELens folder (warm),
the name on first use and again, and whether huggingface_hub's download code was imported."""


class Timing(NamedTuple):
    """One `saescope` process."""

    wall: float
    """Seconds from start to exit."""
    cpu: float
    """CPU seconds it used (user + system, its threads summed): less sensitive to other work on a
    shared machine than wall time."""


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> Timing:
    """One `saescope` process, timed (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "saescope", *argv], cwd=cwd, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"saescope {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return Timing(elapsed, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


def in_process(code: str, cwd: Path, env: dict[str, str]) -> str:
    """The output of `code` run in a fresh Python process (first-call timings)."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=2048, help="tokens indexed")
    parser.add_argument("--no-end-to-end", action="store_true", help="only resolution and loading")
    args = parser.parse_args()
    repo_root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="saescope-pretrained-") as tmp:
        root = Path(tmp)
        cache = root / "hf" / "hub"
        cache.mkdir(parents=True)
        env = {
            **os.environ,
            "HF_HOME": str(root / "hf"),
            "HF_HUB_CACHE": str(cache),
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(repo_root),
        }
        os.environ.update({k: env[k] for k in ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE")})
        sys.path.insert(0, str(repo_root))
        folder, name = write_saes(root, cache)
        probe = (
            "import time; t = time.perf_counter(); import saescope.sae.formats; i = time.perf_counter() - t; "
            "t = time.perf_counter(); from saescope.sae.hub import resolve_name; "
            f"r = resolve_name({name!r}); a = time.perf_counter() - t; t = time.perf_counter(); "
            f"resolve_name({name!r}); print(i, a, time.perf_counter() - t)"
        )
        imports, first, again = (float(v) for v in in_process(probe, root, env).split())
        saelens = str(root / "saelens")
        load = LOAD_PROBE.format(folder=str(folder), saelens=saelens, name=name)
        load_folder, load_saelens, open_first, open_again, hub_loaded = (
            float(v) for v in in_process(load, root, env).split()
        )
        print(f"SAE: {D_SAE:,} latents, k {K}, d_in {D_IN} on {MODEL} {HOOK}; {args.tokens:,} tokens indexed")
        print(f"CPU cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
        print(
            f"resolve_name({name}): {first * 1000:.0f} ms first call in a process, {again * 1000:.1f} ms "
            f"again (target < 1 s: {'met' if first < 1 else 'NOT met'}), after saescope's own imports "
            f"({imports:.2f} s, paid by a folder too)"
        )
        print(
            f"load: native folder {load_folder:.2f} s; SAELens folder {load_saelens:.2f} s; the same SAE "
            f"by name {open_first:.2f} s first use (run folder written), {open_again:.2f} s again "
            f"(huggingface_hub's download code {'imported' if hub_loaded else 'not imported'}: offline, "
            "the cache is read directly)"
        )
        extra = open_first - load_saelens
        print(
            f"the name's cost over the SAELens folder: {extra:+.2f} s on first use (target < 1 s: "
            f"{'met' if extra < 1 else 'NOT met'}), {open_again - load_saelens:+.2f} s after"
        )
        if args.no_end_to_end:
            return
        common = ["--tokens", str(args.tokens), "--map", "pca"]
        timed(
            ["index", str(folder), *common, "--out", str(root / "warm")], root, env
        )  # model conversion cached
        local_index = timed(["index", str(folder), *common], root, env)
        local_pages = timed(["dashboard", str(root / "local" / "index")], root, env)
        named_index = timed(["index", name, *common], root, env)
        named_pages = timed(["dashboard", name], root, env)  # the name again: its run's index
        load = os.getloadavg()[0]
    for what, index, pages in (("folder", local_index, local_pages), ("name", named_index, named_pages)):
        print(
            f"{what + ':':8}index {index.wall:.1f} s + dashboard {pages.wall:.1f} s = "
            f"{index.wall + pages.wall:.1f} s wall; {index.cpu:.1f} + {pages.cpu:.1f} = "
            f"{index.cpu + pages.cpu:.1f} CPU s"
        )
    wall = named_index.wall + named_pages.wall - local_index.wall - local_pages.wall
    cpu = named_index.cpu + named_pages.cpu - local_index.cpu - local_pages.cpu
    print(
        f"name - folder: {wall:+.1f} s wall, {cpu:+.1f} CPU s end to end (load {load:.1f} at the end; on a "
        "loaded machine the wall times are noise beside the name's own cost, measured above)"
    )


if __name__ == "__main__":
    main()
