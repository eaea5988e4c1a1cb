/* classifier — `waslctl classifier train|eval`: build a model from a TSV, measure it on another. */
#include "ctl.h"
#include "wasl_classify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define TSV_HEADER    "id\tcategory\tpriority\tlang\tchannel\ttext"
#define DEFAULT_MODEL "build/model/classifier.bin"
#define LANG_COUNT    3
static const char *const langs[LANG_COUNT] = {"ar", "en", "mixed"};
/* The speed measurement repeats the classification until it has run this long. */
#define SPEED_MIN_MS 1000

typedef struct {
    char *line;
    const char *id, *category, *priority, *lang, *channel, *text;
} tsv_row_t;

typedef struct {
    tsv_row_t *rows;
    size_t n;
} tsv_t;

static void tsv_free(tsv_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->rows[i].line);
    }
    free(t->rows);
    memset(t, 0, sizeof *t);
}

/* Reads a labelled TSV; returns 0, or -1 with the file and line at fault printed. */
static int tsv_read(const char *path, tsv_t *t)
{
    memset(t, 0, sizeof *t);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "waslctl classifier: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    size_t lineno = 0, alloc = 0;
    int rc = 0;
    while ((len = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = '\0';
        }
        if (lineno == 1) {
            if (strcmp(line, TSV_HEADER) != 0) {
                fprintf(stderr, "%s:1: the header must be \"%s\"\n", path, TSV_HEADER);
                rc = -1;
                break;
            }
            continue;
        }
        if (len == 0) {
            continue;
        }
        if (t->n == alloc) {
            alloc = alloc ? alloc * 2 : 1024;
            tsv_row_t *grown = realloc(t->rows, alloc * sizeof *grown);
            if (!grown) {
                rc = -1;
                break;
            }
            t->rows = grown;
        }
        tsv_row_t *r = &t->rows[t->n];
        r->line = strdup(line);
        if (!r->line) {
            rc = -1;
            break;
        }
        const char **fields[] = {&r->id,   &r->category, &r->priority,
                                 &r->lang, &r->channel,  &r->text};
        char *p = r->line;
        for (size_t f = 0; f < 6; f++) {
            *fields[f] = p;
            char *tab = f < 5 ? strchr(p, '\t') : NULL;
            if (f < 5 && !tab) {
                fprintf(stderr, "%s:%zu: expected 6 tab-separated fields\n", path, lineno);
                free(r->line);
                rc = -1;
                goto out;
            }
            if (tab) {
                *tab = '\0';
                p = tab + 1;
            }
        }
        if (wasl_category_index(r->category) < 0) {
            fprintf(stderr, "%s:%zu: unknown category \"%s\"\n", path, lineno, r->category);
            free(r->line);
            rc = -1;
            goto out;
        }
        t->n++;
    }
out:
    free(line);
    fclose(fp);
    if (rc < 0) {
        tsv_free(t);
    }
    return rc;
}

static void progress(void *arg, const char *stage, size_t done, size_t total)
{
    (void)arg;
    const int width = 30;
    int filled = total ? (int)(done * (size_t)width / total) : width;
    fprintf(stderr, "\r%-12s [%.*s%*s] %zu/%zu", stage, filled, "##############################",
            width - filled, "", done, total);
    if (done == total) {
        fputc('\n', stderr);
    }
}

/* The training knobs cross-validation tunes (data/classifier/tools/cv.py --train-arg) into
 * opts; the rest of `train`'s arguments into the pointers. 0, or -1 on a bad argument. */
