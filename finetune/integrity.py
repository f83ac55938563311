"""Cheap structural checks of weight and checkpoint files, so that a truncated or corrupt file is a
one-line error naming it (or a skipped checkpoint) instead of a traceback deep inside a loader.

These read headers and sizes only, never the tensors: they catch truncation and garbage, not a
flipped bit inside the data.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

# A safetensors header is JSON describing the tensors; real ones are kilobytes to a few MB.
_MAX_HEADER = 100 * 1024 * 1024


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file, or None."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                return f"truncated ({size} bytes, no safetensors header)"
            n = int.from_bytes(prefix, "little")
            if n > _MAX_HEADER or 8 + n > size:
                return f"truncated or not a safetensors file (header of {n} bytes, file of {size})"
            header = json.loads(fh.read(n))
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    except (ValueError, UnicodeDecodeError):
        return "corrupt safetensors header (not JSON)"
    if not isinstance(header, dict):
        return "corrupt safetensors header (not a JSON object)"
    data_size = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            return f"corrupt safetensors header (tensor {name[:80]!r})"
        if offsets[1] > data_size:
            return f"truncated (tensor {name[:80]!r} ends at byte {offsets[1]} of {data_size} data bytes)"
    return None


def torch_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete ``torch.save`` file (a zip archive since torch 1.6), or None.

    A truncated zip loses its central directory (at the end), which opening it checks.
    """
    try:
        with zipfile.ZipFile(path):
            return None
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    except (zipfile.BadZipFile, ValueError, EOFError):
        return "truncated or corrupt (not a complete torch.save archive)"


def file_problem(path: Path) -> str | None:
    if path.suffix == ".safetensors":
        return safetensors_problem(path)
    if path.suffix in (".pt", ".pth", ".bin"):
        return torch_file_problem(path)
    return None


def model_folder_problem(folder: Path) -> str | None:
    """``"<file>: <why>"`` for the first damaged weight file of a local model folder, or None."""
    for p in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        why = file_problem(p)
        if why:
            return f"{p}: {why}"
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return f"{index}: not a valid shard index"
        missing = sorted(s for s in shards if not (folder / str(s)).is_file())
        if missing:
            return f"{folder / str(missing[0])}: shard listed in {index.name} is missing"
    return None


def checkpoint_problem(ckpt: Path) -> str | None:
    """``"<file>: <why>"`` when a Trainer checkpoint cannot be resumed from, or None."""
    state = ckpt / "trainer_state.json"
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{state.name}: missing"
    except OSError as e:
        return f"{state.name}: cannot be read ({e.strerror})"
    except (ValueError, UnicodeDecodeError):
        return f"{state.name}: not valid JSON (truncated?)"
    step = ckpt.name.rsplit("-", 1)[-1]
    if not isinstance(data, dict) or str(data.get("global_step")) != step:
        return f"{state.name}: does not describe step {step}"
    weights = [p for p in (ckpt / "adapter_model.safetensors", ckpt / "adapter_model.bin") if p.is_file()]
    if not weights:
        return "adapter_model.safetensors: missing"
    for p in weights + sorted(ckpt.glob("*.pt")) + sorted(ckpt.glob("*.pth")):
        why = file_problem(p)
        if why:
            return f"{p.name}: {why}"
    return None
