/* wasl_classify — the contact classifier: hashed word and character n-gram features over the
 * normalized text, a linear model for category and priority, rules for urgent cues and
 * language, a calibrated confidence threshold for triage, and the model file. */
#include "wasl_classify.h"
#include "wasl_normalize.h"
#include "wasl_text.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unicode/uchar.h>
#include <unicode/utf8.h>
#include <unistd.h>

const char *const wasl_categories[WASL_CATEGORY_COUNT] = {"case_inquiry",     "eservice_support",
                                                          "judicial_support", "staff_services",
                                                          "complaint",        "general_inquiry"};
const char *const wasl_priorities[WASL_PRIORITY_COUNT] = {"urgent", "high", "normal", "low"};

#define MODEL_MAGIC      "WASLMDL1"
#define MODEL_MAGIC_LEN  8
#define MODEL_HEADER_MAX (64 * 1024)
/* Character n-grams are taken from words of at most this many characters (a 1 MiB "word"
 * must not cost a million n-grams), and from at most this many words of a text. */
#define NGRAM_WORD_MAX_CHARS 32
#define FEATURE_WORDS_MAX    4000
#define NGRAM_MIN            2
#define NGRAM_MAX            5
/* The triage threshold never sends more than this share of contacts to a human. */
#define TRIAGE_MAX_SHARE     0.20
#define TRIAGE_THRESHOLD_MAX 0.80

