"""Data preparation for the embedded demo model (models/demo).

Source: Debian package r-cran-janeaustenr (MIT-licensed R package by Julia Silge)
holding the full text of Jane Austen's six novels from Project Gutenberg; the
novels themselves are in the public domain (published 1811-1818).

Steps, all deterministic:
  1. get the .deb (apt-get download, or --deb PATH) and unpack it with dpkg -x;
  2. read the six character vectors from the R lazy-load data base (rdata.py);
  3. cut front/back matter, split into chapters, join wrapped lines into
     paragraphs, drop _emphasis_ markers and '* * *' rules;
  4. hold out every 25th chapter (global index % 25 == 12) as validation text;
  5. train a byte-level BPE tokenizer on the training text with the real
     DeepSeek-V4 tokenizer.json structure (normalizer, pre-tokenizer,
     post-processor, decoder copied from shared/assets/deepseek-v4/tokenizer-v4),
     special tokens <｜begin▁of▁sentence｜>=0, <｜end▁of▁sentence｜>=1,
     <｜▁pad▁｜>=2 inside the BPE range, chat tokens appended as added tokens.

Writes WORK/train.txt, WORK/valid.txt, WORK/tokenizer.json,
WORK/tokenizer_config.json (WORK defaults to build/demo_model).
Run with tools/oracle/.venv/bin/python.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import rdata  # noqa: E402

DEB_NAME = "r-cran-janeaustenr"
NOVELS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion"]
REAL_TOKENIZER = os.path.join(ROOT, "..", "shared", "assets", "deepseek-v4", "tokenizer-v4", "tokenizer.json")
VOCAB_SIZE = 4096          # BPE entries + added tokens
VALID_EVERY, VALID_AT = 25, 12

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
# Appended after the BPE vocabulary in this order, with the flags of the real file.
ADDED = ["<｜User｜>", "<｜Assistant｜>", "<|EOT|>", "<think>", "</think>", "｜DSML｜", "<｜latest_reminder｜>"]

HEADING = re.compile(r"^\s*(CHAPTER|Chapter)\s+([IVXLC]+|\d+)\.?\s*$")
VOLUME = re.compile(r"^\s*(VOLUME|Volume)\s+[IVX]+\s*$")
END = re.compile(r"^\s*(THE END|FINIS|Finis)\s*$")


def fetch_deb(deb):
    """Unpack the package into a temporary folder; returns the data folder."""
    tmp = tempfile.mkdtemp(prefix="janeaustenr-")
    if deb is None:
        subprocess.run(["apt-get", "download", DEB_NAME], cwd=tmp, check=True)
        deb = glob.glob(os.path.join(tmp, DEB_NAME + "_*.deb"))[0]
    subprocess.run(["dpkg", "-x", deb, os.path.join(tmp, "x")], check=True)
    return os.path.join(tmp, "x", "usr", "lib", "R", "site-library", "janeaustenr", "data"), deb


def chapters(lines):
    """Novel lines -> list of chapters, each a list of paragraphs (one line each)."""
    out, cur, para, started = [], None, [], False

    def flush():
        if para and cur is not None:
            text = " ".join(para)
            text = text.replace("_", "")
            text = re.sub(r"\s+", " ", text).strip()
            if text and not re.fullmatch(r"[\s*.]+", text):
                cur.append(text)
        para.clear()

    for line in lines:
        line = line or ""
        if END.match(line):
            flush()
            break
        if HEADING.match(line):
            flush()
            started = True
            cur = []
            out.append(cur)
            continue
        if not started or VOLUME.match(line):
            continue
        if line.strip():
            para.append(line.strip())
        else:
            flush()
    flush()
    return [c for c in out if c]


def build_tokenizer(train_text_iter, vocab_size):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    real = json.load(open(REAL_TOKENIZER, encoding="utf-8"))
    real_added = {t["content"]: t for t in real["added_tokens"]}
    n_bpe = vocab_size - len(ADDED)
    tok = Tokenizer(models.BPE())
    splits = [p for p in real["pre_tokenizer"]["pretokenizers"] if p["type"] == "Split"]
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(pattern=Regex(p["pattern"]["Regex"]), behavior="isolated") for p in splits]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=n_bpe, special_tokens=[BOS, EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(train_text_iter, trainer=trainer)
    j = json.loads(tok.to_str())
    assert len(j["model"]["vocab"]) == n_bpe, (len(j["model"]["vocab"]), n_bpe)
    added = []
    for t in j["added_tokens"]:
        t = dict(real_added[t["content"]], id=t["id"])
        added.append(t)
    for k, content in enumerate(ADDED):
        added.append(dict(real_added[content], id=n_bpe + k))
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
             "vocab": j["model"]["vocab"],
             "merges": [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]}
    out = {"version": real["version"], "truncation": None, "padding": None, "added_tokens": added,
           "normalizer": real["normalizer"], "pre_tokenizer": real["pre_tokenizer"],
           "post_processor": real["post_processor"], "decoder": real["decoder"], "model": model}
    text = json.dumps(out, ensure_ascii=False, indent=1)
    t2 = Tokenizer.from_str(text)
    assert t2.token_to_id(BOS) == 0 and t2.token_to_id(EOS) == 1 and t2.token_to_id(PAD) == 2
    assert t2.get_vocab_size() == vocab_size, t2.get_vocab_size()
    return text


def tokenizer_config():
    real = json.load(open(os.path.join(ROOT, "..", "shared", "assets", "deepseek-v4", "v4-flash",
                                       "tokenizer_config.json"), encoding="utf-8"))
    real["model_max_length"] = 1048576
    return real


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deb", help="path to an already downloaded r-cran-janeaustenr .deb")
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "demo_model"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    data_dir, deb = fetch_deb(args.deb)
    books = rdata.load_rdx(os.path.join(data_dir, "Rdata.rdx"), os.path.join(data_dir, "Rdata.rdb"))
    train, valid, n = [], [], 0
    for name in NOVELS:
        chs = chapters(books[name])
        for ch in chs:
            (valid if n % VALID_EVERY == VALID_AT else train).append("\n".join(ch))
            n += 1
        print(f"{name}: {len(chs)} chapters, {sum(len(p) for c in chs for p in c)} characters")
    train_text = "\n".join(train) + "\n"
    valid_text = "\n".join(valid) + "\n"
    with open(os.path.join(args.work, "train.txt"), "w", encoding="utf-8") as f:
        f.write(train_text)
    with open(os.path.join(args.work, "valid.txt"), "w", encoding="utf-8") as f:
        f.write(valid_text)
    print(f"{n} chapters: train {len(train)} ({len(train_text)} bytes), valid {len(valid)} ({len(valid_text)} bytes)")
    text = build_tokenizer((p for p in train_text.split("\n") if p), VOCAB_SIZE)
    with open(os.path.join(args.work, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(args.work, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config(), f, ensure_ascii=False, indent=2)
        f.write("\n")
    with open(os.path.join(args.work, "source.json"), "w") as f:
        json.dump({"deb": os.path.basename(deb), "novels": NOVELS}, f, indent=2)
    print("wrote", args.work)


if __name__ == "__main__":
    main()
