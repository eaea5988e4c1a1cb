/* seed — `waslctl seed-cases N`: realistic Arabic demo data for case lookup (courts, circuits,
 * cases, parties with valid IDs and phones, past and future hearings, updates). */
#include "ctl.h"
#include "wasl_config.h"
#include "wasl_entities.h"
#include "wasl_log.h"
#include "wasl_pg.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SEED_BATCH 500
#define SEED_MAX   10000000L
#define BAR_WIDTH  40
#define SAMPLES    3
#define DAY_S      86400

static const struct {
    const char *code, *name_ar, *name_en, *city_ar, *city_en;
} courts[] = {
    {"RUH", "المحكمة الإدارية بالرياض", "Administrative Court in Riyadh", "الرياض", "Riyadh"},
    {"JED", "المحكمة الإدارية بجدة", "Administrative Court in Jeddah", "جدة", "Jeddah"},
    {"MKK", "المحكمة الإدارية بمكة المكرمة", "Administrative Court in Makkah", "مكة المكرمة",
     "Makkah"},
    {"MED", "المحكمة الإدارية بالمدينة المنورة", "Administrative Court in Madinah",
     "المدينة المنورة", "Madinah"},
    {"DMM", "المحكمة الإدارية بالدمام", "Administrative Court in Dammam", "الدمام", "Dammam"},
    {"AHB", "المحكمة الإدارية بأبها", "Administrative Court in Abha", "أبها", "Abha"},
    {"BUR", "المحكمة الإدارية ببريدة", "Administrative Court in Buraydah", "بريدة", "Buraydah"},
    {"RUH-A", "محكمة الاستئناف الإدارية بالرياض", "Administrative Court of Appeal in Riyadh",
     "الرياض", "Riyadh"},
};
static const char *const ordinal_ar[] = {"الأولى",  "الثانية", "الثالثة", "الرابعة",
                                         "الخامسة", "السادسة", "السابعة", "الثامنة"};
static const char *const ordinal_en[] = {"First", "Second", "Third",   "Fourth",
                                         "Fifth", "Sixth",  "Seventh", "Eighth"};
#define CIRCUITS_PER_COURT 6

static const struct {
    const char *ar, *en;
} subjects[] = {
    {"إلغاء قرار إداري بالفصل من الخدمة", "annulment of a dismissal decision"},
    {"المطالبة بمستحقات وظيفية", "claim for employment entitlements"},
    {"التعويض عن نزع ملكية عقار", "compensation for expropriation"},
    {"منازعة في عقد توريد مع جهة حكومية", "dispute over a government supply contract"},
    {"إلغاء قرار سحب ترخيص تجاري", "annulment of a licence withdrawal"},
    {"المطالبة بالترقية", "claim for promotion"},
    {"الاعتراض على غرامة بلدية", "objection to a municipal fine"},
    {"التعويض عن قرار إداري", "compensation for an administrative decision"},
};
static const char *const statuses[] = {"filed",     "under_review",    "in_hearing", "in_hearing",
                                       "adjourned", "judgment_issued", "appealed",   "closed"};
static const char *const agencies[] = {"وزارة الموارد البشرية والتنمية الاجتماعية",
                                       "أمانة منطقة الرياض",
                                       "وزارة الشؤون البلدية والقروية",
                                       "وزارة التعليم",
                                       "هيئة الزكاة والضريبة والجمارك",
                                       "وزارة الصحة",
                                       "أمانة محافظة جدة",
                                       "وزارة التجارة"};
static const char *const first_names[] = {"محمد",      "عبدالله", "فهد",   "سارة", "نورة", "خالد",
                                          "عبدالرحمن", "ريم",     "سلطان", "هند",  "ماجد", "لطيفة",
                                          "تركي",      "منيرة",   "فيصل",  "أمل"};
static const char *const family_names[] = {"العتيبي", "القحطاني", "الشهري",  "الدوسري",
                                           "الغامدي", "الزهراني", "المطيري", "الحربي",
                                           "السبيعي", "العنزي",   "الشمري",  "التميمي"};