int wasl_category_index(const char *name)
{
    for (int i = 0; i < WASL_CATEGORY_COUNT; i++) {
        if (name && strcmp(name, wasl_categories[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int wasl_priority_index(const char *name)
{
    for (int i = 0; i < WASL_PRIORITY_COUNT; i++) {
        if (name && strcmp(name, wasl_priorities[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* ---- features --------------------------------------------------------------------------- */

/* FNV-1a, seeded per feature kind so that a word and an n-gram with the same bytes differ. */
static uint32_t fnv1a(uint32_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 16777619u;
    }
    return h;
}

#define SEED_WORD   2166136261u
#define SEED_BIGRAM 0x9e3779b9u
#define SEED_CHAR   0x85ebca6bu
#define SEED_STEM   0xc2b2ae35u
#define SEED_CROSS  0x27d4eb2fu

/* Open-addressing counts of feature indices, per text, key and count side by side (one
 * cache line per probe). The occupied slots are listed, so that resetting and reading cost the
 * text's size, not the table's; and each text uses only the first tcap slots, sized by its
 * length (features_begin): a table grown by one long email must not spread every later SMS's
 * probes over a megabyte (they missed the L1 cache: 13% of classifying). */
#define TABLE_MIN 1024

static uint32_t slot_of(const struct wasl_feature_slot *t, size_t cap, uint32_t key)
{
    size_t j = (key * 2654435761u) & (cap - 1);
    while (t[j].key && t[j].key != key) {
        j = (j + 1) & (cap - 1);
    }
    return (uint32_t)j;
}

/* A new table of `cap` slots holding the current entries (first-seen order kept). */
static int table_grow(wasl_features_t *f, size_t cap)
{
    struct wasl_feature_slot *t = calloc(cap, sizeof *t);
    uint32_t *slots = malloc((cap / 2 + 1) * sizeof *slots);
    if (!t || !slots) {
        free(t);
        free(slots);
        return -1;
    }
    for (size_t i = 0; i < f->n; i++) {
        const struct wasl_feature_slot *old = &f->table[f->tslots[i]];
        uint32_t j = slot_of(t, cap, old->key);
        t[j] = *old;
        slots[i] = j;
    }
    free(f->table);
    free(f->tslots);
    f->table = t;
    f->tslots = slots;
    f->tcap = f->tsize = cap;
    return 0;
}

/* Forgets the previous text's counts and sizes the table for a text of `len` bytes (about
 * four features a byte at most in practice; a longer one grows it). 0, or -1 (memory). */
static int features_begin(wasl_features_t *f, size_t len)
{
    for (size_t i = 0; i < f->n; i++) {
        f->table[f->tslots[i]] = (struct wasl_feature_slot){0};
    }
    f->n = 0;
    size_t want = TABLE_MIN;
    while (want < 8 * len && want < ((size_t)1 << 30)) {
        want *= 2;
    }
    if (want > f->tsize) {
        return table_grow(f, want);
    }
    f->tcap = want;
    return 0;
}

static int add_feature(wasl_features_t *f, uint32_t h)
{
    uint32_t key = (h & (WASL_FEATURE_DIM - 1)) + 1;
    if ((f->n + 1) * 2 > f->tcap && table_grow(f, f->tcap * 2) < 0) {
        return -1;
    }
    uint32_t j = slot_of(f->table, f->tcap, key);
    if (!f->table[j].key) {
        f->table[j].key = key;
        f->tslots[f->n++] = j;
    }
    f->table[j].count += 1.0f;
    return 0;
}

/* Character n-grams (NGRAM_MIN..NGRAM_MAX code points) of "<word>", with the markers. 0, or
 * nonzero when a feature could not be added. */
static int add_char_ngrams(wasl_features_t *f, const char *w, size_t wlen)
{
    int rc = 0;
    /* Offsets of each code point of "<word>", with the markers. */
    int32_t offs[NGRAM_WORD_MAX_CHARS + 3];
    char padded[4 * NGRAM_WORD_MAX_CHARS + 3];
    size_t plen = 0;
    int32_t nchars = 0;
    padded[plen] = '<';
    offs[nchars++] = (int32_t)plen++;
    for (int32_t i = 0; i < (int32_t)wlen && nchars <= NGRAM_WORD_MAX_CHARS;) {
        int32_t start = i;
        UChar32 c;
        U8_NEXT(w, i, (int32_t)wlen, c);
        (void)c;
        offs[nchars++] = (int32_t)plen;
        memcpy(padded + plen, w + start, (size_t)(i - start));
        plen += (size_t)(i - start);
    }
    offs[nchars++] = (int32_t)plen;
    padded[plen++] = '>';
    offs[nchars] = (int32_t)plen; /* end sentinel */
    /* The n-grams starting at s share their bytes: hash them side by side (independent
     * multiplications the CPU overlaps; one after the other they were a chain of dependent
     * ones), then add them in the same order as before (n, then s). */
    enum { KINDS = NGRAM_MAX - NGRAM_MIN + 1 };
    uint32_t hs[KINDS][NGRAM_WORD_MAX_CHARS + 3];
    for (int32_t s = 0; s + NGRAM_MIN <= nchars; s++) {
        uint32_t st[KINDS];
        for (int j = 0; j < KINDS; j++) {
            st[j] = SEED_CHAR + (uint32_t)(NGRAM_MIN + j);
        }
        for (int k = 1; k <= NGRAM_MAX && s + k <= nchars; k++) {
            for (int32_t b = offs[s + k - 1]; b < offs[s + k]; b++) {
                for (int j = 0; j < KINDS; j++) { /* the finished ones are no longer read */
                    st[j] = (st[j] ^ (unsigned char)padded[b]) * 16777619u;
                }
            }
            if (k >= NGRAM_MIN) {
                hs[k - NGRAM_MIN][s] = st[k - NGRAM_MIN];
            }
        }
    }
    for (int n = NGRAM_MIN; n <= NGRAM_MAX; n++) {
        for (int32_t s = 0; s + n <= nchars; s++) {
            rc |= add_feature(f, hs[n - NGRAM_MIN][s]);
        }
    }
    return rc;
}

/* The counted features as a vector: sublinear term frequency, L2-normalized. 0, or -1 when
 * out of memory. */
static int weigh(wasl_features_t *f)
{
    if (f->n > f->cap) {
        size_t cap = f->n * 2;
        uint32_t *idx = realloc(f->idx, cap * sizeof *idx);
        if (idx) {
            f->idx = idx;
        }
        float *val = realloc(f->val, cap * sizeof *val);
        if (val) {
            f->val = val;
        }
        if (!idx || !val) {
            return -1;
        }
        f->cap = cap;
    }
    /* In first-seen order (deterministic; the dot product does not need sorted indices). */
    size_t k = f->n;
    double norm2 = 0;
    for (size_t i = 0; i < k; i++) {
        const struct wasl_feature_slot *t = &f->table[f->tslots[i]];
        f->idx[i] = t->key - 1;
        /* Sublinear term frequency; most features occur once (1 + log 1 = 1, exactly). */
        f->val[i] = t->count == 1.0f ? 1.0f : 1.0f + logf(t->count);
        norm2 += (double)f->val[i] * f->val[i];
    }
    float inv = norm2 > 0 ? (float)(1.0 / sqrt(norm2)) : 0.0f;
    for (size_t i = 0; i < k; i++) {
        f->val[i] *= inv;
    }
    f->n = k;
    return 0;
}

/* Arabic light stemming (after Larkey's light10) on a normalized word (ة is ه, ى is ي by
 * then): one proclitic set (وال بال كال فال لل ال, or و alone), then suffixes (ها ان ات ون ين
 * يه ه ي) while at least three letters stay, so that «وبالمحكمه», «المحكمه» and «محكمتها»
 * share «محكم»/«محكمه»-like stems the word features alone keep apart. Sets *start and *len to
 * the stem within w; false when nothing was stripped (or w is not Arabic). */
static const char *const stem_prefixes[] = {"وال", "بال", "كال", "فال", "لل", "ال", "و", NULL};
static const char *const stem_suffixes[] = {"ها", "ان", "ات", "ون", "ين", "يه", "ه", "ي", NULL};
#define STEM_MIN_BYTES 6 /* three Arabic letters */

static bool light_stem(const char *w, size_t wlen, const char **start, size_t *len)
{
    if (wlen < 2 || (unsigned char)w[0] < 0xD8 || (unsigned char)w[0] > 0xDB) {
        return false;
    }
    const char *b = w;
    size_t n = wlen;
    for (int i = 0; stem_prefixes[i]; i++) {
        size_t pl = strlen(stem_prefixes[i]);
        if (n >= pl + STEM_MIN_BYTES && memcmp(b, stem_prefixes[i], pl) == 0) {
            b += pl;
            n -= pl;
            break;
        }
    }
    for (bool again = true; again;) {
        again = false;
        for (int i = 0; stem_suffixes[i]; i++) {
            size_t sl = strlen(stem_suffixes[i]);
            if (n >= sl + STEM_MIN_BYTES && memcmp(b + n - sl, stem_suffixes[i], sl) == 0) {
                n -= sl;
                again = true;
                break;
            }
        }
    }
    *start = b;
    *len = n;
    return n != wlen;
}

/* Character 3–5-grams spanning the space between two words: the last (up to) four characters
 * of prev, the space, the first (up to) four of w; only the n-grams that hold the space. */
static int add_cross_ngrams(wasl_features_t *f, const char *prev, size_t plen, const char *w,
                            size_t wlen)
{
    int32_t offs[10];
    char buf[4 * 8 + 2];
    int nchars = 0;
    size_t o = 0;
    /* Back up to four code points from prev's end (UTF-8 lead bytes are not 10xxxxxx). */
    size_t t = plen;
    for (int k = 0; k < 4 && t > 0; k++) {
        do {
            t--;
        } while (t > 0 && ((unsigned char)prev[t] & 0xC0) == 0x80);
    }
    for (size_t i = t; i < plen; i++) {
        if (((unsigned char)prev[i] & 0xC0) != 0x80) {
            offs[nchars++] = (int32_t)o;
        }
        buf[o++] = prev[i];
    }
    int space = nchars;
    offs[nchars++] = (int32_t)o;
    buf[o++] = ' ';
    for (size_t i = 0; i < wlen; i++) {
        if (((unsigned char)w[i] & 0xC0) != 0x80) {
            if (nchars == space + 5) {
                break;
            }
            offs[nchars++] = (int32_t)o;
        }
        buf[o++] = w[i];
    }
    offs[nchars] = (int32_t)o;
    int rc = 0;
    for (int n = 3; n <= 5; n++) {
        for (int st = space - n + 1; st <= space; st++) {
            if (st >= 0 && st + n <= nchars) {
                rc |= add_feature(f, fnv1a(SEED_CROSS + (uint32_t)n, buf + offs[st],
                                           (size_t)(offs[st + n] - offs[st])));
            }
        }
    }
    return rc;
}

/* Features of an already normalized text (words separated by single spaces). */
static int features_of_normalized(const char *norm, wasl_features_t *f)
{
    int rc = features_begin(f, strlen(norm));
    const char *prev = NULL;
    size_t prev_len = 0, words = 0;
    for (const char *p = norm; *p && rc == 0 && words < FEATURE_WORDS_MAX;) {
        while (*p == ' ') {
            p++;
        }
        if (!*p) {
            break;
        }
        const char *w = p;
        while (*p && *p != ' ') {
            p++;
        }
        size_t wlen = (size_t)(p - w);
        words++;
        rc |= add_feature(f, fnv1a(SEED_WORD, w, wlen));
        const char *stem;
        size_t stem_len;
        if ((f->kinds & WASL_FEAT_STEM) && light_stem(w, wlen, &stem, &stem_len)) {
            rc |= add_feature(f, fnv1a(SEED_STEM, stem, stem_len));
        }
        if (prev) {
            uint32_t h = fnv1a(SEED_BIGRAM, prev, prev_len);
            h = fnv1a(h, " ", 1);
            rc |= add_feature(f, fnv1a(h, w, wlen));
            if (f->kinds & WASL_FEAT_CROSS) {
                rc |= add_cross_ngrams(f, prev, prev_len, w, wlen);
            }
        }
        prev = w;
        prev_len = wlen;
        rc |= add_char_ngrams(f, w, wlen);
    }
    if (rc != 0) {
        return -1;
    }
    return weigh(f);
}

int wasl_features_extract(const char *text, size_t len, wasl_features_t *f)
{
    char *norm = wasl_normalize(text, len);
    if (!norm) {
        return -1;
    }
    int rc = features_of_normalized(norm, f);
    free(norm);
    return rc;
}

void wasl_features_clear(wasl_features_t *f)
{
    free(f->idx);
    free(f->val);
    free(f->table);
    free(f->tslots);
    memset(f, 0, sizeof *f);
}

/* ---- language and urgent cues ----------------------------------------------------------- */

const char *wasl_detect_language(const char *text, size_t len)
{
    /* Words by script: a word counts for the script of most of its letters. */
    size_t arabic_words = 0, latin_words = 0;
    int32_t n = (int32_t)(len > INT32_MAX ? INT32_MAX : len);
    int32_t i = 0;
    while (i < n) {
        size_t ar = 0, la = 0;
        bool in_word = false;
        while (i < n) {
            UChar32 c;
            U8_NEXT(text, i, n, c);
            if (c < 0 || !u_isalpha(c)) {
                if (in_word) {
                    break;
                }
                continue;
            }
            in_word = true;
            UBlockCode b = ublock_getCode(c);
            if (b == UBLOCK_ARABIC || b == UBLOCK_ARABIC_SUPPLEMENT ||
                b == UBLOCK_ARABIC_PRESENTATION_FORMS_A ||
                b == UBLOCK_ARABIC_PRESENTATION_FORMS_B || b == UBLOCK_ARABIC_EXTENDED_A) {
                ar++;
            } else if (b == UBLOCK_BASIC_LATIN || b == UBLOCK_LATIN_1_SUPPLEMENT ||
                       b == UBLOCK_LATIN_EXTENDED_A) {
                la++;
            }
        }
        if (ar > la) {
            arabic_words++;
        } else if (la > 0) {
            latin_words++;
        }
    }
    if (arabic_words == 0) {
        return latin_words ? "en" : "ar";
    }
    if (latin_words == 0) {
        return "ar";
    }
    /* One borrowed term ("OTP", "Nafath") in Arabic is still Arabic; more is code-switching. */
    return latin_words >= 2 ? "mixed" : "ar";
}

/* Cue phrases, written naturally and normalized once (with the Arabizi digits mapped), so that
 * they match the normalized text whatever hamza, alef or teh marbuta the writer used. The
 * lists and the rules follow data/classifier/GUIDE.md's `urgent`; each was measured on
 * train.tsv (docs/architecture.md "Classifier"). */
static const char *const cue_soon[] = {
    "اليوم",       "الحين",        "هالحين",      "الليلة",     "غدا",          "غداً",
    "بكرة",        "بكره",         "بكرا",        "صباح الغد", "بعد ساعة",     "بعد ساعتين",
    "خلال ساعات",  "ربع ساعة",     "نص ساعة",     "نصف ساعة",  "حالا",         "فورا",
    "el 7een",     "hal7een",      "today",       "tonight",    "tomorrow",     "bokra",
    "bukra",       "el youm",      "el yom",      "right now",  "this morning", "this afternoon",
    "this evening", "within hours", "in an hour", "immediately", NULL};
/* A soon cue right after one of these words is later than tomorrow ("بعد بكرة", "the day after
 * tomorrow"): the GUIDE makes that high, not urgent. */
static const char *const cue_later[] = {"بعد", "after", "ba3d", NULL};
/* Minutes count only as "in N minutes" (a minute word one or two words after one of
 * cue_within): "waited 40 minutes on hold" is a complaint, not a deadline. */
static const char *const cue_minutes[] = {"دقيقة", "دقيقه", "دقائق", "دقايق", "d8ayq", "d2ayq",
                                          "min",   "mins",  "minute", "minutes", NULL};
static const char *const cue_within[] = {"بعد", "خلال", "باقي", "in", "within", "ba3d", NULL};
static const char *const cue_detention[] = {
    "محتجز", "محتجزه", "مسجون", "سجين", "السجن", "التوقيف", "محبوس", "موقوف في", "موقوف بال",
    "detained", "custody", "arrested", "jail", "prison", "detention", NULL};
static const char *const cue_leak[] = {
    "شخص آخر",        "شخص اخر",      "شخص ثاني", "غيري",      "ليست لي", "مو حقتي",
    "مو لي",          "ليس لي",       "تسريب",    "تسرب",      "مسربة",   "someone else",
    "another person", "other people", "not mine", "data leak", "leaked",  NULL};
static const char *const cue_leak_object[] = {"قضية", "قضايا",   "بيانات", "معلومات", "ملف", "case",
                                              "data", "details", "file",   "record",  NULL};
/* An account or device taken over is a leak by itself (GUIDE: "data exposed"). */
static const char *const cue_breach[] = {"اختراق", "مخترق", "انسرق", "hacked", "ransomware", NULL};
static const char *const cue_threat[] = {
    "انتحار",   "انتحر",   "أقتل",     "اقتل",        "بقتل",        "بالقتل",       "بالضرب",
    "يهددني",   "أذبح",    "اذبح",     "تفجير",       "قنبلة",       "سلاح",         "بأذي نفسي",
    "أؤذي",     "اؤذي",    "بحرق نفسي", "kill",       "suicide",     "bomb",         "weapon",
    "hurt myself", "harm myself", "hurt someone", NULL};

/* How a set is matched: Arabic substrings (stems with their clitics, the old behaviour), or
 * whole words where a substring would misfire ("غدا" in "بغداد", "min" in "admin"). */
typedef enum { MATCH_SUBSTRING, MATCH_WORD } match_t;

typedef struct {
    char **items;
    size_t n;
    match_t match;
} cue_set_t;

enum {
    CUE_SOON,
    CUE_LATER,
    CUE_MINUTES,
    CUE_WITHIN,
    CUE_DETENTION,
    CUE_LEAK,
    CUE_LEAK_OBJECT,
    CUE_BREACH,
    CUE_THREAT,
    CUE_SETS
};
static cue_set_t cue_sets[CUE_SETS];
static pthread_once_t cue_once = PTHREAD_ONCE_INIT;

/* A phrase as the text will read after wasl_normalize and wasl_arabizi; NULL when empty. */
static char *cue_key(const char *phrase)
{
    char *norm = wasl_normalize(phrase, strlen(phrase));
    char *key = norm && *norm ? wasl_arabizi(norm) : NULL;
    free(norm);
    return key;
}

static void cue_init(void)
{
    static const struct {
        const char *const *list;
        match_t match;
    } sets[CUE_SETS] = {
        [CUE_SOON] = {cue_soon, MATCH_WORD},
        [CUE_LATER] = {cue_later, MATCH_WORD},
        [CUE_MINUTES] = {cue_minutes, MATCH_WORD},
        [CUE_WITHIN] = {cue_within, MATCH_WORD},
        [CUE_DETENTION] = {cue_detention, MATCH_WORD},
        [CUE_LEAK] = {cue_leak, MATCH_SUBSTRING},
        [CUE_LEAK_OBJECT] = {cue_leak_object, MATCH_SUBSTRING},
        [CUE_BREACH] = {cue_breach, MATCH_SUBSTRING},
        [CUE_THREAT] = {cue_threat, MATCH_SUBSTRING},
    };
    for (int s = 0; s < CUE_SETS; s++) {
        size_t n = 0;
        while (sets[s].list[n]) {
            n++;
        }
        cue_sets[s].match = sets[s].match;
        cue_sets[s].items = calloc(n, sizeof(char *));
        for (size_t i = 0; cue_sets[s].items && i < n; i++) {
            char *key = cue_key(sets[s].list[i]);
            if (key) {
                cue_sets[s].items[cue_sets[s].n++] = key;
            }
        }
    }
}

/* True when one of the one-letter Arabic proclitics و ف ب ل (two bytes each) stands alone
 * before p as the start of its word: "وبكره", "لليوم" is not "اليوم" (the ل is the word). */
static bool proclitic_before(const char *hay, const char *p)
{
    if (p - hay < 2 || (unsigned char)p[-2] != 0xD9) {
        if (p - hay < 2 || (unsigned char)p[-2] != 0xD8 || (unsigned char)p[-1] != 0xA8) {
            return false; /* not ب (D8 A8) */
        }
    } else if ((unsigned char)p[-1] != 0x88 && (unsigned char)p[-1] != 0x81 &&
               (unsigned char)p[-1] != 0x84) {
        return false; /* not و (D9 88), ف (D9 81), ل (D9 84) */
    }
    return p - 2 == hay || p[-3] == ' ';
}

/* Where `needle` occurs in `hay` by the set's rule, or NULL. Latin needles are always whole
 * words; Arabic ones under MATCH_WORD may carry one proclitic. */
static const char *find_in(const char *hay, const char *needle, match_t match)
{
    bool latin = (unsigned char)needle[0] < 0x80;
    size_t nlen = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
        if (!latin && match == MATCH_SUBSTRING) {
            return p;
        }
        bool left = p == hay || p[-1] == ' ' || (!latin && proclitic_before(hay, p));
        bool right = p[nlen] == '\0' || p[nlen] == ' ';
        if (left && right) {
            return p;
        }
    }
    return NULL;
}

/* The 4-byte windows of a text, hashed into a bitmap: a cue whose first or last four bytes
 * are not among them cannot occur, and its search is skipped (searching every cue through
 * every text was a sixth of the time of classifying). Only ever skips a search that would
 * have failed: the cues found are the same. */
#define GRAM_BITS 4096
typedef struct {
    uint64_t bits[GRAM_BITS / 64];
} grams_t;

static uint32_t gram_hash(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return (v * 2654435761u) >> 20; /* 12 bits: GRAM_BITS */
}

static void grams_fill(grams_t *g, const char *text)
{
    memset(g, 0, sizeof *g);
    size_t len = strlen(text);
    for (size_t i = 0; i + 4 <= len; i++) {
        uint32_t h = gram_hash(text + i);
        g->bits[h >> 6] |= 1ull << (h & 63);
    }
}

static bool grams_may_have(const grams_t *g, const char *needle)
{
    size_t n = strlen(needle);
    if (n < 4) {
        return true; /* too short to filter: searched */
    }
    uint32_t a = gram_hash(needle), b = gram_hash(needle + n - 4);
    return ((g->bits[a >> 6] >> (a & 63)) & 1) && ((g->bits[b >> 6] >> (b & 63)) & 1);
}

static const char *find_cue(const char *hay, const grams_t *g, int set)
{
    for (size_t i = 0; i < cue_sets[set].n; i++) {
        if (grams_may_have(g, cue_sets[set].items[i]) &&
            find_in(hay, cue_sets[set].items[i], cue_sets[set].match)) {
            return cue_sets[set].items[i];
        }
    }
    return NULL;
}

/* The start of the word `back` words before the word containing p (1 = the previous word), or
 * NULL when there is none. */
static const char *word_before(const char *hay, const char *p, int back)
{
    while (p > hay && p[-1] != ' ') {
        p--;
    }
    for (int b = 0; b < back; b++) {
        if (p == hay) {
            return NULL;
        }
        p--; /* the space */
        while (p > hay && p[-1] != ' ') {
            p--;
        }
    }
    return p;
}

/* True when the word starting at w is one of `set` exactly. */
static bool word_is(const char *w, int set)
{
    for (size_t i = 0; w && i < cue_sets[set].n; i++) {
        size_t n = strlen(cue_sets[set].items[i]);
        if (strncmp(w, cue_sets[set].items[i], n) == 0 && (w[n] == ' ' || w[n] == '\0')) {
            return true;
        }
    }
    return false;
}

/* A soon cue (today, tonight, tomorrow, now, within hours) not preceded by "after", or "in N
 * minutes". */
static const char *find_soon(const char *hay, const grams_t *g)
{
    for (size_t i = 0; i < cue_sets[CUE_SOON].n; i++) {
        const char *c = cue_sets[CUE_SOON].items[i];
        if (!grams_may_have(g, c)) {
            continue;
        }
        for (const char *p = find_in(hay, c, MATCH_WORD); p; p = find_in(p + 1, c, MATCH_WORD)) {
            if (!word_is(word_before(hay, p, 1), CUE_LATER)) {
                return c;
            }
        }
    }
    for (size_t i = 0; i < cue_sets[CUE_MINUTES].n; i++) {
        const char *c = cue_sets[CUE_MINUTES].items[i];
        if (!grams_may_have(g, c)) {
            continue;
        }
        for (const char *p = find_in(hay, c, MATCH_WORD); p; p = find_in(p + 1, c, MATCH_WORD)) {
            if (word_is(word_before(hay, p, 1), CUE_WITHIN) ||
                word_is(word_before(hay, p, 2), CUE_WITHIN)) {
                return c;
            }
        }
    }
    return NULL;
}

/* The cues of a normalized, Arabizi-mapped text. The reason starts with a cue code the console
 * can translate ("urgent cue <code>"), then the phrase that fired. */
static bool urgent_cue_keyed(const char *key, char *reason, size_t cap)
{
    pthread_once(&cue_once, cue_init);
    const char *a, *b;
    grams_t g;
    grams_fill(&g, key);
    if ((a = find_cue(key, &g, CUE_THREAT))) {
        snprintf(reason, cap, "urgent cue threat: \"%s\"", a);
    } else if ((a = find_cue(key, &g, CUE_LEAK)) && (b = find_cue(key, &g, CUE_LEAK_OBJECT))) {
        snprintf(reason, cap, "urgent cue data_exposed: \"%s\" + \"%s\"", a, b);
    } else if ((a = find_cue(key, &g, CUE_BREACH))) {
        snprintf(reason, cap, "urgent cue data_exposed: \"%s\"", a);
    } else if ((a = find_cue(key, &g, CUE_DETENTION))) {
        snprintf(reason, cap, "urgent cue detention: \"%s\"", a);
    } else if ((a = find_soon(key, &g))) {
        snprintf(reason, cap, "urgent cue soon: \"%s\"", a);
    } else {
        return false;
    }
    return true;
}

/* The cues of an already normalized text. */
static bool urgent_cue_normalized(const char *norm, char *reason, size_t cap)
{
    char *key = wasl_arabizi(norm);
    if (!key) {
        return false;
    }
    bool urgent = urgent_cue_keyed(key, reason, cap);
    free(key);
    return urgent;
}

bool wasl_urgent_cue(const char *text, size_t len, char *reason, size_t cap)
{
    char *norm = wasl_normalize(text, len);
    if (!norm) {
        return false;
    }
    bool urgent = urgent_cue_normalized(norm, reason, cap);
    free(norm);
    return urgent;
}

/* ---- the linear model ------------------------------------------------------------------- */

/* Weights are feature-major (w[f * stride + c]) so that one feature's classes are adjacent.
 * In a model, category and priority share one table whose rows are one 64-byte cache line
 * each (MODEL_ROW floats): a feature's ten weights and its idf (at ROW_IDF) come with one
 * memory access, which is most of the cost of classifying (the table does not fit in the
 * cache: 10 weights and a separate idf table cost 2.5 lines per feature). The file keeps the
 * weights and the idf in two arrays (MODEL_WEIGHTS floats per feature, then the idf). */
#define MODEL_WEIGHTS (WASL_CATEGORY_COUNT + WASL_PRIORITY_COUNT)
#define MODEL_ROW     16
#define ROW_IDF       MODEL_WEIGHTS
#define HUGE_PAGE     ((size_t)2 << 20)
typedef struct {
    int k;
    int stride;
    float *w;
    float b[WASL_CATEGORY_COUNT > WASL_PRIORITY_COUNT ? WASL_CATEGORY_COUNT : WASL_PRIORITY_COUNT];
} linear_t;

struct wasl_model {
    char version[96];
    char algo[16];
    double threshold;
    double temperature; /* category probabilities are softmax(temperature * scores) */
    size_t trained_rows;
    float *weights; /* WASL_FEATURE_DIM rows of MODEL_ROW: category, priority, idf */
    bool idf;       /* features weighed by the idf in each row (else plain tf) */
    unsigned features; /* WASL_FEAT_* kinds the model was trained with */
    linear_t cat;
    linear_t pri;
};

/* Weighs an L2-normalized tf vector by idf (bucket j's at idf[j * stride]) and normalizes it
 * again (TF-IDF, as the scikit-learn baseline): a bucket every message has ("السلام", "<ال")
 * says little. */
static void apply_idf(const float *idf, size_t stride, wasl_features_t *f)
{
    double norm2 = 0;
    for (size_t i = 0; i < f->n; i++) {
        f->val[i] *= idf[(size_t)f->idx[i] * stride];
        norm2 += (double)f->val[i] * f->val[i];
    }
    float inv = norm2 > 0 ? (float)(1.0 / sqrt(norm2)) : 0.0f;
    for (size_t i = 0; i < f->n; i++) {
        f->val[i] *= inv;
    }
}

/* Smoothed idf of each bucket over x[0..n) (ln((1 + n) / (1 + df)) + 1, scikit-learn's), then
 * applied to every row. The table, or NULL when out of memory. */
static float *idf_fit(wasl_features_t *x, size_t n)
{
    float *idf = calloc(WASL_FEATURE_DIM, sizeof *idf);
    if (!idf) {
        return NULL;
    }
    for (size_t r = 0; r < n; r++) {
        for (size_t i = 0; i < x[r].n; i++) {
            idf[x[r].idx[i]] += 1.0f; /* indices are unique within a row */
        }
    }
    for (size_t j = 0; j < WASL_FEATURE_DIM; j++) {
        idf[j] = (float)(log((1.0 + (double)n) / (1.0 + idf[j])) + 1.0);
    }
    for (size_t r = 0; r < n; r++) {
        apply_idf(idf, 1, &x[r]);
    }
    return idf;
}

/* Copies the idf table (or none: plain tf) into the model's rows. */
static void set_idf(wasl_model_t *m, const float *idf)
{
    m->idf = idf != NULL;
    for (size_t j = 0; idf && j < WASL_FEATURE_DIM; j++) {
        m->weights[j * MODEL_ROW + ROW_IDF] = idf[j];
    }
}

/* A linear model with its own table (stride k). */
static int linear_init(linear_t *m, int k)
{
    m->k = k;
    m->stride = k;
    m->w = calloc((size_t)WASL_FEATURE_DIM * (size_t)k, sizeof(float));
    memset(m->b, 0, sizeof m->b);
    return m->w ? 0 : -1;
}

/* Asks for huge pages under the filled table (2 MiB aligned): with 4 KiB pages nearly every
 * feature's row also misses the TLB (classifying 10-20% faster with them). Advice only, and
 * given after the table is written: given before, the first touch of each 2 MiB waited for
 * the kernel to compact memory (loads of 120-150 ms, one in ten, on a busy machine); after,
 * the kernel's background collapse gives them to a running daemon. */
static void tables_settle(wasl_model_t *m)
{
    (void)madvise(m->weights, (size_t)WASL_FEATURE_DIM * MODEL_ROW * sizeof(float),
                  MADV_HUGEPAGE);
}

/* The model's shared table and its two views. */
static int model_tables_init(wasl_model_t *m)
{
    size_t bytes = (size_t)WASL_FEATURE_DIM * MODEL_ROW * sizeof(float);
    m->weights = aligned_alloc(HUGE_PAGE, bytes);
    if (!m->weights) {
        return -1;
    }
    memset(m->weights, 0, bytes);
    m->cat = (linear_t){.k = WASL_CATEGORY_COUNT, .stride = MODEL_ROW, .w = m->weights};
    m->pri = (linear_t){
        .k = WASL_PRIORITY_COUNT, .stride = MODEL_ROW, .w = m->weights + WASL_CATEGORY_COUNT};
    return 0;
}

static void linear_scores(const linear_t *m, const wasl_features_t *f, double *p)
{
    for (int c = 0; c < m->k; c++) {
        p[c] = m->b[c];
    }
    for (size_t i = 0; i < f->n; i++) {
        const float *w = m->w + (size_t)f->idx[i] * (size_t)m->stride;
        float x = f->val[i];
        for (int c = 0; c < m->k; c++) {
            p[c] += (double)(w[c] * x);
        }
    }
}

/* Turns scores into probabilities in place. */
static void softmax(double *p, int k)
{
    double mx = p[0];
    for (int c = 1; c < k; c++) {
        mx = p[c] > mx ? p[c] : mx;
    }
    double sum = 0;
    for (int c = 0; c < k; c++) {
        p[c] = exp(p[c] - mx);
        sum += p[c];
    }
    for (int c = 0; c < k; c++) {
        p[c] /= sum;
    }
}

static int argmax(const double *p, int k)
{
    int best = 0;
    for (int c = 1; c < k; c++) {
        if (p[c] > p[best]) {
            best = c;
        }
    }
    return best;
}

/* A deterministic PRNG for shuffling (splitmix64). */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Softmax regression with Adagrad over the examples in order[0..n). Labels < 0 are skipped. */
static int train_softmax(linear_t *m, const wasl_features_t *x, const int *y, const size_t *order,
                         size_t n, const wasl_train_opts_t *o, uint64_t seed,
                         wasl_train_progress_fn *progress, void *arg, const char *stage,
                         bool balanced)
{
    int k = m->k;
    /* Balanced: each class weighs as much in the loss as the others, so that rare classes
     * such as "urgent" are not drowned by "normal" (priority macro-F1 on dev 0.67 -> 0.72). */
    double weight[WASL_CATEGORY_COUNT];
    {
        size_t count[WASL_CATEGORY_COUNT] = {0}, total = 0;
        for (size_t r = 0; r < n; r++) {
            if (y[order[r]] >= 0) {
                count[y[order[r]]]++;
                total++;
            }
        }
        for (int c = 0; c < k; c++) {
            weight[c] = balanced && count[c] ? (double)total / ((double)k * count[c]) : 1;
        }
    }
    float *g = calloc((size_t)WASL_FEATURE_DIM * (size_t)k, sizeof(float));
    size_t *perm = malloc(n * sizeof *perm);
    double gb[WASL_CATEGORY_COUNT] = {0};
    if (!g || !perm) {
        free(g);
        free(perm);
        return -1;
    }
    memcpy(perm, order, n * sizeof *perm);
    double p[WASL_CATEGORY_COUNT];
    for (int e = 0; e < o->epochs; e++) {
        for (size_t i = n; i > 1; i--) {
            size_t j = next_rand(&seed) % i;
            size_t t = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = t;
        }
        for (size_t r = 0; r < n; r++) {
            size_t d = perm[r];
            if (y[d] < 0) {
                continue;
            }
            const wasl_features_t *f = &x[d];
            linear_scores(m, f, p);
            softmax(p, k);
            p[y[d]] -= 1.0; /* gradient of the log loss w.r.t. the scores */
            for (int c = 0; c < k; c++) {
                p[c] *= weight[y[d]];
            }
            for (int c = 0; c < k; c++) {
                gb[c] += p[c] * p[c];
                m->b[c] -= (float)(o->learning_rate * p[c] / (sqrt(gb[c]) + 1e-8));
            }
            for (size_t i = 0; i < f->n; i++) {
                float *w = m->w + (size_t)f->idx[i] * (size_t)m->stride;
                float *gg = g + (size_t)f->idx[i] * (size_t)k;
                for (int c = 0; c < k; c++) {
                    float grad = (float)(p[c] * f->val[i]) + (float)o->l2 * w[c];
                    gg[c] += grad * grad;
                    w[c] -= (float)o->learning_rate * grad / (sqrtf(gg[c]) + 1e-8f);
                }
            }
        }
        if (progress) {
            progress(arg, stage, (size_t)e + 1, (size_t)o->epochs);
        }
    }
    free(g);
    free(perm);
    return 0;
}

/* Multinomial naive Bayes on the same (sublinear, normalized) features: also a linear model. */
static int train_nb(linear_t *m, const wasl_features_t *x, const int *y, const size_t *order,
                    size_t n, const wasl_train_opts_t *o)
{
    int k = m->k;
    double total[WASL_CATEGORY_COUNT] = {0}, docs[WASL_CATEGORY_COUNT] = {0};
    size_t labelled = 0;
    for (size_t r = 0; r < n; r++) {
        size_t d = order[r];
        if (y[d] < 0) {
            continue;
        }
        labelled++;
        docs[y[d]] += 1;
        for (size_t i = 0; i < x[d].n; i++) {
            m->w[(size_t)x[d].idx[i] * (size_t)m->stride + (size_t)y[d]] += x[d].val[i];
            total[y[d]] += x[d].val[i];
        }
    }
    for (int c = 0; c < k; c++) {
        double denom = log(o->alpha * WASL_FEATURE_DIM + total[c]);
        m->b[c] = (float)log((docs[c] + 1.0) / ((double)labelled + k));
        for (size_t f = 0; f < WASL_FEATURE_DIM; f++) {
            float *w = &m->w[f * (size_t)m->stride + (size_t)c];
            *w = (float)(log(o->alpha + *w) - denom);
        }
    }
    return 0;
}

/* One class of a one-vs-rest linear SVM (squared hinge, L2), by dual coordinate descent
 * (Hsieh et al. 2008, liblinear's solver, which the scikit-learn baseline runs): alpha[] are the
 * dual variables (alpha[0..rows), by row), the bias is a feature of value 1, regularized like
 * the others; perm[0..n) are the rows trained on, reshuffled every pass. `cw` weighs
 * the positive class's C (balanced priority). */
static void svm_class(linear_t *m, int c, const wasl_features_t *x, const int *y,
                      size_t *perm, size_t n, double C, double cw, int epochs, double *alpha,
                      size_t rows, uint64_t seed)
{
    memset(alpha, 0, rows * sizeof *alpha);
    double b = 0;
    for (int e = 0; e < epochs; e++) {
        for (size_t i = n; i > 1; i--) {
            size_t j = next_rand(&seed) % i;
            size_t t = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = t;
        }
        for (size_t r = 0; r < n; r++) {
            size_t d = perm[r];
            if (y[d] < 0) {
                continue;
            }
            const wasl_features_t *f = &x[d];
            double yy = y[d] == c ? 1.0 : -1.0;
            double dii = 1.0 / (2.0 * C * (y[d] == c ? cw : 1.0));
            double wx = b, xx = 1.0;
            for (size_t i = 0; i < f->n; i++) {
                wx += (double)m->w[(size_t)f->idx[i] * (size_t)m->stride + (size_t)c] * f->val[i];
                xx += (double)f->val[i] * f->val[i];
            }
            double g = yy * wx - 1.0 + dii * alpha[d];
            double a = alpha[d] - g / (xx + dii);
            a = a < 0 ? 0 : a;
            double step = (a - alpha[d]) * yy;
            alpha[d] = a;
            if (step == 0) {
                continue;
            }
            b += step;
            for (size_t i = 0; i < f->n; i++) {
                m->w[(size_t)f->idx[i] * (size_t)m->stride + (size_t)c] += (float)(step * f->val[i]);
            }
        }
    }
    m->b[c] = (float)b;
}

/* A one-vs-rest linear SVM for each class (see svm_class). 0, or -1 when out of memory. */
static int train_svm(linear_t *m, const wasl_features_t *x, const int *y, const size_t *order,
                     size_t n, const wasl_train_opts_t *o, uint64_t seed, bool balanced)
{
    /* alpha is indexed by row (order[] may be a fold: a subset of the rows). */
    size_t rows = 0;
    for (size_t r = 0; r < n; r++) {
        rows = order[r] + 1 > rows ? order[r] + 1 : rows;
    }
    size_t *perm = malloc(n * sizeof *perm);
    double *alpha = malloc((rows + 1) * sizeof *alpha);
    if (!perm || !alpha) {
        free(perm);
        free(alpha);
        return -1;
    }
    memcpy(perm, order, n * sizeof *perm);
    size_t count[WASL_CATEGORY_COUNT] = {0}, total = 0;
    for (size_t r = 0; r < n; r++) {
        if (y[order[r]] >= 0) {
            count[y[order[r]]]++;
            total++;
        }
    }
    for (int c = 0; c < m->k; c++) {
        double cw = balanced && count[c] ? (double)total / ((double)m->k * count[c]) : 1.0;
        svm_class(m, c, x, y, perm, n, o->svm_c, cw, o->epochs, alpha, rows,
                  seed + (uint64_t)c);
    }
    free(perm);
    free(alpha);
    return 0;
}

static int train_linear(linear_t *m, const wasl_features_t *x, const int *y, const size_t *order,
                        size_t n, const wasl_train_opts_t *o, uint64_t seed,
                        wasl_train_progress_fn *progress, void *arg, const char *stage,
                        bool balanced)
{
    if (o->algo == WASL_ALGO_CNB) {
        return train_nb(m, x, y, order, n, o);
    }
    if (o->algo == WASL_ALGO_SVM) {
        return train_svm(m, x, y, order, n, o, seed, balanced && o->svm_balanced);
    }
    return train_softmax(m, x, y, order, n, o, seed, progress, arg, stage, balanced);
}

typedef struct {
    double conf;
    bool correct;
} oof_t;

static int cmp_oof(const void *a, const void *b)
{
    double x = ((const oof_t *)a)->conf, y = ((const oof_t *)b)->conf;
    return x < y ? -1 : x > y;
}

/* The triage threshold from out-of-fold predictions: routing a contact automatically earns
 * +1 when right and -1 when wrong, triage earns 0 — so triage below the confidence where the
 * model is right less than half the time, within TRIAGE_MAX_SHARE of the traffic. */
static double pick_threshold(oof_t *oof, size_t n)
{
    qsort(oof, n, sizeof *oof, cmp_oof);
    double score = 0;
    for (size_t i = 0; i < n; i++) {
        score += oof[i].correct ? 1 : -1;
    }
    double best = score, threshold = 0;
    size_t max_triaged = (size_t)(TRIAGE_MAX_SHARE * (double)n);
    for (size_t i = 0; i < n && i < max_triaged && oof[i].conf < TRIAGE_THRESHOLD_MAX; i++) {
        score -= oof[i].correct ? 1 : -1; /* triage everything up to and including i */
        if (score > best) {
            best = score;
            threshold = i + 1 < n ? (oof[i].conf + oof[i + 1].conf) / 2 : oof[i].conf;
        }
    }
    return threshold;
}

/* The features of every row into x (compact copies), the labels into ycat/ypri and
 * order = 0..n-1. 0, or -1 on a bad category or out of memory (x as far as it got). */
static int extract_all(const wasl_train_row_t *rows, size_t n, unsigned kinds,
                       wasl_features_t *x, int *ycat, int *ypri, size_t *order,
                       wasl_train_progress_fn *progress, void *arg)
{
    wasl_features_t scratch = {.kinds = kinds};
    for (size_t i = 0; i < n; i++) {
        /* Extract with one scratch vector, keep a compact copy per example. */
        if (rows[i].category < 0 || rows[i].category >= WASL_CATEGORY_COUNT ||
            wasl_features_extract(rows[i].text, strlen(rows[i].text), &scratch) < 0) {
            wasl_features_clear(&scratch);
            return -1;
        }
        x[i].n = x[i].cap = scratch.n;
        x[i].idx = malloc((scratch.n + 1) * sizeof *x[i].idx);
        x[i].val = malloc((scratch.n + 1) * sizeof *x[i].val);
        if (!x[i].idx || !x[i].val) {
            wasl_features_clear(&scratch);
            return -1;
        }
        memcpy(x[i].idx, scratch.idx, scratch.n * sizeof *x[i].idx);
        memcpy(x[i].val, scratch.val, scratch.n * sizeof *x[i].val);
        ycat[i] = rows[i].category;
        ypri[i] = rows[i].priority;
        order[i] = i;
        if (progress && (i % 256 == 0 || i + 1 == n)) {
            progress(arg, "features", i + 1, n);
        }
    }
    wasl_features_clear(&scratch);
    return 0;
}

/* Out-of-fold confidences (k = o->folds) into oof, and the triage threshold they give. 0, or
 * -1 when out of memory. */
/* The temperature T that makes softmax(T * scores) honest probabilities on the out-of-fold
 * scores (least log loss over a grid): an SVM's margins are not probabilities, and the
 * confidence an agent sees and triage reads should mean what it says. */
static double fit_temperature(const double *scores, const int *ycat, size_t n)
{
    double best_t = 1, best_loss = INFINITY;
    for (double t = 0.25; t <= 32; t *= 1.1) {
        double loss = 0;
        for (size_t i = 0; i < n; i++) {
            double p[WASL_CATEGORY_COUNT];
            for (int c = 0; c < WASL_CATEGORY_COUNT; c++) {
                p[c] = t * scores[i * WASL_CATEGORY_COUNT + (size_t)c];
            }
            softmax(p, WASL_CATEGORY_COUNT);
            loss -= log(p[ycat[i]] + 1e-12);
        }
        if (loss < best_loss) {
            best_loss = loss;
            best_t = t;
        }
    }
    return best_t;
}

/* Confidences of the out-of-fold scores at temperature t, and whether each was right. */
static void oof_confidences(const double *scores, const int *ycat, size_t n, double t,
                            oof_t *oof)
{
    for (size_t i = 0; i < n; i++) {
        double p[WASL_CATEGORY_COUNT];
        for (int c = 0; c < WASL_CATEGORY_COUNT; c++) {
            p[c] = t * scores[i * WASL_CATEGORY_COUNT + (size_t)c];
        }
        softmax(p, WASL_CATEGORY_COUNT);
        int best = argmax(p, WASL_CATEGORY_COUNT);
        oof[i].conf = p[best];
        oof[i].correct = best == ycat[i];
    }
}

static int calibrate(const wasl_features_t *x, const int *ycat, size_t n, oof_t *oof,
                     const wasl_train_opts_t *o, wasl_train_progress_fn *progress, void *arg,
                     double *threshold, double *temperature)
{
    size_t *train_idx = malloc(n * sizeof *train_idx);
    double *scores = malloc(n * WASL_CATEGORY_COUNT * sizeof *scores);
    if (!train_idx || !scores) {
        free(train_idx);
        free(scores);
        return -1;
    }
    for (int fold = 0; fold < o->folds; fold++) {
        linear_t fm;
        if (linear_init(&fm, WASL_CATEGORY_COUNT) < 0) {
            free(train_idx);
            free(scores);
            return -1;
        }
        size_t nt = 0;
        for (size_t i = 0; i < n; i++) {
            if ((int)(i % (size_t)o->folds) != fold) {
                train_idx[nt++] = i;
            }
        }
        train_linear(&fm, x, ycat, train_idx, nt, o, o->seed + (uint64_t)fold, NULL, NULL, NULL,
                     false);
        for (size_t i = (size_t)fold; i < n; i += (size_t)o->folds) {
            linear_scores(&fm, &x[i], scores + i * WASL_CATEGORY_COUNT);
        }
        free(fm.w);
        if (progress) {
            progress(arg, "calibration", (size_t)fold + 1, (size_t)o->folds);
        }
    }
    free(train_idx);
    *temperature = fit_temperature(scores, ycat, n);
    oof_confidences(scores, ycat, n, *temperature, oof);
    free(scores);
    *threshold = pick_threshold(oof, n);
    return 0;
}

wasl_model_t *wasl_model_train(const wasl_train_row_t *rows, size_t n,
                               const wasl_train_opts_t *opts, wasl_train_progress_fn *progress,
                               void *arg)
{
    if (n == 0) {
        return NULL;
    }
    wasl_train_opts_t o = opts ? *opts : (wasl_train_opts_t){0};
    o.epochs = o.epochs > 0 ? o.epochs : 12;
    o.learning_rate = o.learning_rate > 0 ? o.learning_rate : 0.4;
    o.l2 = o.l2 > 0 ? o.l2 : 1e-6;
    o.alpha = o.alpha > 0 ? o.alpha : 0.3;
    o.svm_c = o.svm_c > 0 ? o.svm_c : 1.0;
    o.seed = o.seed ? o.seed : 20261128;
    wasl_features_t *x = calloc(n, sizeof *x);
    int *ycat = malloc(n * sizeof *ycat);
    int *ypri = malloc(n * sizeof *ypri);
    size_t *order = malloc(n * sizeof *order);
    oof_t *oof = calloc(n, sizeof *oof);
    wasl_model_t *m = calloc(1, sizeof *m);
    float *idf = NULL;
    if (!x || !ycat || !ypri || !order || !oof || !m) {
        goto error;
    }
    m->temperature = 1;
    m->features = o.features & WASL_FEAT_ALL;
    if (extract_all(rows, n, m->features, x, ycat, ypri, order, progress, arg) < 0) {
        goto error;
    }
    if (o.idf && !(idf = idf_fit(x, n))) {
        goto error;
    }
    /* Calibration: k-fold out-of-fold confidences. */
    if (o.folds > 1 && n >= (size_t)o.folds * 10 &&
        calibrate(x, ycat, n, oof, &o, progress, arg, &m->threshold, &m->temperature) < 0) {
        goto error;
    }
    if (model_tables_init(m) < 0) {
        goto error;
    }
    set_idf(m, idf);
    train_linear(&m->cat, x, ycat, order, n, &o, o.seed, progress, arg, "category", false);
    train_linear(&m->pri, x, ypri, order, n, &o, o.seed + 7, progress, arg, "priority", true);
    m->pri.b[0] += (float)o.urgent_bias;
    tables_settle(m);
    m->trained_rows = n;
    snprintf(m->algo, sizeof m->algo, "%s",
             o.algo == WASL_ALGO_CNB   ? "nb"
             : o.algo == WASL_ALGO_SVM ? "svm"
                                       : "softmax");
    if (o.version) {
        snprintf(m->version, sizeof m->version, "%s", o.version);
    } else {
        snprintf(m->version, sizeof m->version, "%s-%zu-%lld", m->algo, n, (long long)time(NULL));
    }
    for (size_t i = 0; i < n; i++) {
        wasl_features_clear(&x[i]);
    }
    free(x);
    free(ycat);
    free(ypri);
    free(order);
    free(oof);
    free(idf);
    return m;
error:
    if (x) {
        for (size_t i = 0; i < n; i++) {
            wasl_features_clear(&x[i]);
        }
    }
    free(x);
    free(ycat);
    free(ypri);
    free(order);
    free(oof);
    free(idf);
    wasl_model_destroy(&m);
    return NULL;
}

void wasl_model_destroy(wasl_model_t **self_p)
{
    if (self_p && *self_p) {
        free((*self_p)->weights);
        free(*self_p);
        *self_p = NULL;
    }
}

const char *wasl_model_version(const wasl_model_t *self)
{
    return self->version;
}

double wasl_model_threshold(const wasl_model_t *self)
{
    return self->threshold;
}

void wasl_model_set_threshold(wasl_model_t *self, double threshold)
{
    self->threshold = threshold;
}

/* ---- the model file --------------------------------------------------------------------- */

static json_t *labels_json(const char *const *names, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(a, json_string(names[i]));
    }
    return a;
}

/* The file's arrays <-> the rows: `width` floats from offset `off` of every row, as one
 * array, in chunks. 0, or -1 on a short read or write. */
#define COLUMN_CHUNK 1024
static int write_column(FILE *fp, const float *rows, int off, int width)
{
    float buf[COLUMN_CHUNK * MODEL_WEIGHTS];
    for (size_t j0 = 0; j0 < WASL_FEATURE_DIM; j0 += COLUMN_CHUNK) {
        for (size_t j = 0; j < COLUMN_CHUNK; j++) {
            memcpy(buf + j * (size_t)width, rows + (j0 + j) * MODEL_ROW + off,
                   (size_t)width * sizeof(float));
        }
        if (fwrite(buf, sizeof(float) * (size_t)width, COLUMN_CHUNK, fp) != COLUMN_CHUNK) {
            return -1;
        }
    }
    return 0;
}

static int read_column(FILE *fp, float *rows, int off, int width)
{
    float buf[COLUMN_CHUNK * MODEL_WEIGHTS];
    for (size_t j0 = 0; j0 < WASL_FEATURE_DIM; j0 += COLUMN_CHUNK) {
        if (fread(buf, sizeof(float) * (size_t)width, COLUMN_CHUNK, fp) != COLUMN_CHUNK) {
            return -1;
        }
        for (size_t j = 0; j < COLUMN_CHUNK; j++) {
            memcpy(rows + (j0 + j) * MODEL_ROW + off, buf + j * (size_t)width,
                   (size_t)width * sizeof(float));
        }
    }
    return 0;
}

int wasl_model_save(const wasl_model_t *self, const char *path)
{
    json_t *h =
        json_pack("{s:i, s:s, s:s, s:i, s:o, s:o, s:f, s:I, s:b, s:f, s:i}", "format", 2, "version",
                  self->version,
                  "algo", self->algo, "feature_bits", WASL_FEATURE_BITS, "categories",
                  labels_json(wasl_categories, WASL_CATEGORY_COUNT), "priorities",
                  labels_json(wasl_priorities, WASL_PRIORITY_COUNT), "threshold", self->threshold,
                  "trained_rows", (json_int_t)self->trained_rows, "idf", (int)self->idf,
                  "temperature", self->temperature, "features", (int)self->features);
    char *header = h ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(h);
    if (!header) {
        errno = ENOMEM;
        return -1;
    }
    size_t plen = strlen(path) + 16;
    char *tmp = malloc(plen);
    if (!tmp) {
        free(header);
        return -1;
    }
    snprintf(tmp, plen, "%s.tmp%d", path, (int)getpid());
    FILE *fp = fopen(tmp, "wb");
    int rc = -1;
    if (fp) {
        uint32_t hlen = (uint32_t)strlen(header);
        bool ok =
            fwrite(MODEL_MAGIC, 1, MODEL_MAGIC_LEN, fp) == MODEL_MAGIC_LEN &&
            fwrite(&hlen, sizeof hlen, 1, fp) == 1 && fwrite(header, 1, hlen, fp) == hlen &&
            fwrite(self->cat.b, sizeof(float), WASL_CATEGORY_COUNT, fp) == WASL_CATEGORY_COUNT &&
            fwrite(self->pri.b, sizeof(float), WASL_PRIORITY_COUNT, fp) == WASL_PRIORITY_COUNT &&
            write_column(fp, self->weights, 0, MODEL_WEIGHTS) == 0 &&
            (!self->idf || write_column(fp, self->weights, ROW_IDF, 1) == 0);
        ok = (fflush(fp) == 0) && ok && fsync(fileno(fp)) == 0;
        ok = (fclose(fp) == 0) && ok;
        if (ok && rename(tmp, path) == 0) {
            rc = 0;
        } else {
            unlink(tmp);
        }
    }
    free(tmp);
    free(header);
    return rc;
}

/* Checks that the file's label list is exactly ours, in order. */
static bool labels_match(json_t *arr, const char *const *names, int n)
{
    if (!json_is_array(arr) || (int)json_array_size(arr) != n) {
        return false;
    }
    for (int i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, (size_t)i));
        if (!s || strcmp(s, names[i]) != 0) {
            return false;
        }
    }
    return true;
}

wasl_model_t *wasl_model_load(const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    wasl_model_t *m = calloc(1, sizeof *m);
    char magic[MODEL_MAGIC_LEN];
    uint32_t hlen = 0;
    char *header = NULL;
    json_t *h = NULL;
    if (!m) {
        snprintf(err, errlen, "out of memory");
        goto error;
    }
    if (fread(magic, 1, sizeof magic, fp) != sizeof magic ||
        memcmp(magic, MODEL_MAGIC, MODEL_MAGIC_LEN) != 0) {
        snprintf(err, errlen, "%s: not a Wasl model file", path);
        goto error;
    }
    if (fread(&hlen, sizeof hlen, 1, fp) != 1 || hlen == 0 || hlen > MODEL_HEADER_MAX ||
        !(header = malloc(hlen + 1)) || fread(header, 1, hlen, fp) != hlen) {
        snprintf(err, errlen, "%s: truncated header", path);
        goto error;
    }
    header[hlen] = '\0';
    json_error_t jerr;
    h = json_loads(header, 0, &jerr);
    const char *version = h ? json_string_value(json_object_get(h, "version")) : NULL;
    const char *algo = h ? json_string_value(json_object_get(h, "algo")) : NULL;
    if (!h || json_integer_value(json_object_get(h, "format")) != 2 || !version || !algo ||
        json_integer_value(json_object_get(h, "feature_bits")) != WASL_FEATURE_BITS ||
        !labels_match(json_object_get(h, "categories"), wasl_categories, WASL_CATEGORY_COUNT) ||
        !labels_match(json_object_get(h, "priorities"), wasl_priorities, WASL_PRIORITY_COUNT)) {
        snprintf(err, errlen, "%s: unsupported model (format, features or labels differ)", path);
        goto error;
    }
    snprintf(m->version, sizeof m->version, "%s", version);
    snprintf(m->algo, sizeof m->algo, "%s", algo);
    m->threshold = json_real_value(json_object_get(h, "threshold"));
    /* Older files have none: their scores were used as they are. */
    json_t *temp = json_object_get(h, "temperature");
    m->temperature = json_is_real(temp) && json_real_value(temp) > 0 ? json_real_value(temp) : 1;
    m->trained_rows = (size_t)json_integer_value(json_object_get(h, "trained_rows"));
    /* A file without "idf" (written before it existed) is plain tf. */
    m->idf = json_is_true(json_object_get(h, "idf"));
    /* Older files have none: the base features. Unknown kinds are refused below. */
    json_int_t kinds = json_integer_value(json_object_get(h, "features"));
    if (kinds < 0 || (kinds & ~(json_int_t)WASL_FEAT_ALL)) {
        snprintf(err, errlen, "%s: unsupported feature kinds %lld", path, (long long)kinds);
        goto error;
    }
    m->features = (unsigned)kinds;
    if (model_tables_init(m) < 0) {
        snprintf(err, errlen, "out of memory");
        goto error;
    }
    if (fread(m->cat.b, sizeof(float), WASL_CATEGORY_COUNT, fp) != WASL_CATEGORY_COUNT ||
        fread(m->pri.b, sizeof(float), WASL_PRIORITY_COUNT, fp) != WASL_PRIORITY_COUNT ||
        read_column(fp, m->weights, 0, MODEL_WEIGHTS) < 0 ||
        (m->idf && read_column(fp, m->weights, ROW_IDF, 1) < 0) || fgetc(fp) != EOF) {
        snprintf(err, errlen, "%s: truncated or oversized weights", path);
        goto error;
    }
    for (int c = 0; c < WASL_CATEGORY_COUNT; c++) {
        if (!isfinite(m->cat.b[c])) {
            snprintf(err, errlen, "%s: corrupt weights", path);
            goto error;
        }
    }
    tables_settle(m);
    free(header);
    json_decref(h);
    fclose(fp);
    return m;
error:
    free(header);
    json_decref(h);
    fclose(fp);
    wasl_model_destroy(&m);
    return NULL;
}

/* ---- classification --------------------------------------------------------------------- */

int wasl_classify(const wasl_model_t *self, const char *text, size_t len, wasl_features_t *f,
                  wasl_classification_t *out)
{
    memset(out, 0, sizeof *out);
    /* Normalized once: the features and the urgent cues read the same text. */
    char *norm = wasl_normalize(text, len);
    if (!norm) {
        return -1;
    }
    f->kinds = self->features;
    if (features_of_normalized(norm, f) < 0) {
        free(norm);
        return -1;
    }
    /* The rows of a text's features are scattered over a 16 MiB table: ask for all of them
     * at once, so that their cache misses overlap instead of following one another (the dot
     * product below spent 80% of its time waiting on these loads). */
    for (size_t i = 0; i < f->n; i++) {
        __builtin_prefetch(self->weights + (size_t)f->idx[i] * MODEL_ROW);
    }
    if (self->idf) {
        apply_idf(self->weights + ROW_IDF, MODEL_ROW, f);
    }
    /* Category and priority scores in one pass over the shared table. */
    double p[WASL_CATEGORY_COUNT], q[WASL_PRIORITY_COUNT];
    /* 12 lanes (three SIMD vectors of 4) over the 16-float row; lanes 10-11 (the idf and
     * padding) are computed and ignored: 10 lanes compiled to pairs. */
    float acc[12] = {0};
    for (int c = 0; c < WASL_CATEGORY_COUNT; c++) {
        acc[c] = self->cat.b[c];
    }
    for (int c = 0; c < WASL_PRIORITY_COUNT; c++) {
        acc[WASL_CATEGORY_COUNT + c] = self->pri.b[c];
    }
    for (size_t i = 0; i < f->n; i++) {
        const float *w = self->weights + (size_t)f->idx[i] * MODEL_ROW;
        float x = f->val[i];
        for (int c = 0; c < 12; c++) {
            acc[c] += w[c] * x;
        }
    }
    for (int c = 0; c < WASL_CATEGORY_COUNT; c++) {
        p[c] = self->temperature * acc[c];
    }
    for (int c = 0; c < WASL_PRIORITY_COUNT; c++) {
        q[c] = acc[WASL_CATEGORY_COUNT + c];
    }
    softmax(p, WASL_CATEGORY_COUNT);
    int best = argmax(p, WASL_CATEGORY_COUNT);
    memcpy(out->probs, p, sizeof p);
    out->model_category = wasl_categories[best];
    out->confidence = p[best];
    out->category = out->model_category;
    if (f->n == 0) {
        out->category = WASL_CATEGORY_TRIAGE;
        snprintf(out->triage_reason, sizeof out->triage_reason, "no text to classify");
    } else if (p[best] < self->threshold) {
        int second = best == 0 ? 1 : 0;
        for (int c = 0; c < WASL_CATEGORY_COUNT; c++) {
            if (c != best && p[c] > p[second]) {
                second = c;
            }
        }
        out->category = WASL_CATEGORY_TRIAGE;
        snprintf(out->triage_reason, sizeof out->triage_reason,
                 "confidence %.2f below %.2f (%s %.2f, %s %.2f)", p[best], self->threshold,
                 wasl_categories[best], p[best], wasl_categories[second], p[second]);
    }
    bool urgent = urgent_cue_normalized(norm, out->priority_reason, sizeof out->priority_reason);
    free(norm);
    if (urgent) {
        out->priority = wasl_priorities[0];
    } else {
        softmax(q, WASL_PRIORITY_COUNT);
        int pb = argmax(q, WASL_PRIORITY_COUNT);
        out->priority = wasl_priorities[pb];
        snprintf(out->priority_reason, sizeof out->priority_reason, "model %.2f", q[pb]);
    }
    out->lang = wasl_detect_language(text, len);
    return 0;
}
