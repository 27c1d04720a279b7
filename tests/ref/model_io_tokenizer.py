"""Reference token ids from Hugging Face's `tokenizers` for fpq's tokenizer tests.

  model_io_tokenizer.py gguf GGUF OUT_DIR SEED [WIKI_TEXT]
      Builds a tokenizers.Tokenizer from the GGUF's vocabulary and merges (read with gguf-py) with the
      pre-tokenizer Hugging Face ships for its `tokenizer.ggml.pre`, and writes OUT_DIR/cases.json (text, ids,
      decoded text for a fresh random corpus) and, with WIKI_TEXT, OUT_DIR/wiki_ids.bin (int32).
  model_io_tokenizer.py json OUT_DIR SEED
      Trains small byte-level BPE tokenizers of several styles (Llama 3, Qwen2 with NFC, GPT-2 with prefix
      space, literal/contiguous splits) on random text, writes OUT_DIR/<style>/tokenizer.json and cases.json.
"""
import json
import os
import random
import sys
import unicodedata

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

# Pre-tokenizer regexes as the models' own tokenizer.json files write them.
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

FRAGMENTS = [
    "Hello", "world", "the", "The", " quick brown fox", "jumps", "over", "lazy dog", "tokenizer", "Quantization",
    "don't", "I'LL", "we've", "it's", "they're", "She'd", "you'RE", "o'clock", "rock'n'roll", "'s", "''",
    "café", "naïve", "Ñandú", "Straße", "Øresund", "façade", "e\u0301", "A\u030a", "n\u0303o", "ﬁ",
    "日本語の文章です", "中文字符", "한국어", "ภาษาไทย", "हिन्दी", "العربية", "עברית", "Ελληνικά", "Русский",
    "👍", "👍🏽", "🤖", "👨\u200d👩\u200d👧", "🇫🇷", "✨", "∑", "∞", "√2", "½", "²", "Ⅻ", "٣", "१२३",
    "12345", "3.14159", "1,000,000", "2024-06-01", "0x1F", "007", "9" * 11, "42nd",
    " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2009", "\u0085",
    "\u200b", "\u2028", "\u2029", " \t\n", "\u180e", " \u180e ", "\x0b", "\x0c", "\x1c", "\u200a", "\u205f",
    "!!!", "...", "?!", "«quoted»", "— dash", "(parens)", "[brackets]", "{braces}", "#hashtag", "@user",
    "http://example.com/a?b=c&d=e", "C++", "x**2", "a_b_c", "snake_case", "CamelCase", "ALLCAPS",
    "def f(x):\n    return x * 2\n", "    indented", "\tif (a) {\n\t\tb();\n\t}",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nHi there<|im_end|>\n", "<|im_start",
    "<|im_end|><|im_start|>", "<", "|>", "<s>", "</s>",
]
FIXED = [
    "", " ", "a", "Hello, world!", "x\u180e!!", "a\u180e\u180e,b", "\u180e \u180e", "x\x85!!", "x\x1c!!", "  leading and trailing  ", "\n\nnew\n\nlines\n\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM.<|im_end|>\n<|im_start|>user\nWhat's 2+2?<|im_end|>\n",
    " = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : Unrecorded Chronicles ( Japanese : 戦場のヴァルキュリア3 ) ",
    "The year 1984 had 365 days; π ≈ 3.14159265358979.", "I'm sure you'll've heard it's DON'T.",
    "   \t\t  \n  \r\n\r\n", "😀😃😄😁😆😅😂🤣", "零一二三四五六七八九十", "ñ" * 40, "ab" * 300,
]


def corpus(seed, n_random=220):
    rng = random.Random(seed)
    texts = list(FIXED)
    for _ in range(n_random):
        parts = []
        for _ in range(rng.randint(1, 30)):
            r = rng.random()
            if r < 0.75:
                parts.append(rng.choice(FRAGMENTS))
            elif r < 0.9:
                parts.append(rng.choice([" ", "  ", "\n", "", "\t", ", ", ". "]))
            else:  # random code points from assorted blocks
                block = rng.choice([(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x4E00, 0x4FFF),
                                    (0x3040, 0x30FF), (0x1F300, 0x1F64F), (0x2000, 0x206F), (0x0900, 0x097F)])
                parts.append("".join(chr(rng.randint(*block)) for _ in range(rng.randint(1, 6))))
        texts.append("".join(parts))
    return texts