static int train_args(int argc, char **argv, const char **in, const char **out,
                      const char **algo, wasl_train_opts_t *opts)
{
    for (int i = 1; i < argc; i++) {
        bool val = i + 1 < argc;
        if (!strcmp(argv[i], "-o") && val) {
            *out = argv[++i];
        } else if (!strcmp(argv[i], "--algo") && val) {
            *algo = argv[++i];
        } else if (!strcmp(argv[i], "--epochs") && val) {
            opts->epochs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--version") && val) {
            opts->version = argv[++i];
        } else if (!strcmp(argv[i], "--lr") && val) {
            opts->learning_rate = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--l2") && val) {
            opts->l2 = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--folds") && val) {
            opts->folds = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--c") && val) {
            opts->svm_c = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--balanced") && val) {
            opts->svm_balanced = atoi(argv[++i]) != 0;
        } else if (!strcmp(argv[i], "--idf") && val) {
            opts->idf = atoi(argv[++i]) != 0;
        } else if (!strcmp(argv[i], "--features") && val) {
            opts->features = (unsigned)atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--urgent-bias") && val) {
            opts->urgent_bias = atof(argv[++i]);
        } else if (argv[i][0] != '-' && !*in) {
            *in = argv[i];
        } else {
            return -1;
        }
    }
    return *in ? 0 : -1;
}

