"""clm.train on the pico model with the `tiny` preset: endpoints that load in the core and move
the logits as α moves, kill and resume, two processes, atomic writes, one-line errors.

Training runs with one torch thread: on 2 busy cores, thread contention makes pico's tiny
matmuls ~10x slower with the default two.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import clm
from clm.core.models import pico_tokenizer
from clm.data import pack_blocks
from clm.errors import ClmError
from clm.train.config import TrainConfig
from clm.train.logs import loss_table
from clm.train.trainer import train_endpoints

REPO = Path(__file__).resolve().parents[1]
# Resume restores the optimizer, scheduler, RNG states and the data order, so the result is the
# same computation: on one machine with the same thread count it matches bit for bit. The
# tolerance only leaves room for float32 summation order (e.g. another BLAS thread split).
RESUME_ATOL = 1e-6
SAD = [
    "I lost my keys and the rain kept falling all day.",
    "Nobody came to the party; it was so lonely.",
    "The old dog died last winter and we still miss him.",
]
GLAD = [
    "We won the game and everyone cheered loudly!",
    "The sun is out and the picnic was wonderful.",
    "She laughed at the joke and hugged her friend.",
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    (d / "sad.jsonl").write_text("".join(json.dumps({"text": t, "label": "sad"}) + "\n" for t in SAD * 12))
    (d / "glad.txt").write_text("\n".join(GLAD * 12) + "\n")
    (d / "mixed.csv").write_text(
        "text,label\n" + "".join(f'"{t}",{lab}\n' for lab, ts in (("0", SAD), ("1", GLAD)) for t in ts * 12)
    )
    return d


def _cfg(data_dir: Path, **over) -> TrainConfig:
    mood = {"name": "mood", "low": {"name": "sad", "path": "sad.jsonl"}, "high": {"name": "glad", "path": "glad.txt"}}
    return TrainConfig.from_preset("tiny", attributes=[mood], data_dir=str(data_dir), **over)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory, pico_dir) -> Path:
    """One uninterrupted tiny run: the reference for the other tests."""
    run = tmp_path_factory.mktemp("run")
    train_endpoints(_cfg(data_dir), run, progress=False)
    return run


def _tensors(adapter: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(adapter / "adapter_model.safetensors")


def test_pack_blocks_joins_with_eos_and_drops_the_rest():
    assert pack_blocks([[1, 2], [3], [4, 5, 6]], 3, eos_id=9) == [[1, 2, 9], [3, 9, 4], [5, 6, 9]]
    assert pack_blocks([[1, 2], [3]], 2, eos_id=9) == [[1, 2], [9, 3]]  # trailing EOS dropped
    assert pack_blocks([[1]], 4, eos_id=9) == []


def test_pack_blocks_with_a_string_separator():
    assert pack_blocks([[1, 2], [3]], 3, eos_id=[7, 8]) == [[1, 2, 7], [8, 3, 7]]


def test_separator_string_joins_texts_and_eos_is_the_default(data_dir):
    from clm.train.trainer import load_pole

    tok = pico_tokenizer()
    nl = _cfg(data_dir, separator="\n\n", eval_fraction=0.0, block_size=128)
    eos = _cfg(data_dir, eval_fraction=0.0, block_size=128)
    assert eos.separator == "eos" and nl.pole_sha256("mood", "low") != eos.pole_sha256("mood", "low")
    texts = {tuple(tok(t, add_special_tokens=False)["input_ids"]) for t in SAD}
    newline = tuple(tok("\n\n", add_special_tokens=False)["input_ids"])
    assert len(newline) == 2
    for cfg, sep in ((nl, newline), (eos, (tok.eos_token_id,))):
        blocks = load_pole(cfg, cfg.attribute("mood"), "low", tok).train
        inner = []  # the pieces between two separators inside a block (blocks are shuffled)
        for block in blocks:
            cuts = [k for k in range(len(block)) if tuple(block[k : k + len(sep)]) == sep]
            inner += [tuple(block[i + len(sep) : j]) for i, j in zip(cuts, cuts[1:])]
        assert len(inner) >= 5 and set(inner) <= texts  # whole texts, joined by exactly the separator
        stream = [i for b in blocks for i in b]
        assert (tok.eos_token_id in stream) == (sep == (tok.eos_token_id,))


def test_endpoints_load_and_alpha_moves_the_logits(trained, pico):
    from peft import PeftModel

    model, tok = pico
    ends = clm.Endpoints.load(trained / "endpoints")
    assert ends.attributes == ["mood"] and ends.poles("mood") == ("sad", "glad")
    assert ends.base_fingerprint == model.clm_base.fingerprint
    ids = tok(["The weather today is", "My friend told me th"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        base = model(ids).logits
        ref_low = (
            PeftModel.from_pretrained(clm.load_base("pico")[0], ends.adapter_dir("mood", "low")).eval()(ids).logits
        )
    im = clm.InterpolatedModel(model, tok, ends)
    at0, at1 = (im.logits(ids, weights=clm.Weights({"mood": a})) for a in (0.0, 1.0))
    assert (at0 - at1).abs().max() > 1e-3  # the two trained endpoints differ
    assert (at0 - base).abs().max() > 1e-3  # and differ from the base
    torch.testing.assert_close(at0, ref_low, atol=2e-5, rtol=0)  # α=0 is the trained low adapter
    gens = im.generate(
        ["Today", "Today"], weights=[clm.Weights({"mood": a}) for a in (0.0, 1.0)], max_new_tokens=4, seed=0
    )
    assert len(gens) == 2 and all(g.token_ids for g in gens)


def test_provenance_and_log(trained, data_dir, pico):
    model, _ = pico
    cfg = _cfg(data_dir)
    for pole, fname in (("sad", "sad.jsonl"), ("glad", "glad.txt")):
        prov = json.loads(
            (trained / "endpoints/mood" / ("low" if pole == "sad" else "high") / "clm_adapter.json").read_text()
        )
        assert prov["base_fingerprint"] == model.clm_base.fingerprint
        assert prov["config_sha256"] == cfg.sha256() and prov["config"] == cfg.to_dict()
        import hashlib

        assert prov["data"]["file_sha256"] == hashlib.sha256((data_dir / fname).read_bytes()).hexdigest()
        log = json.loads((trained / "train/mood" / pole / "log.json").read_text())
        steps = [e["step"] for e in log["log"] if "loss" in e]
        assert steps == list(range(1, cfg.max_steps + 1))
        evals = [e for e in log["log"] if "eval_loss" in e]
        assert evals[0]["step"] == 0 and evals[-1]["step"] == cfg.max_steps
        assert log["final_eval_loss"] == evals[-1]["eval_loss"] and log["data"]["eval_blocks"] >= 1
        assert not (trained / "train/mood" / pole / "checkpoints").exists()  # deleted once the adapter is written
    df = loss_table(trained)
    assert (
        set(df.split) == {"train", "eval"} and set(df.pole_name) == {"sad", "glad"} and set(df.pole) == {"low", "high"}
    )


def test_loss_curve_figure(trained):
    import matplotlib

    matplotlib.use("Agg")
    from clm.plots import loss_curves

    g = loss_curves(trained)
    assert len(g.axes.flat) == 1 and g.axes.flat[0].lines


def test_train_or_load_prefers_what_exists(trained, data_dir, tmp_path):
    from clm.train.endpoints_io import train_or_load

    ends, source = train_or_load(_cfg(data_dir), trained, trained / "endpoints", ["mood"])
    assert source == "run dir" and ends.path == trained / "endpoints"
    # An empty run dir with reuse: the "shipped" endpoints are used in place, nothing is written.
    ends, source = train_or_load(_cfg(data_dir), tmp_path / "run", tmp_path / "run/endpoints", ["mood"], shipped=trained / "endpoints")
    assert source == "shipped" and ends.path == trained / "endpoints" and not (tmp_path / "run").exists()
    # Without reuse it trains; the poles are finished in the work dir, so training only adds them.
    before = (trained / "train/mood/sad/log.json").read_text()
    ends, source = train_or_load(_cfg(data_dir), trained, tmp_path / "ends", ["mood"], reuse=False, shipped=trained / "endpoints")
    assert source == "trained" and ends.attributes == ["mood"] and ends.path == tmp_path / "ends"
    assert (trained / "train/mood/sad/log.json").read_text() == before


def test_selection_record_tables():
    from clm.train.endpoints_io import revision_numbers, selection_table, selection_text

    def cand(lr, loss, lo, hi, ppl):
        control = {"mood": {"by_alpha": {"0.0": lo, "1.0": hi}, "range": hi - lo, "empty_by_alpha": {"0.0": 0.5, "1.0": 0.0}}}
        return {"config": {"learning_rate": lr}, "held_out": {"mood": {"sad": {"final_loss": loss}, "glad": {"final_loss": loss + 1}}},
                "dev_control": control, "dev_fluency": {"base": 10.0, "mood": {"0.0": ppl, "1.0": 12.0}}}  # fmt: skip

    sel = {"candidates": {"a": cand(1e-3, 2.0, 0.2, 0.6, 11.0), "b": cand(2e-3, 3.0, 0.1, 0.9, 15.0)},
           "rule": "widest range", "choice": "a", "reason": "why",
           "revisions": [{"attribute": "mood", "why": "w", "rule": "r", "choice": "b", "reason": "z", "replaced": "a", "test_before": 1}]}  # fmt: skip
    t = selection_table(sel)
    assert list(t.index) == ["a", "b"] and t.loc["a", "lr"] == "0.001" and t.loc["b", "separator"] == "'eos'"
    assert t.loc["a", "held-out loss (mean of poles)"] == 2.5 and t.loc["b", "dev ppl / base"] == 1.5
    assert t.loc["a", "dev ppl / base"] == 1.2 and t.loc["a", "empty continuations α=0/1"] == "50%/0%"
    assert selection_text(sel) == "rule: widest range\nchosen: a: why\n\nrevisited, mood: w\nrule: r\nchosen: b: z"
    rev = revision_numbers(sel)
    assert rev == [{"attribute": "mood", "replaced": "a", "choice": "b", "test_before": 1,
                    "dev": {"a": {"range": 0.6 - 0.2, "ppl_ratio": 1.2}, "b": {"range": 0.9 - 0.1, "ppl_ratio": 1.5}}}]  # fmt: skip
    assert revision_numbers(None) == []


def test_held_out_table(trained):
    from clm.train.logs import held_out_table

    t = held_out_table(loss_table(trained), ["mood"])
    for pole in ("sad", "glad"):
        log = json.loads((trained / "train/mood" / pole / "log.json").read_text())
        evals = [e["eval_loss"] for e in log["log"] if "eval_loss" in e]
        assert t.loc[("mood", pole)].tolist() == [evals[0], evals[-1]]
    assert held_out_table(loss_table(trained), ["other"]).empty


def test_rerun_skips_finished_poles(trained, data_dir):
    adapter = trained / "train/mood/sad/adapter/adapter_model.safetensors"
    before = (adapter.stat().st_mtime_ns, (trained / "train/mood/sad/log.json").read_text())
    # A fresh endpoints dir: both poles are finished in the work dir, so nothing trains.
    ends = train_endpoints(_cfg(data_dir), trained, endpoints_dir=trained / "ends2", progress=False)
    assert ends.attributes == ["mood"]
    assert (adapter.stat().st_mtime_ns, (trained / "train/mood/sad/log.json").read_text()) == before
    for pole in ("low", "high"):
        assert _tensors(ends.adapter_dir("mood", pole)).keys() == _tensors(trained / "endpoints/mood" / pole).keys()


def test_rerun_with_other_settings_is_refused(trained, data_dir):
    with pytest.raises(ClmError, match="trained with other settings"):
        train_endpoints(_cfg(data_dir, learning_rate=3e-3), trained, endpoints_dir=trained / "ends3", progress=False)
    assert not (trained / "ends3").exists()


def test_per_attribute_learning_rate_trains_as_if_it_were_the_learning_rate(trained, data_dir, tmp_path):
    """learning_rate_by_attribute is the lr its attribute trains with: a run at lr 1.0 whose `mood` lr
    is the tiny preset's gives the reference run's adapters, and the finished reference poles count
    as trained with these settings (same pole_sha256), while another per-attribute lr is refused."""
    cfg = _cfg(data_dir, learning_rate=1.0, learning_rate_by_attribute={"mood": _cfg(data_dir).learning_rate})
    train_endpoints(cfg, tmp_path / "run", progress=False)
    for pole in ("low", "high"):
        got, ref = _tensors(tmp_path / "run/endpoints/mood" / pole), _tensors(trained / "endpoints/mood" / pole)
        assert got.keys() == ref.keys()
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=0, atol=RESUME_ATOL)
    train_endpoints(cfg, trained, endpoints_dir=tmp_path / "ends2", progress=False)  # skipped, not refused
    with pytest.raises(ClmError, match="trained with other settings"):
        other = _cfg(data_dir, learning_rate_by_attribute={"mood": 3e-3})
        train_endpoints(other, trained, endpoints_dir=tmp_path / "ends3", progress=False)
    assert not (tmp_path / "ends3").exists()


def test_kill_and_resume_matches_uninterrupted(trained, data_dir, tmp_path):
    run = tmp_path / "run"
    (tmp_path / "cfg.yaml").write_text(_cfg(data_dir).to_yaml())
    script = tmp_path / "kill.py"
    script.write_text(
        "import os, sys\n"
        "from transformers import TrainerCallback\n"
        "from clm.train.config import TrainConfig\n"
        "from clm.train.trainer import train_endpoints\n"
        "class Kill(TrainerCallback):\n"
        "    def on_step_begin(self, args, state, control, **kw):\n"
        "        if state.global_step == 4:  # checkpoint-4 is on disk, step 5 never finishes\n"
        "            os._exit(3)\n"
        f"train_endpoints(TrainConfig.from_yaml({str(tmp_path / 'cfg.yaml')!r}), {str(run)!r}, progress=False, callbacks=[Kill()])\n"
    )
    proc = subprocess.run([sys.executable, str(script)], env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr[-2000:]
    work = run / "train/mood/sad"
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert not (work / "adapter").exists() and not (run / "endpoints").exists()

    ends = train_endpoints(_cfg(data_dir), run, progress=False)  # rerun: resumes the killed pole
    assert json.loads((work / "log.json").read_text())["resumed_from"] == "checkpoint-4"
    for pole in ("low", "high"):
        got, ref = _tensors(ends.adapter_dir("mood", pole)), _tensors(trained / "endpoints/mood" / pole)
        assert got.keys() == ref.keys()
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], atol=RESUME_ATOL, rtol=0)


def test_two_processes_give_valid_endpoints(data_dir, tmp_path):
    run = tmp_path / "run"
    (tmp_path / "cfg.yaml").write_text(_cfg(data_dir, max_steps=2).to_yaml())
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--nproc_per_node",
        "2",
        "-m",
        "clm",
        "train",
        "--config",
        str(tmp_path / "cfg.yaml"),
        "--run-dir",
        str(run),
        "--no-progress",
    ]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ends = clm.Endpoints.load(run / "endpoints")
    assert ends.attributes == ["mood"]
    for pole in ("low", "high"):
        factors = ends.factors("mood", pole)
        assert factors and all(f.B.abs().max() > 0 for f in factors.values())  # trained: B left zero-init
    log = json.loads((run / "train/mood/sad/log.json").read_text())
    assert log["world_size"] == 2 and log["steps"] == 2


def test_interrupted_adapter_write_leaves_nothing(data_dir, tmp_path, monkeypatch):
    from peft import PeftModel

    def broken(self, path, **kw):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "adapter_config.json").write_text("{")  # half written
        raise OSError("disk full")

    monkeypatch.setattr(PeftModel, "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        train_endpoints(_cfg(data_dir, max_steps=1, eval_fraction=0.0), tmp_path / "run", progress=False)
    assert not (tmp_path / "run/train/mood/sad/adapter").exists()
    assert not list((tmp_path / "run/train/mood/sad").glob(".adapter*"))  # the temp dir is cleaned up
    assert not (tmp_path / "run/endpoints").exists()


def _mood(low: dict, **over) -> dict:
    return {
        "attributes": [{"name": "mood", "low": {"name": "sad", **low}, "high": {"name": "glad", "path": "glad.txt"}}],
        **over,
    }


@pytest.mark.parametrize(
    "over, words",
    [
        (_mood({"path": "missing.jsonl"}), ["missing.jsonl", "does not exist"]),
        (_mood({"path": "empty.txt"}), ["empty.txt", "holds no texts"]),
        (_mood({"path": "sad.jsonl"}, block_size=4096), ["mood/sad", "fewer than the 2 block(s) of 4096"]),
        (_mood({"path": "mixed.csv", "field": "sentence"}), ["no field 'sentence'"]),
        (_mood({"path": "mixed.csv", "label_column": "lable", "label_value": 0}), ["no label column 'lable'"]),
        (
            _mood({"path": "mixed.csv", "label_column": "label", "label_value": 7}),
            ["label filter label='7' selects no rows"],
        ),
        (_mood({"path": "sad.jsonl"}, target_modules=["q_proj", "c_attn"]), ["target module 'c_attn'", "q_proj"]),
        (_mood({"path": "sad.jsonl"}, r=0), ["r must be a positive integer"]),
        (_mood({"path": "sad.jsonl"}, learnig_rate=1e-3), ["'learnig_rate'", "'learning_rate'"]),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(data_dir, tmp_path, over, words):
    (data_dir / "empty.txt").write_text("\n \n")
    run = tmp_path / "run"
    with pytest.raises(ClmError) as err:
        cfg = TrainConfig.from_dict({"preset": "tiny", "data_dir": str(data_dir), **over})
        train_endpoints(cfg, run, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    assert not run.exists()


def test_csv_label_filter_selects_a_pole(data_dir):
    from clm.train.trainer import load_pole

    cfg = TrainConfig.from_dict(
        _mood({"path": "mixed.csv", "label_column": "label", "label_value": 0}, preset="tiny", data_dir=str(data_dir))
    )
    data = load_pole(cfg, cfg.attribute("mood"), "low", pico_tokenizer())
    assert data.n_texts == len(SAD) * 12 and len(data.train) + len(data.eval) >= 2
    assert all(len(b) == cfg.block_size for b in data.train + data.eval)


def test_hub_dataset_source_goes_through_datasets(data_dir, monkeypatch):
    import datasets

    from clm.train.trainer import load_pole

    calls = []

    def fake_load(name, subset=None, split="train", **kw):
        calls.append((name, subset, split))
        return datasets.Dataset.from_dict({"sentence": SAD * 12 + GLAD * 12, "label": [0] * 36 + [1] * 36})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    pole = {"dataset": "someone/moods", "split": "train", "label_column": "label", "label_value": 1}
    cfg = TrainConfig.from_dict(_mood(pole, preset="tiny", data_dir=str(data_dir)))
    data = load_pole(cfg, cfg.attribute("mood"), "low", pico_tokenizer())
    assert calls == [("someone/moods", None, "train")]
    assert data.n_texts == 36 and data.file_sha256 is None and data.source == "hub:someone/moods[train] where label=1"
    bad = TrainConfig.from_dict(_mood({**pole, "field": "txt"}, preset="tiny"))
    with pytest.raises(ClmError, match="no field 'txt'"):
        load_pole(bad, bad.attribute("mood"), "low", pico_tokenizer())


def test_endpoints_of_another_base_are_refused(data_dir, tmp_path):
    from clm.core.models import build_pico

    other = tmp_path / "pico-other"
    build_pico(other, seed=1)
    clm.Endpoints.create(tmp_path / "run/endpoints", base=str(other))
    with pytest.raises(ClmError, match="fingerprints differ"):
        train_endpoints(_cfg(data_dir), tmp_path / "run", progress=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["endpoints"]


def test_tune_and_release_read_a_finished_run(trained, pico, tmp_path):
    """clm.tune's held-out losses and dev control, and clm.release's shipped copy and README."""
    import clm
    from clm.experiments import tune
    from clm.train import release

    losses = tune.held_out_losses(trained)
    for pole in ("sad", "glad"):
        rec = json.loads((trained / "train" / "mood" / pole / "log.json").read_text())
        assert losses["mood"][pole]["final_loss"] == rec["final_eval_loss"]
        assert losses["mood"][pole]["base_loss"] == next(e["eval_loss"] for e in rec["log"] if "eval_loss" in e)
    with pytest.raises(ClmError, match="no finished poles"):
        tune.held_out_losses(tmp_path)

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(6)))
    assert tune.dev_prompts(prompts, 3) == ["p3", "p4", "p5"]
    with pytest.raises(ClmError, match="overlap"):
        tune.dev_prompts(prompts, 4)

    im = clm.InterpolatedModel(*pico, clm.Endpoints.load(trained / "endpoints"))
    scorer = lambda texts: [len(t) % 7 / 7 for t in texts]  # noqa: E731 - any deterministic score
    res = tune.dev_control(
        im, ["mood"], ["Once", "It was"], {"mood": scorer}, samples=2, max_new_tokens=6, out_dir=tmp_path
    )["mood"]
    table = clm.experiments.tables.read_table(tmp_path / "dev_control.parquet")
    assert len(table) == 3 * 2 * 2  # base, α = 0, α = 1 x 2 prompts x 2 samples
    for a in (0.0, 1.0):
        texts = table[table.alpha_mood == a].continuation.fillna("").tolist()
        scored = [scorer([t])[0] for t in texts if t.strip()]
        assert res["by_alpha"][a] == pytest.approx(sum(scored) / len(scored))
        assert res["empty_by_alpha"][a] == sum(not t.strip() for t in texts) / len(texts)
    assert res["range"] == res["by_alpha"][1.0] - res["by_alpha"][0.0]

    sel = tmp_path / "selection.json"
    sel.write_text(json.dumps({"candidates": {"x": {"held_out": losses, "dev_control": {"mood": res}}}, "choice": "x"}))
    out = release.ship(trained, sel, tmp_path / "shipped")
    assert clm.Endpoints.load(out).attributes == ["mood"]
    text = (out / "README.md").read_text()
    for pole in ("sad", "glad"):
        rec = json.loads((out / "mood" / ("low" if pole == "sad" else "high") / "clm_adapter.json").read_text())
        assert rec["data"]["file_sha256"] in text
    assert "research use only" in text and "Chosen: **x**" in text
    assert "python -m clm train --preset" in text and "clm.cli_train" not in text  # today's command line
