/* wasl_classify — the contact classifier: hashed word and character n-gram features over the
 * normalized text, a linear model for category and priority, rules for urgent cues and
 * language, a calibrated confidence threshold for triage, and the model file. */
#ifndef WASL_CLASSIFY_H
#define WASL_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The labels, in model order (exact names). */
#define WASL_CATEGORY_COUNT 6
#define WASL_PRIORITY_COUNT 4
extern const char *const wasl_categories[WASL_CATEGORY_COUNT];
extern const char *const wasl_priorities[WASL_PRIORITY_COUNT]; /* urgent, high, normal, low */
#define WASL_CATEGORY_TRIAGE "triage"

/* Index of a label name, or -1. */
int wasl_category_index(const char *name);
int wasl_priority_index(const char *name);

/* Feature space: 2^WASL_FEATURE_BITS hashed buckets. */
#define WASL_FEATURE_BITS 18
#define WASL_FEATURE_DIM  (1u << WASL_FEATURE_BITS)

/* Feature kinds beyond the base ones (word unigrams and bigrams, character 2–5-grams inside
 * words), chosen at training time and kept in the model file. */
enum {
    WASL_FEAT_STEM = 1 << 0,  /* an Arabic word's light stem (clitics and suffixes stripped) */
    WASL_FEAT_CROSS = 1 << 1, /* character 3–5-grams across a word boundary */
    WASL_FEAT_ALL = 0x3
};

/* A sparse, L2-normalized feature vector: unique indices (first-seen order) with values. */
typedef struct {
    unsigned kinds; /* WASL_FEAT_* besides the base features (set by the caller; wasl_classify
                       sets the model's) */
    uint32_t *idx;
    float *val;
    size_t n, cap;
    /* Scratch counts table, reused between texts (private). */
    struct wasl_feature_slot {
        uint32_t key; /* feature index + 1; 0: empty */
        float count;
    } *table;
    uint32_t *tslots; /* the occupied slots, in insertion order */
    size_t tcap;      /* slots in use for this text (a power of two, sized by its length) */
    size_t tsize;     /* slots allocated */
} wasl_features_t;

/* Fills `f` (reusing its buffers) with the features of `text` (raw, not normalized: the
 * function normalizes with wasl_normalize). Word unigrams and bigrams, character 2–5-grams
 * inside words. Returns 0, or -1 when the text is not valid UTF-8 or on allocation failure. */
int wasl_features_extract(const char *text, size_t len, wasl_features_t *f);
void wasl_features_clear(wasl_features_t *f);

/* The language of a text from its scripts: "ar", "en" or "mixed". */
const char *wasl_detect_language(const char *text, size_t len);

/* The urgent cues found in the text (normalized, Arabizi digits mapped): a threat or self-harm,
 * data exposed, detention, or a time cue — today, tonight, tomorrow, now, within hours, in N
 * minutes — not after "after"/«بعد». Writes the reason `urgent cue <code>: "<phrase>"` (codes:
 * threat, data_exposed, detention, soon) and returns true when one applies. */
bool wasl_urgent_cue(const char *text, size_t len, char *reason, size_t cap);

typedef struct wasl_model wasl_model_t;

typedef enum { WASL_ALGO_SOFTMAX = 0, WASL_ALGO_CNB = 1, WASL_ALGO_SVM = 2 } wasl_algo_t;

typedef struct {
    const char *text;
    int category; /* index into wasl_categories */
    int priority; /* index into wasl_priorities, or -1 when unknown */
} wasl_train_row_t;

typedef struct {
    wasl_algo_t algo;
    int epochs;           /* softmax, SVM: passes over the data (default 12) */
    double learning_rate; /* softmax: Adagrad step (default 0.4) */
    double l2;            /* softmax: weight decay per step on touched weights (default 1e-6) */
    double alpha;         /* CNB: smoothing (default 0.3) */
    int folds;            /* folds for calibrating the triage threshold (default 5; 0: none) */
    double svm_c;         /* SVM: cost C (default 1, as scikit-learn's LinearSVC) */
    bool svm_balanced;    /* SVM: class-balanced C for priority */
    bool idf;             /* weigh features by inverse document frequency (TF-IDF) */
    unsigned features;    /* WASL_FEAT_* kinds besides the base features */
    double urgent_bias;   /* added to the priority model's urgent score after training: trades
                             normal/low contacts raised for urgent recall (default 0) */
    uint64_t seed;        /* shuffling */
    const char *version;  /* stored in the model; default: "<algo>-<rows>-<unix time>" */
} wasl_train_opts_t;

/* Progress of training: stage name, done and total units. */
typedef void(wasl_train_progress_fn)(void *arg, const char *stage, size_t done, size_t total);

/* Trains category and priority models on rows[0..n) and calibrates the triage threshold by
 * cross-validation. Returns the model, or NULL on bad input or allocation failure. */
wasl_model_t *wasl_model_train(const wasl_train_row_t *rows, size_t n,
                               const wasl_train_opts_t *opts, wasl_train_progress_fn *progress,
                               void *arg);

/* Loads a model file. NULL with a reason in err on a missing, truncated or foreign file. */
wasl_model_t *wasl_model_load(const char *path, char *err, size_t errlen);
/* Writes the model atomically (a temporary file renamed over `path`). 0 or -1 (errno). */
int wasl_model_save(const wasl_model_t *self, const char *path);
void wasl_model_destroy(wasl_model_t **self_p);

const char *wasl_model_version(const wasl_model_t *self);
double wasl_model_threshold(const wasl_model_t *self);
void wasl_model_set_threshold(wasl_model_t *self, double threshold);

typedef struct {
    const char *category;       /* a wasl_categories name, or "triage" when not confident */
    const char *model_category; /* the model's best category even when triaged */
    double confidence;          /* probability of model_category */
    char triage_reason[128];
    const char *priority;
    char priority_reason[128];
    const char *lang;
    double probs[WASL_CATEGORY_COUNT];
} wasl_classification_t;

/* Classifies a contact (subject and body joined by the caller, raw text). `f` is a scratch
 * buffer the caller keeps between calls (no allocation once warm). Returns 0, or -1 when the
 * text is not valid UTF-8 or on allocation failure. Thread-safe for a shared model. */
int wasl_classify(const wasl_model_t *self, const char *text, size_t len, wasl_features_t *f,
                  wasl_classification_t *out);

#endif
