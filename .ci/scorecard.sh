#!/usr/bin/env bash
# Gate: the default run on the embedded sample must reproduce the committed baseline exactly
# (scores and raw answers), and a second invocation must resume instead of recomputing.
set -euo pipefail
out=$(mktemp -d)
python run_eval.py --tasks vqav2,gqa,textvqa,pope,mme --output-dir "$out" --run-name ci --no-progress
python run_eval.py --tasks vqav2,gqa,textvqa,pope,mme --output-dir "$out" --run-name ci --no-progress --json \
  | python -c "import json,sys; r=json.load(sys.stdin); bad=[t for t,v in r['tasks'].items() if v['n_resumed']!=v['n_samples']]; sys.exit(f'not resumed: {bad}' if bad else 0)"
python run_eval.py scorecard --baseline results/baselines/sample_tiny-qmamba.json --current "$out/ci" \
  --require-same-answers --fail-on-missing --only-changes --markdown-out "$out/scorecard.md"
