"""Generate the embedded offline sample (qmamba_eval/assets/sample) from the synthetic benchmark.

The sample is the first scenes of the synthetic ``test`` split (``qmamba_eval.data.synthetic``, seed 0,
scale "sample"): rendered shapes, signs and sums with questions in each benchmark's hub schema
(VQAv2 / GQA / textvqa / POPE / MME), ``image`` holding a file name under ``images/``.  Training uses the
``train`` split, which never shares a scene with it.  These are NOT benchmark data and their scores are not
benchmark scores.

Run once and commit the output:  python scripts/make_sample.py
(``--tokenizer`` also re-trains the tiny tokenizer; that changes every tiny checkpoint's vocabulary, so the
shipped checkpoints would have to be re-trained.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "qmamba_eval" / "assets" / "sample"


def main():
    from qmamba_eval import synthetic

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", default="sample", help=f"one of {sorted(synthetic.SCALES)}")
    p.add_argument("--tokenizer", action="store_true", help="re-train qmamba_eval/assets/tiny_tokenizer.json")
    a = p.parse_args()
    data = synthetic.generate("test", seed=a.seed, scale=a.scale)
    if OUT.exists():
        shutil.rmtree(OUT)
    data.write(OUT)
    for task, rs in sorted(data.rows.items()):
        print(task, len(rs))
    if a.tokenizer:
        make_tokenizer(data.rows)


def make_tokenizer(rows):
    """A small byte-level BPE in GPT-NeoX style (``<|endoftext|>`` = 0, ``<|padding|>`` = 1)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    text = []
    for rs in rows.values():
        for r in rs:
            text.append(r["question"])
            ans = r.get("answers", r.get("answer", ""))
            text.append(json.dumps(ans))
    text += ["<|user|>\n", "<|assistant|>\n", "Answer the question using a single word or phrase.",
             "Please answer yes or no.", "Reference OCR token:"] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=640, special_tokens=["<|endoftext|>", "<|padding|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(sorted(set(text)), trainer)
    path = ROOT / "qmamba_eval" / "assets" / "tiny_tokenizer.json"
    tok.save(str(path))
    print("tokenizer", tok.get_vocab_size(), path)


if __name__ == "__main__":
    main()