def bytes_to_unicode():
    """GPT-2's byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


CHAR_TO_BYTE = {c: b for b, c in bytes_to_unicode().items()}


def write_cases(tok, texts, path, extra=None):
    cases = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        with_special = tok.encode(t, add_special_tokens=True).ids
        # The pre-tokenizer's own pieces, mapped back from byte-level characters to text.
        pieces = [bytes(CHAR_TO_BYTE[c] for c in p).decode("utf-8") for p, _ in tok.pre_tokenizer.pre_tokenize_str(t)]
        cases.append({"text": t, "ids": ids, "ids_with_special": with_special, "pieces": pieces,
                      "decoded": tok.decode(ids, skip_special_tokens=False)})
    out = {"cases": cases}
    out.update(extra or {})
    with open(path, "w") as f:
        json.dump(out, f, ensure_ascii=True)


def gguf_mode(gguf_path, out_dir, seed, wiki=None):
    import gguf
    r = gguf.GGUFReader(gguf_path)
    field = lambda k: r.fields[k].contents()
    assert field("tokenizer.ggml.model") == "gpt2"
    tokens = field("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ")) for m in field("tokenizer.ggml.merges")]
    types = field("tokenizer.ggml.token_type")
    pre = field("tokenizer.ggml.pre")
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=pre in ("llama-bpe", "llama3")))
    byte_level = lambda use_regex: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=use_regex)
    if pre in ("smollm", "starcoder"):  # SmolLM2's / StarCoder's tokenizer.json
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level(True)])
    elif pre in ("llama-bpe", "llama3"):
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated"), byte_level(False)])
    elif pre == "qwen2":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(QWEN2), behavior="isolated"), byte_level(False)])
    elif pre in ("gpt2", "gpt-2"):
        tok.pre_tokenizer = byte_level(True)
    else:
        raise SystemExit(f"no reference pre-tokenizer for {pre!r}")
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                            for i, t in enumerate(types) if t == 3])
    texts = corpus(seed)
    write_cases(tok, texts, os.path.join(out_dir, "cases.json"))
    if wiki:
        with open(wiki, encoding="utf-8", newline="") as f:  # keep the bytes as they are (CR LF)
            ids = tok.encode(f.read(), add_special_tokens=False).ids
        np.asarray(ids, dtype=np.int32).tofile(os.path.join(out_dir, "wiki_ids.bin"))


def train(style, texts, seed):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>"]
    tok = Tokenizer(models.BPE())
    if style == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    elif style == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    elif style == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=False),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    elif style == "splits":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(" ", behavior="merged_with_next"),
            pre_tokenizers.Split(Regex(r"\p{P}"), behavior="contiguous"),
            pre_tokenizers.Split(Regex(r"\d"), behavior="merged_with_previous"),
            pre_tokenizers.Split(Regex(r"\n"), behavior="removed"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=random.Random(seed).randint(600, 1200), special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    if style == "llama3":
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])
        # An added token that swallows the whitespace before it, and a plain (non-special) added token.
        tok.add_special_tokens([AddedToken("[MASK]", lstrip=True, special=True, normalized=False)])
        tok.add_tokens([AddedToken("quantized", special=False, normalized=False)])
    spec = json.loads(tok.to_str())
    if style == "llama3":
        spec["model"]["ignore_merges"] = True  # as Llama 3's own tokenizer.json
    return Tokenizer.from_str(json.dumps(spec)), spec


def json_mode(out_dir, seed):
    train_texts = corpus(seed + 1, n_random=400) * 2
    texts = corpus(seed) + ["a [MASK] b  [MASK]", "[MASK]x", "unquantized quantized quantizedx"]
    for style in ("llama3", "qwen2", "gpt2", "splits"):
        tok, spec = train(style, train_texts, seed)
        d = os.path.join(out_dir, style)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "tokenizer.json"), "w") as f:
            json.dump(spec, f)
        bos = tok.token_to_id("<|begin_of_text|>") if style == "llama3" else -1
        write_cases(tok, texts, os.path.join(d, "cases.json"),
                    {"bos_id": bos, "nfc": [unicodedata.normalize("NFC", t) for t in texts]})


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "gguf":
        gguf_mode(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else None)
    elif mode == "json":
        json_mode(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode}")
