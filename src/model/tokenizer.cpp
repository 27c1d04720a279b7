#include "model/tokenizer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <queue>
#include <unordered_map>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <nlohmann/json.hpp>

#include "model/gguf.h"
#include "util/error.h"
#include "util/file_io.h"

namespace fpq {

using json = nlohmann::json;

namespace {

// ---- UTF-8 helpers ----------------------------------------------------------------------------------------

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xF0 | (cp >> 18));
    s += char(0x80 | ((cp >> 12) & 0x3F));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
}

// Decodes the code point at s[i] (s must be valid UTF-8) and advances i.
uint32_t next_code_point(std::string_view s, size_t& i) {
  const auto c = uint8_t(s[i]);
  int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (uint8_t(s[i + k]) & 0x3F);
  i += size_t(n);
  return cp;
}

// The code point that ends at s[end) (s valid UTF-8, end > 0), and where it starts.
uint32_t prev_code_point(std::string_view s, size_t end, size_t& start) {
  start = end - 1;
  while (start > 0 && (uint8_t(s[start]) & 0xC0) == 0x80) --start;
  size_t i = start;
  return next_code_point(s, i);
}

// Byte offset of the first invalid UTF-8 sequence, or npos.
size_t invalid_utf8_offset(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = uint8_t(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return i;
    if (i + size_t(len) > n) return i;
    for (int k = 1; k < len; ++k) {
      const auto cc = uint8_t(s[i + size_t(k)]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return i;
    i += size_t(len);
  }
  return std::string_view::npos;
}

// Rust's char::is_whitespace (the Unicode White_Space property), used by lstrip/rstrip of added tokens.
bool is_white_space(uint32_t cp) {
  return (cp >= 9 && cp <= 13) || cp == 32 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

bool is_word_char(uint32_t cp) { return cp == '_' || u_isalnum(UChar32(cp)); }

// ---- GPT-2 byte <-> printable character mapping (bytes_to_unicode) ----------------------------------------

struct ByteMap {
  std::array<std::string, 256> byte_to_utf8;
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  ByteMap() {
    std::array<bool, 256> printable{};
    for (int b = '!'; b <= '~'; ++b) printable[size_t(b)] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[size_t(b)] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[size_t(b)] = true;
    uint32_t extra = 0;
    for (int b = 0; b < 256; ++b) {
      const uint32_t cp = printable[size_t(b)] ? uint32_t(b) : 256 + extra++;
      append_utf8(byte_to_utf8[size_t(b)], cp);
      cp_to_byte[cp] = uint8_t(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

// ---- PCRE2 regex --------------------------------------------------------------------------------------------

class Regex {
 public:
  // literal: match the pattern text itself (tokenizers' Split with a String pattern).
  explicit Regex(const std::string& pattern, bool literal = false) : pattern_(pattern) {
    std::string p;
    if (literal) {  // escape every ASCII non-alphanumeric; PCRE2_LITERAL does not combine with PCRE2_UCP
      for (char c : pattern) {
        if (uint8_t(c) < 0x80 && !std::isalnum(uint8_t(c))) p += '\\';
        p += c;
      }
    } else {
      p = pattern;
    }
    int err = 0;
    PCRE2_SIZE err_off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), PCRE2_UTF | PCRE2_UCP, &err, &err_off,
                          nullptr);
    if (!code_) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      fail("cannot compile the pre-tokenizer regex '{}': {} at offset {}", pattern, reinterpret_cast<char*>(msg),
           size_t(err_off));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when JIT is unavailable
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls on_piece(begin, end, is_match) for consecutive spans covering s: matches and the gaps between them.
  template <typename F>
  void split(std::string_view s, pcre2_match_data* md, F&& on_piece) const {
    size_t prev = 0, start = 0;
    while (start <= s.size()) {
      int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start, PCRE2_NO_UTF_CHECK, md,
                           nullptr);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // very long match: the interpreter's heap-based stack copes
        rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start,
                         PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        fail("pre-tokenizer regex '{}' failed: {}", pattern_, reinterpret_cast<char*>(msg));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      const size_t b = ov[0], e = ov[1];
      if (b != prev) on_piece(prev, b, false);
      if (e > b) on_piece(b, e, true);
      prev = e;
      if (e == b) {  // empty match: step over one character
        if (e >= s.size()) break;
        size_t i = e;
        next_code_point(s, i);
        start = i;
      } else {
        start = e;
      }
    }
    if (prev < s.size()) on_piece(prev, s.size(), false);
  }

  pcre2_match_data* new_match_data() const { return pcre2_match_data_create_from_pattern(code_, nullptr); }

 private:
  std::string pattern_;
  pcre2_code* code_ = nullptr;
};

struct MatchData {
  pcre2_match_data* md = nullptr;
  explicit MatchData(const Regex& r) : md(r.new_match_data()) {}
  ~MatchData() { pcre2_match_data_free(md); }
  MatchData(const MatchData&) = delete;
};

// tokenizers' SplitDelimiterBehavior.
enum class SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous };

SplitBehavior parse_behavior(const std::string& s) {
  if (s == "Isolated") return SplitBehavior::Isolated;
  if (s == "Removed") return SplitBehavior::Removed;
  if (s == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (s == "Contiguous") return SplitBehavior::Contiguous;
  fail("unknown pre-tokenizer split behavior '{}'", s);
}

// One step of the pre-tokenizer: split every piece with a regex, or (ByteLevel add_prefix_space) prepend a
// space to every piece that does not start with one.
struct PreStep {
  std::unique_ptr<Regex> regex;  // null for the prefix-space step
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
};

// GPT-2's pattern as tokenizers' ByteLevel pre-tokenizer uses it.
constexpr const char* kByteLevelRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// `tokenizers` runs its regexes with Oniguruma, whose Unicode \s is exactly the White_Space property. PCRE2's
// UCP \s also matches U+180E (MONGOLIAN VOWEL SEPARATOR, a format character since Unicode 6.3), so \s and \S
// are rewritten as explicit White_Space classes for both engines to split alike.
constexpr const char* kWhiteSpaceMembers =
    R"(\t\n\x{0B}\f\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

std::string onig_compatible(const std::string& pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      ++i;
      if (e == 's') out += in_class ? std::string(kWhiteSpaceMembers) : "[" + std::string(kWhiteSpaceMembers) + "]";
      else if (e == 'S' && !in_class) out += "[^" + std::string(kWhiteSpaceMembers) + "]";
      else out += {c, e};
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool normalized = false;
  bool lstrip = false, rstrip = false, single_word = false;
};

// Leftmost-longest matching of added tokens, as tokenizers' AddedVocabulary does it.
class AddedTokenMatcher {
 public:
  void add(const AddedToken& t) {
    if (t.content.empty()) return;
    by_first_byte_[uint8_t(t.content[0])].push_back(tokens_.size());
    tokens_.push_back(t);
  }
  void finish() {
    for (auto& list : by_first_byte_)
      std::sort(list.begin(), list.end(),
                [&](size_t a, size_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
  }
  bool empty() const { return tokens_.empty(); }

  // Splits text into (span, token id or -1 for plain text); parse_special=false skips special tokens.
  template <typename F>
  void split(std::string_view text, bool parse_special, F&& emit) const {
    size_t plain_start = 0, i = 0;
    while (i < text.size()) {
      const auto& cands = by_first_byte_[uint8_t(text[i])];
      const AddedToken* hit = nullptr;
      for (size_t k : cands) {
        const AddedToken& t = tokens_[k];
        if (t.special && !parse_special) continue;
        if (text.compare(i, t.content.size(), t.content) == 0) {
          hit = &t;
          break;
        }
      }
      if (!hit) {
        ++i;
        continue;
      }
      size_t b = i, e = i + hit->content.size();
      if (hit->single_word) {
        size_t ps;
        bool ok = b == 0 || !is_word_char(prev_code_point(text, b, ps));
        if (ok && e < text.size()) {
          size_t j = e;
          ok = !is_word_char(next_code_point(text, j));
        }
        if (!ok) {
          i = e;
          continue;
        }
      }
      if (hit->lstrip) {
        while (b > plain_start) {
          size_t ps;
          if (!is_white_space(prev_code_point(text, b, ps))) break;
          b = ps;
        }
      }
      if (hit->rstrip) {
        while (e < text.size()) {
          size_t j = e;
          if (!is_white_space(next_code_point(text, j))) break;
          e = j;
        }
      }
      if (b > plain_start) emit(text.substr(plain_start, b - plain_start), -1);
      emit(text.substr(b, e - b), hit->id);
      plain_start = i = e;
    }
    if (plain_start < text.size()) emit(text.substr(plain_start), -1);
  }

 private:
  std::vector<AddedToken> tokens_;
  std::array<std::vector<size_t>, 256> by_first_byte_;
};

std::string nfc(std::string_view s) {
  bool ascii = true;
  for (char c : s) ascii &= uint8_t(c) < 0x80;
  if (ascii) return std::string(s);  // ASCII is always NFC
  UErrorCode st = U_ZERO_ERROR;
  const UNormalizer2* norm = unorm2_getNFCInstance(&st);
  std::u16string u16(s.size() + 1, u'\0');
  int32_t len16 = 0;
  st = U_ZERO_ERROR;
  u_strFromUTF8(reinterpret_cast<UChar*>(u16.data()), int32_t(u16.size()), &len16, s.data(), int32_t(s.size()), &st);
  if (U_FAILURE(st)) fail("NFC normalization failed: {}", u_errorName(st));
  u16.resize(size_t(len16));
  std::u16string out(u16.size() * 3 + 16, u'\0');
  st = U_ZERO_ERROR;
  const int32_t n = unorm2_normalize(norm, reinterpret_cast<const UChar*>(u16.data()), len16,
                                     reinterpret_cast<UChar*>(out.data()), int32_t(out.size()), &st);
  if (U_FAILURE(st)) fail("NFC normalization failed: {}", u_errorName(st));
  std::string utf8(size_t(n) * 3 + 4, '\0');
  int32_t len8 = 0;
  st = U_ZERO_ERROR;
  u_strToUTF8(utf8.data(), int32_t(utf8.size()), &len8, reinterpret_cast<const UChar*>(out.data()), n, &st);
  if (U_FAILURE(st)) fail("NFC normalization failed: {}", u_errorName(st));
  utf8.resize(size_t(len8));
  return utf8;
}

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

}  // namespace

// ---- the tokenizer -----------------------------------------------------------------------------------------

struct Tokenizer::Impl {
  std::string description;
  std::vector<std::string> vocab;              // id -> token text
  std::vector<std::string> vocab_bytes;        // id -> decoded bytes
  std::vector<uint8_t> special;                // id -> is a special token
  std::unordered_map<std::string, int32_t> token_to_id;
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  std::unordered_map<uint64_t, Merge> merges;
  std::array<int32_t, 256> byte_ids{};  // id of each single-byte token, -1 if missing
  int32_t unk_id = -1;
  bool fuse_unk = false;
  bool ignore_merges = false;
  bool nfc = false;
  std::vector<PreStep> steps;
  AddedTokenMatcher raw_added, normalized_added;  // matched before / after normalization
  int32_t bos = -1, eos = -1;
  bool add_bos = false;
  TokenizerDefinition def;  // what it was built from (for exports)

  void set_vocab(std::vector<std::string> tokens) {
    vocab = std::move(tokens);
    token_to_id.reserve(vocab.size() * 2);
    for (size_t i = 0; i < vocab.size(); ++i) token_to_id.emplace(vocab[i], int32_t(i));
  }

  int32_t id_of(const std::string& tok) const {
    const auto it = token_to_id.find(tok);
    return it == token_to_id.end() ? -1 : it->second;
  }

  void add_merge(const std::string& a, const std::string& b, int32_t rank, const std::string& where) {
    const int32_t ia = id_of(a), ib = id_of(b), inew = id_of(a + b);
    if (ia < 0 || ib < 0 || inew < 0)
      fail("{}: merge #{} '{} {}' uses a token that is not in the vocabulary", where, rank, a, b);
    merges.emplace(pair_key(ia, ib), Merge{rank, inew});  // the first (lowest rank) duplicate wins
    def.merges.emplace_back(a, b);
  }

  void finish() {
    const auto& bm = byte_map();
    for (int b = 0; b < 256; ++b) byte_ids[size_t(b)] = id_of(bm.byte_to_utf8[size_t(b)]);
    special.resize(vocab.size(), 0);
    vocab_bytes.resize(vocab.size());
    for (size_t i = 0; i < vocab.size(); ++i) {
      // tokenizers' ByteLevel decoder: map every character back to its byte, or keep the token's own text when
      // some character is not a byte character (added tokens).
      const std::string& t = vocab[i];
      std::string bytes;
      bool all_mapped = invalid_utf8_offset(t) == std::string_view::npos;  // a corrupt entry decodes as is
      for (size_t k = 0; k < t.size() && all_mapped;) {
        const auto it = bm.cp_to_byte.find(next_code_point(t, k));
        if (it == bm.cp_to_byte.end()) all_mapped = false;
        else bytes += char(it->second);
      }
      vocab_bytes[i] = all_mapped ? bytes : t;
    }
    raw_added.finish();
    normalized_added.finish();
  }

  void add_added_token(const AddedToken& t) {
    if (t.id < 0) fail("added token '{}' has a negative id", t.content);
    if (size_t(t.id) >= vocab.size()) vocab.resize(size_t(t.id) + 1);
    if (vocab[size_t(t.id)].empty()) vocab[size_t(t.id)] = t.content;
    token_to_id[t.content] = t.id;
    if (special.size() < vocab.size()) special.resize(vocab.size(), 0);
    if (t.special) special[size_t(t.id)] = 1;
    (t.normalized ? normalized_added : raw_added).add(t);
    def.added_tokens.push_back({t.content, t.id, t.special, t.normalized, t.lstrip, t.rstrip, t.single_word});
  }

  // BPE of one pre-token (raw bytes), as tokenizers' word.rs merge_all does it: always the lowest-rank pair,
  // leftmost first.
  void bpe(std::string_view word, std::vector<int32_t>& out) const {
    if (ignore_merges) {
      std::string mapped;
      for (char c : word) mapped += byte_map().byte_to_utf8[uint8_t(c)];
      const int32_t id = id_of(mapped);
      if (id >= 0) {
        out.push_back(id);
        return;
      }
    }
    struct Sym {
      int32_t id;
      int32_t prev, next;
      bool alive;
    };
    std::vector<Sym> syms;
    syms.reserve(word.size());
    for (char c : word) {
      int32_t id = byte_ids[uint8_t(c)];
      if (id < 0) {
        if (unk_id < 0) continue;  // tokenizers drops characters it cannot represent when it has no unk
        if (fuse_unk && !syms.empty() && syms.back().id == unk_id) continue;
        id = unk_id;
      }
      const auto n = int32_t(syms.size());
      syms.push_back({id, n - 1, n + 1, true});
    }
    if (syms.empty()) return;
    syms.back().next = -1;
    if (syms.size() > 1) {
      struct Cand {
        int32_t rank, pos, new_id;
      };
      auto worse = [](const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
      std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> queue(worse);
      auto push_pair = [&](int32_t pos) {
        const auto it = merges.find(pair_key(syms[size_t(pos)].id, syms[size_t(syms[size_t(pos)].next)].id));
        if (it != merges.end()) queue.push({it->second.rank, pos, it->second.new_id});
      };
      for (int32_t i = 0; i + 1 < int32_t(syms.size()); ++i) push_pair(i);
      while (!queue.empty()) {
        const Cand top = queue.top();
        queue.pop();
        Sym& left = syms[size_t(top.pos)];
        if (!left.alive || left.next < 0) continue;
        Sym& right = syms[size_t(left.next)];
        const auto it = merges.find(pair_key(left.id, right.id));
        if (it == merges.end() || it->second.new_id != top.new_id) continue;  // stale entry
        left.id = top.new_id;
        right.alive = false;
        left.next = right.next;
        if (left.next >= 0) syms[size_t(left.next)].prev = top.pos;
        if (left.prev >= 0) push_pair(left.prev);
        if (left.next >= 0) push_pair(top.pos);
      }
    }
    for (int32_t i = 0; i >= 0; i = syms[size_t(i)].next) out.push_back(syms[size_t(i)].id);
  }

  struct EncodeState {
    std::vector<std::unique_ptr<MatchData>> match_data;  // one per regex step
    std::unordered_map<std::string, std::vector<int32_t>> cache;
    std::vector<int32_t>* out;
    std::vector<std::string>* pieces = nullptr;  // pre_tokenize(): collect the pieces instead of encoding them
  };

  void run_steps(std::string_view piece, size_t step, EncodeState& st) const {
    if (piece.empty()) return;
    if (step == steps.size()) {
      if (st.pieces) {
        st.pieces->emplace_back(piece);
        return;
      }
      const auto it = st.cache.find(std::string(piece));
      if (it != st.cache.end()) {
        st.out->insert(st.out->end(), it->second.begin(), it->second.end());
        return;
      }
      std::vector<int32_t> ids;
      bpe(piece, ids);
      st.out->insert(st.out->end(), ids.begin(), ids.end());
      st.cache.emplace(std::string(piece), std::move(ids));
      return;
    }
    const PreStep& s = steps[step];
    if (!s.regex) {  // ByteLevel add_prefix_space
      if (piece[0] == ' ') return run_steps(piece, step + 1, st);
      const std::string spaced = " " + std::string(piece);
      return run_steps(spaced, step + 1, st);
    }
    // Collect (begin, end, is_match) spans, then combine them per the split behavior.
    struct Span {
      size_t b, e;
      bool m;
    };
    std::vector<Span> spans;
    s.regex->split(piece, st.match_data[step]->md, [&](size_t b, size_t e, bool m) {
      spans.push_back({b, e, s.invert ? !m : m});
    });
    std::vector<std::pair<size_t, size_t>> parts;
    switch (s.behavior) {
      case SplitBehavior::Isolated:
        for (const auto& sp : spans) parts.emplace_back(sp.b, sp.e);
        break;
      case SplitBehavior::Removed:
        for (const auto& sp : spans)
          if (!sp.m) parts.emplace_back(sp.b, sp.e);
        break;
      case SplitBehavior::MergedWithPrevious: {
        bool prev_match = false;
        for (const auto& sp : spans) {
          if (sp.m && !prev_match && !parts.empty()) parts.back().second = sp.e;
          else parts.emplace_back(sp.b, sp.e);
          prev_match = sp.m;
        }
        break;
      }
      case SplitBehavior::MergedWithNext: {
        bool prev_match = false;
        for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
          if (it->m && !prev_match && !parts.empty()) parts.back().first = it->b;
          else parts.emplace_back(it->b, it->e);
          prev_match = it->m;
        }
        std::reverse(parts.begin(), parts.end());
        break;
      }
      case SplitBehavior::Contiguous: {
        int prev = -1;
        for (const auto& sp : spans) {
          if (int(sp.m) == prev && !parts.empty()) parts.back().second = sp.e;
          else parts.emplace_back(sp.b, sp.e);
          prev = int(sp.m);
        }
        break;
      }
    }
    for (const auto& [b, e] : parts) run_steps(piece.substr(b, e - b), step + 1, st);
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  const Impl& m = *impl_;
  if (const size_t bad = invalid_utf8_offset(text); bad != std::string_view::npos)
    fail("cannot tokenize: the text is not valid UTF-8 (at byte {})", bad);
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos) {
    if (m.bos < 0) fail("this tokenizer ({}) has no beginning-of-sequence token", m.description);
    out.push_back(m.bos);
  }
  Impl::EncodeState st;
  st.out = &out;
  for (const auto& s : m.steps) st.match_data.push_back(s.regex ? std::make_unique<MatchData>(*s.regex) : nullptr);

  auto encode_normalized = [&](std::string_view normalized) {
    m.normalized_added.split(normalized, parse_special, [&](std::string_view part, int32_t id) {
      if (id >= 0) out.push_back(id);
      else m.run_steps(part, 0, st);
    });
  };
  m.raw_added.split(text, parse_special, [&](std::string_view part, int32_t id) {
    if (id >= 0) {
      out.push_back(id);
    } else if (m.nfc) {
      const std::string n = nfc(part);
      encode_normalized(n);
    } else {
      encode_normalized(part);
    }
  });
  return out;
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
  if (const size_t bad = invalid_utf8_offset(text); bad != std::string_view::npos)
    fail("cannot pre-tokenize: the text is not valid UTF-8 (at byte {})", bad);
  std::vector<std::string> pieces;
  Impl::EncodeState st;
  st.out = nullptr;
  st.pieces = &pieces;
  for (const auto& s : impl_->steps) st.match_data.push_back(s.regex ? std::make_unique<MatchData>(*s.regex) : nullptr);
  impl_->run_steps(text, 0, st);
  return pieces;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) fail("cannot decode token id {}: the vocabulary has {} tokens", id, vocab_size());
    if (skip_special && impl_->special[size_t(id)]) continue;
    out += impl_->vocab_bytes[size_t(id)];
  }
  return out;
}

int32_t Tokenizer::vocab_size() const { return int32_t(impl_->vocab.size()); }

const std::string& Tokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= vocab_size()) fail("token id {} is outside the vocabulary ({} tokens)", id, vocab_size());
  return impl_->vocab[size_t(id)];
}

std::string Tokenizer::token_bytes(int32_t id) const {
  token_text(id);  // range check
  return impl_->vocab_bytes[size_t(id)];
}

int32_t Tokenizer::token_id(std::string_view token) const { return impl_->id_of(std::string(token)); }
bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->special[size_t(id)] != 0;
}
int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
bool Tokenizer::add_bos_by_default() const { return impl_->add_bos; }
const std::string& Tokenizer::description() const { return impl_->description; }
const TokenizerDefinition& Tokenizer::definition() const { return impl_->def; }

// ---- loading -----------------------------------------------------------------------------------------------

std::vector<std::string> pretokenizer_regexes_for_gguf_pre(const std::string& pre) {
  // llama.cpp's llama-vocab.cpp groups these names by pre-tokenizer type.
  static const char* const llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral"};
  static const char* const gpt2[] = {"gpt-2", "gpt2", "phi-2", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de"};
  static const char* const starcoder[] = {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone",
                                          "minerva-7b"};
  static const char* const qwen2[] = {"qwen2", "deepseek-r1-qwen", "megrez"};
  auto in = [&](const auto& list) { return std::find(std::begin(list), std::end(list), pre) != std::end(list); };
  if (in(llama3)) return {kLlama3Regex};
  if (in(gpt2)) return {kByteLevelRegex};
  if (in(starcoder)) return {R"(\p{N})", kByteLevelRegex};  // HF: Digits(individual_digits) + ByteLevel
  if (in(qwen2)) return {kQwen2Regex};
  fail("unknown GGUF pre-tokenizer '{}' (fpq knows llama-bpe, llama3, gpt2, smollm, starcoder, qwen2, ...)", pre);
}

namespace {

void add_regex_step(Tokenizer::Impl& m, const std::string& pattern, bool literal = false,
                    SplitBehavior behavior = SplitBehavior::Isolated, bool invert = false) {
  PreStep s;
  s.regex = std::make_unique<Regex>(literal ? pattern : onig_compatible(pattern), literal);
  s.behavior = behavior;
  s.invert = invert;
  m.steps.push_back(std::move(s));
}

// Adds the steps of a tokenizer.json pre_tokenizer; returns whether it contained a ByteLevel step.
bool add_pretokenizer(Tokenizer::Impl& m, const json& pt, const std::string& where) {
  if (pt.is_null()) return false;
  const std::string type = pt.at("type").get<std::string>();
  if (type == "Sequence") {
    bool byte_level = false;
    for (const auto& p : pt.at("pretokenizers")) byte_level |= add_pretokenizer(m, p, where);
    return byte_level;
  }
  if (type == "Split") {
    const json& pat = pt.at("pattern");
    const bool literal = pat.contains("String");
    const std::string p = literal ? pat.at("String").get<std::string>() : pat.at("Regex").get<std::string>();
    add_regex_step(m, p, literal, parse_behavior(pt.at("behavior").get<std::string>()), pt.value("invert", false));
    return false;
  }
  if (type == "Digits") {
    add_regex_step(m, pt.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)");
    return false;
  }
  if (type == "ByteLevel") {
    if (pt.value("add_prefix_space", false)) m.steps.push_back(PreStep{});
    if (pt.value("use_regex", true)) add_regex_step(m, kByteLevelRegex);
    return true;
  }
  fail("{}: pre-tokenizer '{}' is not supported (fpq reads byte-level BPE tokenizers)", where, type);
}

void set_normalizer(Tokenizer::Impl& m, const json& n, const std::string& where) {
  if (n.is_null()) return;
  const std::string type = n.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const auto& x : n.at("normalizers")) set_normalizer(m, x, where);
    return;
  }
  if (type == "NFC") {
    m.nfc = true;
    return;
  }
  fail("{}: normalizer '{}' is not supported (fpq supports none or NFC)", where, type);
}

// The beginning-of-sequence token a TemplateProcessing post-processor puts first, if any.
int32_t template_bos(const json& pp) {
  if (pp.is_null()) return -1;
  const std::string type = pp.value("type", "");
  if (type == "Sequence") {
    for (const auto& p : pp.at("processors"))
      if (int32_t id = template_bos(p); id >= 0) return id;
    return -1;
  }
  if (type != "TemplateProcessing" || !pp.contains("single") || pp["single"].empty()) return -1;
  const json& first = pp["single"][0];
  if (!first.contains("SpecialToken")) return -1;
  const std::string name = first["SpecialToken"].at("id").get<std::string>();
  const json& ids = pp.at("special_tokens").at(name).at("ids");
  return ids.empty() ? -1 : ids[0].get<int32_t>();
}

std::string token_config_string(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v["content"].get<std::string>();
  return {};
}

}  // namespace