static const struct {
    const char *ar, *en;
} hearing_kinds[] = {
    {"جلسة مرافعة", "pleading session"},
    {"جلسة تقديم مذكرات", "submission of memoranda"},
    {"جلسة النطق بالحكم", "pronouncement of judgment"},
    {"جلسة استماع للشهود", "hearing of witnesses"},
};
static const struct {
    const char *ar, *en;
} updates[] = {
    {"تم قيد الدعوى وإحالتها إلى الدائرة", "The claim was registered and referred to the circuit"},
    {"تم تحديد موعد الجلسة الأولى", "The first hearing was scheduled"},
    {"قدمت الجهة الإدارية مذكرتها الجوابية", "The agency filed its reply memorandum"},
    {"تم تأجيل الجلسة لتقديم المستندات", "The hearing was adjourned for documents"},
    {"طلبت الدائرة مستندات إضافية من المدعي", "The circuit asked the plaintiff for documents"},
    {"حجزت القضية للحكم", "The case was reserved for judgment"},
    {"صدر الحكم في القضية", "Judgment was issued"},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static unsigned pick(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* A 10-digit ID starting with `first` whose Luhn check digit (as wasl_national_id_valid
 * computes it) is right. */
static void make_national_id(char first, char out[11])
{
    out[0] = first;
    for (int i = 1; i < 9; i++) {
        out[i] = (char)('0' + pick(10));
    }
    out[10] = '\0';
    for (char d = '0'; d <= '9'; d++) {
        out[9] = d;
        if (wasl_national_id_valid(out)) {
            return;
        }
    }
}

static void make_phone(char out[16])
{
    static const char *const prefixes[] = {"50", "53", "54", "55", "56", "58", "59"};
    snprintf(out, 16, "+966%s%07u", prefixes[pick(N_OF(prefixes))], (unsigned)(rnd() % 10000000));
}

static void progress(long done, long total)
{
    int filled = total > 0 ? (int)(done * BAR_WIDTH / total) : BAR_WIDTH;
    fprintf(stderr, "\r[");
    for (int i = 0; i < BAR_WIDTH; i++) {
        fputc(i < filled ? '#' : '.', stderr);
    }
    fprintf(stderr, "] %3ld%% %ld/%ld cases", total ? done * 100 / total : 100, done, total);
    if (done == total) {
        fputc('\n', stderr);
    }
}

static const char *const courts_sql =
    "WITH c AS (INSERT INTO courts (code, name_ar, name_en, city_ar, city_en)"
    " SELECT code, name_ar, name_en, city_ar, city_en FROM jsonb_to_recordset($1::jsonb) AS x("
    " code text, name_ar text, name_en text, city_ar text, city_en text)"
    " ON CONFLICT (code) DO NOTHING RETURNING id, code)"
    " INSERT INTO circuits (court_id, name_ar, name_en)"
    " SELECT co.id, x.name_ar, x.name_en FROM jsonb_to_recordset($2::jsonb) AS x("
    " code text, name_ar text, name_en text) JOIN c co ON co.code = x.code";

static const char *const batch_sql =
    "WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(case_number text, court text,"
    "  circuit int, subject_ar text, subject_en text, status text, filed_at timestamptz,"
    "  parties jsonb, hearings jsonb, updates jsonb)),"
    " c AS (INSERT INTO cases (case_number, circuit_id, subject_ar, subject_en, status, filed_at)"
    "  SELECT x.case_number, ci.id, x.subject_ar, x.subject_en, x.status, x.filed_at FROM x"
    "  JOIN courts co ON co.code = x.court"
    "  JOIN LATERAL (SELECT id FROM circuits WHERE court_id = co.id ORDER BY id"
    "                OFFSET x.circuit LIMIT 1) ci ON true"
    "  ON CONFLICT (case_number) DO NOTHING RETURNING id, case_number),"
    " p AS (INSERT INTO case_parties (case_id, role, name_ar, national_id, phone)"
    "  SELECT c.id, p.role, p.name_ar, p.national_id, p.phone FROM c JOIN x USING (case_number),"
    "  jsonb_to_recordset(x.parties) AS p(role text, name_ar text, national_id text, phone text)),"
    " h AS (INSERT INTO case_hearings (case_id, starts_at, kind_ar, kind_en)"
    "  SELECT c.id, to_timestamp(h.at), h.kind_ar, h.kind_en FROM c JOIN x USING (case_number),"
    "  jsonb_to_recordset(x.hearings) AS h(at bigint, kind_ar text, kind_en text)),"
    " u AS (INSERT INTO case_updates (case_id, at, text_ar, text_en)"
    "  SELECT c.id, to_timestamp(u.at), u.text_ar, u.text_en FROM c JOIN x USING (case_number),"
    "  jsonb_to_recordset(x.updates) AS u(at bigint, text_ar text, text_en text))"
    " SELECT case_number FROM c";

/* A hearing at a working hour (08:00–13:30 Riyadh, Sunday–Thursday) around `day_s`. */
static int64_t hearing_time(int64_t day_s)
{
    int64_t day = day_s - day_s % DAY_S;
    /* 1970-01-01 was a Thursday: weekday 0 = Thursday; Friday = 1, Saturday = 2. */
    while (((day / DAY_S) % 7) == 1 || ((day / DAY_S) % 7) == 2) {
        day += DAY_S;
    }
    int minutes = 8 * 60 + 30 * (int)pick(12); /* local */
    return day + (int64_t)minutes * 60 - 3 * 3600;
}

static json_t *make_case(int64_t now, char samples[SAMPLES][64], int *nsamples)
{
    char number[16], nid[11], phone[16], name[160];
    /* Filed in 1444..1447 AH; the number starts with the year's last two digits. */
    int year = 44 + (int)pick(4);
    snprintf(number, sizeof number, "%02d%08u", year, (unsigned)(rnd() % 100000000));
    unsigned court = pick(N_OF(courts));
    unsigned subj = pick(N_OF(subjects));
    const char *status = statuses[pick(N_OF(statuses))];
    int64_t filed = now - (int64_t)(30 + pick(700)) * DAY_S;
    json_t *parties = json_array();
    make_national_id(pick(5) == 0 ? '2' : '1', nid);
    bool with_phone = pick(10) < 8;
    make_phone(phone);
    snprintf(name, sizeof name, "%s %s %s", first_names[pick(N_OF(first_names))],
             first_names[pick(N_OF(first_names))], family_names[pick(N_OF(family_names))]);
    json_array_append_new(parties,
                          json_pack("{s:s, s:s, s:s, s:s?}", "role", "plaintiff", "name_ar", name,
                                    "national_id", nid, "phone", with_phone ? phone : NULL));
    json_array_append_new(parties, json_pack("{s:s, s:s}", "role", "defendant", "name_ar",
                                             agencies[pick(N_OF(agencies))]));
    if (pick(3) == 0) {
        char lawyer_id[11], lawyer_phone[16], lawyer[160];
        make_national_id('1', lawyer_id);
        make_phone(lawyer_phone);
        snprintf(lawyer, sizeof lawyer, "المحامي %s %s", first_names[pick(N_OF(first_names))],
                 family_names[pick(N_OF(family_names))]);
        json_array_append_new(parties,
                              json_pack("{s:s, s:s, s:s, s:s}", "role", "representative", "name_ar",
                                        lawyer, "national_id", lawyer_id, "phone", lawyer_phone));
    }
    json_t *hearings = json_array();
    unsigned past = pick(3);
    for (unsigned i = 0; i < past; i++) {
        int64_t at = hearing_time(filed + (int64_t)(20 + 40 * i) * DAY_S);
        if (at < now) {
            unsigned k = pick(2);
            json_array_append_new(hearings,
                                  json_pack("{s:I, s:s, s:s}", "at", (json_int_t)at, "kind_ar",
                                            hearing_kinds[k].ar, "kind_en", hearing_kinds[k].en));
        }
    }
    bool future =
        strcmp(status, "closed") != 0 && strcmp(status, "judgment_issued") != 0 && pick(10) < 8;
    if (future) {
        unsigned k = pick(N_OF(hearing_kinds));
        int64_t at = hearing_time(now + (int64_t)(1 + pick(90)) * DAY_S);
        json_array_append_new(hearings,
                              json_pack("{s:I, s:s, s:s}", "at", (json_int_t)at, "kind_ar",
                                        hearing_kinds[k].ar, "kind_en", hearing_kinds[k].en));
    }
    json_t *ups = json_array();
    unsigned nup = 1 + pick(4);
    for (unsigned i = 0; i < nup; i++) {
        unsigned k = i == 0 ? 0 : 1 + pick(N_OF(updates) - 2);
        if (i == nup - 1 && strcmp(status, "judgment_issued") == 0) {
            k = N_OF(updates) - 1;
        }
        int64_t at = filed + (int64_t)(i * 25 + pick(20)) * DAY_S;
        if (at > now) {
            at = now - DAY_S;
        }
        json_array_append_new(ups, json_pack("{s:I, s:s, s:s}", "at", (json_int_t)at, "text_ar",
                                             updates[k].ar, "text_en", updates[k].en));
    }
    char filed_at[32];
    time_t ft = (time_t)filed;
    struct tm tm;
    gmtime_r(&ft, &tm);
    strftime(filed_at, sizeof filed_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (*nsamples < SAMPLES && with_phone && future) {
        snprintf(samples[*nsamples], 64, "%s\t%s\t%s", number, nid, phone);
        (*nsamples)++;
    }
    return json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "case_number", number,
                     "court", courts[court].code, "circuit", (int)pick(CIRCUITS_PER_COURT),
                     "subject_ar", subjects[subj].ar, "subject_en", subjects[subj].en, "status",
                     status, "filed_at", filed_at, "parties", parties, "hearings", hearings,
                     "updates", ups);
}

static int seed_courts(wasl_pg_t *pg)
{
    json_t *cj = json_array(), *kj = json_array();
    for (size_t i = 0; i < N_OF(courts); i++) {
        json_array_append_new(cj, json_pack("{s:s, s:s, s:s, s:s, s:s}", "code", courts[i].code,
                                            "name_ar", courts[i].name_ar, "name_en",
                                            courts[i].name_en, "city_ar", courts[i].city_ar,
                                            "city_en", courts[i].city_en));
        bool appeal = strstr(courts[i].code, "-A") != NULL;
        for (int k = 0; k < CIRCUITS_PER_COURT; k++) {
            char ar[128], en[128];
            snprintf(ar, sizeof ar, "%s %s",
                     appeal ? "دائرة الاستئناف الإدارية" : "الدائرة الإدارية", ordinal_ar[k]);
            snprintf(en, sizeof en, "%s %s Circuit", ordinal_en[k],
                     appeal ? "Administrative Appeal" : "Administrative");
            json_array_append_new(kj, json_pack("{s:s, s:s, s:s}", "code", courts[i].code,
                                                "name_ar", ar, "name_en", en));
        }
    }
    char *a = json_dumps(cj, JSON_COMPACT), *b = json_dumps(kj, JSON_COMPACT);
    const char *p[] = {a, b};
    PGresult *res = a && b ? wasl_pg_query(pg, courts_sql, 2, p) : NULL;
    int rc = res ? 0 : -1;
    PQclear(res);
    free(a);
    free(b);
    json_decref(cj);
    json_decref(kj);
    return rc;
}

int ctl_seed_cases(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fprintf(argc < 2 ? stderr : stdout,
                "Usage: waslctl seed-cases N [--seed S]\n"
                "Adds N demo cases (courts, circuits, parties, hearings, updates) to the case\n"
                "tables of WASL_PG_URL and prints three parties to try:\n"
                "case_number<TAB>national_id<TAB>phone\n");
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    char *end;
    long n = strtol(argv[1], &end, 10);
    if (*end || n < 1 || n > SEED_MAX) {
        fprintf(stderr, "waslctl seed-cases: N must be 1..%ld\n", SEED_MAX);
        return CTL_USAGE;
    }
    rng_state = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (argc >= 4 && !strcmp(argv[2], "--seed")) {
        rng_state = strtoull(argv[3], NULL, 10) * 0x9e3779b97f4a7c15ull + 1;
    }
    const char *url = getenv("WASL_PG_URL");
    wasl_pg_t *pg = wasl_pg_new(url && *url ? url : WASL_PG_URL_DEFAULT);
    int rc = CTL_FAILED;
    if (!pg || !wasl_pg_ok(pg)) {
        fprintf(stderr, "waslctl seed-cases: cannot connect: %s\n", pg ? wasl_pg_error(pg) : "");
        rc = CTL_UNAVAIL;
        goto done;
    }
    if (seed_courts(pg) < 0) {
        fprintf(stderr, "waslctl seed-cases: courts: %s (run waslctl migrate first)\n",
                wasl_pg_error(pg));
        goto done;
    }
    char samples[SAMPLES][64];
    int nsamples = 0;
    long done_n = 0;
    int64_t now = (int64_t)time(NULL);
    bool tty = isatty(STDERR_FILENO);
    progress(0, n);
    while (done_n < n) {
        long want = n - done_n < SEED_BATCH ? n - done_n : SEED_BATCH;
        json_t *batch = json_array();
        char bs[SAMPLES][64];
        int nbs = nsamples;
        memcpy(bs, samples, sizeof bs);
        for (long i = 0; i < want; i++) {
            json_array_append_new(batch, make_case(now, bs, &nbs));
        }
        char *text = json_dumps(batch, JSON_COMPACT);
        json_decref(batch);
        const char *p[] = {text};
        PGresult *res = text ? wasl_pg_query(pg, batch_sql, 1, p) : NULL;
        free(text);
        if (!res) {
            fprintf(stderr, "\nwaslctl seed-cases: %s\n", wasl_pg_error(pg));
            goto done;
        }
        /* A sample counts only when its case went in (a number collision is skipped). */
        for (int s = nsamples; s < nbs; s++) {
            for (int r = 0; r < PQntuples(res); r++) {
                if (strncmp(bs[s], PQgetvalue(res, r, 0), 10) == 0) {
                    memcpy(samples[nsamples++], bs[s], sizeof bs[s]);
                    break;
                }
            }
        }
        done_n += PQntuples(res);
        PQclear(res);
        if (tty || done_n == n) {
            progress(done_n, n);
        }
    }
    fprintf(stderr, "%ld cases added; parties to try (case_number, national_id, phone):\n", n);
    for (int s = 0; s < nsamples; s++) {
        printf("%s\n", samples[s]);
    }
    rc = CTL_OK;
done:
    wasl_pg_destroy(&pg);
    return rc;
}