static int train(int argc, char **argv)
{
    /* The shipped setting (docs/architecture.md "Classifier": chosen by 5-fold
     * cross-validation of train.tsv): a linear SVM on TF-IDF features, C = 1, 12 passes. */
    const char *in = NULL, *out = DEFAULT_MODEL, *algo = "svm";
    /* urgent_bias: a missed urgent contact is the costliest error; +0.3 buys 2.6 points of CV
     * urgent recall for 0.8 of priority macro-F1 and 1 point more normal/low raised. */
    /* Base features only: n-grams across word boundaries (--features 2) gave CV +0.0014
     * category and +0.004 priority macro-F1 for 28% of the speed; the light stem
     * (--features 1) nothing (docs/architecture.md "Classifier"). */
    wasl_train_opts_t opts = {.folds = 5, .idf = true, .urgent_bias = 0.3};
    if (train_args(argc, argv, &in, &out, &algo, &opts) < 0 ||
        (strcmp(algo, "softmax") && strcmp(algo, "nb") && strcmp(algo, "svm"))) {
        fprintf(stderr, "Usage: waslctl classifier train TRAIN.tsv [-o MODEL]"
                        " [--algo svm|softmax|nb] [--epochs N] [--version V] [--c X] [--idf 0|1]"
                        " [--balanced 0|1] [--lr X] [--l2 X] [--folds K] [--urgent-bias X]"
                        " [--features BITS: 1 stem, 2 cross-word n-grams]\n");
        return CTL_USAGE;
    }
    tsv_t t;
    if (tsv_read(in, &t) < 0) {
        return CTL_FAILED;
    }
    wasl_train_row_t *rows = calloc(t.n ? t.n : 1, sizeof *rows);
    if (!rows) {
        tsv_free(&t);
        return CTL_FAILED;
    }
    for (size_t i = 0; i < t.n; i++) {
        rows[i].text = t.rows[i].text;
        rows[i].category = wasl_category_index(t.rows[i].category);
        rows[i].priority = wasl_priority_index(t.rows[i].priority);
    }
    opts.algo = !strcmp(algo, "nb")    ? WASL_ALGO_CNB
                : !strcmp(algo, "svm") ? WASL_ALGO_SVM
                                       : WASL_ALGO_SOFTMAX;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    wasl_model_t *m = wasl_model_train(rows, t.n, &opts, progress, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int rc = CTL_OK;
    if (!m) {
        fprintf(stderr, "waslctl classifier train: training failed (bad text or no memory)\n");
        rc = CTL_FAILED;
    } else if (wasl_model_save(m, out) < 0) {
        fprintf(stderr, "waslctl classifier train: cannot write %s: %s\n", out, strerror(errno));
        rc = CTL_FAILED;
    } else {
        printf("model %s: %zu rows, algo %s, triage threshold %.3f, %.1f s -> %s\n",
               wasl_model_version(m), t.n, algo, wasl_model_threshold(m),
               (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, out);
    }
    wasl_model_destroy(&m);
    free(rows);
    tsv_free(&t);
    return rc;
}

/* Prints a confusion matrix and per-class precision/recall/F1; returns the macro F1. */
static double report(const char *title, const char *const *names, int k, const int *gold,
                     const int *pred, size_t n, double *accuracy)
{
    int *cm = calloc((size_t)(k * k), sizeof *cm);
    size_t correct = 0;
    for (size_t i = 0; i < n; i++) {
        if (gold[i] >= 0 && pred[i] >= 0) {
            cm[gold[i] * k + pred[i]]++;
            correct += gold[i] == pred[i];
        }
    }
    printf("\n== %s (rows: gold, columns: predicted)\n%-18s", title, "");
    for (int j = 0; j < k; j++) {
        printf(" %6.6s", names[j]);
    }
    printf("\n");
    for (int i = 0; i < k; i++) {
        printf("%-18s", names[i]);
        for (int j = 0; j < k; j++) {
            printf(" %6d", cm[i * k + j]);
        }
        printf("\n");
    }
    printf("%-18s %9s %9s %9s %7s\n", "class", "precision", "recall", "f1", "support");
    double macro = 0;
    size_t total = 0;
    for (int c = 0; c < k; c++) {
        int tp = cm[c * k + c], col = 0, row = 0;
        for (int j = 0; j < k; j++) {
            col += cm[j * k + c];
            row += cm[c * k + j];
        }
        double p = col ? (double)tp / col : 0, r = row ? (double)tp / row : 0;
        double f1 = p + r > 0 ? 2 * p * r / (p + r) : 0;
        macro += f1;
        total += (size_t)row;
        printf("%-18s %9.3f %9.3f %9.3f %7d\n", names[c], p, r, f1, row);
    }
    macro /= k;
    *accuracy = total ? (double)correct / (double)total : 0;
    printf("%-18s macro_f1 %.3f accuracy %.3f\n", "", macro, *accuracy);
    free(cm);
    return macro;
}

/* Macro-F1 over the rows whose language is `lang` (gold lang index), without printing: the
 * per-language figure shows whether one language carries the average. -1 when no such row. */
static double macro_f1_where(int k, const int *gold, const int *pred, const int *gl, int lang,
                             size_t n)
{
    int tp[WASL_CATEGORY_COUNT] = {0}, fp[WASL_CATEGORY_COUNT] = {0},
        fn[WASL_CATEGORY_COUNT] = {0};
    size_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        if (gl[i] != lang || gold[i] < 0 || pred[i] < 0) {
            continue;
        }
        rows++;
        if (gold[i] == pred[i]) {
            tp[gold[i]]++;
        } else {
            fn[gold[i]]++;
            fp[pred[i]]++;
        }
    }
    if (rows == 0) {
        return -1;
    }
    /* Averaged over the classes present in gold or predictions, as scikit-learn does. */
    double sum = 0;
    int classes = 0;
    for (int c = 0; c < k; c++) {
        if (tp[c] + fp[c] + fn[c] == 0) {
            continue;
        }
        classes++;
        sum += 2.0 * tp[c] / (double)(2 * tp[c] + fp[c] + fn[c]);
    }
    return classes ? sum / classes : 0;
}

/* The figures issue 17 asks for besides the confusion matrices: category macro-F1 per gold
 * language, urgent recall, and the share of normal/low contacts raised to urgent (the cost of
 * that recall: each one jumps the queue). */
static void report_extras(const int *gc, const int *pc, const int *gp, const int *pp,
                          const int *gl, size_t n)
{
    printf("\n== by language (category macro_f1)\n");
    for (int l = 0; l < LANG_COUNT; l++) {
        size_t rows = 0;
        for (size_t i = 0; i < n; i++) {
            rows += gl[i] == l;
        }
        double f1 = macro_f1_where(WASL_CATEGORY_COUNT, gc, pc, gl, l, n);
        printf("lang_%s macro_f1=%.4f n=%zu\n", langs[l], f1 < 0 ? 0 : f1, rows);
    }
    size_t urgent = 0, found = 0, calm = 0, raised = 0;
    for (size_t i = 0; i < n; i++) {
        if (gp[i] == 0) {
            urgent++;
            found += pp[i] == 0;
        } else if (gp[i] >= 2) { /* normal, low */
            calm++;
            raised += pp[i] == 0;
        }
    }
    printf("\n== urgent\nurgent_recall=%.4f (%zu of %zu) normal_low_raised=%.4f (%zu of %zu)\n",
           urgent ? (double)found / (double)urgent : 0, found, urgent,
           calm ? (double)raised / (double)calm : 0, raised, calm);
}

static int lang_index(const char *s)
{
    for (int i = 0; i < LANG_COUNT; i++) {
        if (!strcmp(s, langs[i])) {
            return i;
        }
    }
    return -1;
}

/* Speed: classifies the whole file repeatedly on this one core for SPEED_MIN_MS. Messages per
 * second. */
static double classify_rate(const wasl_model_t *m, const tsv_t *t, wasl_features_t *f)
{
    struct timespec t0, t1;
    size_t done = 0;
    double elapsed = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (t->n > 0 && elapsed * 1000 < SPEED_MIN_MS) {
        for (size_t i = 0; i < t->n; i++) {
            wasl_classification_t c;
            wasl_classify(m, t->rows[i].text, strlen(t->rows[i].text), f, &c);
        }
        done += t->n;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        elapsed = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    }
    return elapsed > 0 ? (double)done / elapsed : 0;
}

static int eval(int argc, char **argv)
{
    const char *in = NULL, *model_path = DEFAULT_MODEL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model_path = argv[++i];
        } else if (argv[i][0] != '-' && !in) {
            in = argv[i];
        } else {
            in = NULL;
            break;
        }
    }
    if (!in) {
        fprintf(stderr, "Usage: waslctl classifier eval FILE.tsv [--model MODEL]\n");
        return CTL_USAGE;
    }
    char err[512];
    wasl_model_t *m = wasl_model_load(model_path, err, sizeof err);
    if (!m) {
        fprintf(stderr, "waslctl classifier eval: %s\n", err);
        return CTL_FAILED;
    }
    tsv_t t;
    if (tsv_read(in, &t) < 0) {
        wasl_model_destroy(&m);
        return CTL_FAILED;
    }
    size_t n = t.n;
    int *gc = malloc((n + 1) * sizeof(int)), *pc = malloc((n + 1) * sizeof(int));
    int *gp = malloc((n + 1) * sizeof(int)), *pp = malloc((n + 1) * sizeof(int));
    int *gl = malloc((n + 1) * sizeof(int)), *pl = malloc((n + 1) * sizeof(int));
    wasl_features_t f = {0};
    size_t triaged = 0, triaged_wrong = 0;
    int rc = CTL_OK;
    for (size_t i = 0; gc && pc && gp && pp && gl && pl && i < n; i++) {
        wasl_classification_t c;
        if (wasl_classify(m, t.rows[i].text, strlen(t.rows[i].text), &f, &c) < 0) {
            fprintf(stderr, "waslctl classifier eval: row %s is not valid UTF-8\n", t.rows[i].id);
            rc = CTL_FAILED;
            break;
        }
        gc[i] = wasl_category_index(t.rows[i].category);
        /* Scored on the model's category; triage is a routing choice reported below. */
        pc[i] = wasl_category_index(c.model_category);
        gp[i] = wasl_priority_index(t.rows[i].priority);
        pp[i] = wasl_priority_index(c.priority);
        gl[i] = lang_index(t.rows[i].lang);
        pl[i] = lang_index(c.lang);
        if (strcmp(c.category, WASL_CATEGORY_TRIAGE) == 0) {
            triaged++;
            triaged_wrong += pc[i] != gc[i];
        }
    }
    if (rc == CTL_OK && gc && pc && gp && pp && gl && pl) {
        double rate = classify_rate(m, &t, &f);
        printf("model %s (threshold %.3f) on %s\n", wasl_model_version(m), wasl_model_threshold(m),
               in);
        double acc, pacc, lacc;
        double macro = report("category", wasl_categories, WASL_CATEGORY_COUNT, gc, pc, n, &acc);
        report("priority", wasl_priorities, WASL_PRIORITY_COUNT, gp, pp, n, &pacc);
        report("language", langs, LANG_COUNT, gl, pl, n, &lacc);
        report_extras(gc, pc, gp, pp, gl, n);
        printf("\ntriage: %zu of %zu (%.1f%%) below the threshold; %zu of them were wrong\n",
               triaged, n, n ? 100.0 * (double)triaged / (double)n : 0, triaged_wrong);
        printf("macro_f1=%.4f accuracy=%.4f n=%zu msgs_per_s=%.0f\n", macro, acc, n, rate);
    }
    wasl_features_clear(&f);
    free(gc);
    free(pc);
    free(gp);
    free(pp);
    free(gl);
    free(pl);
    tsv_free(&t);
    wasl_model_destroy(&m);
    return rc;
}