Tokenizer Tokenizer::from_tokenizer_json(const std::filesystem::path& path) {
  const std::string where = "'" + path.string() + "'";
  json j;
  try {
    j = json::parse(read_file_text(path));
  } catch (const json::exception& e) {
    fail("{} is not valid JSON: {}", where, e.what());
  }
  auto m = std::make_unique<Impl>();
  m->description = "tokenizer.json " + path.string();
  try {
    const json& model = j.at("model");
    if (model.value("type", "BPE") != "BPE")
      fail("{}: tokenizer model '{}' is not supported (fpq reads byte-level BPE)", where,
           model.value("type", std::string()));
    if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() > 0)
      fail("{}: BPE dropout is not supported", where);
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (model.contains(k) && model[k].is_string() && !model[k].get<std::string>().empty())
        fail("{}: BPE option {} is not supported", where, k);
    std::vector<std::string> tokens;
    for (auto it = model.at("vocab").begin(); it != model.at("vocab").end(); ++it) {
      const int64_t id = it.value().get<int64_t>();
      if (id < 0 || id > 10'000'000) fail("{}: token '{}' has id {}", where, it.key(), id);
      if (size_t(id) >= tokens.size()) tokens.resize(size_t(id) + 1);
      tokens[size_t(id)] = it.key();
    }
    m->set_vocab(std::move(tokens));
    m->ignore_merges = model.value("ignore_merges", false);
    m->fuse_unk = model.value("fuse_unk", false);
    if (model.contains("unk_token") && model["unk_token"].is_string()) {
      m->unk_id = m->id_of(model["unk_token"].get<std::string>());
      m->def.unk_token = model["unk_token"].get<std::string>();
    }
    m->def.ignore_merges = m->ignore_merges;
    m->def.fuse_unk = m->fuse_unk;
    int32_t rank = 0;
    for (const auto& mg : model.at("merges")) {
      std::string a, b;
      if (mg.is_string()) {
        const std::string s = mg.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          fail("{}: merge #{} '{}' is not two tokens", where, rank, s);
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {
        a = mg.at(0).get<std::string>();
        b = mg.at(1).get<std::string>();
      }
      m->add_merge(a, b, rank++, where);
    }
    if (j.contains("added_tokens"))
      for (const auto& t : j["added_tokens"]) {
        AddedToken at;
        at.id = t.at("id").get<int32_t>();
        at.content = t.at("content").get<std::string>();
        at.special = t.value("special", false);
        at.normalized = t.value("normalized", !at.special);
        at.lstrip = t.value("lstrip", false);
        at.rstrip = t.value("rstrip", false);
        at.single_word = t.value("single_word", false);
        m->add_added_token(at);
      }
    set_normalizer(*m, j.value("normalizer", json()), where);
    if (!add_pretokenizer(*m, j.value("pre_tokenizer", json()), where))
      fail("{}: no ByteLevel pre-tokenizer, so this is not a byte-level BPE tokenizer (fpq reads only those)", where);
    if (!j.value("normalizer", json()).is_null()) m->def.normalizer = j["normalizer"].dump();
    m->def.pre_tokenizer = j["pre_tokenizer"].dump();
    m->bos = template_bos(j.value("post_processor", json()));
    m->add_bos = m->bos >= 0;
  } catch (const json::exception& e) {
    fail("{} is malformed: {}", where, e.what());
  }
  // tokenizer_config.json carries the bos/eos names and add_bos_token in most HF model folders.
  const auto cfg_path = path.parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(cfg_path)) {
    try {
      const json c = json::parse(read_file_text(cfg_path));
      if (c.contains("bos_token"))
        if (int32_t id = m->id_of(token_config_string(c["bos_token"])); id >= 0) m->bos = id;
      if (c.contains("eos_token"))
        if (int32_t id = m->id_of(token_config_string(c["eos_token"])); id >= 0) m->eos = id;
      if (c.contains("add_bos_token") && c["add_bos_token"].is_boolean()) m->add_bos = c["add_bos_token"].get<bool>();
    } catch (const json::exception& e) {
      fail("'{}' is malformed: {}", cfg_path.string(), e.what());
    }
  }
  m->finish();
  return Tokenizer(std::move(m));
}

