"""The local model's weights, in the form this CPU reads fastest (VOICE_LLM_WEIGHTS).

The bundled SmolLM2 file is quantized Q4_1. llama.cpp's CPU kernels for
batches of tokens (llamafile's tinyBLAS) take Q8_0, Q4_0 and F16, not Q4_1:
with Q4_1 a batch of N tokens costs about N single tokens. Converted once to
Q8_0 (about a second, 144 MB beside the database), the same model reads a
prompt about twice as fast (measured here: 117 against 260 tokens a second on
one thread) and a step writing ten replies costs a third less. Q4_1's values
fit Q8_0 almost exactly, so answers keep their quality; Q4_0 would be as fast
but quantizes them again, coarsely.

The converted file is kept under DATA_DIR/models, named for the source file's
name, size and time, so a new model file is converted again and an old copy
is never used for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

AS_IS = "as-is"
# VOICE_LLM_WEIGHTS -> llama.cpp's file type.
KINDS = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "f16": "LLAMA_FTYPE_MOSTLY_F16"}


def converted_path(source: Path, kind: str, directory: Path) -> Path:
    stat = source.stat()
    return directory / f"{source.stem}-{stat.st_size}-{stat.st_mtime_ns}.{kind}.gguf"


def prepared(source: str | Path, kind: str, directory: str | Path | None) -> str:
    """The file to load: ``source`` converted to ``kind`` (once, then kept), or ``source`` itself.

    A conversion that fails is logged and the model loads as it is: slower, never unavailable.
    Call it where model work may run (not on the event loop): it takes about a second once.
    """
    source = Path(source)
    if kind == AS_IS or directory is None:
        return str(source)
    if kind not in KINDS:
        raise ValueError(f"Unknown VOICE_LLM_WEIGHTS {kind!r}: use {', '.join([AS_IS, *KINDS])}.")
    target = converted_path(source, kind, Path(directory))
    if target.exists():
        return str(target)
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, KINDS[kind])
    params.allow_requantize = True
    params.nthread = 1
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        code = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
        if code != 0:
            raise OSError(f"llama_model_quantize returned {code}")
        os.replace(partial, target)  # whole or not at all, whichever process gets there first
    except OSError as exc:
        logger.warning("Could not convert the model to %s (%s); it loads as it is, slower.", kind, exc)
        with contextlib.suppress(OSError):
            partial.unlink()
        return str(source)
    logger.info("Converted %s to %s: %s", source.name, kind, target)
    return str(target)
