/* test_classify — features, language, urgent cues, training, the model file, classification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_classify.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_features_mixed_scripts(void **state)
{
    (void)state;
    wasl_features_t f = {0}, g = {0};
    const char *a = "الـــسلام عليكم، OTP ما يوصل!!";
    const char *b = "السلام عليكم OTP ما يوصل";
    assert_int_equal(wasl_features_extract(a, strlen(a), &f), 0);
    assert_int_equal(wasl_features_extract(b, strlen(b), &g), 0);
    /* Normalization makes both spellings the same features. */
    assert_int_equal(f.n, g.n);
    assert_true(f.n > 20);
    double norm2 = 0;
    for (size_t i = 0; i < f.n; i++) {
        assert_true(f.idx[i] < WASL_FEATURE_DIM);
        assert_int_equal(f.idx[i], g.idx[i]);
        norm2 += (double)f.val[i] * f.val[i];
    }
    assert_true(norm2 > 0.999 && norm2 < 1.001); /* L2-normalized */
    /* Reuse with a shorter text leaves nothing of the longer one. */
    assert_int_equal(wasl_features_extract("ok", 2, &f), 0);
    assert_true(f.n > 0 && f.n < 10);
    assert_int_equal(wasl_features_extract("\xC3", 1, &f), -1);
    wasl_features_clear(&f);
    wasl_features_clear(&g);
}

/* The counts table is sized per text: a short text after a long one (whose table grew) gets
 * exactly the features it gets in a fresh buffer, in the same order; repeated n-grams weigh
 * 1 + log(count) before normalization. */
static void test_features_after_long_text(void **state)
{
    (void)state;
    wasl_features_t f = {0}, g = {0};
    size_t cap = 200000, len = 0;
    char *longtext = malloc(cap);
    assert_non_null(longtext);
    for (int i = 0; len + 64 < cap; i++) {
        len += (size_t)snprintf(longtext + len, cap - len, "كلمة%d word%d ", i, i * 7);
    }
    const char *s = "موعد الجلسة موعد الجلسة بكرة";
    assert_int_equal(wasl_features_extract(s, strlen(s), &g), 0);
    assert_int_equal(wasl_features_extract(longtext, len, &f), 0);
    assert_true(f.n > 10000);
    assert_int_equal(wasl_features_extract(s, strlen(s), &f), 0);
    assert_int_equal(f.n, g.n);
    for (size_t i = 0; i < f.n; i++) {
        assert_int_equal(f.idx[i], g.idx[i]);
        assert_true(f.val[i] == g.val[i]);
    }
    /* "موعد" occurs twice, "بكره" once: their unigrams weigh 1 + ln 2 against 1. */
    float twice = 0, once = 0;
    wasl_features_t one = {0};
    assert_int_equal(wasl_features_extract("موعد", strlen("موعد"), &one), 0);
    uint32_t w_mawid = one.idx[0]; /* the word comes first */
    assert_int_equal(wasl_features_extract("بكرة", strlen("بكرة"), &one), 0);
    uint32_t w_bukra = one.idx[0];
    for (size_t i = 0; i < f.n; i++) {
        twice = f.idx[i] == w_mawid ? f.val[i] : twice;
        once = f.idx[i] == w_bukra ? f.val[i] : once;
    }
    assert_true(once > 0);
    assert_float_equal(twice / once, 1.0 + log(2.0), 1e-5);
    free(longtext);
    wasl_features_clear(&one);
    wasl_features_clear(&f);
    wasl_features_clear(&g);
}

/* A model file is only valid with the hashing it was trained with: the feature indices of a
 * text are pinned (word, its n-grams by length then position, the next word, the bigram...). */
static void test_feature_indices_pinned(void **state)
{
    (void)state;
    static const uint32_t want[] = {
        31165,  207558, 197362, 237274, 76074,  1295,   249493, 62986,  44595,  88949, 1623,
        148159, 180034, 103000, 116518, 254373, 68723,  209170, 151002, 61954,  182242, 147763,
        177341, 1526,   156895, 108229, 203027, 162895, 52974,  104528, 70158};
    wasl_features_t f = {0};
    assert_int_equal(wasl_features_extract("abcd efgh", 9, &f), 0);
    assert_int_equal(f.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < f.n; i++) {
        assert_int_equal(f.idx[i], want[i]);
    }
    wasl_features_clear(&f);
}

/* The optional kinds: n-grams across a word boundary (those holding the space: "ab ", "b c",
 * " cd", "ab c", "b cd", "ab cd" for "ab cd") and an Arabic word's light stem. */
