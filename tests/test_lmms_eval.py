"""lmms-eval 0.7.3: our bridge runs under it, and our scorers agree with its task functions.

Runs where lmms-eval is importable (CI installs the wheel without its heavy dependencies, see .ci/run);
skipped elsewhere. Every difference between the two is intended and asserted here, and listed in README.md.
"""

import copy
import os
import random

import pytest
from PIL import Image

if os.environ.get("QMAMBA_REQUIRE_LMMS_EVAL"):  # CI: a broken lmms-eval install must fail, not skip
    import lmms_eval.api.model as lmms_model
else:
    lmms_model = pytest.importorskip("lmms_eval.api.model", reason="lmms-eval not installed")
from lmms_eval.api.instance import Instance, unwrap_generation_output  # noqa: E402

from qmamba_eval.scoring import gqa, mme, pope, vqa  # noqa: E402

rng = random.Random(0)
WORDS = ["yes", "no", "Yes", "No.", "two", "2", "the cat", "a dog", "red,blue", "1,000", "t-shirt", "dont",
         "it's", "3.5", "none", "Ten", "  spaced  ", "y", "n", "no, it is not", "yes!", "(left)", "", "nope",
         "Coca-Cola's", "what?", "a/an", "he's"]


def random_answers(k=10):
    base = rng.choice(WORDS)
    return [base if rng.random() < 0.6 else rng.choice(WORDS) for _ in range(k)]


def test_entry_point_registers_qmamba():
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    reg = ModelRegistryV2()
    reg.load_entrypoint_manifests()
    assert reg.get_manifest("qmamba").simple_class_path == "qmamba_eval.lmms_bridge.QMambaLMMS"


def test_bridge_generate_and_loglikelihood_match_our_model():
    from qmamba_eval.lmms_bridge import QMambaLMMS

    lm = QMambaLMMS(pretrained="tiny-cobra", batch_size=2)
    assert isinstance(lm, lmms_model.lmms)
    ims = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    lm.task_dict = {"pope": {"test": [{"image": im} for im in ims]}}
    visual = lambda doc: [doc["image"]]
    prompts = ["Is it red?", "Is there a cat in the picture?", "Color?"]
    reqs = [Instance("generate_until", (p, {"max_new_tokens": 5, "until": ["\n\n"]}, visual, i, "pope", "test"), i,
                     {"task": "pope", "doc_id": i, "repeats": 1}) for i, p in enumerate(prompts)]
    assert lm.generate_until(reqs) == lm.model.generate(ims, prompts, max_new_tokens=5, stop=["\n\n"])
    ll = lm.loglikelihood([Instance("loglikelihood", (p, "Yes", visual, i, "pope", "test"), i,
                                    {"task": "pope", "doc_id": i, "repeats": 1}) for i, p in enumerate(prompts)])
    ours = lm.model.score_options(ims, prompts, ["Yes"])[:, 0]
    # (loss, is_greedy), loss = -log-probability, wrapped so that lmms-eval's evaluator keeps the pair
    pairs = [unwrap_generation_output(x)[0] for x in ll]
    # batches of 2 through the bridge vs one batch of 3 here: equal up to float32 summation order
    assert [-loss for loss, _ in pairs] == pytest.approx([float(x) for x in ours], abs=1e-4)
    assert all(isinstance(g, bool) for _, g in pairs)


def test_loglikelihood_survives_lmms_eval_unwrap_and_argmin_picks_the_likelier_choice():
    import numpy as np

    from qmamba_eval.lmms_bridge import QMambaLMMS

    lm = QMambaLMMS(pretrained="tiny-qmamba")
    im = Image.new("RGB", (40, 40), (10, 200, 30))
    lm.task_dict = {"t": {"test": [{"image": im}]}}
    choices = ["Yes", "No", "A green square"]
    out = lm.loglikelihood([Instance("loglikelihood", ("What is it?", c, lambda d: [d["image"]], 0, "t", "test"), k,
                                     {"task": "t", "doc_id": 0, "repeats": 1}) for k, c in enumerate(choices)])
    # what a bare (float, bool) tuple becomes in lmms-eval 0.7.3's evaluator: a string (the bug worked around)
    assert isinstance(unwrap_generation_output((-1.5, False))[0], str)
    lls, _ = zip(*[unwrap_generation_output(x)[0] for x in out])  # as ConfigurableTask.process_results does
    logp = lm.model.score_options([im], ["What is it?"], choices)[0]
    assert int(np.argmin(lls)) == int(logp.argmax())


