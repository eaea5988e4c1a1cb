/* test_entities — case numbers, IDs, phones, e-mails and ticket references found in text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "wasl_entities.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *text;
    const char *expect; /* the JSON the extraction must equal */
} entity_case_t;

static void test_table(void **state)
{
    (void)state;
    const entity_case_t cases[] = {
        {"قضيتي رقم ٤٥١٢٣٤٥٦٧٨ وهويتي ١٠١٢٣٤٥٦٧٢",
         "{\"case_number\":[\"4512345678\"],\"national_id\":[\"1012345672\"]}"},
        {"جوالي 055 123 4567 ابي احد يتصل", "{\"phone\":[\"+966551234567\"]}"},
        {"call +966 55 123 4567 or 00966501112223 or 966551112222 or ٠٥٠٩٨٧٦٥٤٣",
         "{\"phone\":[\"+966551234567\",\"+966501112223\",\"+966551112222\","
         "\"+966509876543\"]}"},
        {"رقم الطلب 2600000018 ولم يرد احد", "{\"ticket_ref\":[\"2600000018\"]}"},
        {"ticket #2600000018", "{\"ticket_ref\":[\"2600000018\"]}"},
        /* No cue: a valid ID reads as an ID; a number whose ID check fails but whose Verhoeff
         * digit is right reads as a reference. */
        {"هويتي 2600000018", "{\"national_id\":[\"2600000018\"]}"},
        {"2600000025 متى يرد عليه", "{\"ticket_ref\":[\"2600000025\"]}"},
        {"Email: Ahmed.Ali@Example.SA.", "{\"email\":[\"ahmed.ali@example.sa\"]}"},
        {"القضية 4612345678 و4612345678 مرة ثانية", "{\"case_number\":[\"4612345678\"]}"},
        {"الرقم 4612345678901 طويل و12345 قصير", "{}"},
        {"case no. 4412345678, my id 2109876546, mobile 0551234567",
         "{\"case_number\":[\"4412345678\"],\"national_id\":[\"2109876546\"],"
         "\"phone\":[\"+966551234567\"]}"},
        {"لا يوجد شيء هنا", "{}"},
        {"a@b x@y.c not@emails", "{}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *got = wasl_entities_extract(cases[i].text, strlen(cases[i].text), "966");
        assert_non_null(got);
        json_t *want = json_loads(cases[i].expect, 0, NULL);
        assert_non_null(want);
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_COMPACT);
            print_error("case %zu: %s\n  got  %s\n  want %s\n", i, cases[i].text, g,
                        cases[i].expect);
            free(g);
        }
        assert_true(json_equal(got, want));
        json_decref(got);
        json_decref(want);
    }
}

static void test_luhn_and_extract(void **state)
{
    (void)state;
    assert_true(wasl_national_id_valid("1012345672"));
    assert_false(wasl_national_id_valid("1012345673"));
    assert_false(wasl_national_id_valid("3012345672"));
    assert_false(wasl_national_id_valid("101234567"));
    const char *text = "قضية 4512345678 جوال 0551234567";
    json_t *e = wasl_entities_extract(text, strlen(text), "966");
    assert_int_equal(json_object_size(e), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(e, "case_number"), 0)),
                        "4512345678");
    assert_string_equal(json_string_value(json_array_get(json_object_get(e, "phone"), 0)),
                        "+966551234567");
    json_decref(e);
    assert_null(wasl_entities_extract("\xff", 1, "966"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_luhn_and_extract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
