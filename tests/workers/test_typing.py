"""Typing with libmagic: one call where the MIME type follows from the description, answers remembered by content.

The oracle is the `file` command (the same libmagic database fiwalk uses), run on
the very bytes typed, so a derived MIME type that drifts from libmagic's own fails here.
"""

from __future__ import annotations

import io
import json
import random
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from triage.workers.answers import magic_type, typing_stats
from triage.workers.digest import Digest, finish, stream
from triage.workers.refs import ContentOptions


def _picture(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((64, 48), 40).convert("RGB").save(out, fmt)
    return out.getvalue()


def _samples() -> dict[str, bytes]:
    rnd = random.Random(11)
    words = "ledger invoice wire offshore courier warehouse".split()
    line = " ".join(rnd.choice(words) for _ in range(12))
    return {
        "ascii": (line + "\n").encode() * 40,
        "crlf": (line + "\r\n").encode() * 40,
        "cr": (line + "\r").encode() * 40,
        "mixed-terminators": (line + "\r\n" + line + "\n").encode() * 20,
        "no-terminator": line.encode(),
        "long-lines": (line * 60 + "\n").encode() * 3,
        "utf8": ("café résumé naïve " + line + "\n").encode() * 30,
        "utf8-bom": b"\xef\xbb\xbf" + ("café " + line + "\n").encode() * 30,
        "iso-8859": ("café résumé " + line + "\n").encode("latin-1") * 30,
        "extended-ascii": (line + "\n").encode() * 20 + b"\x80\x81\x8d smart \x93quotes\x94\n",
        "escapes": (line + "\x1b[1mbold\x1b[0m\n").encode() * 20,
        "overstrike": ("b\bbo\bol\bld " + line + "\n").encode() * 20,
        # traps: text that libmagic types as something other than text/plain
        "html": b"<!DOCTYPE html>\n<html><head><title>x</title></head><body>" + line.encode() + b"</body></html>\n",
        "csv": "".join(f"{i},{rnd.choice(words)},{rnd.random():.4f}\n" for i in range(60)).encode(),
        "json": json.dumps({"rows": [{"id": i, "w": rnd.choice(words)} for i in range(40)]}).encode(),
        "python": b"#!/usr/bin/env python3\nimport sys\n\ndef main():\n    print(sys.argv)\n",
        "troff": b".TH TRIAGE 1\n.SH NAME\ntriage \\- evidence\n.SH SYNOPSIS\n" * 5,
        "subrip-utf16": "1\r\n00:00:01,000 --> 00:00:02,000\r\nhello\r\n\r\n".encode("utf-16"),
        "utf16-text": ("\ufeff" + line + "\n").encode("utf-16-le") * 10,
        # NUL bytes: libmagic reads no text then (its text tests are left out), except trailing NULs,
        # which it strips, and in UTF-16/32 after their byte-order marks
        "nul-in-text": (line + "\n").encode() * 10 + b"\0" + (line + "\n").encode() * 10,
        "trailing-nuls": (line + "\n").encode() * 20 + b"\0\0\0",
        "html-nul": b"<!DOCTYPE html>\n<html><head>\0<title>x</title></head><body>" + line.encode()
                    + b"</body></html>\n",
        "svg-nul": b'<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN">\n\0<svg></svg>\n',
        "utf32-text": (line + "\n").encode("utf-32") * 5,
        # a group whose first test (a NUL byte) needs nothing, but which acts only after finding a word
        "etl": b"\0" + rnd.randbytes(900) + ".etl\0".encode("utf-16-le") + rnd.randbytes(900),
        "random": rnd.randbytes(5000),
        "zeros": bytes(3000),
        "jpeg": _picture("JPEG"),
        "png": _picture("PNG"),
        "gif": _picture("GIF"),
    }


@pytest.fixture(scope="module")
def samples() -> dict[str, bytes]:
    return _samples()


@pytest.fixture(scope="module")
def file_oracle(samples: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """`file --mime-type -b` and `file -b` on each sample written out."""
    d = tmp_path_factory.mktemp("typing")
    paths = []
    for name, data in samples.items():
        (d / name).write_bytes(data)
        paths.append(str(d / name))

    def run(*flags: str) -> list[str]:
        return subprocess.run(["file", "-b", *flags, *paths], capture_output=True, text=True, check=True
                              ).stdout.splitlines()

    return {Path(p).name: (m, desc) for p, m, desc in zip(paths, run("--mime-type"), run(), strict=True)}


def test_answers_equal_the_file_command(samples: dict[str, bytes], file_oracle: dict[str, tuple[str, str]]) -> None:
    for name, data in samples.items():
        assert magic_type(data) == file_oracle[name], name


def test_mime_is_derived_only_where_libmagic_fixes_it(samples: dict[str, bytes]) -> None:
    """Plain text and "data" cost one libmagic call; everything else, traps included, two."""
    one = {"ascii", "crlf", "cr", "mixed-terminators", "no-terminator", "long-lines", "utf8", "utf8-bom", "iso-8859",
           "extended-ascii", "escapes", "overstrike", "random", "zeros", "nul-in-text", "trailing-nuls", "html-nul"}
    for name, data in samples.items():
        before = typing_stats()["libmagic_calls"]
        magic_type(data)
        assert typing_stats()["libmagic_calls"] - before == (1 if name in one else 2), name


def test_a_known_type_costs_one_call(samples: dict[str, bytes]) -> None:
    before = typing_stats()["libmagic_calls"]
    mime, desc = magic_type(samples["jpeg"], known_mime="image/jpeg")
    assert (mime, typing_stats()["libmagic_calls"] - before) == ("image/jpeg", 1)
    assert desc.startswith("JPEG image data")


def test_the_same_content_is_typed_once(samples: dict[str, bytes]) -> None:
    opts = ContentOptions(chunk_bytes=4096, magic_bytes=8192, max_image_bytes=1 << 20, max_image_pixels=10**6)
    data = samples["html"] + b"<!-- a unique tail -->"
    rows = []
    before = typing_stats()
    for _ in range(3):
        d = stream(Digest(len(data), opts), lambda pos, n: data[pos:pos + n], len(data))
        rows.append(finish(d, "page.html"))
    after = typing_stats()
    assert rows[0] == rows[1] == rows[2] and rows[0]["mime"] == "text/html"
    assert after["libmagic_calls"] - before["libmagic_calls"] == 2  # the first file only: description + MIME
    assert after["cache_hits"] - before["cache_hits"] == 2
    other = data + b"!"
    d = stream(Digest(len(other), opts), lambda pos, n: other[pos:pos + n], len(other))
    finish(d, "page2.html")
    assert typing_stats()["libmagic_calls"] - after["libmagic_calls"] == 2  # other content: typed again


def test_the_same_picture_is_phashed_once(samples: dict[str, bytes]) -> None:
    """A picture seen before by this worker thread (same sha256) is not decoded again."""
    opts = ContentOptions(chunk_bytes=1 << 16, magic_bytes=8192, max_image_bytes=1 << 20, max_image_pixels=10**6)
    data = samples["png"]
    before = typing_stats()
    rows = [finish(stream(Digest(len(data), opts), lambda pos, n: data[pos:pos + n], len(data)), f"{i}.png")
            for i in range(3)]
    after = typing_stats()
    assert rows[0]["phash"] is not None and rows[0]["phash"] == rows[1]["phash"] == rows[2]["phash"]
    assert (after["pictures"] - before["pictures"], after["phash_hits"] - before["phash_hits"]) == (3, 2)
    jpeg = samples["jpeg"]
    row = finish(stream(Digest(len(jpeg), opts), lambda pos, n: jpeg[pos:pos + n], len(jpeg)), "x.jpg")
    assert row["phash"] is not None and typing_stats()["phash_hits"] == after["phash_hits"]


def test_forgotten_answers_are_worked_out_again_and_the_same(samples: dict[str, bytes]) -> None:
    """forget_answers(), called from another thread (as Dask's client.run is), makes a worker thread
    type and pHash content it saw before again: what bench_run times for a new device on a warm cluster."""
    import threading

    from triage.workers.answers import forget_answers

    opts = ContentOptions(chunk_bytes=1 << 16, magic_bytes=8192, max_image_bytes=1 << 20, max_image_pixels=10**6)
    data = samples["png"] + b"forget"  # a unique tail after IEND: the same picture, content not seen before

    def row() -> dict:
        return finish(stream(Digest(len(data), opts), lambda pos, n: data[pos:pos + n], len(data)), "f.png")

    first, s0 = row(), typing_stats()
    assert row() == first and typing_stats()["phash_hits"] - s0["phash_hits"] == 1  # remembered
    s1 = typing_stats()
    t = threading.Thread(target=forget_answers)
    t.start(), t.join()
    again, s2 = row(), typing_stats()
    assert again == first
    assert (s2["phash_hits"] - s1["phash_hits"], s2["cache_hits"] - s1["cache_hits"]) == (0, 0)
    assert s2["libmagic_calls"] - s1["libmagic_calls"] == 2 and s2["pictures"] - s1["pictures"] == 1
    assert row() == first and typing_stats()["phash_hits"] - s2["phash_hits"] == 1  # remembered again


def _varied_files(n: int = 400) -> list[Path]:
    """Real files of many kinds from this machine (documentation, scripts, pictures, binaries, data)."""
    picked: dict[str, list[Path]] = {}
    for root in ("/usr/share/doc", "/usr/share/common-licenses", "/usr/share/misc", "/usr/bin", "/usr/share/mime",
                 "/usr/share/perl", "/usr/share/zoneinfo", "/etc"):
        for p in sorted(Path(root).rglob("*"))[:3000]:
            if p.is_file() and not p.is_symlink() and len(picked.setdefault(p.suffix.lower(), [])) < 12:
                picked[p.suffix.lower()].append(p)
    files = [p for ps in picked.values() for p in ps]
    return files[:: max(1, len(files) // n)]


def test_the_literals_a_buffer_holds_are_all_found() -> None:
    """Which magic literals a buffer contains decides its reduced database: Hyperscan's literal API
    finds those without a NUL byte, ``in`` the others; together exactly what a plain search finds."""
    from triage.workers.magictyper import shared, typer

    if shared() is None or shared()[2] is None:
        pytest.skip("no reduced databases or no Hyperscan on this machine")
    t = typer()
    lits = t.db.literals
    assert any(b"\0" in lit for lit, _ in lits) and any(fold for _, fold in lits)  # both paths and case folding
    rng = random.Random(11)
    bufs = [rng.randbytes(8192), bytes(rng.choice(b"abcdefghij <>/=\n\"'") for _ in range(8192)), b"", b"\0" * 64]
    for _ in range(60):  # literals planted at random places, folded ones in random case
        buf = bytearray(rng.randbytes(rng.randint(0, 4096)))
        for lit, fold in rng.sample(lits, 12):
            word = bytes(c ^ 0x20 if fold and chr(c).isalpha() and rng.random() < 0.5 else c for c in lit)
            at = rng.randint(0, len(buf))
            buf[at:at] = word
        bufs.append(bytes(buf))
    for buf in bufs:
        low = buf.lower()
        assert t.present(buf) == frozenset(i for i, (lit, fold) in enumerate(lits) if lit in (low if fold else buf))


def test_reduced_databases_answer_as_file_on_varied_files(tmp_path: Path) -> None:
    """Each buffer is typed with a magic database left without the tests that cannot match it; the
    answers are still exactly libmagic's with its whole database, and `file`'s on the same 8 KiB
    prefixes, for hundreds of kinds of files. (`file` on a file adds what only a descriptor shows,
    ELF program headers and a gzip's trailer, which no buffer typing sees: those are compared with
    libmagic's whole database only.)"""
    import magic

    from triage.workers import magictyper

    typer = magictyper.typer()
    assert typer is not None, "libmagic 5.44 with one compiled database: the reduced databases must be in use"
    heads = []
    for i, p in enumerate(_varied_files()):
        try:
            head = p.read_bytes()[:8192]
        except OSError:
            continue
        if not head:  # `file` says inode/x-empty of an empty file, libmagic application/x-empty of b""
            continue
        (tmp_path / str(i)).write_bytes(head)
        heads.append((str(tmp_path / str(i)), head))

    def run(*flags: str) -> list[str]:
        return subprocess.run(["file", "-b", *flags, *(p for p, _ in heads)], capture_output=True, text=True,
                              check=True).stdout.splitlines()

    cli = list(zip(run(), run("--mime-type"), strict=True))
    whole_d, whole_m = magic.Magic(), magic.Magic(mime=True)
    whole = [(whole_d.from_buffer(h), whole_m.from_buffer(h)) for _, h in heads]
    got = [(typer(h), typer(h, magictyper.MIME_TYPE)) for _, h in heads]
    assert len(heads) > 150
    assert [(p, g) for (p, _), g, w in zip(heads, got, whole, strict=True) if g != w] == []
    fd_only = [w for w, c in zip(whole, cli, strict=True) if w != c]
    assert all(d.startswith(("ELF ", "gzip compressed data")) for d, _ in fd_only)
    assert len(fd_only) < len(heads) / 5
    assert len({typer.database(h) for _, h in heads}) > 1  # not one database for everything


def test_a_text_file_is_typed_without_most_of_the_database(samples: dict[str, bytes]) -> None:
    """Plain text is tried against a few hundred of the ~3,500 top-level tests; a word one of the
    dropped tests looks for (``namespace``) brings that test back, and the answer follows it."""
    from triage.workers import magictyper

    typer = magictyper.typer()
    whole = len(typer.db.groups)
    plain = typer.kept(typer.database(samples["ascii"])).bit_count()
    assert plain < whole / 3
    cpp = b"#include <vector>\nnamespace triage {\nclass Ledger {\n public:\n  int n;\n};\n}\n"
    assert typer.kept(typer.database(cpp)).bit_count() > plain
    assert typer(cpp) == magic_type(cpp)[1] and "C++" in typer(cpp)


def _groups(typer, mask: int) -> set[int]:
    return {i for i in range(len(typer.db.groups)) if mask >> i & 1}


def test_a_buffer_libmagic_cannot_read_as_text_is_typed_without_the_text_tests(samples: dict[str, bytes]) -> None:
    """Rule D: with a NUL byte before its trailing NULs and no UTF-16/32 byte-order mark, libmagic
    makes no text pass, so no text-only test is kept, and the one test of both passes (SVG's) is
    kept only where its word ("<!doctype", case-folded) is in the buffer itself. Trailing NULs and
    a UTF-32 text keep the text tests (libmagic reads those as text). The answers are the whole
    database's either way."""
    import magic

    from triage.workers import magictyper

    typer = magictyper.typer()
    groups = typer.db.groups
    text_only = {i for i, g in enumerate(groups) if g.text and not g.binary}
    both = {i for i, g in enumerate(groups) if g.text and g.binary}
    assert text_only and both
    kept = {name: _groups(typer, typer.kept(typer.database(samples[name])))
            for name in ("nul-in-text", "html-nul", "random", "svg-nul", "trailing-nuls", "utf32-text", "ascii")}
    for name in ("nul-in-text", "html-nul", "random"):
        assert not kept[name] & text_only, name
    assert not (kept["nul-in-text"] | kept["random"]) & both        # no "<!doctype" in them
    assert both <= kept["html-nul"]                                 # "<!DOCTYPE html": SVG's word (case-folded)
    assert both <= kept["svg-nul"] and not kept["svg-nul"] & text_only
    for name in ("trailing-nuls", "utf32-text", "ascii"):
        assert kept[name] & text_only, name
    whole_d, whole_m = magic.Magic(), magic.Magic(mime=True)
    for name in kept:
        data = samples[name]
        assert (typer(data), typer(data, magictyper.MIME_TYPE)) == (whole_d.from_buffer(data),
                                                                    whole_m.from_buffer(data)), name


def test_a_group_that_acts_only_after_finding_a_word_is_left_out_without_it(samples: dict[str, bytes]) -> None:
    """A group whose first test needs no literal (a NUL first byte) but which prints nothing until a
    `search` finds ".etl" in UTF-16 is left out of a buffer without that word, and kept, and
    answering "Windows Event Trace Log", with it."""
    import magic

    from triage.workers import magictyper

    typer = magictyper.typer()
    word = ".etl\0".encode("utf-16-le")
    etl = [i for i, g in enumerate(typer.db.groups)
           if g.literal and word in [typer.db.literals[k][0] for k in g.literal]]
    assert etl and typer.db.groups[etl[0]].first == frozenset({0})
    with_word = samples["etl"]
    without = with_word.replace(word, b"\1" * len(word))
    assert etl[0] in _groups(typer, typer.kept(typer.database(with_word)))
    assert etl[0] not in _groups(typer, typer.kept(typer.database(without)))
    assert typer(with_word) == magic.Magic().from_buffer(with_word) == "Windows Event Trace Log"
    assert typer(without) == magic.Magic().from_buffer(without)


def test_reduced_databases_answer_as_the_whole_one_on_planted_words() -> None:
    """Random buffers (first byte NUL, random or printable; with NULs inside or not) with words the
    reduced databases filter on planted at random places: every answer, description and MIME type,
    is the whole database's."""
    import magic

    from triage.workers import magictyper

    typer = magictyper.typer()
    lits = [lit for lit, _ in typer.db.literals]
    rng = random.Random(23)
    whole_d, whole_m = magic.Magic(), magic.Magic(mime=True)
    for _ in range(150):
        buf = bytearray(rng.choice([rng.randbytes, lambda n: bytes(rng.choice(b"abc <>=/\n") for _ in range(n))])(
            rng.randint(16, 4096)))
        buf[0] = rng.choice([0, buf[0], 0x30, ord("<")])
        for word in rng.sample(lits, rng.randint(0, 3)):
            at = rng.randint(0, len(buf))
            buf[at:at] = word
        data = bytes(buf)
        assert (typer(data), typer(data, magictyper.MIME_TYPE)) == (whole_d.from_buffer(data),
                                                                    whole_m.from_buffer(data)), data[:64]


def test_a_buffers_class_is_worked_out_once_for_both_calls(samples: dict[str, bytes]) -> None:
    """The description and then the MIME type of one buffer cost one class lookup (literal scan and
    all), not two; a different buffer, even with equal bytes, is looked up again and answered as
    itself."""
    from triage.workers import magictyper

    typer = magictyper.typer()
    looked: list[bytes] = []
    lookup = typer.database
    typer.database = lambda head: looked.append(head) or lookup(head)  # count the lookups (instance attribute)
    jpeg, text = samples["jpeg"], samples["ascii"]
    pairs = [(typer(b), typer(b, magictyper.MIME_TYPE)) for b in (jpeg, text, bytes(bytearray(jpeg)))]
    assert len(looked) == 3                                   # one per buffer object, not one per call
    assert pairs[0] == pairs[2] == magic_type(jpeg)[::-1]
    assert pairs[1] == magic_type(text)[::-1]
    assert typer(text, magictyper.MIME_TYPE) == "text/plain" and typer(jpeg) == pairs[0][0] and len(looked) == 5


@pytest.mark.parametrize(("rx", "clause"), [
    (rb"^[[:space:]]*(class|module)[[:space:]][A-Z]", (b"class", b"module")),
    (rb"typeof.*[!=]==", (b"typeof",)),
    (rb"^(CFLAGS|VPATH|all:)", (b"CFLAGS", b"VPATH", b"all:")),
    (b"^[!-?A-~]{1,255}(\t[^\t]+){11}", (b"\t",)),
    (rb"ha:pcb-v[0-9]+[ \t]*[{]", (b"ha:pcb-v",)),
    (rb"abcd?e", None),           # the optional d splits the run: "abc" and "e" are too short
    (rb"x(abcde)?y", None),       # an optional group requires nothing
    (rb"abcd|e", None),           # one branch without a literal
    (rb"wxz+abcde", (b"abcde",)),  # "wxz" then more z: no run goes on past it ("wxzabcde" is not required)
    (rb"\.PRECIOUS", (b".PRECIOUS",)),
    (rb"\<word", None),           # an escape that is not a literal ends the run (and "word" is 4)
])
def test_literals_a_regular_expression_requires(rx: bytes, clause: tuple | None) -> None:
    from triage.workers.magicere import Ere

    got = Ere(rx).requirement()
    assert got == clause or (clause is None and (got is None or rx == rb"\<word"))


def test_the_whole_database_where_its_path_is_not_one_compiled_file(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from triage.workers import magictyper

    lib = magictyper._lib()
    assert magictyper.default_database_path(lib) is not None
    extra = tmp_path / "magic"
    extra.write_text("0 string TRIAGE-TEST triage test file\n")
    monkeypatch.setenv("MAGIC", f"{extra}:/usr/share/misc/magic")
    assert magictyper.default_database_path(lib) is None
