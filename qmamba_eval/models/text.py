"""Tokenizers (Hugging Face ``tokenizers`` JSON files) and chat templates."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

TINY_TOKENIZER = Path(__file__).resolve().parents[1] / "assets" / "tiny_tokenizer.json"

# prompt -> model input text; the image tokens go before this text
TEMPLATES = {
    "zephyr": "<|user|>\n{prompt}<|endoftext|>\n<|assistant|>\n",  # Mamba-2.8B-Zephyr (Cobra)
    "vicuna": "USER: {prompt} ASSISTANT:",  # LLaVA-1.5 style
    "plain": "{prompt}\n",
}


class TextTokenizer:
    """A thin wrapper over ``tokenizers.Tokenizer`` with the ids the harness needs."""

    def __init__(self, path: Optional[str] = None, eos_token: str = "<|endoftext|>"):
        from tokenizers import Tokenizer

        if path is None:
            path = TINY_TOKENIZER
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file {path} not found: pass a local tokenizer.json "
                                    "(for Mamba LLMs the GPT-NeoX tokenizer, EleutherAI/gpt-neox-20b)")
        self.path = str(path)
        self._tok = Tokenizer.from_file(self.path)
        eos = self._tok.token_to_id(eos_token)
        if eos is None:
            raise ValueError(f"tokenizer {path} has no {eos_token!r} token")
        self.eos_id = eos
        self.vocab_size = self._tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=True)


def load_tokenizer(path: Optional[str], model_name: str) -> TextTokenizer:
    if path is None and not model_name.startswith("tiny-"):
        warnings.warn(f"{model_name}: no tokenizer given, using the small shipped tokenizer; real checkpoints "
                      "need their own tokenizer.json (tokenizer=...)", stacklevel=3)
    return TextTokenizer(path)


def apply_template(template: str, prompt: str) -> str:
    from ..registry import lookup

    return lookup(TEMPLATES, template, "chat template").format(prompt=prompt)
