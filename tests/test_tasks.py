"""Tests for scaling_lib.training.tasks: construction, balance, determinism, caching, BIG-bench reading."""

import io
import json
import random
import subprocess
import sys
import tarfile
from collections import Counter

import numpy as np
import pytest

from scaling_lib.training import tasks
from scaling_lib.training.tasks import bigbench, generators, items, sentences, suite
from scaling_lib.training.tokenizer import train_tokenizer

# A small synthetic English: enough agreement words, articles and frequency spread.
ADJ = ["old", "young", "small", "quiet", "brave", "tired", "honest", "early", "angry", "happy",
       "gentle", "proud", "silent", "bright", "heavy", "cold", "warm", "strange", "simple", "large"]
NOUN_S = ["man", "woman", "dog", "farmer", "captain", "sailor", "teacher", "child", "horse",
          "soldier", "doctor", "writer", "king", "judge", "bird", "officer", "engineer", "artist"]
NOUN_THING = ["apple", "island", "engine", "orange", "idea", "house", "ship", "letter", "road",
              "garden", "river", "window", "table", "book", "stone", "umbrella", "anchor", "boat"]
VERB = ["walked", "looked", "waited", "stood", "rested", "worked", "listened", "sang", "slept",
        "watched", "turned", "moved", "stayed", "ran", "returned", "arrived"]
PREP = ["near", "beside", "behind", "toward", "across", "under", "around", "through"]
ADV = ["slowly", "quietly", "often", "never", "always", "soon", "later", "again", "still"]


def _art(word):
    return "an" if word[0] in "aeiou" else "a"


def _sentence(r):
    kind = r.randrange(5)
    n, t, a = r.choice(NOUN_S), r.choice(NOUN_THING), r.choice(ADJ)
    if kind == 0:   # singular agreement
        v = r.choice(["is", "was", "has"])
        tail = f"{r.choice(ADV)} {a}" if v != "has" else f"the {a} {t}"
        return f"The {n} {v} {tail} and {r.choice(VERB)} {r.choice(PREP)} the {r.choice(NOUN_THING)}."
    if kind == 1:   # plural agreement
        v = r.choice(["are", "were", "have"])
        tail = f"{r.choice(ADV)} {a}" if v != "have" else f"the {a} {t}s"
        return f"The {n}s {v} {tail} and {r.choice(VERB)} {r.choice(PREP)} the {r.choice(NOUN_THING)}."
    if kind == 2:   # article
        x = r.choice([t, a + " " + t])
        return (f"The {n} {r.choice(VERB)} {r.choice(PREP)} {_art(x)} {x} "
                f"{r.choice(ADV)} in the {r.choice(['morning', 'evening', 'night'])}.")
    if kind == 3:
        return (f"The {a} {n} {r.choice(VERB)} {r.choice(ADV)} {r.choice(PREP)} the {t} "
                f"and the {r.choice(ADJ)} {r.choice(NOUN_THING)}.")
    return (f"Then the {n} {r.choice(VERB)} {r.choice(PREP)} the {r.choice(ADJ)} {t} "
            f"{r.choice(ADV)}.")


def make_docs(n_docs=60, n_sent=25, seed=1):
    r = random.Random(seed)
    return [" ".join(_sentence(r) for _ in range(n_sent)) for _ in range(n_docs)]


@pytest.fixture(scope="module")
def docs():
    return make_docs()


@pytest.fixture(scope="module")
def tok(docs):
    return train_tokenizer(docs, vocab_size=300)


@pytest.fixture(scope="module")
def built(docs, tok):
    return tasks.build_project_tasks(docs, tok, n_items=120, seed=0)


def test_eight_project_tasks_with_items(built):
    assert [t.name for t in built] == list(tasks.PROJECT_TASKS)
    for t in built:
        assert t.source == "project"
        assert len(t) >= 60, (t.name, len(t))
        assert t.scoring == tasks.PROJECT_TASKS[t.name][1]


def test_chance_levels(built):
    expected = {"cloze_last4": 0.25, "cloze_mid4": 0.25, "next_sentence": 0.25}
    for t in built:
        assert t.chance == pytest.approx(expected.get(t.name, 0.5))
        assert set(t.n_options) == {round(1 / t.chance)}