static void test_feature_kinds(void **state)
{
    (void)state;
    wasl_features_t base = {0}, f = {.kinds = WASL_FEAT_CROSS};
    assert_int_equal(wasl_features_extract("ab cd", 5, &base), 0);
    assert_int_equal(wasl_features_extract("ab cd", 5, &f), 0);
    assert_int_equal(f.n, base.n + 6);
    assert_int_equal(wasl_features_extract("abcdefgh", 8, &f), 0); /* one word: none */
    assert_int_equal(wasl_features_extract("abcdefgh", 8, &base), 0);
    assert_int_equal(f.n, base.n);
    f.kinds = WASL_FEAT_STEM;
    const char *w = "والمحكمه";
    assert_int_equal(wasl_features_extract(w, strlen(w), &f), 0);
    assert_int_equal(wasl_features_extract(w, strlen(w), &base), 0);
    assert_int_equal(f.n, base.n + 1);
    /* Stems of «والمحكمه» and «بالمحكمه» are the same feature: the two differ by one word
     * feature and their n-grams, never by the stem. */
    wasl_features_t g = {.kinds = WASL_FEAT_STEM};
    const char *v = "بالمحكمه";
    assert_int_equal(wasl_features_extract(v, strlen(v), &g), 0);
    assert_int_equal(f.idx[1], g.idx[1]); /* the stem follows the word */
    assert_int_equal(wasl_features_extract("ok", 2, &f), 0);
    assert_int_equal(wasl_features_extract("ok", 2, &base), 0);
    assert_int_equal(f.n, base.n); /* Latin words are not stemmed */
    wasl_features_clear(&f);
    wasl_features_clear(&g);
    wasl_features_clear(&base);
}

