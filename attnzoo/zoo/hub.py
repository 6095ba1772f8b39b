"""The local weight cache: `$ATTNZOO_CACHE` (default `~/.cache/attnzoo`), one folder per tag.

`cached_file(tag, config)` returns the verified path of a tag's file, downloading it from a
URL source (with a progress bar) when it is missing; without a network, put the file in
the folder the error names.
"""

import hashlib
import os
import shutil
import tempfile
import urllib.request

from tqdm import tqdm

from attnzoo.data import paths
from attnzoo.zoo.weights import WeightsConfig


class WeightsFileError(FileNotFoundError):
    """A tag's file is missing or does not match its checksum."""


def cache_dir() -> str:
    """`$ATTNZOO_CACHE`, else `~/.cache/attnzoo` (the one cache: data downloads live there too)."""
    return str(paths.cache_root())


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, path: str) -> None:
    """Streams `url` to `path` (atomically: a temporary file renamed when complete)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with urllib.request.urlopen(url, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".part")
        try:
            with (
                os.fdopen(fd, "wb") as out,
                tqdm(
                    total=total, unit="B", unit_scale=True, desc=os.path.basename(path), leave=False
                ) as bar,
            ):
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise


def cached_file(tag: str, config: WeightsConfig) -> str:
    """Path of `tag`'s verified file in the cache, fetched from `config.source` if needed."""
    path = os.path.join(cache_dir(), tag, config.filename)
    if not os.path.exists(path) and config.source:
        if config.source.startswith(("http://", "https://")):
            try:
                download(config.source, path)
            except OSError as e:
                raise WeightsFileError(
                    f"could not download {tag} from {config.source} ({e}); "
                    f"put {config.filename} at {path}"
                ) from None
        elif os.path.exists(os.path.expanduser(config.source)):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            shutil.copyfile(os.path.expanduser(config.source), path)
    if not os.path.exists(path):
        raise WeightsFileError(
            f"weights of {tag} not found: put {config.filename} (sha256 {config.sha256[:12]}…) "
            f"at {path} (cache: $ATTNZOO_CACHE)"
        )
    actual = sha256(path)
    if actual != config.sha256:
        raise WeightsFileError(
            f"{path} is corrupt (sha256 {actual[:12]}…, expected {config.sha256[:12]}…): "
            f"delete it and put the right {config.filename} there"
        )
    return path