def test_bridge_logs_random_weights_max_new_tokens_and_ignored_gen_kwargs(lmms_log):
    from qmamba_eval.lmms_bridge import QMambaLMMS

    lm = QMambaLMMS(pretrained="tiny-qmamba", checkpoint="random", max_new_tokens="3", batch_size=4)
    assert any("RANDOM weights" in m for lvl, m in lmms_log if lvl == "WARNING")
    assert type(lm).__name__ == "QMambaLMMS[random_init=True]" and lm.model_info["random_init"] is True
    assert isinstance(lm, QMambaLMMS)
    im = Image.new("RGB", (40, 40), (255, 0, 0))
    lm.task_dict = {"a": {"test": [{"image": im}] * 2}, "b": {"test": [{"image": im}]}}
    visual = lambda doc: [doc["image"]]
    greedy = {"max_new_tokens": 128, "temperature": 0, "top_p": 1.0, "num_beams": 1, "do_sample": False}
    sampled = {"max_new_tokens": 2, "temperature": 0.7, "do_sample": True, "num_beams": 3, "top_p": 0.9,
               "repetition_penalty": 1.1}
    reqs = [Instance("generate_until", ("Colour?", dict(gen), visual, i, task, "test"), 0,
                     {"task": task, "doc_id": i, "repeats": 1})
            for task, i, gen in (("a", 0, greedy), ("b", 0, sampled), ("a", 1, greedy))]
    lmms_log.clear()
    out = lm.generate_until(reqs)
    # max_new_tokens from --model_args wins over the task's (128, 2); said once per task
    assert out == lm.model.generate([im] * 3, ["Colour?"] * 3, max_new_tokens=3)
    infos = [m for lvl, m in lmms_log if lvl == "INFO"]
    assert infos == ["qmamba: a: max_new_tokens=3 from --model_args, overriding the task's 128",
                     "qmamba: b: max_new_tokens=3 from --model_args, overriding the task's 2"]
    warned = sorted(m.split("generation kwarg ")[1].split(" is")[0] for lvl, m in lmms_log if lvl == "WARNING")
    assert warned == ["do_sample=True", "num_beams=3", "repetition_penalty=1.1", "temperature=0.7", "top_p=0.9"]
    lmms_log.clear()
    lm.generate_until(reqs)  # once per key and value
    assert lmms_log == []
    lm.clean()  # the end of lmms-eval's requests: the warning again, next to the results
    assert any("RANDOM weights" in m for _, m in lmms_log)


def test_bridge_uses_the_task_max_new_tokens_without_model_args(lmms_log):
    from qmamba_eval.lmms_bridge import DEFAULT_MAX_NEW_TOKENS, QMambaLMMS

    lm = QMambaLMMS(pretrained="tiny-qmamba")
    lm.task_dict = {"a": {"test": [{"image": Image.new("RGB", (40, 40))}]}}
    visual = lambda doc: [doc["image"]]
    lm.generate_until([Instance("generate_until", ("Q?", {"max_new_tokens": 2}, visual, 0, "a", "test"), 0,
                                {"task": "a", "doc_id": 0, "repeats": 1}),
                       Instance("generate_until", ("Q?", {}, visual, 0, "a", "test"), 0,
                                {"task": "a", "doc_id": 0, "repeats": 1})])
    infos = [m for lvl, m in lmms_log if lvl == "INFO"]
    assert "qmamba: a: max_new_tokens=2 from the task's generation_kwargs" in infos[0]
    assert f"max_new_tokens={DEFAULT_MAX_NEW_TOKENS} the bridge's default" in infos[1]


def test_batch_size_in_model_args_is_taken_not_a_type_error(lmms_log):
    from qmamba_eval.lmms_bridge import QMambaLMMS

    # lmms-eval's CLI always passes --batch_size (default 1) beside --model_args
    lm = QMambaLMMS.create_from_arg_string("pretrained=tiny-qmamba,batch_size=3",
                                           {"batch_size": 1, "max_batch_size": None, "device": None})
    assert lm.batch_size_per_gpu == 3
    assert any("batch_size=3 from --model_args wins" in m for _, m in lmms_log)


def test_vision_weights_in_model_args_are_json():
    from lmms_eval.utils import simple_parse_args_string

    from qmamba_eval.lmms_bridge import _vision_weights

    args = simple_parse_args_string('pretrained=cobra-3.5b,vision_weights={"dinov2-l-14-reg4-384": "/hf/d",'
                                    '"siglip-so400m-14-384": "/hf/s"},device=cuda')
    assert _vision_weights(args["vision_weights"]) == {"dinov2-l-14-reg4-384": "/hf/d", "siglip-so400m-14-384": "/hf/s"}
    assert args["device"] == "cuda"
    with pytest.raises(ValueError, match="JSON"):
        _vision_weights("/hf/d")


