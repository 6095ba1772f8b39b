"""Pretrained weight tags `ARCH.WEIGHTS` and their configs (timm's pretrained-cfg idea).

A family registers its tags next to its models (e.g. `zoo/vision/weights.py`) with
`register_weights`; `create_model(tag, pretrained=True)` builds the architecture from the
tag's `kwargs` and loads its file from the cache (`attnzoo.zoo.hub`).
"""

import dataclasses

_TAGS: dict[str, "WeightsConfig"] = {}


@dataclasses.dataclass(frozen=True)
class WeightsConfig:
    """Where a tag's weights live and what they expect.

    `source`: a URL (downloaded into the cache) or a local path; either way the file is
    `filename` in the tag's cache folder and must hash to `sha256`. `kwargs`: the
    architecture's constructor arguments. `input_size` `(H, W, C)` or `(length, channels)`,
    `mean`/`std` the input normalisation, `num_classes` and `classifier` (regex of its
    param paths) the head, `metric` what these weights reached and on what.
    """

    model: str
    filename: str
    sha256: str
    kwargs: dict
    source: str = ""
    file_format: str = "safetensors"
    input_size: tuple[int, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    num_classes: int = 0
    classifier: str = ""
    license: str = ""
    metric: dict = dataclasses.field(default_factory=dict)


def register_weights(tag: str, config: WeightsConfig) -> None:
    """Registers pretrained weights under `tag` = `ARCH.WEIGHTS` (ARCH = `config.model`)."""
    arch, _, suffix = tag.partition(".")
    if arch != config.model or not suffix:
        raise ValueError(f"tag {tag!r} must read '{config.model}.<weights>'")
    if tag in _TAGS:
        raise ValueError(f"weights {tag!r} are registered twice")
    if config.file_format != "safetensors":
        raise ValueError(
            f"{tag}: only 'safetensors' releases load by tag, not {config.file_format}"
        )
    _TAGS[tag] = config


def tags() -> list[str]:
    return list(_TAGS)


def get_weights(tag: str) -> WeightsConfig:
    """The config of `tag`; a clear error listing the closest tags when unknown."""
    from attnzoo.zoo.registry import list_models

    known = list_models(pretrained=True)
    if tag not in _TAGS:
        arch = tag.partition(".")[0]
        same = [t for t in known if t.startswith(arch + ".")]
        raise ValueError(
            f"unknown pretrained tag {tag!r}; known: {', '.join(same or known) or 'none'}"
        )
    return _TAGS[tag]
