"""A tiny byte-level BPE tokenizer with the real DeepSeek-V4 structure.

The pre-tokenizer, normalizer, post-processor and decoder are copied from the V4
tokenizer.json (shared/assets/deepseek-v4/tokenizer-v4/tokenizer.json, see
shared/docs/v4-architecture.md section 7.1); only the vocabulary is retrained, on a
deterministic English corpus written here, to exactly `vocab_size` entries.
Special tokens sit at the same ids as in the real file:
  0 <｜begin▁of▁sentence｜>, 1 <｜end▁of▁sentence｜>, 2 <｜▁pad▁｜>.
Merges are written in the real file's "a b" string form.
"""
import json
import random

from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"

# The V4 pre-tokenizer (three isolating splits + ByteLevel without regex).
V4_PRE_TOKENIZER = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": False},
        {"type": "Split", "pattern": {"Regex": "[一-龥぀-ゟ゠-ヿ]+"}, "behavior": "Isolated", "invert": False},
        {
            "type": "Split",
            "pattern": {
                "Regex": "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
                "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
            },
            "behavior": "Isolated",
            "invert": False,
        },
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
    ],
}
V4_NORMALIZER = {"type": "Sequence", "normalizers": []}
V4_POST_PROCESSOR = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
V4_DECODER = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}

# tokenizer_config.json of the real V4-Flash (shared/assets/deepseek-v4/v4-flash/tokenizer_config.json).
TOKENIZER_CONFIG = {
    "add_bos_token": False,
    "add_eos_token": False,
    "bos_token": {"__type": "AddedToken", "content": BOS, "lstrip": False, "normalized": True,
                  "rstrip": False, "single_word": False},
    "clean_up_tokenization_spaces": False,
    "eos_token": {"__type": "AddedToken", "content": EOS, "lstrip": False, "normalized": True,
                  "rstrip": False, "single_word": False},
    "legacy": True,
    "model_max_length": 1048576,
    "pad_token": {"__type": "AddedToken", "content": EOS, "lstrip": False, "normalized": True,
                  "rstrip": False, "single_word": False},
    "sp_model_kwargs": {},
    "unk_token": None,
    "tokenizer_class": "PreTrainedTokenizerFast",
}

_PARAGRAPHS = [
    "The quick brown fox jumps over the lazy dog. A small lantern burns in the window of the old house, "
    "and the children read their books by its light until the night grows cold.",
    "Once upon a time, in a small village by the sea, there lived a fisherman who counted the waves. "
    "Every morning he walked to the harbour, checked his nets, and told the gulls about the weather.",
    "Numbers are simple friends: 1, 2, 3, 10, 42, 100 and 2026 appear in lists, tables and dates. "
    "The model reads 3.14 as three tokens, while the word 'pi' stays a single piece.",
    "In the library the shelves hold stories about rivers, mountains, engines and stars. "
    "Some readers prefer poems; others like long novels with maps, letters and secret doors.",
]
_SUBJECTS = ["the cat", "a teacher", "the engineer", "my sister", "the old man", "a young bird", "the river",
             "our team", "the machine", "a stranger", "the garden", "this lantern", "the city", "the reader"]
_VERBS = ["walks to", "looks at", "builds", "remembers", "carries", "opens", "follows", "writes about",
          "listens to", "paints", "finds", "measures", "counts", "explains", "visits", "repairs"]
_OBJECTS = ["the bridge", "a red door", "the morning train", "an empty room", "the long road", "a letter",
            "the bright moon", "a wooden boat", "the quiet forest", "the winter market", "a simple model",
            "the last page", "a blue window", "the evening light", "a small number", "the green hill"]
_TAILS = ["before dinner", "after the rain", "every day", "with great care", "in the evening", "at noon",
          "without a word", "for the first time", "near the station", "under the stars", "again and again"]


def corpus(seed=1234, n_sentences=4000):
    """Deterministic English text (independent of the Python version)."""
    rng = random.Random(seed)
    lines = list(_PARAGRAPHS)
    for _ in range(n_sentences):
        s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}"
        s = s[0].upper() + s[1:] + rng.choice([".", ".", ".", "!", "?", ", and then it stops."])
        if rng.random() < 0.1:
            s += f" It was {rng.randint(1, 999)} steps away."
        lines.append(s)
    return lines


def build(vocab_size, seed=1234):
    """Train the tiny tokenizer; returns (tokenizer.json text, Tokenizer)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(pattern=Regex(p["pattern"]["Regex"]), behavior="isolated")
        for p in V4_PRE_TOKENIZER["pretokenizers"][:3]
    ] + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(seed), trainer=trainer)
    j = json.loads(tok.to_str())
    assert len(j["model"]["vocab"]) == vocab_size, (len(j["model"]["vocab"]), vocab_size)
    # Use the exact real structure for everything but the vocabulary.
    j["normalizer"] = V4_NORMALIZER
    j["pre_tokenizer"] = V4_PRE_TOKENIZER
    j["post_processor"] = V4_POST_PROCESSOR
    j["decoder"] = V4_DECODER
    merges = j["model"]["merges"]
    j["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in merges]
    for t in j["added_tokens"]:
        t["normalized"] = False
        t["special"] = True
    model_keys = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False}
    model = dict(model_keys)
    model["vocab"] = j["model"]["vocab"]
    model["merges"] = j["model"]["merges"]
    j["model"] = model
    ordered = {k: j[k] for k in ("version", "truncation", "padding", "added_tokens", "normalizer",
                                 "pre_tokenizer", "post_processor", "decoder", "model")}
    text = json.dumps(ordered, ensure_ascii=False, indent=1)
    tok2 = Tokenizer.from_str(text)
    assert tok2.token_to_id(BOS) == 0 and tok2.token_to_id(EOS) == 1 and tok2.token_to_id(PAD) == 2
    assert tok2.get_vocab_size() == vocab_size
    return text, tok2
