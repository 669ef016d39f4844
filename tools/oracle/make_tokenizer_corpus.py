#!/usr/bin/env python3
"""Writes the tokenizer oracle data under tests/data/tokenizer/ from HF `tokenizers`.

  corpus.jsonl        one {"text": s, "v4": ids[, "v41": ids]} per line: expected ids of
                      the real V4 tokenizer (and of V4.1 where they differ) for >= 2,000
                      strings, generated below plus hand-written cases.
  invalid_utf8.jsonl  {"hex": bytes, "v4": ids, "byte_ids": ids, "decoded": text}: ids of
                      bytes.decode("utf-8", "replace"), the documented meaning of invalid UTF-8
                      input in Lantern; and HF's decode of the bytes as single-byte tokens
                      (U+FFFD for invalid sequences), which streaming decoding must match.
  flags/tokenizer.json + flags.jsonl
                      a tiny byte-level BPE whose added tokens use lstrip, rstrip,
                      single_word and normalized (the real files set none of them).

Run from the repository root with the oracle venv:
  tools/oracle/.venv/bin/python tools/oracle/make_tokenizer_corpus.py
The output is deterministic (fixed seed); commit it. Tests never run Python.
"""
import json
import os
import random

from tokenizers import Tokenizer

ASSETS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "assets", "deepseek-v4")
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "tokenizer")
V4 = os.path.join(ASSETS, "tokenizer-v4", "tokenizer.json")
V41 = os.path.join(ASSETS, "tokenizer-v41", "tokenizer.json")

HAND = [
    "Hello! 毕老师！1 + 1 = 2 ĠÑĤÐ²ÑĬÑĢ",
    "<｜User｜>你好<｜Assistant｜><think>推理</think>答案<｜end▁of▁sentence｜>",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you'll see it's what they've done; we'd've known.",
    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<!DOCTYPE html>",
    "def f(x):\n    return x ** 2  # square\n\n\nprint(f(3))\n",
    "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    "for (size_t i = 0; i < n; i++) a[i] += b[i] * c;",
    '{"key": [1, 2.5, -3e10, true, null], "nested": {"a": "b"}}',
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "https://example.com/path?query=1&b=%20x#frag",
    "user@example.org, +1 (555) 123-4567",
    "深度求索公司成立于2023年，专注于人工智能基础模型的研究。",
    "今日は良い天気ですね。カタカナとひらがなと漢字。",
    "ｶﾀｶﾅ（半角）と全角ＡＢＣ１２３",
    "안녕하세요, 세계! 한국어 텍스트입니다.",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Γειά σου Κόσμε· αβγδε",
    "مرحبا بالعالم ١٢٣٤٥",
    "שלום עולם",
    "नमस्ते दुनिया १२३",
    "สวัสดีชาวโลก",
    "e\u0301 a\u0300\u0316 n\u0303 Z\u0351\u0362a\u0336\u0315l\u0327g\u0337o\u0334",
    "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 thumbs, 🇨🇳🇺🇸 flags, 1️⃣ keycap",
    "🙂🙃😀 emoji run 🤖🚀",
    "∑_{i=1}^{n} x_i² ≤ ∞ ∀ε>0 ∃δ",
    "½ ¾ ² ³ Ⅻ ⅷ ① ⑳ 〇",
    "0 00 000 0000 12345 1234567 123456789012345678901234567890",
    "3.14159265358979 -0.5 1e-9 1,234,567.89 ６７８ ٣٤",
    "   leading spaces",
    "trailing spaces   ",
    "a\tb\t\tc\t\t\td",
    "\n\n\nthree newlines",
    "line1\r\nline2\r\n\r\nline3",
    "mixed \t \n \r\n  \u3000 \xa0 \x85 \u2028 \u2029 \v \f end",
    "a  \x85\n b",
    "a \u180e b a\u180e\u180eb \u180e\n",
    "\x1c\x1d\x1e\x1f \x1c x \x1f",
    "x\u200b y \u200d z \ufeff w",
    "",
    " ",
    "\n",
    "\t",
    "<｜User",
    "｜User｜>",
    "<｜<｜User｜>｜>",
    "<think><think></think></think>",
    "<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n",
    "<dsml:invoke></dsml:invoke>",
    "<|EOT|><|place_holder_mm_span_0021|>",
    "<｜begin▁of▁sentence｜><｜begin▁of▁sentence｜>",
    "Ġ Ċ ĉ Ā ā",
    "\x00\x01\x02 control \x1b[31mred\x1b[0m",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 𠀀𠀁 non-BMP",
    "«quotes» „low“ ‘single’ “double” 「括弧」 『二重』",
    "em—dash en–dash … ellipsis",
    "___init___ ---- ==== **** //// \\\\\\\\ ~~~~",
    "!!!??? ...,,, ;;; ::: ''' \"\"\"",
    "ALLCAPS CamelCase snake_case kebab-case",
    "don't DON'T Don't",
]

FRAGMENTS = [
    "the", "The", "of", "and", "tokenizer", "Lantern", "DeepSeek", "V4", "model", "inference",
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\u3000", "\xa0",
    "0", "7", "42", "100", "2024", "31415", "9999999", "１２", "٣",
    ".", ",", "!", "?", "'s", "'t", "-", "_", "(", ")", "[", "]", "{", "}", "<", ">", "/", "\\", "\"",
    "==", "->", "::", "#", "@", "$", "%", "^", "&", "*", "+", "|", "~", "`",
    "中", "国", "人工智能", "模型", "的", "。", "，", "日本語", "ひらがな", "カタカナ", "ー",
    "한국", "어", "Привет", "мир", "Ελλάδα", "عربى", "हिन्दी", "ไทย",
    "é", "e\u0301", "ñ", "ü", "ß", "ø", "\u0300", "\u0308",
    "😀", "👍🏽", "👨‍💻", "🏳️‍🌈", "❤️", "⭐", "🇯🇵",
    "def", "return", "if", "else", "int", "char*", "//", "/*", "*/", "0x1F", "\\n",
]