def test_answers_balanced_over_positions(built):
    for t in built:
        k = len(t.items[0].options)
        c = Counter(it.answer for it in t.items)
        assert set(c) == set(range(k)), t.name
        assert max(c.values()) - min(c.values()) <= 1, (t.name, c)
        for n in (k, 3 * k, 10 * k):        # every prefix is balanced too
            assert Counter(it.answer for it in t.items[:n]) == {j: n // k for j in range(k)}


def test_distractors_differ_from_answer(built):
    for t in built:
        for it in t.items:
            ans = it.options[it.answer]
            assert all(o != ans for j, o in enumerate(it.options) if j != it.answer)
            assert len(set(it.options)) == len(it.options)


def test_deterministic_and_seed_dependent(docs, tok, built):
    again = tasks.build_project_tasks(docs, tok, n_items=120, seed=0)
    assert again == built
    other = tasks.build_project_tasks(docs, tok, n_items=120, seed=1)
    assert other[0].items != built[0].items


def test_agreement_and_article_directions_balanced(built):
    by = {t.name: t for t in built}
    pairs = Counter()
    for it in by["agreement"].items:
        orig, var = it.options[it.answer].split(), it.options[1 - it.answer].split()
        diff = [(a, b) for a, b in zip(orig, var) if a != b]
        assert len(diff) == 1 and tasks.AGREEMENT_PAIRS[diff[0][0]] == diff[0][1]
        pairs[diff[0][0]] += 1
    assert set(pairs) == set(tasks.AGREEMENT_PAIRS) and len(set(pairs.values())) == 1
    arts = Counter()
    for it in by["article"].items:
        orig, var = it.options[it.answer].split(), it.options[1 - it.answer].split()
        diff = [(a, b) for a, b in zip(orig, var) if a != b]
        assert len(diff) == 1 and diff[0] in {("a", "an"), ("an", "a")}
        arts[diff[0][0]] += 1
    assert arts["a"] == arts["an"] > 0


def test_swap_and_replace_are_minimal(built):
    by = {t.name: t for t in built}
    for it in by["swap_adjacent"].items:
        o = it.options[it.answer].rstrip(".!?").split()
        v = it.options[1 - it.answer].rstrip(".!?").split()
        d = [i for i in range(len(o)) if o[i] != v[i]]
        assert len(d) == 2 and d[1] == d[0] + 1 and o[d[0]] == v[d[1]] and o[d[1]] == v[d[0]]
        assert d[0] >= 1 and d[1] <= len(o) - 2           # first and last words stay
    for it in by["replace_word"].items:
        o, v = it.options[it.answer].split(), it.options[1 - it.answer].split()
        assert len(o) == len(v) and sum(a != b for a, b in zip(o, v)) == 1


def test_cloze_distractors_matched_on_tokens_and_frequency(docs, tok, built):
    by = {t.name: t for t in built}
    counts = tasks.word_counts(docs)
    ntok = lambda s: len(tok.encode(s).ids)  # noqa: E731
    for name in ("cloze_last4", "cloze_last2", "cloze_mid4"):
        for it in by[name].items:
            lens = {ntok(o) for o in it.options}
            assert len(lens) == 1, (name, it.options)
            words = [o.split()[0] for o in it.options]
            assert all(counts[w] >= 2 for w in words)
    # every option of next_sentence is a real sentence; the answer continues the context
    for it in by["next_sentence"].items:
        assert all(o.startswith(" ") and o.strip()[0].isupper() for o in it.options)


def test_word_pool_neighbours():
    c = Counter({w: n for w, n in zip("abcdefghij", range(20, 0, -2))})
    pool = tasks.WordPool(c, lambda w: 1, min_count=2, window=4)
    assert sorted(pool.neighbours("e")) == ["c", "d", "f", "g"]
    assert "e" not in pool.draw("e", 3, np.random.default_rng(0))
    assert pool.draw("e", 5, np.random.default_rng(0)) is None


def test_sentence_rules():
    assert tasks.clean_sentence("The dog ran [3] miles to the old mill.") is None
    assert tasks.clean_sentence("The dog ran 3 miles to the old mill.") is not None
    assert tasks.clean_sentence("the dog ran far to the old mill.") is None
    assert tasks.clean_sentence("The dog ran.") is None
    words, end = tasks.clean_sentence("The dog ran far to the old mill!")
    assert words[-1] == "mill" and end == "!"


def test_items_validate():
    with pytest.raises(ValueError, match="answer index 2"):
        tasks.Item("x", ("a", "b"), 2)
    with pytest.raises(ValueError, match="duplicate options"):
        tasks.Item("x", ("a", "a"), 0)
    with pytest.raises(ValueError, match="scoring must be one of"):
        tasks.Task("t", "d", 0.5, "mean", (tasks.Item("", ("a", "b"), 0),))


def test_no_usable_text_is_a_clear_error(tok):
    with pytest.raises(ValueError, match="no usable sentences"):
        tasks.build_project_tasks(["1 2 3. 4 5 6."], tok)
    with pytest.raises(ValueError, match="no held-out documents"):
        tasks.build_project_tasks([], tok)


def _fake_bigbench(path, n_siqa=30):
    siqa = {"name": "social_iqa", "description": "social questions",
            "append_choices_to_input": True,
            "examples": [{"input": f"Q{i}?", "target_scores": {"yes": int(i % 3 == 0),
                          "no": int(i % 3 == 1), "maybe": int(i % 3 == 2)}}
                         for i in range(n_siqa)]
            + [{"input": "Two?", "target_scores": {"left": 1, "right": 0}}]}
    hyp = {"name": "hyperbaton", "description": "adjective order",
           "examples": [{"input": f"Which {i}", "target_scores": {"a": i % 2, "b": 1 - i % 2}}
                        for i in range(10)]}
    with tarfile.open(path, "w:gz") as tf:
        for name, rec in [("hyperbaton", hyp), ("social_iqa", siqa)]:
            data = json.dumps(rec).encode()
            info = tarfile.TarInfo(f"bigbench-1.0.0/bigbench/benchmark_tasks/{name}/task.json")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_read_bigbench(tmp_path):
    tb = _fake_bigbench(tmp_path / "bb.tar.gz")
    siqa, hyp = tasks.read_bigbench_tasks(tb, max_items=1000)
    assert siqa.source == hyp.source == "bigbench"
    assert len(siqa) == 31 and siqa.chance == pytest.approx((30 / 3 + 1 / 2) / 31)
    assert hyp.chance == 0.5 and hyp.scoring == "total" and siqa.scoring == "normalised"
    it = siqa.items[1]
    assert it.options[it.answer] == " no" and "choice: maybe" in it.context
    assert it.context.startswith("Q: Q1?") and it.context.endswith("\nA:")
    sub = tasks.read_bigbench_tasks(tb, ["social_iqa"], max_items=7)[0]
    assert len(sub) == 7
    assert sub == tasks.read_bigbench_tasks(tb, ["social_iqa"], max_items=7)[0]


def test_bigbench_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="BIG-bench sdist tarball not found"):
        tasks.read_bigbench_tasks(tmp_path / "none.tar.gz")
    tb = _fake_bigbench(tmp_path / "bb.tar.gz")
    with pytest.raises(ValueError, match=r"\['winowhy'\] not found"):
        tasks.read_bigbench_tasks(tb, ["hyperbaton", "winowhy"])
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(ValueError, match="cannot read BIG-bench tarball"):
        tasks.read_bigbench_tasks(bad)