def test_random_parts_follow_what_the_checkpoint_loaded():
    from qmamba_eval.models import random_parts as _random_parts

    assert _random_parts({"checkpoint": None, "vision_random_init": True}) == ["vision", "projector", "llm"]
    ours = {"path": "x", "format": "ours", "loaded": ["vision", "projector", "llm"]}
    assert _random_parts({"checkpoint": ours, "vision_random_init": True}) == []
    lm_only = {"path": "x", "format": "mamba_ssm", "loaded": ["llm"]}
    assert _random_parts({"checkpoint": lm_only, "vision_random_init": False}) == ["projector"]


def test_vqav2_scores_agree():
    from lmms_eval.tasks.vqav2.utils import vqav2_process_results

    for _ in range(300):
        answers = random_answers()
        pred = rng.choice(WORDS)
        doc = {"question_id": 1, "answers": [{"answer": a, "answer_id": i + 1} for i, a in enumerate(answers)]}
        theirs = vqav2_process_results(copy.deepcopy(doc), [pred])["exact_match"]
        assert vqa.soft_accuracy(pred, answers, rule="lmms") == pytest.approx(theirs), (pred, answers)


def test_textvqa_scores_agree():
    from lmms_eval.tasks.textvqa.utils import textvqa_process_results

    for _ in range(300):
        answers, pred = random_answers(), rng.choice(WORDS)
        theirs = textvqa_process_results({"question_id": 1, "answers": list(answers)}, [pred])["exact_match"]
        assert vqa.soft_accuracy(pred, answers, textvqa=True) == pytest.approx(theirs), (pred, answers)


def test_gqa_scores_agree_on_stripped_answers():
    from lmms_eval.api.metrics import exact_match_hf_evaluate

    for _ in range(300):
        pred, ref = rng.choice(WORDS).strip(), rng.choice(WORDS).strip()
        theirs = exact_match_hf_evaluate([pred], [ref], ignore_case=True, ignore_punctuation=True)["exact_match"]
        assert gqa.exact_match(pred, ref) == theirs, (pred, ref)
    # intended difference: we also collapse runs of whitespace ("t-shirt" -> "tshirt" either way)
    assert gqa.exact_match("the  cat", "the cat") == 1.0
    assert exact_match_hf_evaluate(["the  cat"], ["the cat"], ignore_case=True,
                                   ignore_punctuation=True)["exact_match"] == 0.0


def test_pope_metrics_agree_except_yes_ratio():
    from lmms_eval.tasks.pope import utils as u

    for _ in range(30):
        preds = [rng.choice(["yes", "no"]) for _ in range(50)]
        labels = [rng.choice(["yes", "no"]) for _ in range(50)]
        res = [u.pope_process_results({"question_id": i, "answer": l}, [p])["pope_accuracy"]
               for i, (p, l) in enumerate(zip(preds, labels))]
        ours = pope.metrics([(pope.parse(p, "strict"), l) for p, l in zip(preds, labels)])
        assert ours["accuracy"] == pytest.approx(u.pope_aggregate_accuracy(res))
        assert ours["precision"] == pytest.approx(u.pope_aggregate_precision(res))
        assert ours["recall"] == pytest.approx(u.pope_aggregate_recall(res))
        assert ours["f1"] == pytest.approx(u.pope_aggregate_f1_score(res))
        # intended difference: lmms-eval's yes-ratio counts ground-truth yes; POPE's counts predicted yes
        assert u.pope_aggregate_yes_ratio(res) == pytest.approx(labels.count("yes") / 50)
        assert ours["yes_ratio"] == pytest.approx(preds.count("yes") / 50)


def test_mme_parse_agrees_except_documented_cases():
    from lmms_eval.tasks.mme.utils import parse_pred_ans

    differ = {}
    for w in WORDS + ["Yes.", "No.", "yes, it is", "I think so", "Nope", "NO"]:
        ours, theirs = mme.parse(w), parse_pred_ans(w)
        if ours != theirs:
            differ[w] = (ours, theirs)
    # intended difference: lmms-eval reads a lone "y"/"n" as yes/no; MME's official tool counts it as "other"
    assert differ == {"y": ("other", "yes"), "n": ("other", "no")}


def test_every_task_has_its_hooks():
    from qmamba_eval.tasks import all_tasks

    tasks = all_tasks()
    assert set(tasks) >= {"vqav2", "gqa", "textvqa", "pope", "mme"}
    assert all(callable(t.hooks.score_one) and callable(t.hooks.aggregate) for t in tasks.values())