def added_tokens(path):
    with open(path, encoding="utf-8") as f:
        return [a["content"] for a in json.load(f)["added_tokens"]]


def numbers(rng):
    out = []
    for n in range(1, 41):
        out.append("".join(rng.choice("0123456789") for _ in range(n)))
        out.append("x" + "".join(rng.choice("0123456789") for _ in range(n)) + " y")
    out += ["١٢٣٤٥٦٧", "१२३४५६", "１２３４５６７", "²³¹⁴", "ⅠⅡⅢⅣ", "½¼¾⅓"]
    return out


def whitespace(rng):
    pool = [" ", "\t", "\n", "\r\n", "\r", "\u3000", "\xa0", "\x85", "\u2028", "\v", "\f"]
    out = []
    for _ in range(150):
        ws = "".join(rng.choice(pool) for _ in range(rng.randint(1, 8)))
        out.append(rng.choice(["a", "1", "中", "!", ""]) + ws + rng.choice(["b", "2", "文", "?", ""]))
    return out


def with_tokens(rng, toks):
    out = []
    for tok in toks:
        pre = rng.choice(["", " ", "text", "中文", "\n", "x ", "12"])
        post = rng.choice(["", " ", "more", "。", "\n\n", " y", "3"])
        out.append(pre + tok + post)
    for _ in range(60):
        out.append(" ".join(rng.choice(toks) for _ in range(rng.randint(2, 4))))
        out.append("".join(rng.choice(toks) for _ in range(rng.randint(2, 4))))
    return out


def mixes(rng, count):
    return ["".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 40))) for _ in range(count)]


def invalid_bytes(rng):
    cases = [b"\xff", b"\xc0\x80", b"\xe4\xbd", b"a\xe4\xbdb", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
             b"\xf0\x9f\x98", b"\x80\x80\x80", b"ok \xfe\xff ok", b"\xe2\x82\xac\xe2\x82", b"\xf8\x88\x80\x80\x80",
             "中文".encode() + b"\xb8" + "字".encode()]
    good = "Hello 中文 😀".encode()
    for _ in range(40):
        b = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        cases.append(bytes(b))
    return cases


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def make_corpus():
    rng = random.Random(20260731)
    tv4, tv41 = Tokenizer.from_file(V4), Tokenizer.from_file(V41)
    toks = sorted(set(added_tokens(V4)) | set(added_tokens(V41)))
    texts = HAND + numbers(rng) + whitespace(rng) + with_tokens(rng, toks) + mixes(rng, 700)
    texts.append(" ".join(HAND) * 3)  # one long string
    seen, rows = set(), []
    for s in texts:
        if s in seen:
            continue
        seen.add(s)
        a, b = tv4.encode(s).ids, tv41.encode(s).ids
        assert tv4.decode(a, skip_special_tokens=False) == s, repr(s)
        row = {"text": s, "v4": a}
        if b != a:
            row["v41"] = b
        rows.append(row)
    write_jsonl(os.path.join(OUT, "corpus.jsonl"), rows)
    b2u = bytes_to_unicode()
    bad = []
    for b in invalid_bytes(rng):
        byte_ids = [tv4.token_to_id(b2u[c]) for c in b]  # one single-byte token per byte
        bad.append({"hex": b.hex(), "v4": tv4.encode(b.decode("utf-8", "replace")).ids, "byte_ids": byte_ids,
                    "decoded": tv4.decode(byte_ids)})
    write_jsonl(os.path.join(OUT, "invalid_utf8.jsonl"), bad)
    print(f"corpus.jsonl: {len(rows)} strings ({sum('v41' in r for r in rows)} differ in V4.1); "
          f"invalid_utf8.jsonl: {len(bad)}")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def make_flags():
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = []
    for word in ["ab", "abc", " a", "xy"]:
        sym = [b2u[c] for c in word.encode()]
        while len(sym) > 1:
            merges.append(sym[0] + " " + sym[1])
            sym = [sym[0] + sym[1]] + sym[2:]
            vocab.setdefault(sym[0], len(vocab))
    flags = [("<L>", dict(lstrip=True)), ("<R>", dict(rstrip=True)), ("<LR>", dict(lstrip=True, rstrip=True)),
             ("word", dict(single_word=True)), ("<N>", dict(normalized=True)), ("<N>x", dict(normalized=False)),
             ("<S>", dict(special=True))]
    added = []
    for i, (content, f) in enumerate(flags):
        a = dict(id=len(vocab) + i, content=content, single_word=False, lstrip=False, rstrip=False, normalized=False,
                 special=False)
        a.update(f)
        added.append(a)
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
          "normalizer": {"type": "Sequence", "normalizers": []},
          "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
              {"type": "Split", "pattern": {"Regex": "\\s+(?!\\S)|\\s+|[^\\s]+"}, "behavior": "Isolated",
               "invert": False},
              {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
          "post_processor": None, "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                                               "use_regex": True},
          "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                    "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                    "merges": merges}}
    d = os.path.join(OUT, "flags")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, indent=1)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    texts = ["a <L> b", "a   <L>b", "a<R>   b", "x  <LR>  y", "word", "a word b", "aword", "wordy", "word_",
             "(word)", "<N>x", "<N>", " <N> <N>x ", "<S><S>", "abc <L><R>ab", "\t<L>\n<R>\t", "中word文", "1word"]
    write_jsonl(os.path.join(OUT, "flags.jsonl"), [{"text": s, "ids": tok.encode(s).ids} for s in texts])


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make_corpus()
    make_flags()
