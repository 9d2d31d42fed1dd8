/* The fast path of embdrop.data.Tokenizer.encode: split UTF-8 text into words and look them up in a vocabulary.
 *
 * Plain C with no Python or torch headers, so it builds in well under a second with any C compiler and is loaded
 * with ctypes (see _native.py). It sees bytes only. That is safe for UTF-8 because ASCII bytes never occur inside a
 * multi-byte sequence: ASCII punctuation and whitespace are found byte by byte, and the non-ASCII characters that
 * Python's str.isspace() calls whitespace are matched by their UTF-8 sequences, so the split is exactly
 * re.findall(r"[^\s<P>]+|[<P>]", text) (P = string.punctuation) on the already lower-cased text.
 *
 * Modes: 0 = every ASCII punctuation character is a token of its own; 1 = punctuation deleted before splitting on
 * whitespace (Keras' "lower_and_strip_punctuation"); 2 = whitespace split only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char PUNCT[] = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/* Length in bytes of the whitespace character at p (0 if p does not start one): str.isspace()'s set. */
static int ws_len(const uint8_t *p, const uint8_t *end) {
    uint8_t c = p[0];
    if (c < 0x80) return (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) ? 1 : 0;
    if (c == 0xc2 && p + 1 < end) return (p[1] == 0x85 || p[1] == 0xa0) ? 2 : 0; /* U+0085, U+00A0 */
    if (p + 2 >= end) return 0;
    if (c == 0xe1) return (p[1] == 0x9a && p[2] == 0x80) ? 3 : 0; /* U+1680 */
    if (c == 0xe2) {
        if (p[1] == 0x80) /* U+2000..U+200A, U+2028, U+2029, U+202F */
            return ((p[2] >= 0x80 && p[2] <= 0x8a) || p[2] == 0xa8 || p[2] == 0xa9 || p[2] == 0xaf) ? 3 : 0;
        return (p[1] == 0x81 && p[2] == 0x9f) ? 3 : 0; /* U+205F */
    }
    if (c == 0xe3) return (p[1] == 0x80 && p[2] == 0x80) ? 3 : 0; /* U+3000 */
    return 0;
}

static uint64_t fnv1a(const uint8_t *s, int64_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (int64_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

typedef struct {
    const uint8_t *words; /* vocabulary bytes back to back */
    const int64_t *off;   /* word k is words[off[k]:off[k+1]] */
    int64_t *slots;       /* open addressing: word index or -1 */
    uint64_t mask;
} table_t;

static int64_t lookup(const table_t *t, const uint8_t *s, int64_t n, int64_t unk) {
    uint64_t i = fnv1a(s, n) & t->mask;
    for (;;) {
        int64_t k = t->slots[i];
        if (k < 0) return unk;
        if (t->off[k + 1] - t->off[k] == n && memcmp(t->words + t->off[k], s, (size_t)n) == 0) return k;
        i = (i + 1) & t->mask;
    }
}

/* Encode n_docs documents (buf[doc_off[d]:doc_off[d+1]]) to ids. out_ids needs room for
 * doc_off[n_docs] + n_docs ids (at most one token per byte, plus one <eos> per document); out_off gets n_docs + 1
 * offsets into out_ids. eos_id < 0 means no <eos>. Returns the number of ids written, or -1 if memory ran out. */
int64_t embdrop_encode(const uint8_t *buf, const int64_t *doc_off, int64_t n_docs, const uint8_t *vocab,
                       const int64_t *vocab_off, int64_t n_vocab, int mode, int64_t unk_id, int64_t eos_id,
                       int64_t *out_ids, int64_t *out_off) {
    uint8_t is_punct[256] = {0};
    if (mode != 2)
        for (const char *q = PUNCT; *q; q++) is_punct[(uint8_t)*q] = 1;

    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)n_vocab) cap <<= 1;
    table_t t = {vocab, vocab_off, malloc(cap * sizeof(int64_t)), cap - 1};
    if (!t.slots) return -1;
    memset(t.slots, 0xff, cap * sizeof(int64_t));
    for (int64_t k = 0; k < n_vocab; k++) { /* the first occurrence of a word keeps its slot */
        int64_t n = vocab_off[k + 1] - vocab_off[k];
        if (lookup(&t, vocab + vocab_off[k], n, -1) >= 0) continue;
        uint64_t i = fnv1a(vocab + vocab_off[k], n) & t.mask;
        while (t.slots[i] >= 0) i = (i + 1) & t.mask;
        t.slots[i] = k;
    }

    uint8_t *scratch = NULL; /* mode 1 only: a word with its punctuation deleted */
    if (mode == 1) {
        int64_t longest = 0;
        for (int64_t d = 0; d < n_docs; d++)
            if (doc_off[d + 1] - doc_off[d] > longest) longest = doc_off[d + 1] - doc_off[d];
        scratch = malloc((size_t)longest + 1);
        if (!scratch) {
            free(t.slots);
            return -1;
        }
    }

    int64_t n_out = 0;
    out_off[0] = 0;
    for (int64_t d = 0; d < n_docs; d++) {
        const uint8_t *p = buf + doc_off[d], *end = buf + doc_off[d + 1];
        const uint8_t *start = NULL; /* start of the word being read, if any */
        int64_t kept = 0;            /* mode 1: bytes of the word copied to scratch */
        while (p < end) {
            int w = ws_len(p, end);
            if (w || (mode == 0 && is_punct[*p])) {
                if (start) { /* the word ends here */
                    if (mode == 1) {
                        if (kept) out_ids[n_out++] = lookup(&t, scratch, kept, unk_id);
                    } else {
                        out_ids[n_out++] = lookup(&t, start, p - start, unk_id);
                    }
                    start = NULL;
                    kept = 0;
                }
                if (!w) { /* mode 0: the punctuation character is a token */
                    out_ids[n_out++] = lookup(&t, p, 1, unk_id);
                    w = 1;
                }
                p += w;
                continue;
            }
            if (!start) start = p;
            if (mode == 1 && !is_punct[*p]) scratch[kept++] = *p;
            p++;
        }
        if (start) {
            if (mode == 1) {
                if (kept) out_ids[n_out++] = lookup(&t, scratch, kept, unk_id);
            } else {
                out_ids[n_out++] = lookup(&t, start, end - start, unk_id);
            }
        }
        if (eos_id >= 0) out_ids[n_out++] = eos_id;
        out_off[d + 1] = n_out;
    }
    free(scratch);
    free(t.slots);
    return n_out;
}