static void test_language(void **state)
{
    (void)state;
    struct {
        const char *text, *lang;
    } cases[] = {
        {"متى موعد الجلسة القادمة؟", "ar"},
        {"When is my next hearing?", "en"},
        {"رمز OTP ما يوصل", "ar"},
        {"ابي أسوي reset للباسورد في the portal", "mixed"},
        {"السستم down من الصبح and nobody answers", "mixed"},
        {"١٢٣٤", "ar"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_string_equal(wasl_detect_language(cases[i].text, strlen(cases[i].text)),
                            cases[i].lang);
    }
}

/* Each urgent rule fires on its cue, with the cue code in the reason, and its near misses
 * do not fire. */
static void test_urgent_cues(void **state)
{
    (void)state;
    char why[128];
    const struct {
        const char *text, *code;
    } urgent[] = {
        {"جلستي اليوم الساعة ١٠ ورابط الجلسة المرئية ما يفتح", "soon"},
        {"My hearing is tomorrow and the video link is not working", "soon"},
        {"الجلسة بكرة وما وصلني الرابط", "soon"},
        {"وبكره آخر يوم للاعتراض", "soon"},            /* a proclitic on the cue */
        {"el jalsa el 7een w ma la8eet el qa3a", "soon"}, /* Arabizi */
        {"hearing in 20 min, which floor?", "soon"},
        {"جلستي بعد ١٠ دقائق وين الدائرة الخامسة", "soon"},
        {"دخلت معين وطلعت لي قضية شخص آخر ببياناته", "data_exposed"},
        {"I can see another person's case data in my account", "data_exposed"},
        {"حسابي في معين مخترق وأحد غير الإيميل", "data_exposed"},
        {"موكلي محتجز ويحتاج صورة الحكم", "detention"},
        {"my brother is detained since Sunday", "detention"},
        {"إذا ما حليتوا موضوعي راح أأذي نفسي، أفكر في الانتحار", "threat"},
    };
    for (size_t i = 0; i < sizeof urgent / sizeof urgent[0]; i++) {
        why[0] = '\0';
        assert_true(wasl_urgent_cue(urgent[i].text, strlen(urgent[i].text), why, sizeof why));
        char code[64];
        snprintf(code, sizeof code, "urgent cue %s:", urgent[i].code);
        assert_non_null(strstr(why, code));
    }
    const char *calm[] = {
        "متى موعد جلستي القادمة؟",             /* hearing, no urgency */
        "الرابط ما يفتح من امس",               /* blocked, no hearing soon */
        "I want to download my judgment copy", /* "down" inside a word */
        "the hearing was yesterday, when is the judgment?",
        "my hearing is after two weeks",
        "آخر يوم للاعتراض بعد بكرة",           /* the day after tomorrow: high */
        "the deadline is the day after tomorrow",
        "انتظرت ٤٠ دقيقة على الخط ولا أحد رد", /* minutes, but not "in N minutes" */
        "راتبي موقوف من شهرين بسبب القرار",    /* suspended salary is not detention */
        "ساكن في بغداد وأسأل عن قضيتي",        /* "غدا" inside a word */
        "the admin page is slow",              /* "min" inside a word */
    };
    for (size_t i = 0; i < sizeof calm / sizeof calm[0]; i++) {
        assert_false(wasl_urgent_cue(calm[i], strlen(calm[i]), why, sizeof why));
    }
}

/* A small training set: enough to learn the six labels apart. */
static const struct {
    const char *text, *category, *priority;
} corpus[] = {
    {"متى موعد الجلسة القادمة لقضيتي", "case_inquiry", "normal"},
    {"وش صار على قضيتي رقم 4512345678", "case_inquiry", "normal"},
    {"هل صدر الحكم في قضيتي", "case_inquiry", "normal"},
    {"when is the next hearing of my case", "case_inquiry", "normal"},
    {"لأي دائرة أحيلت قضيتي", "case_inquiry", "low"},
    {"ما اقدر ادخل معين رمز التحقق ما يوصل", "eservice_support", "high"},
    {"رفع المستندات في معين يعطيني خطأ", "eservice_support", "normal"},
    {"OTP not received on the portal", "eservice_support", "normal"},
    {"نفاذ ما يفتح في التطبيق", "eservice_support", "normal"},
    {"رابط الجلسة المرئية لا يعمل", "eservice_support", "high"},
    {"كيف ارفع دعوى على جهة حكومية", "judicial_support", "low"},
    {"كم مدة الاعتراض على الحكم", "judicial_support", "normal"},
    {"ما المستندات المطلوبة لرفع الدعوى", "judicial_support", "low"},
    {"how do I submit a power of attorney", "judicial_support", "low"},
    {"كيف انفذ حكم اداري صادر لصالحي", "judicial_support", "normal"},
    {"ابي اقدم على اجازة اعتيادية", "staff_services", "low"},
    {"الراتب ما نزل هذا الشهر", "staff_services", "high"},
    {"بدل النقل متأخر", "staff_services", "normal"},
    {"ابغى خطاب تعريف بالراتب", "staff_services", "low"},
    {"my fingerprint attendance record is wrong", "staff_services", "normal"},
    {"اتصلت عشر مرات ومحد يرد", "complaint", "normal"},
    {"الجلسة تأجلت للمرة الرابعة وهذا ظلم", "complaint", "high"},
    {"تعامل الموظف كان سيء جدا", "complaint", "normal"},
    {"the service is very poor and slow", "complaint", "normal"},
    {"قضيتي متأخرة سنتين بدون حكم", "complaint", "high"},
    {"متى أوقات الدوام", "general_inquiry", "low"},
    {"وين موقع المحكمة الإدارية في جدة", "general_inquiry", "low"},
    {"هل عندكم وظائف شاغرة", "general_inquiry", "low"},
    {"what are your working hours in ramadan", "general_inquiry", "low"},
    {"رقم التواصل مع الديوان", "general_inquiry", "low"},
};
#define CORPUS_N (sizeof corpus / sizeof corpus[0])

static wasl_model_t *train_small(wasl_algo_t algo)
{
    wasl_train_row_t rows[CORPUS_N];
    for (size_t i = 0; i < CORPUS_N; i++) {
        rows[i].text = corpus[i].text;
        rows[i].category = wasl_category_index(corpus[i].category);
        rows[i].priority = wasl_priority_index(corpus[i].priority);
    }
    /* The SVM is trained as shipped: on TF-IDF features. */
    wasl_train_opts_t opts = {
        .algo = algo, .epochs = 30, .folds = 0, .version = "test-1", .idf = algo == WASL_ALGO_SVM,
        .features = algo == WASL_ALGO_SVM ? WASL_FEAT_CROSS : 0};
    return wasl_model_train(rows, CORPUS_N, &opts, NULL, NULL);
}

static void test_train_and_classify(void **state)
{
    (void)state;
    for (int algo = WASL_ALGO_SOFTMAX; algo <= WASL_ALGO_SVM; algo++) {
        wasl_model_t *m = train_small((wasl_algo_t)algo);
        assert_non_null(m);
        wasl_features_t f = {0};
        size_t right = 0;
        for (size_t i = 0; i < CORPUS_N; i++) {
            wasl_classification_t c;
            assert_int_equal(wasl_classify(m, corpus[i].text, strlen(corpus[i].text), &f, &c), 0);
            right += strcmp(c.model_category, corpus[i].category) == 0;
        }
        assert_true(right >= CORPUS_N - 2); /* it learned its training set */
        /* A new phrasing of a known intent. */
        const char *q = "متى الجلسه القادمه في قضيتي؟";
        wasl_classification_t c;
        assert_int_equal(wasl_classify(m, q, strlen(q), &f, &c), 0);
        assert_string_equal(c.model_category, "case_inquiry");
        assert_string_equal(c.lang, "ar");
        wasl_features_clear(&f);
        wasl_model_destroy(&m);
        assert_null(m);
    }
}

/* The shipped training: SVM, idf and the 5-fold calibration (each fold trains on a subset of
 * the rows, whose dual variables are indexed by row), under ASan in `make unit`. */
static void test_svm_calibrated(void **state)
{
    (void)state;
    wasl_train_row_t rows[2 * CORPUS_N];
    for (size_t i = 0; i < 2 * CORPUS_N; i++) {
        rows[i].text = corpus[i % CORPUS_N].text;
        rows[i].category = wasl_category_index(corpus[i % CORPUS_N].category);
        rows[i].priority = wasl_priority_index(corpus[i % CORPUS_N].priority);
    }
    wasl_train_opts_t opts = {.algo = WASL_ALGO_SVM, .folds = 5, .idf = true, .version = "t"};
    wasl_model_t *m = wasl_model_train(rows, 2 * CORPUS_N, &opts, NULL, NULL);
    assert_non_null(m);
    assert_true(wasl_model_threshold(m) >= 0 && wasl_model_threshold(m) < 0.8);
    wasl_model_destroy(&m);
}

static void test_triage_and_urgent_override(void **state)
{
    (void)state;
    wasl_model_t *m = train_small(WASL_ALGO_SOFTMAX);
    wasl_features_t f = {0};
    wasl_classification_t c;
    wasl_model_set_threshold(m, 0.99); /* nothing is that sure */
    const char *q = "كيف الحال";
    assert_int_equal(wasl_classify(m, q, strlen(q), &f, &c), 0);
    assert_string_equal(c.category, WASL_CATEGORY_TRIAGE);
    assert_non_null(strstr(c.triage_reason, "below 0.99"));
    wasl_model_set_threshold(m, 0);
    const char *u = "جلستي اليوم ورابط الجلسة ما يفتح";
    assert_int_equal(wasl_classify(m, u, strlen(u), &f, &c), 0);
    assert_string_equal(c.priority, "urgent");
    assert_non_null(strstr(c.priority_reason, "urgent cue soon"));
    /* Poison: invalid UTF-8 is refused; a megabyte of one letter is classified. */
    assert_int_equal(wasl_classify(m, "\xff\xfe", 2, &f, &c), -1);
    size_t big = 1 << 20;
    char *one = malloc(big);
    memset(one, 'x', big);
    assert_int_equal(wasl_classify(m, one, big, &f, &c), 0);
    assert_non_null(c.model_category);
    free(one);
    wasl_features_clear(&f);
    wasl_model_destroy(&m);
}

static void test_save_load_round_trip(void **state)
{
    (void)state;
    wasl_model_t *m = train_small(WASL_ALGO_SVM); /* with its idf table */
    wasl_model_set_threshold(m, 0.42);
    char path[] = "/tmp/wasl-model-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(wasl_model_save(m, path), 0);
    char err[256];
    wasl_model_t *loaded = wasl_model_load(path, err, sizeof err);
    assert_non_null(loaded);
    assert_string_equal(wasl_model_version(loaded), "test-1");
    assert_true(wasl_model_threshold(loaded) == 0.42);
    wasl_features_t f = {0};
    for (size_t i = 0; i < CORPUS_N; i++) {
        wasl_classification_t a, b;
        wasl_classify(m, corpus[i].text, strlen(corpus[i].text), &f, &a);
        wasl_classify(loaded, corpus[i].text, strlen(corpus[i].text), &f, &b);
        assert_string_equal(a.category, b.category);
        assert_string_equal(a.priority, b.priority);
        assert_true(a.confidence == b.confidence);
    }
    /* Truncated and foreign files are refused with a reason. */
    assert_int_equal(truncate(path, 1000), 0);
    assert_null(wasl_model_load(path, err, sizeof err));
    assert_non_null(strstr(err, "truncated"));
    FILE *fp = fopen(path, "w");
    fputs("not a model", fp);
    fclose(fp);
    assert_null(wasl_model_load(path, err, sizeof err));
    assert_non_null(strstr(err, "not a Wasl model"));
    unlink(path);
    assert_null(wasl_model_load(path, err, sizeof err));
    wasl_features_clear(&f);
    wasl_model_destroy(&loaded);
    wasl_model_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_features_mixed_scripts),
        cmocka_unit_test(test_features_after_long_text),
        cmocka_unit_test(test_feature_indices_pinned),
        cmocka_unit_test(test_feature_kinds),
        cmocka_unit_test(test_language),
        cmocka_unit_test(test_urgent_cues),
        cmocka_unit_test(test_train_and_classify),
        cmocka_unit_test(test_svm_calibrated),
        cmocka_unit_test(test_triage_and_urgent_override),
        cmocka_unit_test(test_save_load_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