Tokenizer Tokenizer::from_gguf(const GgufFile& g) {
  const std::string where = "'" + g.path().string() + "'";
  const std::string model = g.get_string("tokenizer.ggml.model", "");
  if (model != "gpt2")
    fail("{}: tokenizer.ggml.model '{}' is not supported (fpq reads byte-level BPE, 'gpt2')", where, model);
  auto m = std::make_unique<Impl>();
  const std::string pre = g.get_string("tokenizer.ggml.pre", "default");
  m->description = "gguf " + g.path().filename().string() + " pre=" + pre;
  m->set_vocab(g.get_string_array("tokenizer.ggml.tokens"));
  const auto n_vocab = int64_t(m->vocab.size());
  int32_t rank = 0;
  for (const auto& s : g.get_string_array("tokenizer.ggml.merges")) {
    const size_t sp = s.find(' ');
    if (sp == std::string::npos) fail("{}: merge #{} '{}' is not two tokens", where, rank, s);
    m->add_merge(s.substr(0, sp), s.substr(sp + 1), rank++, where);
  }
  std::vector<int64_t> types;
  if (g.has("tokenizer.ggml.token_type")) {
    types = g.get_int_array("tokenizer.ggml.token_type");
    if (int64_t(types.size()) != n_vocab)
      fail("{}: tokenizer.ggml.token_type has {} entries for {} tokens", where, types.size(), n_vocab);
  }
  // llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte. Control tokens are
  // the special tokens; user-defined ones are matched in the text as well.
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] != 3 && types[i] != 4) continue;
    AddedToken at;
    at.id = int32_t(i);
    at.content = m->vocab[i];
    at.special = types[i] == 3;
    m->add_added_token(at);
  }
  const std::vector<std::string> regexes = pretokenizer_regexes_for_gguf_pre(pre);
  for (const auto& re : regexes) add_regex_step(*m, re);
  // llama.cpp sets ignore_merges for the Llama 3 pre-tokenizer, as HF's Llama 3 tokenizer.json does: a word that
  // is a whole vocabulary entry is that token.
  m->ignore_merges = regexes.front() == kLlama3Regex;
  // The same split in Hugging Face's terms: GPT-2's regex is ByteLevel's own, "\p{N}" is Digits(individual).
  json steps = json::array();
  for (const auto& re : regexes) {
    if (re == kByteLevelRegex) continue;
    if (re == R"(\p{N})") steps.push_back({{"type", "Digits"}, {"individual_digits", true}});
    else steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}, {"invert", false}});
  }
  const bool own_regex = regexes.back() == kByteLevelRegex;
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", own_regex}});
  m->def.pre_tokenizer = (steps.size() == 1 ? steps[0] : json{{"type", "Sequence"}, {"pretokenizers", steps}}).dump();
  m->def.ignore_merges = m->ignore_merges;
  m->def.gguf_pre = pre;
  for (int64_t t : types) m->def.gguf_token_types.push_back(int32_t(t));
  auto token_id_key = [&](const char* key) -> int32_t {
    const int64_t id = g.get_int(key, -1);
    if (id >= n_vocab) fail("{}: {} = {} is outside the vocabulary ({} tokens)", where, key, id, n_vocab);
    return int32_t(id);
  };
  m->bos = token_id_key("tokenizer.ggml.bos_token_id");
  m->eos = token_id_key("tokenizer.ggml.eos_token_id");
  m->unk_id = -1;  // byte-level BPE never needs unk; llama.cpp ignores it for gpt2 models
  m->add_bos = g.get_bool("tokenizer.ggml.add_bos_token", pre == "llama-bpe" || pre == "llama3");
  m->finish();
  return Tokenizer(std::move(m));
}

}  // namespace fpq