/* SMS length: a "short message" for the speed goal is at most this many bytes. */
#define SHORT_MESSAGE_BYTES 280

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Model load time, classification rate of short messages on one core, peak memory. */
static int bench(int argc, char **argv)
{
    const char *in = NULL, *model_path = DEFAULT_MODEL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model_path = argv[++i];
        } else if (argv[i][0] != '-' && !in) {
            in = argv[i];
        }
    }
    if (!in) {
        fprintf(stderr, "Usage: waslctl classifier bench FILE.tsv [--model MODEL]\n");
        return CTL_USAGE;
    }
    char err[512];
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    wasl_model_t *m = wasl_model_load(model_path, err, sizeof err);
    double load_s = seconds_since(&t0);
    if (!m) {
        fprintf(stderr, "waslctl classifier bench: %s\n", err);
        return CTL_FAILED;
    }
    tsv_t t;
    if (tsv_read(in, &t) < 0) {
        wasl_model_destroy(&m);
        return CTL_FAILED;
    }
    size_t nshort = 0, bytes = 0;
    const char **texts = calloc(t.n ? t.n : 1, sizeof *texts);
    wasl_features_t f = {0};
    for (size_t i = 0; texts && i < t.n; i++) {
        size_t len = strlen(t.rows[i].text);
        if (len <= SHORT_MESSAGE_BYTES) {
            texts[nshort++] = t.rows[i].text;
            bytes += len;
        }
    }
    size_t done = 0;
    double elapsed = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (nshort > 0 && elapsed * 1000 < SPEED_MIN_MS * 2) {
        for (size_t i = 0; i < nshort; i++) {
            wasl_classification_t c;
            wasl_classify(m, texts[i], strlen(texts[i]), &f, &c);
        }
        done += nshort;
        elapsed = seconds_since(&t0);
    }
    free(texts);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("short_messages=%zu avg_bytes=%.0f model_load_ms=%.1f msgs_per_s=%.0f "
           "peak_rss_mib=%.1f\n",
           nshort, nshort ? (double)bytes / (double)nshort : 0, load_s * 1000,
           elapsed > 0 ? (double)done / elapsed : 0, (double)ru.ru_maxrss / 1024.0);
    wasl_features_clear(&f);
    wasl_model_destroy(&m);
    tsv_free(&t);
    return CTL_OK;
}

int ctl_classifier(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "bench")) {
        return bench(argc - 1, argv + 1);
    }
    if (argc >= 2 && !strcmp(argv[1], "train")) {
        return train(argc - 1, argv + 1);
    }
    if (argc >= 2 && !strcmp(argv[1], "eval")) {
        return eval(argc - 1, argv + 1);
    }
    fprintf(stderr, "Usage: waslctl classifier train TRAIN.tsv [-o MODEL] [--algo svm|softmax|nb]"
                    " [options: see train]\n"
                    "       waslctl classifier eval FILE.tsv [--model MODEL]\n");
    return argc >= 2 && !strcmp(argv[1], "--help") ? CTL_OK : CTL_USAGE;
}
