"""Release files: params as `.safetensors` (numpy, no torch) + the model spec as JSON.

`NAME.safetensors` holds every param under its '/'-joined NNX path and the spec
(`{"name", "kwargs", ...}`) in its metadata; `NAME.json` repeats the spec with the file's
sha256 and size for people and release pages.
"""

import json
import os

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

SPEC_KEY = "attnzoo_spec"


def write_release(params: dict[str, np.ndarray], spec: dict, out_dir: str, name: str) -> dict:
    """Writes `out_dir/name.safetensors` and `out_dir/name.json`; returns the JSON record."""
    from attnzoo.zoo.hub import sha256

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.safetensors")
    # (ascontiguousarray alone turns a 0-d counter into shape [1], which would not load)
    arrays = {k: np.ascontiguousarray(v).reshape(np.shape(v)) for k, v in params.items()}
    save_file(arrays, path, metadata={SPEC_KEY: json.dumps(spec, sort_keys=True)})
    os.chmod(path, 0o644)  # safetensors writes 0600; a release is for everyone to read
    record = {
        **spec,
        "file": os.path.basename(path),
        "sha256": sha256(path),
        "bytes": os.path.getsize(path),
    }
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    return record


def read_release(path: str) -> tuple[dict[str, np.ndarray], dict | None]:
    """`(params, spec)` of a `.safetensors` file (spec None when it carries none)."""
    try:
        with safe_open(path, framework="np") as f:
            params = {k: f.get_tensor(k) for k in f.keys()}
            spec = (f.metadata() or {}).get(SPEC_KEY)
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path} is not a readable .safetensors file ({e})") from None
    return params, json.loads(spec) if spec else None