def test_suite_cache_roundtrip_and_invalidation(tmp_path, docs, tok):
    tb = _fake_bigbench(tmp_path / "bb.tar.gz")
    kw = dict(n_items=40, texts=docs, tokenizer=tok, bigbench_tarball=tb)
    suite = tasks.build_suite(tmp_path / "cache", **kw)
    path = tmp_path / "cache" / "tasks" / "suite.json"
    assert path.is_file()
    assert [t.name for t in suite][-2:] == ["social_iqa", "hyperbaton"]
    stamp = path.stat().st_mtime_ns
    assert tasks.build_suite(tmp_path / "cache", **kw) == suite
    assert path.stat().st_mtime_ns == stamp          # served from the cache
    changed = tasks.build_suite(tmp_path / "cache", **{**kw, "texts": docs[:-1]})
    assert path.stat().st_mtime_ns != stamp          # new texts -> rebuilt
    assert [t.name for t in changed] == [t.name for t in suite]


def test_load_suite_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="task suite file not found"):
        tasks.load_suite(tmp_path / "x.json")
    p = tmp_path / "bad.json"
    p.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        tasks.load_suite(p)
    p.write_text(json.dumps({"format": 99, "tasks": []}))
    with pytest.raises(ValueError, match="unknown format"):
        tasks.load_suite(p)


def test_package_exports_the_public_api():
    """Every public function and class of the submodules is re-exported as ``tasks.<name>``."""
    homes = (items, sentences, generators, bigbench, suite)
    defined = {n for mod in homes for n, v in vars(mod).items() if not n.startswith("_") and callable(v)
               and getattr(v, "__module__", None) == mod.__name__}
    assert defined == {n for n in tasks.__all__ if callable(getattr(tasks, n))}
    for name in tasks.__all__:
        home = next(m for m in homes if name in vars(m))
        assert getattr(tasks, name) is getattr(home, name), name
    assert {"Item", "Task", "build_project_tasks", "read_bigbench_tasks", "save_suite", "load_suite",
            "build_suite", "task_from_dict", "PROJECT_TASKS", "BIGBENCH_TASKS", "main"} <= set(tasks.__all__)
    assert tasks._swap_adjacent is generators._swap_adjacent  # used by tests/test_evals.py


def test_module_entry_point():
    res = subprocess.run([sys.executable, "-m", "scaling_lib.training.tasks", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "Build the downstream task suite" in res.stdout
